"""A dataset's fingerprint: what ``seg-plan`` reads once from every training and validation pair
before it chooses a recipe (nnU-Net's idea, for 2D).

Image sizes and channels, intensity statistics, the foreground (its share of the pixels, of
each class for index masks), the objects (connected components: how many per image and how
large), and whether the binary masks look inverted (a "foreground" covering most pixels).
Every file is decoded once, by a thread pool (OpenCV releases the GIL); only a few numbers per
pair are kept, so memory stays flat however large the dataset.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from seg.data.io import mask_file_labels, read_raw, to_rgb_float
from seg.data.pairs import Pair
from seg.data.preprocess import MaskPreprocess
from seg.machine import cpu_count

INVERTED_SHARE = 0.5  # binary masks whose foreground covers more than this look inverted


@dataclass(frozen=True)
class PairFacts:
    """The numbers kept of one pair."""

    height: int
    width: int
    grey: bool  # every channel equal (or one channel)
    mean: float  # intensity mean and standard deviation, [0, 1] units
    std: float
    class_share: tuple[float, ...]  # share of the pixels of each class (index 0: background)
    objects: int  # connected foreground components
    object_areas: tuple[int, ...]  # their areas in pixels


def pair_facts(pair: Pair, threshold: float, num_classes: int, spec: MaskPreprocess) -> PairFacts:
    raw = read_raw(pair.image)
    image = to_rgb_float(raw, 3)
    grey = (
        raw.ndim == 2
        or raw.shape[-1] == 1
        or bool(
            np.array_equal(image[..., 0], image[..., 1])
            and np.array_equal(image[..., 1], image[..., 2])
        )
    )
    labels = mask_file_labels(pair.mask, threshold, num_classes, spec)
    shares = np.bincount(labels.ravel(), minlength=max(2, num_classes)) / labels.size
    count, _, stats, _ = cv2.connectedComponentsWithStats((labels > 0).astype(np.uint8), 8)
    areas = tuple(int(a) for a in stats[1:, cv2.CC_STAT_AREA])
    return PairFacts(
        int(image.shape[0]),
        int(image.shape[1]),
        grey,
        float(image.mean()),
        float(image.std()),
        tuple(float(s) for s in shares),
        count - 1,
        areas,
    )


@dataclass(frozen=True)
class Fingerprint:
    """What a dataset is like (see the module docstring); ``to_dict`` for YAML and MLflow."""

    pairs: dict[str, int]  # per split read
    median_size: tuple[int, int]  # (height, width) over the images
    min_size: tuple[int, int]
    max_size: tuple[int, int]
    grey: bool  # every image grey
    intensity_mean: float
    intensity_std: float
    foreground: float  # mean share of foreground pixels per image (all classes but 0)
    class_shares: tuple[float, ...]  # pooled share of each class
    empty_masks: float  # share of masks without foreground
    objects_per_image: float  # median
    object_area: float  # median area of an object, pixels
    object_share: float  # median object area / median image area
    looks_inverted: bool  # binary masks whose foreground covers most pixels in most images

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in data.items()}


def fingerprint(
    splits: dict[str, list[Pair]], threshold: float, num_classes: int, spec: MaskPreprocess
) -> Fingerprint:
    """Read every pair of ``splits`` once and summarise them."""
    pairs = [p for split in splits.values() for p in split]
    with ThreadPoolExecutor(max_workers=min(8, cpu_count())) as pool:
        facts = list(pool.map(lambda p: pair_facts(p, threshold, num_classes, spec), pairs))
    heights, widths = np.array([f.height for f in facts]), np.array([f.width for f in facts])
    pixels = heights * widths
    shares = np.array([f.class_share[: max(2, num_classes)] for f in facts])
    foreground = 1.0 - shares[:, 0]
    areas = [a for f in facts for a in f.object_areas]
    median = (int(np.median(heights)), int(np.median(widths)))
    object_area = float(np.median(areas)) if areas else 0.0
    return Fingerprint(
        pairs={name: len(split) for name, split in splits.items()},
        median_size=median,
        min_size=(int(heights.min()), int(widths.min())),
        max_size=(int(heights.max()), int(widths.max())),
        grey=all(f.grey for f in facts),
        intensity_mean=float(np.mean([f.mean for f in facts])),
        intensity_std=float(np.mean([f.std for f in facts])),
        foreground=float(foreground.mean()),
        class_shares=tuple(float(s) for s in (shares * pixels[:, None]).sum(0) / pixels.sum()),
        empty_masks=float(np.mean(foreground == 0)),
        objects_per_image=float(np.median([f.objects for f in facts])),
        object_area=object_area,
        object_share=object_area / float(median[0] * median[1]),
        looks_inverted=num_classes == 1 and float(np.mean(foreground > INVERTED_SHARE)) > 0.5,
    )


def describe(fp: Fingerprint) -> list[str]:
    """The fingerprint as lines for a person."""
    counts = ", ".join(f"{k} {v}" for k, v in fp.pairs.items())
    return [
        f"pairs: {counts}",
        f"image size: median {fp.median_size[0]}x{fp.median_size[1]} "
        f"(from {fp.min_size[0]}x{fp.min_size[1]} to {fp.max_size[0]}x{fp.max_size[1]}), "
        f"{'grey' if fp.grey else 'colour'}",
        f"intensity: mean {fp.intensity_mean:.3f}, std {fp.intensity_std:.3f} (of [0, 1])",
        f"foreground: {fp.foreground:.2%} of an image's pixels on average; "
        f"{fp.empty_masks:.0%} of the masks empty",
        f"objects: {fp.objects_per_image:g} per image (median), median area "
        f"{fp.object_area:.0f} px ({fp.object_share:.3%} of an image)",
        *(["masks look inverted: the foreground covers most pixels"] if fp.looks_inverted else []),
    ]
