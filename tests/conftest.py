"""Shared fixtures: tiny synthetic image/mask files written on the fly, and the real-data root.

Fixtures that build data return *callables*, so a test can write as many files as it needs:

    def test_x(tmp_path, make_dataset_tree):
        root = make_dataset_tree(tmp_path / "ds", n=4, size=(32, 48))
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import settings

# Hypothesis profiles (property tests, tests/test_properties_*.py): "ci", the default, draws the
# same examples on every run (derandomize) and keeps no example database, so CI is reproducible
# and the suite stays fast; HYPOTHESIS_PROFILE=dev draws 5x as many, new ones each run, and keeps
# the failures it finds in .hypothesis/ to replay them first next time.
settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
EXAMPLE_SCALE = {"ci": 1, "dev": 5}


def examples(n: int) -> int:
    """A property test's example count: ``n`` under the "ci" profile, more under "dev"."""
    return n * EXAMPLE_SCALE.get(os.environ.get("HYPOTHESIS_PROFILE", "ci"), 1)

# Real datasets shared between checkouts (../shared/data next to the project); tests using them
# skip when they are absent.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

SPLITS = ("train", "valid", "test")


def circle_mask(height: int, width: int, center: tuple[int, int], radius: int) -> np.ndarray:
    """HxW uint8 mask, 255 inside the filled circle centred at (x, y), 0 elsewhere."""
    mask = np.zeros((height, width), np.uint8)
    cv2.circle(mask, (int(center[0]), int(center[1])), int(radius), 255, thickness=-1)
    return mask


def image_from_mask(mask: np.ndarray, rng: np.random.Generator, noise: float = 20.0) -> np.ndarray:
    """HxWx3 uint8 RGB image whose intensity follows ``mask`` (bright foreground) plus noise."""
    base = np.where(mask > 0, 200.0, 60.0)[..., None] * np.array([1.0, 0.8, 0.6])
    noisy = base + rng.normal(0.0, noise, (*mask.shape, 3))
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def write_image(path: Path, array: np.ndarray, **params: int) -> Path:
    """Write an RGB (HxWx3, converted to OpenCV's BGR), RGBA or grey array with OpenCV.

    ``params`` are OpenCV imwrite flags by name:
    ``write_image(path, array, IMWRITE_JPEG_QUALITY=50)``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if array.ndim == 3 and array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = cv2.cvtColor(array, cv2.COLOR_RGBA2BGRA)
    flags = [v for name, value in params.items() for v in (getattr(cv2, name), value)]
    assert cv2.imwrite(str(path), array, flags), path
    return path


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
