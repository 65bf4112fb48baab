"""Shared fixtures: tiny synthetic image/mask files written on the fly, the real-data root.

Fixtures that build data return *callables*, so a test can write as many files as it needs:

    def test_x(tmp_path, make_dataset_tree):
        root = make_dataset_tree(tmp_path / "ds", n=4, size=(32, 32))

Helpers that are not fixtures live in :mod:`tests.support`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import tests.support.properties  # noqa: F401  (registers and loads the Hypothesis profile)
from tests.support.data import SHARED_DATA, SPLITS, circle_mask, image_from_mask, write_image


@pytest.fixture
def write_pair() -> Callable[..., tuple[Path, Path]]:
    """``write_pair(folder, name, image, mask, image_suffix=".png", mask_suffix=".png")``.

    Writes ``folder/images/<name><image_suffix>`` (RGB or grey uint8) and
    ``folder/masks/<name><mask_suffix>`` (grey uint8, as given) and returns both paths.
    """

    def write(
        folder: Path,
        name: str,
        image: np.ndarray,
        mask: np.ndarray,
        image_suffix: str = ".png",
        mask_suffix: str = ".png",
    ) -> tuple[Path, Path]:
        image_path = write_image(Path(folder) / "images" / f"{name}{image_suffix}", image)
        mask_path = write_image(Path(folder) / "masks" / f"{name}{mask_suffix}", mask)
        return image_path, mask_path

    return write


@pytest.fixture
def make_dataset_tree(write_pair) -> Callable[..., Path]:
    """``make_dataset_tree(root, n=6, size=(32, 32), seed=0, splits=SPLITS) -> root``.

    Writes ``<root>/<split>/{images,masks}/sample_NNN.png`` for every split: masks are one
    filled circle (0/255 grey) at a random place and radius, images are RGB whose brightness
    follows the mask plus Gaussian noise. Deterministic for a given seed.
    """

    def make(
        root: Path,
        n: int = 6,
        size: tuple[int, int] = (32, 32),
        seed: int = 0,
        splits: tuple[str, ...] = SPLITS,
    ) -> Path:
        rng = np.random.default_rng(seed)
        h, w = size
        for split in splits:
            for i in range(n):
                radius = int(rng.integers(max(2, min(h, w) // 8), max(3, min(h, w) // 3)))
                center = (
                    int(rng.integers(radius, w - radius)),
                    int(rng.integers(radius, h - radius)),
                )
                mask = circle_mask(h, w, center, radius)
                write_pair(Path(root) / split, f"sample_{i:03d}", image_from_mask(mask, rng), mask)
        return Path(root)

    return make


@pytest.fixture
def pap_smear_root() -> Path:
    """Root of the real Herlev Pap-smear dataset (128x128, JPEG); skips the test if absent."""
    root = SHARED_DATA / "pap_smear_herlev_128"
    if not root.is_dir():
        pytest.skip(f"real data not available: {root}")
    return root


@pytest.fixture
def sqlite_store(tmp_path: Path) -> str:
    """The tracking URI of a new SQLite store in the test's folder (MLflow's own default
    kind of store, created on first use)."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"
