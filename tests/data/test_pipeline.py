"""tf.data pipelines (seg.data.pipeline) and in-graph augmentation (seg.data.augment)."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from seg.data import threads as input_priority
from seg.data.augment import build_augmenter
from seg.data.pairs import Pair, find_pairs, split_pairs
from seg.data.pipeline import Preprocessing, make_dataset
from tests.support.data import circle_mask, image_from_mask

QUARTER_TURNS = [90, 180, 270]
ALL_ON = {"hflip": {"p": 1.0}, "vflip": {"p": 1.0}, "rotation": {"p": 1.0, "angles": QUARTER_TURNS}}
HALF = {"hflip": {"p": 0.5}, "vflip": {"p": 0.5}, "rotation": {"p": 0.5, "angles": QUARTER_TURNS}}


def _prep(size: tuple[int, int], channels: int = 3, num_classes: int = 1) -> Preprocessing:
    return Preprocessing(size=size, channels=channels, num_classes=num_classes, mask_threshold=0.5)


def _batches(ds: tf.data.Dataset) -> list[tuple[np.ndarray, np.ndarray]]:
    """One epoch as NumPy arrays."""
    return [(x.numpy(), y.numpy()) for x, y in ds]


def _stack(batches: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def _same(a: list[tuple[np.ndarray, np.ndarray]], b: list[tuple[np.ndarray, np.ndarray]]) -> bool:
    """Two epochs hold exactly the same batches in the same order."""
    return len(a) == len(b) and all(
        np.array_equal(x1, x2) and np.array_equal(y1, y2)
        for (x1, y1), (x2, y2) in zip(a, b, strict=True)
    )


def _dihedral(x: np.ndarray) -> list[np.ndarray]:
    """The 8 flips/quarter turns of an HxWxC array (only shape-preserving ones if non-square)."""
    out = []
    for k in range(4):
        r = np.rot90(x, k, axes=(0, 1))
        out += [r, r[:, ::-1]]
    return [r for r in out if r.shape == x.shape]


@pytest.fixture
def tree(tmp_path: Path, make_dataset_tree) -> Path:
    """Synthetic dataset: 6 pairs per split, 24x40 (non-square) RGB images and circle masks."""
    return make_dataset_tree(tmp_path / "ds", n=6, size=(24, 40), seed=1)


@pytest.fixture
def self_masked(tmp_path: Path, write_pair) -> tuple[list[Pair], list[Pair]]:
    """(square 32x32 pairs, non-square 24x40 pairs) whose image IS the mask (grey 0/255)."""
    rng = np.random.default_rng(5)
    out = []
    for h, w in ((32, 32), (24, 40)):
        folder = tmp_path / f"self_{h}x{w}"
        for i in range(6):
            r = int(rng.integers(3, 7))
            c = (int(rng.integers(r, w // 2)), int(rng.integers(r, h // 2)))  # off-centre
            mask = circle_mask(h, w, c, r)
            mask[: h // 3, w - 4 :] = 255  # asymmetric bar: every transform is visible
            write_pair(folder, f"m{i}", mask, mask)
        out.append(find_pairs(folder / "images", folder / "masks"))
    return out[0], out[1]


# --------------------------------------------------------------------------- batches


@pytest.mark.parametrize("size", [(24, 40), (16, 32), (40, 24)])
def test_batches_types_ranges_and_shapes(tree: Path, size: tuple[int, int]) -> None:
    pairs = split_pairs(tree, "train", "images", "masks")
    ds = make_dataset(pairs, _prep(size), batch_size=4)
    batches = _batches(ds)
    assert [len(x) for x, _ in batches] == [4, 2]
    for x, y in batches:
        assert x.dtype == np.float32 and y.dtype == np.float32
        assert x.shape[1:] == (*size, 3) and y.shape[1:] == (*size, 1)
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert set(np.unique(y)) <= {0.0, 1.0}
    images, masks = _stack(batches)
    assert set(np.unique(masks)) == {0.0, 1.0}
    # Images are bright where the mask is set: decoding kept image and mask together.
    fg = images[..., 0][masks[..., 0] == 1].mean()
    bg = images[..., 0][masks[..., 0] == 0].mean()
    assert fg > bg + 0.3


def test_grey_channels_and_static_shapes(tree: Path) -> None:
    pairs = split_pairs(tree, "valid", "images", "masks")
    ds = make_dataset(pairs, _prep((24, 40), channels=1), batch_size=2)
    assert ds.element_spec[0].shape.as_list() == [None, 24, 40, 1]
    assert ds.element_spec[1].shape.as_list() == [None, 24, 40, 1]
    x, _ = next(iter(ds))
    assert x.shape == (2, 24, 40, 1)


def test_multiclass_masks_are_one_hot(tmp_path: Path, write_pair) -> None:
    rng = np.random.default_rng(0)
    truth = []
    for i in range(3):
        labels = np.zeros((16, 24), np.uint8)
        labels[:, 8:] = 1
        labels[rng.integers(0, 16), :] = 2
        labels[:, rng.integers(0, 8)] = 2
        truth.append(labels)
        write_pair(tmp_path, f"s{i}", image_from_mask(labels, rng), labels)
    pairs = find_pairs(tmp_path / "images", tmp_path / "masks")
    ds = make_dataset(pairs, _prep((16, 24), num_classes=3), batch_size=2)
    assert ds.element_spec[1].shape.as_list() == [None, 16, 24, 3]
    _, masks = _stack(_batches(ds))
    assert masks.shape == (3, 16, 24, 3) and masks.dtype == np.float32
    assert set(np.unique(masks)) == {0.0, 1.0}
    np.testing.assert_array_equal(masks.sum(-1), 1.0)
    np.testing.assert_array_equal(masks.argmax(-1), np.stack(truth))


def test_bad_file_fails_the_pipeline_naming_it(tmp_path: Path, make_dataset_tree) -> None:
    root = make_dataset_tree(tmp_path / "ds", n=2, size=(16, 16), splits=("train",))
    pairs = split_pairs(root, "train", "images", "masks")
    pairs[1].mask.write_bytes(b"")
    ds = make_dataset(pairs, _prep((16, 16)), batch_size=2)
    with pytest.raises(tf.errors.OpError, match=re.escape(str(pairs[1].mask))):
        _batches(ds)


# --------------------------------------------------------------------------- reproducibility


def _two_epochs(pairs: list[Pair], seed: int, cache: str, cache_file: Path) -> list:
    """Two epochs of a freshly built training dataset with augmentation."""
    ds = make_dataset(
        pairs,
        _prep((24, 40)),
        batch_size=2,
        training=True,
        augmentation=HALF,
        seed=seed,
        cache=cache,
        cache_file=cache_file,
    )
    return [_batches(ds), _batches(ds)]


@pytest.mark.parametrize("cache", ["memory", "none", "disk"])
def test_same_seed_same_batches_over_epochs(tree: Path, tmp_path: Path, cache: str) -> None:
    pairs = split_pairs(tree, "train", "images", "masks")
    first = _two_epochs(pairs, 3, cache, tmp_path / "first")
    again = _two_epochs(pairs, 3, cache, tmp_path / "again")
    other = _two_epochs(pairs, 4, cache, tmp_path / "other")
    assert _same(first[0], again[0]) and _same(first[1], again[1])
    assert not _same(first[0], other[0])
    # A new epoch is reshuffled and re-augmented, not a replay of the first one.
    assert not _same(first[0], first[1])
    # Same content in every epoch: augmentation only moves pixels, shuffling only reorders.
    for epoch in first:
        x, y = _stack(epoch)
        assert x.shape == (6, 24, 40, 3) and set(np.unique(y)) <= {0.0, 1.0}
    fg = [sorted(_stack(e)[1].sum(axis=(1, 2, 3)).tolist()) for e in first]
    assert fg[0] == fg[1]


def test_each_epoch_is_re_augmented(tree: Path) -> None:
    # One pair: shuffling cannot change anything, so epochs differ only by re-augmentation.
    pairs = split_pairs(tree, "train", "images", "masks")[:1]
    ds = make_dataset(pairs, _prep((24, 40)), batch_size=1, training=True, augmentation=HALF)
    epochs = [_batches(ds)[0][1].tobytes() for _ in range(6)]
    assert len(set(epochs)) > 1


def test_training_order_is_shuffled_and_eval_order_is_not(tree: Path) -> None:
    pairs = split_pairs(tree, "train", "images", "masks")
    prep = _prep((24, 40))
    plain = _stack(_batches(make_dataset(pairs, prep, batch_size=4)))[1]
    shuffled = _stack(_batches(make_dataset(pairs, prep, batch_size=4, training=True, seed=0)))[1]
    # Evaluation keeps the file order (sorted names), training reorders the same samples.
    for i, pair in enumerate(pairs):
        expected = _stack(_batches(make_dataset([pair], prep, batch_size=1)))[1][0]
        np.testing.assert_array_equal(plain[i], expected)
    assert sorted(m.sum() for m in plain) == sorted(m.sum() for m in shuffled)
    assert not np.array_equal(plain, shuffled)


# --------------------------------------------------------------------------- augmentation


@pytest.mark.parametrize("aug", [ALL_ON, HALF], ids=["p1", "p0.5"])
@pytest.mark.parametrize("shape", ["square", "non_square"])
def test_augmentation_keeps_image_and_mask_aligned(self_masked, aug: dict, shape) -> None:
    pairs = self_masked[0] if shape == "square" else self_masked[1]
    h, w = (32, 32) if shape == "square" else (24, 40)
    prep = _prep((h, w))
    reference = _stack(_batches(make_dataset(pairs, prep, batch_size=6)))[0]
    originals = {m.tobytes() for m in reference[..., :1]}
    changed = 0
    for seed in range(6):
        ds = make_dataset(pairs, prep, batch_size=3, training=True, augmentation=aug, seed=seed)
        for x, y in _batches(ds):
            assert x.shape[1:] == (h, w, 3) and y.shape[1:] == (h, w, 1)
            assert set(np.unique(y)) <= {0.0, 1.0}
            for c in range(3):
                np.testing.assert_array_equal(x[..., c : c + 1], y)
            changed += sum(m.tobytes() not in originals for m in y)
            # Every output is a flip/turn of one of the inputs.
            for m in y:
                assert any(
                    any(np.array_equal(m, d) for d in _dihedral(r)) for r in reference[..., :1]
                )
    if shape == "non_square" and aug == ALL_ON:
        # hflip + vflip + half turn (the only turn keeping a non-square shape) is the identity.
        assert changed == 0
    else:
        assert changed > 0  # the augmentation really ran


def test_augmenter_applies_one_transform_to_both(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    seen_square, seen_rect = set(), set()
    for h, w, seen in ((16, 16, seen_square), (12, 20, seen_rect)):
        image = rng.random((h, w, 3)).astype(np.float32)
        mask = (image[..., :1] > 0.5).astype(np.float32)
        variants = _dihedral(image)
        augment = build_augmenter(HALF, (h, w, 3), seed=0)
        for s in range(40):
            seed = tf.constant([s, 17], tf.int64)
            out_image, out_mask = augment(tf.constant(image), tf.constant(mask), seed)
            out_image, out_mask = out_image.numpy(), out_mask.numpy()
            assert out_image.shape == (h, w, 3) and out_mask.shape == (h, w, 1)
            np.testing.assert_array_equal(out_mask, (out_image[..., :1] > 0.5).astype(np.float32))
            matches = [i for i, v in enumerate(variants) if np.array_equal(out_image, v)]
            assert len(matches) == 1
            seen.add(matches[0])
            # Same seed, same result.
            again, _ = augment(tf.constant(image), tf.constant(mask), seed)
            np.testing.assert_array_equal(again.numpy(), out_image)
    assert len(seen_square) == 8  # all flips and quarter turns occur
    assert len(seen_rect) == 4  # identity, both flips, half turn


def test_single_flip_probability_one_is_exact() -> None:
    image = tf.random.stateless_uniform((8, 12, 3), seed=[1, 2])
    mask = tf.cast(image[..., :1] > 0.5, tf.float32)
    seed = tf.constant([3, 4], tf.int64)
    out, out_mask = build_augmenter({"hflip": {"p": 1}}, (8, 12, 3))(image, mask, seed)
    np.testing.assert_array_equal(out.numpy(), image.numpy()[:, ::-1])
    np.testing.assert_array_equal(out_mask.numpy(), mask.numpy()[:, ::-1])
    nothing = build_augmenter({}, (8, 12, 3))
    out, _ = nothing(image, mask, seed)
    np.testing.assert_array_equal(out.numpy(), image.numpy())
    assert not nothing.active
    assert build_augmenter({"rotation": {"p": 0.1}}, (8, 12, 3)).active


# --------------------------------------------------------------------------- caching


def test_cache_modes_give_identical_validation_batches(tree: Path, tmp_path: Path) -> None:
    pairs = split_pairs(tree, "valid", "images", "masks")
    prep = _prep((16, 32))
    cache_file = tmp_path / "cache" / "valid"
    results = {
        mode: _batches(make_dataset(pairs, prep, batch_size=4, cache=mode, cache_file=cache_file))
        for mode in ("memory", "disk", "none")
    }
    assert any(cache_file.parent.iterdir())  # the disk cache was written
    assert _same(results["memory"], results["disk"])
    assert _same(results["memory"], results["none"])
    # Reading the disk cache back (second epoch) gives the same batches again.
    ds = make_dataset(pairs, prep, batch_size=4, cache="disk", cache_file=cache_file)
    assert _same(_batches(ds), results["none"])
    with pytest.raises(ValueError, match="cache_file"):
        make_dataset(pairs, prep, batch_size=4, cache="disk")


# --------------------------------------------------------------------------- real data


def test_real_pap_smear_training_pipeline(pap_smear_root: Path) -> None:
    pairs = split_pairs(pap_smear_root, "train", "images", "masks")[:64]
    assert len(pairs) == 64
    ds = make_dataset(
        pairs, _prep((128, 128)), batch_size=16, training=True, augmentation=HALF, seed=0
    )
    images, masks = _stack(_batches(ds))
    assert images.shape == (64, 128, 128, 3) and masks.shape == (64, 128, 128, 1)
    assert images.min() >= 0.0 and images.max() <= 1.0 and images.std() > 0.05
    assert set(np.unique(masks)) == {0.0, 1.0}
    fraction = masks.mean(axis=(1, 2, 3))
    assert 0.02 < fraction.mean() < 0.8
    assert (fraction > 0).all()  # every Herlev image has a nucleus


def _thread_niceness() -> set[int]:
    """Niceness of every thread of this process (Linux: field 19 of /proc/self/task/*/stat)."""
    out = set()
    for stat in Path("/proc/self/task").glob("*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        out.add(int(fields[16]))  # after "pid (comm)": state is field 3, nice field 19
    return out


@pytest.mark.skipif(not input_priority.SUPPORTED, reason="threads are reniced on Linux only")
def test_reniced_input_threads_give_the_same_batches_and_spare_the_caller(tree: Path) -> None:
    pairs = split_pairs(tree, "train", "images", "masks")
    prep = _prep((24, 40))

    def epoch(niceness: int) -> tuple[list, set[int]]:
        """The batches, and the threads' niceness seen while the dataset's threads live."""
        ds = make_dataset(
            pairs,
            prep,
            batch_size=2,
            training=True,
            augmentation=HALF,
            seed=3,
            input_niceness=niceness,
        )
        batches, seen = [], set()
        for x, y in ds:
            batches.append((x.numpy(), y.numpy()))
            seen |= _thread_niceness()
        return batches, seen

    plain, seen_plain = epoch(0)
    reniced, seen_reniced = epoch(7)
    assert _same(plain, reniced)
    assert 7 not in seen_plain and 7 in seen_reniced  # the dataset's own threads
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == 0
