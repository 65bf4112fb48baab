"""Embedded synthetic demo dataset: cytology-like (Pap-smear-like) images with nucleus/cell masks.

It exists so that `seg-train` with no arguments can train a model with no download: images
are rendered deterministically with NumPy + OpenCV and cached as PNG files on first use.
Each image has its own RNG derived from (seed, split, index), so any image is reproducible
no matter how many are generated. TensorFlow is deliberately not imported here.
"""

from __future__ import annotations

import logging
import numbers
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from seg.errors import DatasetError
from seg.files import written_whole

log = logging.getLogger(__name__)

TARGETS = ("nuclei", "cells")
SPLITS = ("train", "valid", "test")
# Bump whenever rendering changes: the version is part of the folder name, so stale caches
# are never mistaken for the current dataset.
_VERSION = 1
_DEFAULT_CELLS = (3, 8)
# cv2 fixed-point bits for ellipse geometry: sub-pixel centres/axes keep nuclei inside cells.
_SHIFT = 4

# Colours are RGB. Pap stain: pale slide, pink or lilac cytoplasm, dark blue-purple nuclei.
_SLIDE_RGB = np.array([236.0, 214.0, 212.0], np.float32)
_CYTOPLASM_RGB = np.array([[228, 150, 190], [195, 150, 215], [175, 160, 218]], np.float32)
_NUCLEUS_RGB = np.array([75.0, 55.0, 130.0], np.float32)


@dataclass(frozen=True)
class DemoSpec:
    """Settings that fully determine the demo dataset (and hence its cache folder name)."""

    image_size: int = 128  # square side in px
    num_train: int = 96
    num_valid: int = 24
    num_test: int = 24
    target: str = "nuclei"  # "nuclei" | "cells"
    seed: int = 0
    min_cells: int = _DEFAULT_CELLS[0]  # cells per image, inclusive range
    max_cells: int = _DEFAULT_CELLS[1]

    def __post_init__(self) -> None:
        # Fail at construction so a bad config never reaches the (slow) generation step.
        if self.target not in TARGETS:
            raise ValueError(f"DemoSpec.target must be one of {list(TARGETS)}, got {self.target!r}")
        for name in ("image_size", "num_train", "num_valid", "num_test", "min_cells", "max_cells"):
            value = getattr(self, name)
            if not _is_int(value) or value <= 0:
                raise ValueError(f"DemoSpec.{name} must be an integer > 0, got {value!r}")
        if self.max_cells < self.min_cells:
            raise ValueError(
                f"DemoSpec.max_cells ({self.max_cells}) must be >= min_cells ({self.min_cells})"
            )
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f"DemoSpec.seed must be an integer >= 0, got {self.seed!r}")

    @property
    def folder_name(self) -> str:
        """Cache folder name: every setting that changes the files appears in it."""
        name = (
            f"demo_{self.target}_{self.image_size}px_s{self.seed}"
            f"_{self.num_train}-{self.num_valid}-{self.num_test}"
        )
        if (self.min_cells, self.max_cells) != _DEFAULT_CELLS:
            name += f"_c{self.min_cells}-{self.max_cells}"
        return f"{name}_v{_VERSION}"

    def split_sizes(self) -> dict[str, int]:
        """Number of images per split, in `SPLITS` order."""
        return dict(zip(SPLITS, (self.num_train, self.num_valid, self.num_test), strict=True))


def _is_int(value: object) -> bool:
    # numbers.Integral accepts NumPy integers too; bool is an int but never a valid size.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


# --------------------------------------------------------------------------- rendering


def _smooth_noise(rng: np.random.Generator, size: int, grid: int, channels: int) -> np.ndarray:
    """Unit-ish noise on a coarse grid, upsampled: cheap low-frequency texture (size x size x c)."""
    coarse = rng.standard_normal((grid, grid, channels)).astype(np.float32)
    field = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    return field.reshape(size, size, channels)  # cv2 drops a trailing channel axis of 1


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Pale stained-slide background with uneven staining and illumination (float32 RGB)."""
    base = _SLIDE_RGB + rng.uniform(-8.0, 8.0, 3).astype(np.float32)
    stain = _smooth_noise(rng, size, grid=4, channels=3) * np.float32(rng.uniform(3.0, 8.0))
    shade = _smooth_noise(rng, size, grid=3, channels=1) * np.float32(rng.uniform(3.0, 8.0))
    return base + stain + shade


@dataclass(frozen=True)
class _Cells:
    """Geometry and appearance of all cells in one image, as parallel arrays (one row per cell)."""

    cell: np.ndarray  # (n, 5): cx, cy, semi-axis a, semi-axis b, angle in degrees
    nucleus: np.ndarray  # (n, 5), same layout
    cyto_rgb: np.ndarray  # (n, 3)
    cyto_alpha: np.ndarray  # (n,)
    nuc_rgb: np.ndarray  # (n, 3)
    nuc_alpha: np.ndarray  # (n,)


def _sample_cells(rng: np.random.Generator, spec: DemoSpec) -> _Cells:
    """Draw random cells; each nucleus is placed so it lies entirely inside its cytoplasm."""
    size = spec.image_size
    n = int(rng.integers(spec.min_cells, spec.max_cells + 1))
    centre = rng.uniform(0.0, size, (n, 2))  # anywhere: cells may be cut by the border
    a = size * rng.uniform(0.10, 0.22, n)
    b = a * rng.uniform(0.55, 1.0, n)  # eccentricity
    angle = rng.uniform(0.0, 180.0, n)

    # Nucleus semi-axes <= r*b. Its centre lies in the cell ellipse scaled by k <= 1 - r; since
    # the cell's support function is >= b in every direction, k*E + disc(r*b) stays inside E.
    r = rng.uniform(0.30, 0.50, n)
    na = r * b
    nb = na * rng.uniform(0.65, 1.0, n)
    k = (1.0 - r) * 0.8 * np.sqrt(rng.uniform(0.0, 1.0, n))
    phi = rng.uniform(0.0, 2.0 * np.pi, n)
    u, v = k * a * np.cos(phi), k * b * np.sin(phi)  # offset in the cell's own frame
    t = np.deg2rad(angle)  # same rotation convention as cv2.ellipse (y axis points down)
    offset = np.stack([u * np.cos(t) - v * np.sin(t), u * np.sin(t) + v * np.cos(t)], axis=1)
    nuc_angle = rng.uniform(0.0, 180.0, n)

    palette = _CYTOPLASM_RGB[rng.integers(0, len(_CYTOPLASM_RGB), n)]
    return _Cells(
        cell=np.column_stack([centre, a, b, angle]),
        nucleus=np.column_stack([centre + offset, na, nb, nuc_angle]),
        cyto_rgb=(palette + rng.uniform(-12.0, 12.0, (n, 3))).astype(np.float32),
        cyto_alpha=rng.uniform(0.35, 0.60, n).astype(np.float32),  # translucent: overlaps show
        nuc_rgb=(_NUCLEUS_RGB + rng.uniform(-15.0, 15.0, (n, 3))).astype(np.float32),
        nuc_alpha=rng.uniform(0.45, 0.92, n).astype(np.float32),  # varying nucleus contrast
    )


def _ellipse_roi(
    ellipse: np.ndarray, size: int, thickness: int = -1
) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """Rasterise one ellipse into its bounding box only (cost ~ ellipse area, not image area).

    Returns the box as slices into the image and a 0/1 uint8 mask of the box, or None if the
    ellipse lies entirely outside the image.
    """
    cx, cy, a, b, angle = (float(x) for x in ellipse)
    reach = max(a, b) + 1.0
    x0, x1 = max(int(np.floor(cx - reach)), 0), min(int(np.ceil(cx + reach)) + 1, size)
    y0, y1 = max(int(np.floor(cy - reach)), 0), min(int(np.ceil(cy + reach)) + 1, size)
    if x0 >= x1 or y0 >= y1:
        return None
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    s = 1 << _SHIFT
    centre = (round((cx - x0) * s), round((cy - y0) * s))
    axes = (max(round(a * s), s), max(round(b * s), s))  # at least 1 px
    cv2.ellipse(mask, centre, axes, angle, 0, 360, 1, thickness, cv2.LINE_8, _SHIFT)
    return (slice(y0, y1), slice(x0, x1)), mask


def _blend(image: np.ndarray, alpha: np.ndarray, rgb: np.ndarray) -> None:
    """Alpha-composite a flat colour over `image` in place (alpha: HxW float in [0, 1])."""
    alpha = alpha[..., None]
    image *= 1.0 - alpha
    image += alpha * rgb


def _render_scene(
    spec: DemoSpec, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one image with both masks; the target only chooses which mask is returned."""
    size = spec.image_size
    image = _background(rng, size)
    cells = _sample_cells(rng, spec)
    # Mottled cytoplasm and grainy chromatin: modulate alpha so texture follows the stain.
    cyto_tex = np.clip(1.0 + 0.25 * _smooth_noise(rng, size, max(size // 10, 2), 1)[..., 0], 0, 2)
    grain = cv2.GaussianBlur(rng.standard_normal((size, size), np.float32), (0, 0), 0.8)
    nuc_tex = np.clip(0.8 + 0.5 * grain, 0.3, 1.2)
    nuclei = np.zeros((size, size), np.uint8)
    whole = np.zeros((size, size), np.uint8)
    rim = max(1, size // 128)

    # All cytoplasm first, then all nuclei: a nucleus stays visible through overlapping cells,
    # which matches the mask (every nucleus is foreground whatever lies on top of it).
    for i in range(len(cells.cell)):
        roi = _ellipse_roi(cells.cell[i], size)
        if roi is None:
            continue
        box, mask = roi
        whole[box] |= mask
        _blend(image[box], cells.cyto_alpha[i] * mask * cyto_tex[box], cells.cyto_rgb[i])
        ring = _ellipse_roi(cells.cell[i], size, thickness=rim)
        if ring is not None:  # faint darker membrane outline
            _blend(image[ring[0]], 0.25 * ring[1].astype(np.float32), 0.7 * cells.cyto_rgb[i])
    for i in range(len(cells.nucleus)):
        roi = _ellipse_roi(cells.nucleus[i], size)
        if roi is None:
            continue
        box, mask = roi
        nuclei[box] |= mask
        _blend(image[box], cells.nuc_alpha[i] * mask * nuc_tex[box], cells.nuc_rgb[i])
    whole |= nuclei  # rasterisation rounding must never put a nucleus pixel outside its cell

    # Optics blur first, then sensor noise (noise after blur keeps it pixel-independent).
    image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.0))
    image += rng.standard_normal(image.shape, np.float32) * np.float32(rng.uniform(2.0, 6.0))
    rgb = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return rgb, nuclei * np.uint8(255), whole * np.uint8(255)


def render_sample(spec: DemoSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Render one (HxWx3 RGB uint8 image, HxW uint8 mask in {0, 255}) pair for `spec.target`.

    The scene depends only on `rng`, not on the target, so the same rng state gives the same
    image with either its nuclei or its cells mask.
    """
    image, nuclei, whole = _render_scene(spec, rng)
    return image, nuclei if spec.target == "nuclei" else whole


# --------------------------------------------------------------------------- files and cache


def _file_name(index: int) -> str:
    return f"demo_{index:04d}.png"


def _write_png(path: Path, array: np.ndarray) -> None:
    # cv2.imwrite signals failure by returning False, not by raising.
    with written_whole(path) as tmp:
        if not cv2.imwrite(str(tmp), array):
            raise OSError(f"Could not write {path}")


def _write_split(folder: Path, spec: DemoSpec, split_index: int, count: int) -> None:
    """Render and save one split; each image's RNG is keyed by (seed, split, index)."""
    split = SPLITS[split_index]
    image_dir, mask_dir = folder / split / "images", folder / split / "masks"
    image_dir.mkdir(parents=True)
    mask_dir.mkdir(parents=True)
    for i in range(count):
        image, mask = render_sample(spec, np.random.default_rng([spec.seed, split_index, i]))
        _write_png(image_dir / _file_name(i), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        _write_png(mask_dir / _file_name(i), mask)


def _generate(folder: Path, spec: DemoSpec) -> None:
    for split_index, count in enumerate(spec.split_sizes().values()):
        _write_split(folder, spec, split_index, count)


def _missing_files(folder: Path, spec: DemoSpec) -> list[Path]:
    """Expected files that are absent (extra files are tolerated)."""
    missing = []
    for split, count in spec.split_sizes().items():
        for kind in ("images", "masks"):
            subdir = folder / split / kind
            present = set(os.listdir(subdir)) if subdir.is_dir() else set()
            names = (_file_name(i) for i in range(count))
            missing += [subdir / name for name in names if name not in present]
    return missing


def _checked(folder: Path, spec: DemoSpec) -> Path:
    missing = _missing_files(folder, spec)
    if missing:
        # Only reachable if someone edited the folder: generation publishes it atomically.
        raise DatasetError(
            f"Demo dataset folder {folder} is incomplete ({len(missing)} files missing, "
            f"e.g. {missing[0]}); delete that folder and it will be regenerated."
        )
    return folder


def ensure_demo_dataset(root: Path, spec: DemoSpec) -> Path:
    """Return `root / spec.folder_name`, generating it first if it does not exist yet.

    Layout: `<folder>/{train,valid,test}/{images,masks}/demo_NNNN.png` (RGB images, grey 0/255
    masks, same file name). Safe to call from several processes at once: each renders into its
    own temporary sibling folder and publishes it with an atomic rename; losers of the race
    discard their copy and use the winner's.
    """
    root = Path(root)
    folder = root / spec.folder_name
    if folder.exists():
        return _checked(folder, spec)

    root.mkdir(parents=True, exist_ok=True)
    log.info("Generating synthetic demo dataset (%s) in %s", spec, folder)
    # Hidden sibling in the same directory, so os.rename stays on one filesystem (atomic).
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.folder_name}.tmp-", dir=root))
    try:
        _generate(tmp, spec)
        try:
            os.rename(tmp, folder)
        except OSError:
            # Another process published the folder first (ENOTEMPTY/EEXIST): use theirs.
            if not folder.is_dir():
                raise
            log.debug("Demo dataset %s was generated concurrently; using it", folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # no-op after a successful rename
    return _checked(folder, spec)
