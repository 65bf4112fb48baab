"""Tests for the embedded synthetic demo dataset (seg.data.demo)."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

import seg.data.demo as demo
from seg.data.demo import SPLITS, DemoSpec, ensure_demo_dataset, render_sample
from seg.errors import DatasetError

TINY = DemoSpec(image_size=48, num_train=4, num_valid=2, num_test=3, seed=3)


def _read_split(folder: Path, split: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (RGB image, grey mask) as stored on disk."""
    pairs = {}
    for path in sorted((folder / split / "images").iterdir()):
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        mask = cv2.imread(str(folder / split / "masks" / path.name), cv2.IMREAD_UNCHANGED)
        assert image is not None and mask is not None, path.name
        pairs[path.name] = (cv2.cvtColor(image, cv2.COLOR_BGR2RGB), mask)
    return pairs


def _mtimes(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


# --------------------------------------------------------------------------- rendering


def test_render_sample_types_and_values() -> None:
    image, mask = render_sample(TINY, np.random.default_rng(0))
    assert image.shape == (48, 48, 3) and image.dtype == np.uint8
    assert mask.shape == (48, 48) and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 255}
    assert mask.any()
    # Textured, not flat: background variation plus noise spreads the values.
    assert image.std() > 5


def test_render_is_deterministic_and_seed_dependent() -> None:
    a = render_sample(TINY, np.random.default_rng([1, 0, 0]))
    b = render_sample(TINY, np.random.default_rng([1, 0, 0]))
    c = render_sample(TINY, np.random.default_rng([2, 0, 0]))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[1], c[1])


def test_nuclei_are_inside_cells_and_image_does_not_depend_on_target() -> None:
    nuclei_spec = DemoSpec(image_size=64, target="nuclei")
    cells_spec = DemoSpec(image_size=64, target="cells")
    for i in range(20):
        image_n, nuclei = render_sample(nuclei_spec, np.random.default_rng([0, 0, i]))
        image_c, cells = render_sample(cells_spec, np.random.default_rng([0, 0, i]))
        assert np.array_equal(image_n, image_c)
        assert nuclei.any()
        assert not np.any((nuclei > 0) & (cells == 0)), f"nucleus outside its cell in sample {i}"
        assert (cells > 0).sum() > (nuclei > 0).sum()


def test_foreground_fractions_are_plausible() -> None:
    nuclei_spec, cells_spec = DemoSpec(image_size=64), DemoSpec(image_size=64, target="cells")
    nuc = [(render_sample(nuclei_spec, np.random.default_rng(i))[1] > 0).mean() for i in range(30)]
    cel = [(render_sample(cells_spec, np.random.default_rng(i))[1] > 0).mean() for i in range(30)]
    assert 0.01 < np.mean(nuc) < 0.40
    assert np.mean(nuc) < np.mean(cel) < 0.90


def test_nuclei_are_darker_than_their_surroundings() -> None:
    # The task must be learnable: nuclei pixels are on average clearly darker than the rest.
    spec = DemoSpec(image_size=64)
    for i in range(10):
        image, mask = render_sample(spec, np.random.default_rng(i))
        grey = image.astype(np.float32).mean(axis=2)
        assert grey[mask > 0].mean() < grey[mask == 0].mean() - 30


def test_cell_count_range_is_respected() -> None:
    one = DemoSpec(image_size=64, target="cells", min_cells=1, max_cells=1)
    many = DemoSpec(image_size=64, target="cells", min_cells=12, max_cells=12)
    area_one = np.mean(
        [(render_sample(one, np.random.default_rng(i))[1] > 0).mean() for i in range(10)]
    )
    area_many = np.mean(
        [(render_sample(many, np.random.default_rng(i))[1] > 0).mean() for i in range(10)]
    )
    assert area_many > 2 * area_one
    assert one.folder_name != DemoSpec(image_size=64, target="cells").folder_name


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"target": "membranes"}, "target"),
        ({"image_size": 0}, "image_size"),
        ({"num_train": 0}, "num_train"),
        ({"num_valid": -1}, "num_valid"),
        ({"num_test": 2.5}, "num_test"),
        ({"seed": -1}, "seed"),
        ({"min_cells": 5, "max_cells": 2}, "max_cells"),
    ],
)
def test_bad_spec_raises_value_error_naming_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        DemoSpec(**kwargs)


def test_bad_target_message_lists_allowed_values() -> None:
    with pytest.raises(ValueError, match="target") as info:
        DemoSpec(target="Nuclei")
    assert "nuclei" in str(info.value) and "cells" in str(info.value)


# --------------------------------------------------------------------------- files


def test_layout_counts_and_file_contents(tmp_path: Path) -> None:
    folder = ensure_demo_dataset(tmp_path, TINY)
    assert folder == tmp_path / "demo_nuclei_48px_s3_4-2-3_v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]
    for split, count in zip(SPLITS, (4, 2, 3), strict=True):
        images = sorted(p.name for p in (folder / split / "images").iterdir())
        masks = sorted(p.name for p in (folder / split / "masks").iterdir())
        assert images == masks == [f"demo_{i:04d}.png" for i in range(count)]
        for image, mask in _read_split(folder, split).values():
            assert image.shape == (48, 48, 3)
            assert mask.shape == (48, 48)
            assert set(np.unique(mask)) <= {0, 255}


def test_files_match_render_sample_in_rgb_order(tmp_path: Path) -> None:
    # Guards the RGB->BGR conversion: reading back (and converting) must give the rendered array.
    folder = ensure_demo_dataset(tmp_path, TINY)
    image, mask = _read_split(folder, "valid")["demo_0001.png"]
    want_image, want_mask = render_sample(TINY, np.random.default_rng([TINY.seed, 1, 1]))
    assert np.array_equal(image, want_image)
    assert np.array_equal(mask, want_mask)
    # Stained slide: red channel brighter than blue in the background on average.
    assert image[mask == 0][:, 0].mean() > image[mask == 0][:, 2].mean()


def test_same_spec_in_two_dirs_is_identical_and_seed_changes_it(tmp_path: Path) -> None:
    a = ensure_demo_dataset(tmp_path / "a", TINY)
    b = ensure_demo_dataset(tmp_path / "b", TINY)
    c = ensure_demo_dataset(tmp_path / "c", DemoSpec(**{**TINY.__dict__, "seed": 4}))
    for split in SPLITS:
        pa, pb, pc = _read_split(a, split), _read_split(b, split), _read_split(c, split)
        assert pa.keys() == pb.keys() == pc.keys()
        for name in pa:
            assert np.array_equal(pa[name][0], pb[name][0])
            assert np.array_equal(pa[name][1], pb[name][1])
            assert not np.array_equal(pa[name][0], pc[name][0])


def test_images_do_not_depend_on_how_many_are_generated(tmp_path: Path) -> None:
    small = ensure_demo_dataset(
        tmp_path, DemoSpec(image_size=32, num_train=2, num_valid=1, num_test=1)
    )
    large = ensure_demo_dataset(
        tmp_path, DemoSpec(image_size=32, num_train=5, num_valid=3, num_test=1)
    )
    assert small != large
    for split in SPLITS:
        for name, (image, mask) in _read_split(small, split).items():
            other_image, other_mask = _read_split(large, split)[name]
            assert np.array_equal(image, other_image) and np.array_equal(mask, other_mask)


def test_second_call_uses_cache(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="seg.data.demo"):
        folder = ensure_demo_dataset(tmp_path, TINY)
    assert [r for r in caplog.records if str(folder) in r.getMessage()], "no INFO line"
    before = _mtimes(folder)
    assert len(before) == 2 * (4 + 2 + 3)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="seg.data.demo"):
        again = ensure_demo_dataset(tmp_path, TINY)
    assert again == folder
    assert _mtimes(folder) == before
    assert not caplog.records


def test_incomplete_cache_is_reported(tmp_path: Path) -> None:
    folder = ensure_demo_dataset(tmp_path, TINY)
    (folder / "test" / "masks" / "demo_0002.png").unlink()
    with pytest.raises(DatasetError, match=r"demo_0002\.png"):
        ensure_demo_dataset(tmp_path, TINY)


def test_losing_the_rename_race_uses_the_winner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Deterministically simulate another process publishing the folder while we generate.
    real_generate = demo._generate
    calls = []

    def generate_and_get_overtaken(folder: Path, spec: DemoSpec) -> None:
        calls.append(folder)
        real_generate(folder, spec)
        if len(calls) == 1:
            winner = ensure_demo_dataset(tmp_path, spec)  # runs the real thing to completion
            (winner / "winner.txt").write_text("first")

    monkeypatch.setattr(demo, "_generate", generate_and_get_overtaken)
    folder = ensure_demo_dataset(tmp_path, TINY)
    assert len(calls) == 2
    assert (folder / "winner.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]


def _worker(root: str, spec: DemoSpec, barrier: mp.synchronize.Barrier, out: mp.Queue) -> None:
    barrier.wait(timeout=60)  # start generating at the same moment to provoke the race
    out.put(str(ensure_demo_dataset(Path(root), spec)))


def test_concurrent_processes(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")  # fork is unsafe if TensorFlow was imported by other tests
    spec = DemoSpec(image_size=64, num_train=12, num_valid=4, num_test=4, seed=7)
    barrier, out = ctx.Barrier(3), ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(str(tmp_path), spec, barrier, out)) for _ in range(3)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    results = {out.get(timeout=10) for _ in procs}
    assert results == {str(tmp_path / spec.folder_name)}
    assert sorted(os.listdir(tmp_path)) == [spec.folder_name]  # no leftover temp folders
    folder = tmp_path / spec.folder_name
    reference = ensure_demo_dataset(tmp_path / "serial", spec)
    for split in SPLITS:
        got, want = _read_split(folder, split), _read_split(reference, split)
        assert got.keys() == want.keys()
        assert all(np.array_equal(got[n][0], want[n][0]) for n in want)
