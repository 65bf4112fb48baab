"""The old scripts' input path, for comparison: sequential ``cv2.imread`` into NumPy, then every
``augmentation=strong`` op with the preset's probabilities, one image at a time in Python, each op
its own warp (as the old ``ImageDataGenerator``-style code did), barrel and pincushion
distortion as per-pixel Python loops. Same files, same output size, same op set as our pipeline.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np


def _affine(image: np.ndarray, mask: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, ...]:
    size = image.shape[1], image.shape[0]
    return (
        cv2.warpAffine(image, matrix, size, borderMode=cv2.BORDER_REFLECT),
        cv2.warpAffine(mask, matrix, size, flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT),
    )


def _remap(
    image: np.ndarray, mask: np.ndarray, dx: np.ndarray, dy: np.ndarray
) -> tuple[np.ndarray, ...]:
    grid_y, grid_x = np.mgrid[: image.shape[0], : image.shape[1]].astype(np.float32)
    map_x, map_y = grid_x + dx.astype(np.float32), grid_y + dy.astype(np.float32)
    return (
        cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT),
        cv2.remap(mask, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT),
    )


def _radial_loops(
    image: np.ndarray, mask: np.ndarray, centre: Sequence[float], radius: float, amount: float
) -> tuple[np.ndarray, ...]:
    """Barrel (amount > 0) / pincushion (< 0), pixel by pixel as the old scripts did it."""
    height, width = image.shape[:2]
    cx, cy = centre[0] * width, centre[1] * height
    out_image, out_mask = image.copy(), mask.copy()
    for y in range(height):
        for x in range(width):
            dx, dy = x - cx, y - cy
            r = math.hypot(dx, dy)
            if 0 < r < radius:
                f = math.sin(math.pi / 2 * r / radius) ** amount
                sx = min(max(int(cx + dx * f), 0), width - 1)
                sy = min(max(int(cy + dy * f), 0), height - 1)
                out_image[y, x], out_mask[y, x] = image[sy, sx], mask[sy, sx]
    return out_image, out_mask


def augment(
    image: np.ndarray, mask: np.ndarray, s: Any, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Every op of the augmentation config ``s``, each with its probability, in Python."""
    height, width = image.shape[:2]
    centre, side = (width / 2, height / 2), min(height, width)

    def on(op: Any) -> bool:
        return op is not None and op.p > 0 and rng.random() < op.p

    if on(s.hflip):
        image, mask = image[:, ::-1].copy(), mask[:, ::-1].copy()
    if on(s.vflip):
        image, mask = image[::-1].copy(), mask[::-1].copy()
    if on(s.rotation):
        angle = float(rng.choice(s.rotation.angles)) + rng.uniform(-1, 1) * s.rotation.range
        image, mask = _affine(image, mask, cv2.getRotationMatrix2D(centre, angle, 1.0))
    if on(s.zoom):
        scale = rng.uniform(s.zoom.min_scale, s.zoom.max_scale)
        image, mask = _affine(image, mask, cv2.getRotationMatrix2D(centre, 0.0, scale))
    if on(s.shear):
        kx, ky = np.tan(np.radians(rng.uniform(-1, 1, 2) * s.shear.range))
        matrix = np.float32([[1, kx, -kx * centre[1]], [ky, 1, -ky * centre[0]]])
        image, mask = _affine(image, mask, matrix)
    if on(s.translation):
        tx, ty = rng.uniform(-1, 1, 2) * s.translation.range * (width, height)
        image, mask = _affine(image, mask, np.float32([[1, 0, tx], [0, 1, ty]]))
    if on(s.elastic):
        f = side / 512
        dx, dy = (
            cv2.GaussianBlur(
                rng.uniform(-1, 1, (height, width)).astype(np.float32), (0, 0), s.elastic.sigma * f
            )
            * s.elastic.alpha
            * f
            * f
            for _ in range(2)
        )
        image, mask = _remap(image, mask, dx, dy)
    if on(s.smooth_distortion):
        g = s.smooth_distortion.grid + 1
        nodes = rng.uniform(-1, 1, (g, g, 2)) * s.smooth_distortion.magnitude * side
        nodes[[0, -1]], nodes[:, [0, -1]] = 0, 0
        field = cv2.resize(nodes.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
        image, mask = _remap(image, mask, field[..., 0], field[..., 1])
    for op, sign in ((s.barrel, 1.0), (s.pincushion, -1.0)):
        if on(op):
            point = op.centres[rng.integers(len(op.centres))] if op.centres else rng.random(2)
            amount = sign * rng.uniform(*op.amount)
            image, mask = _radial_loops(image, mask, point, op.radius * side, amount)
    if on(s.brightness):
        image = image + rng.uniform(-1, 1) * s.brightness.range
    if on(s.contrast):
        mean = image.mean(axis=(0, 1))
        image = (image - mean) * (1 + rng.uniform(-1, 1) * s.contrast.range) + mean
    image = np.clip(image, 0, 1).astype(np.float32)
    if on(s.gamma):
        image = image ** rng.uniform(*s.gamma.gamma)
    if on(s.hue) or on(s.saturation):
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-1, 1) * s.hue.range * 360) % 360
        hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(*s.saturation.factor), 0, 1)
        image = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if on(s.blur):
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(*s.blur.sigma))
    if on(s.sharpen):
        image = image + rng.uniform(*s.sharpen.amount) * (image - cv2.blur(image, (3, 3)))
    if on(s.noise):
        image = image + rng.normal(0, rng.uniform(*s.noise.std), image.shape)
    return np.clip(image, 0, 1).astype(np.float32), mask


def batches(
    pairs: Sequence[Any], size: tuple[int, int], spec: Any, batch: int, rng: np.random.Generator
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Batches as the old generator yielded them: read, resize, augment, one image at a time."""
    images, masks = [], []
    for pair in pairs:
        image = cv2.imread(str(Path(pair.image)), cv2.IMREAD_COLOR)
        image = cv2.cvtColor(cv2.resize(image, size[::-1]), cv2.COLOR_BGR2RGB)
        mask = cv2.resize(cv2.imread(str(Path(pair.mask)), cv2.IMREAD_GRAYSCALE), size[::-1])
        image, mask = augment(
            image.astype(np.float32) / 255, (mask > 127).astype(np.float32), spec, rng
        )
        images.append(image)
        masks.append(mask[..., None])
        if len(images) == batch:
            yield np.stack(images), np.stack(masks)
            images, masks = [], []
    if images:
        yield np.stack(images), np.stack(masks)
