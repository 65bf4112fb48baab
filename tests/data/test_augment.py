"""Online augmentation (seg.data.augment): every op moves image and mask together, keeps masks
binary / one-hot and images in [0, 1], applies with its probability, and is reproducible."""

from __future__ import annotations

import logging
from dataclasses import fields
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow as tf
from hydra import compose, initialize_config_dir
from hypothesis import given, settings
from hypothesis import strategies as st

from seg.cli import CONF_DIR
from seg.config.augmentation import GEOMETRIC_OPS, OP_NAMES, AugmentationConfig, check_augmentation
from seg.config.registration import register
from seg.data.augment import PHOTOMETRIC_OPS, build_augmenter
from seg.data.pairs import find_pairs, split_pairs
from seg.data.pipeline import Preprocessing, make_dataset
from seg.errors import ConfigError
from tests.support.augment_strategies import augmentation_specs, batches
from tests.support.properties import examples

SIZES = [(32, 32), (24, 40)]  # square and non-square (height, width)
SEEDS = 20

# Each geometric op alone, at p=1, strong enough to be visible at 32 px.
GEOMETRIC = {
    "hflip": {"hflip": {"p": 1}},
    "vflip": {"vflip": {"p": 1}},
    "rot90": {"rotation": {"p": 1, "angles": [90, 180, 270]}},
    "rotation_list": {"rotation": {"p": 1, "angles": [-30, 45, 135]}},
    "rotation_range": {"rotation": {"p": 1, "angles": [], "range": 40}},
    "zoom_in": {"zoom": {"p": 1, "min_scale": 1.1, "max_scale": 1.4}},
    "zoom_out": {"zoom": {"p": 1, "min_scale": 0.6, "max_scale": 0.9}},
    "shear": {"shear": {"p": 1, "range": 20}},
    "translation": {"translation": {"p": 1, "range": 0.2}},
    # sigma 32 at 512 px is 2 px here; alpha 5000 gives ~1.5 px RMS displacement.
    "elastic": {"elastic": {"p": 1, "alpha": 5000, "sigma": 32}},
    "smooth_distortion": {"smooth_distortion": {"p": 1, "grid": 3, "magnitude": 0.1}},
    "barrel": {
        "barrel": {"p": 1, "amount": [0.3, 0.6], "radius": 0.5, "centres": [[0.4, 0.5], [0.6, 0.4]]}
    },
    "pincushion": {"pincushion": {"p": 1, "amount": [0.3, 0.6], "radius": 1.0, "centres": []}},
}
PHOTOMETRIC = {
    "brightness": {"brightness": {"p": 1, "range": 0.3}},
    "contrast": {"contrast": {"p": 1, "range": 0.5}},
    "gamma": {"gamma": {"p": 1, "gamma": [0.5, 0.8]}},
    "hue": {"hue": {"p": 1, "range": 0.2}},
    "saturation": {"saturation": {"p": 1, "factor": [0.3, 0.6]}},
    "blur": {"blur": {"p": 1, "sigma": [0.5, 1.5]}},
    "sharpen": {"sharpen": {"p": 1, "amount": [0.5, 1.0]}},
    "noise": {"noise": {"p": 1, "std": [0.02, 0.05]}},
}


def test_every_op_of_the_schema_is_listed_and_tested() -> None:
    ops = {f.name for f in fields(AugmentationConfig)} - {"name", "fill", "preview"}
    assert ops == set(OP_NAMES)
    tested = {name for case in (*GEOMETRIC.values(), *PHOTOMETRIC.values()) for name in case}
    assert tested == ops and set(PHOTOMETRIC) == set(PHOTOMETRIC_OPS)


def _seed(s: int) -> tf.Tensor:
    return tf.constant([s, 7], tf.int64)


def _masks(h: int, w: int, n: int = 4, seed: int = 0) -> np.ndarray:
    """(n, h, w, 1) 0/1 masks: an off-centre disk and an asymmetric bar, so any move shows."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, h, w, 1), np.float32)
    for i in range(n):
        disk = np.zeros((h, w), np.uint8)
        r = int(rng.integers(3, min(h, w) // 4))
        cv2.circle(disk, (int(rng.integers(r, w - r)), int(rng.integers(r, h - r))), r, 1, -1)
        disk[: h // 3, w - 4 :] = 1
        out[i, ..., 0] = disk
    return out


def _textured(masks: np.ndarray, seed: int = 0) -> np.ndarray:
    """RGB images in [0, 1] with texture everywhere (so any resampling changes values)."""
    noise = np.random.default_rng(seed).random((*masks.shape[:3], 3)).astype(np.float32)
    return np.clip(0.25 + 0.5 * masks + 0.2 * (noise - 0.5), 0.0, 1.0).astype(np.float32)


def _one_hot(masks: np.ndarray, classes: int = 3) -> np.ndarray:
    """Three classes: 0 background, 1 the binary mask, 2 a band across the image."""
    labels = masks[..., 0].astype(np.int64)
    labels[:, masks.shape[1] // 2 - 2 : masks.shape[1] // 2 + 2, :] = 2
    return np.eye(classes, dtype=np.float32)[labels]


def _run(spec: dict, images: np.ndarray, masks: np.ndarray, seeds: int = SEEDS):
    """(images, masks) of ``seeds`` calls of a freshly built augmenter, one seed each."""
    augment = tf.function(build_augmenter(spec, images.shape[1:], seed=0))
    for s in range(seeds):
        x, y = augment(images, masks, _seed(s))
        yield x.numpy(), y.numpy()


# --------------------------------------------------------------------------- geometric ops


@pytest.mark.parametrize("size", SIZES, ids=["square", "non_square"])
@pytest.mark.parametrize("op", list(GEOMETRIC))
def test_geometric_op_moves_image_and_mask_together(op: str, size: tuple[int, int]) -> None:
    h, w = size
    masks = _masks(h, w)
    images = np.repeat(masks, 3, axis=-1)  # the image IS the mask
    moved = 0
    for x, y in _run(GEOMETRIC[op], images, masks):
        assert x.shape == images.shape and y.shape == masks.shape
        assert set(np.unique(y)) <= {0.0, 1.0}
        assert x.min() >= 0.0 and x.max() <= 1.0
        # No tolerance: image and mask are sampled at the same points with the same weights
        # (one warp for both), and the mask is thresholded at 0.5 afterwards, so the
        # thresholded image is the mask to the pixel, boundary pixels included.
        for c in range(3):
            np.testing.assert_array_equal((x[..., c : c + 1] > 0.5).astype(np.float32), y)
        moved += sum(not np.array_equal(a, b) for a, b in zip(y, masks, strict=True))
    # At p=1 most masks move (a small random move may round to no change of a binary mask).
    assert moved >= SEEDS * len(masks) // 2, moved


@settings(max_examples=examples(12))
@given(
    spec=augmentation_specs(GEOMETRIC_OPS, fill_value=0.0),
    data=batches(),
    seed=st.integers(0, 2**31 - 1),
)
def test_any_geometric_config_moves_image_and_mask_together(spec, data, seed: int) -> None:
    """The property behind the fixed cases above, for any valid config (ops, parameters, p,
    fill mode), size, channels and batch: an image that IS its mask stays its mask. One-hot
    masks: the image's argmax is the mask, wherever the fill does not differ (constant fill
    gives masks class 0 but images the fill value)."""
    _, masks = data
    images = np.repeat(masks, 3, axis=-1) if masks.shape[-1] == 1 else masks.copy()
    x, y = build_augmenter(spec, images.shape[1:])(images, masks, _seed(seed))
    x, y = x.numpy(), y.numpy()
    assert x.shape == images.shape and y.shape == masks.shape
    assert set(np.unique(y)) <= {0.0, 1.0}
    assert np.isfinite(x).all() and x.min() >= 0.0 and x.max() <= 1.0
    if masks.shape[-1] == 1:
        for c in range(3):
            np.testing.assert_array_equal((x[..., c : c + 1] > 0.5).astype(np.float32), y)
        return
    np.testing.assert_array_equal(y.sum(-1), 1.0)
    if spec["fill"]["mode"] != "constant":
        np.testing.assert_array_equal(y, np.eye(masks.shape[-1])[x.argmax(-1)])


@pytest.mark.parametrize("mode", ["constant", "nearest", "reflect"])
@pytest.mark.parametrize("op", ["zoom_out", "rotation_range", "translation"])
def test_fill_modes_keep_alignment_and_fill_masks_with_background(op: str, mode: str) -> None:
    h, w = 24, 40
    masks = np.ones((2, h, w, 1), np.float32)  # all foreground: the fill is what changes
    masks[:, :4] = 0
    images = np.repeat(masks, 3, axis=-1)
    spec = {**GEOMETRIC[op], "fill": {"mode": mode, "value": 0.0}}
    multi = _one_hot(masks)
    for (x, y), (_, y3) in zip(
        _run(spec, images, masks, 5), _run(spec, images, multi, 5), strict=True
    ):
        np.testing.assert_array_equal((x[..., :1] > 0.5).astype(np.float32), y)
        np.testing.assert_array_equal(y3.sum(-1), 1.0)
        if mode == "constant" and op == "zoom_out":
            # Zoomed out, the corners show the fill: background, class 0 for one-hot masks.
            assert (y[:, 0, 0] == 0).all() and (y3[:, 0, 0, 0] == 1).all()
        if mode == "reflect" and op == "zoom_out":
            assert (y[:, -1, -1] == 1).all()  # the mirrored image, foreground there


def test_exact_ops_match_numpy() -> None:
    masks = _masks(32, 32, n=2)
    images = _textured(masks)
    seed = _seed(0)
    for spec, expected in [
        ({"hflip": {"p": 1}}, images[:, :, ::-1]),
        ({"vflip": {"p": 1}}, images[:, ::-1]),
        ({"rotation": {"p": 1, "angles": [90]}}, np.rot90(images, 1, axes=(1, 2))),  # CCW
        ({"rotation": {"p": 1, "angles": [180]}}, images[:, ::-1, ::-1]),
    ]:
        x, _ = build_augmenter(spec, (32, 32, 3))(images, masks, seed)
        np.testing.assert_array_equal(x.numpy(), expected)


def _area(masks: np.ndarray) -> np.ndarray:
    return masks.reshape(len(masks), -1).sum(axis=1)


def test_geometric_ops_do_what_they_say() -> None:
    h = w = 48
    disk = np.zeros((1, h, w, 1), np.float32)
    cv2.circle(disk[0, ..., 0], (24, 24), 8, 1.0, -1)  # centred on pixel 24 ~ the centre
    masks = np.repeat(disk, 4, axis=0)
    images = np.repeat(masks, 3, axis=-1)
    area = _area(masks)[0]

    def areas(spec: dict) -> np.ndarray:
        return np.concatenate([_area(y) for _, y in _run(spec, images, masks, 3)])

    assert (areas(GEOMETRIC["zoom_in"]) > area * 1.1).all()
    assert (areas(GEOMETRIC["zoom_out"]) < area * 0.9).all()
    centred = {"amount": [0.4, 0.6], "radius": 0.4, "centres": [[0.5, 0.5]]}
    assert (areas({"barrel": {"p": 1, **centred}}) > area * 1.2).all()  # magnifies the centre
    assert (areas({"pincushion": {"p": 1, **centred}}) < area * 0.8).all()  # shrinks it
    shifted = [y for _, y in _run(GEOMETRIC["translation"], images, masks, 3)]
    centroids = [np.argwhere(m[..., 0]).mean(axis=0) for y in shifted for m in y]
    assert np.mean([np.abs(c - 23.5).max() for c in centroids]) > 2  # up to 0.2 * 48 px


def test_rotation_on_non_square_images_leaves_quarter_turns_out(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="seg.data.augment"):
        only_quarter = build_augmenter({"rotation": {"p": 1, "angles": [90, 270]}}, (24, 40, 3))
    assert not only_quarter.active
    assert "quarter turns" in caplog.text
    assert build_augmenter({"rotation": {"p": 1, "angles": [90, 270]}}, (32, 32, 3)).active


# --------------------------------------------------------------------------- every op


@pytest.mark.parametrize("op", list(GEOMETRIC) + list(PHOTOMETRIC))
def test_op_changes_images_at_p1_and_is_the_identity_at_p0(op: str) -> None:
    spec = {**GEOMETRIC, **PHOTOMETRIC}[op]
    masks = _masks(32, 32)
    images = _textured(masks)
    for x, _ in _run(spec, images, masks, 3):
        for before, after in zip(images, x, strict=True):
            assert not np.array_equal(before, after)
    ((name, params),) = spec.items()
    off = build_augmenter({name: {**params, "p": 0}}, images.shape[1:])
    assert not off.active
    x, y = off(images, masks, _seed(0))
    np.testing.assert_array_equal(x.numpy(), images)
    np.testing.assert_array_equal(y.numpy(), masks)


@pytest.mark.parametrize("op", ["rotation_range", "elastic", "barrel", "brightness", "gamma"])
def test_op_applies_to_each_image_with_its_probability(op: str) -> None:
    ((name, params),) = {**GEOMETRIC, **PHOTOMETRIC}[op].items()
    masks = _masks(32, 32, n=16)
    images = _textured(masks)
    changed = [
        not np.array_equal(a, b)
        for x, _ in _run({name: {**params, "p": 0.5}}, images, masks, 4)
        for a, b in zip(images, x, strict=True)
    ]
    # 64 images: the rest are bit-identical; 64 draws at 0.5 fall in [16, 48] but 1e-4 times.
    assert 16 <= sum(changed) <= 48, sum(changed)


@pytest.mark.parametrize("op", list(PHOTOMETRIC))
def test_photometric_ops_leave_masks_untouched_and_images_in_range(op: str) -> None:
    masks = _masks(32, 32)
    images = _textured(masks)
    images[:, :4] = 1.0  # saturated and black regions: brightness/contrast must clip
    images[:, -4:] = 0.0
    for y0 in (masks, _one_hot(masks)):
        for x, y in _run(PHOTOMETRIC[op], images, y0, 3):
            assert x.dtype == np.float32 and x.min() >= 0.0 and x.max() <= 1.0
            np.testing.assert_array_equal(y, y0)


def test_grey_images_skip_colour_ops(caplog) -> None:
    masks = _masks(32, 32)
    grey = _textured(masks)[..., :1]
    spec = {**PHOTOMETRIC["hue"], **PHOTOMETRIC["saturation"], **PHOTOMETRIC["contrast"]}
    with caplog.at_level(logging.WARNING, logger="seg.data.augment"):
        augment = build_augmenter(spec, grey.shape[1:])
    assert augment.ops == ["contrast"] and "RGB" in caplog.text
    x, _ = augment(grey, masks, _seed(0))
    assert x.shape == grey.shape


def test_all_geometric_ops_together_keep_one_hot_masks_one_hot() -> None:
    spec = {
        name: {**params, "p": 0.7} for case in GEOMETRIC.values() for name, params in case.items()
    }
    spec["fill"] = {"mode": "constant", "value": 0.3}
    masks = _masks(24, 40)
    multi = _one_hot(masks)
    for _, y in _run(spec, _textured(masks), multi, 10):
        assert set(np.unique(y)) <= {0.0, 1.0}
        np.testing.assert_array_equal(y.sum(-1), 1.0)
        assert (y[..., 2].sum(axis=(1, 2)) > 0).all()  # the band survives


# --------------------------------------------------------------------------- configs


def _strong(*overrides: str):
    register()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("train", overrides=["augmentation=strong", *overrides])


def test_strong_preset_composes_validates_and_runs_through_the_pipeline(
    tmp_path: Path, make_dataset_tree
) -> None:
    cfg = _strong()
    root = make_dataset_tree(tmp_path / "ds", n=6, size=(24, 40), seed=2, splits=("train",))
    pairs = split_pairs(root, "train", "images", "masks")
    prep = Preprocessing(size=(24, 40), channels=3, num_classes=1, mask_threshold=0.5)
    ds = make_dataset(pairs, prep, 4, training=True, augmentation=cfg.augmentation, seed=1)
    assert ds.element_spec[0].shape.as_list() == [None, 24, 40, 3]
    for x, y in ds:
        x, y = x.numpy(), y.numpy()
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert set(np.unique(y)) <= {0.0, 1.0}
    augment = build_augmenter(cfg.augmentation, (24, 40, 3))
    assert len(augment.ops) == 18  # every op of the schema is on in `strong`


def test_strong_geometry_keeps_self_masked_images_aligned(tmp_path: Path, write_pair) -> None:
    photometric_off = [f"augmentation.{op}=null" for op in PHOTOMETRIC_OPS]
    cfg = _strong(*photometric_off)
    masks = _masks(32, 32, n=6, seed=3)
    for i, m in enumerate(masks):
        grey = (m[..., 0] * 255).astype(np.uint8)
        write_pair(tmp_path, f"m{i}", grey, grey)
    pairs = find_pairs(tmp_path / "images", tmp_path / "masks")
    prep = Preprocessing(size=(32, 32), channels=3, num_classes=1, mask_threshold=0.5)
    ds = make_dataset(pairs, prep, 3, training=True, augmentation=cfg.augmentation, seed=0)
    for _ in range(3):
        for x, y in ds:
            np.testing.assert_array_equal((x.numpy()[..., :1] > 0.5).astype(np.float32), y)


def _epochs(pairs, prep, seed: int, augmentation) -> list[list[np.ndarray]]:
    """Two epochs of a freshly built training pipeline, images and masks of every batch."""
    ds = make_dataset(pairs, prep, 4, training=True, augmentation=augmentation, seed=seed)
    return [[t.numpy() for batch in ds for t in batch] for _ in range(2)]


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_same_seed_same_batches_different_seed_different(tmp_path: Path, make_dataset_tree):
    spec = _strong().augmentation
    root = make_dataset_tree(tmp_path / "ds", n=10, size=(32, 32), seed=4, splits=("train",))
    pairs = split_pairs(root, "train", "images", "masks")
    prep = Preprocessing(size=(32, 32), channels=3, num_classes=1, mask_threshold=0.5)
    first, again, other = (_epochs(pairs, prep, s, spec) for s in (5, 5, 6))
    assert _same(first[0], again[0]) and _same(first[1], again[1])
    assert not _same(first[0], other[0]) and not _same(first[1], other[1])
    assert not _same(first[0], first[1])  # each epoch is augmented anew


@pytest.mark.parametrize(
    ("spec", "key"),
    [
        ({"rotation": {"p": 1.5}}, "augmentation.rotation.p"),
        ({"rotation": {"angles": [], "range": 0}}, "augmentation.rotation"),
        ({"zoom": {"min_scale": 1.2, "max_scale": 1.1}}, "augmentation.zoom.min_scale"),
        ({"shear": {"range": 60}}, "augmentation.shear.range"),
        ({"elastic": {"sigma": 0}}, "augmentation.elastic.sigma"),
        ({"barrel": {"amount": [0.2]}}, "augmentation.barrel.amount"),
        ({"pincushion": {"centres": [[0.5, 1.5]]}}, "augmentation.pincushion.centres"),
        ({"hue": {"range": 0.7}}, "augmentation.hue.range"),
        ({"noise": {"std": [0.05, 0.01]}}, "augmentation.noise.std"),
        ({"fill": {"value": 2.0}}, "augmentation.fill.value"),
    ],
)
def test_out_of_range_values_name_the_key(spec: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_augmenter(spec, (32, 32, 3))


def test_typos_fail_like_at_composition() -> None:
    with pytest.raises(Exception, match="angels"):
        build_augmenter({"rotation": {"p": 1, "angels": [90]}}, (32, 32, 3))
    with pytest.raises(Exception, match="Could not override"):
        _strong("augmentation.zoom.min_scal=0.5")
    cfg = _strong("augmentation.zoom.min_scale=0")
    with pytest.raises(ConfigError, match=r"augmentation\.zoom\.min_scale"):
        check_augmentation(cfg.augmentation)
