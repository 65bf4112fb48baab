"""Geometric augmentation as one sampling grid per image.

Every geometric op is either a 2x2 linear map about the image centre (flips, rotation, zoom,
shear) plus a shift (translation), or a displacement field (elastic, smooth distortion, barrel,
pincushion). They are composed into one grid of source coordinates, sampled once: the image is
interpolated once however many ops apply (no cumulative blur), and the mask is sampled at the
very same points, so image and mask cannot drift apart.

Coordinates are in pixels, pixel i at coordinate i; ``x`` runs along the width, ``y`` down the
height. Maps go from an output pixel to the source pixel it shows (inverse warping).
"""

from __future__ import annotations

import math

import tensorflow as tf

REFERENCE_SIZE = 512  # elastic alpha and sigma are in pixels of a 512-pixel image

# A batch of 2x2 matrices as four (B,) tensors: (a, b, c, d) = [[a, b], [c, d]].
Linear = tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]


def identity(batch: tf.Tensor) -> Linear:
    one, zero = tf.ones([batch]), tf.zeros([batch])
    return one, zero, zero, one


def compose(m: Linear, n: Linear) -> Linear:
    """m @ n. Entries that are exactly 0 or +-1 give exact products (quarter turns stay exact)."""
    a, b, c, d = m
    e, f, g, h = n
    return a * e + b * g, a * f + b * h, c * e + d * g, c * f + d * h


def select(apply: tf.Tensor, m: Linear, otherwise: Linear) -> Linear:
    return tuple(tf.where(apply, x, y) for x, y in zip(m, otherwise, strict=True))  # type: ignore[return-value]


def flip_inverse(flip_x: tf.Tensor, flip_y: tf.Tensor) -> Linear:
    """Mirror images along x and/or y (booleans per image); a flip is its own inverse."""
    sx = tf.where(flip_x, -1.0, 1.0)
    sy = tf.where(flip_y, -1.0, 1.0)
    zero = tf.zeros_like(sx)
    return sx, zero, zero, sy


def rotation_inverse(cos: tf.Tensor, sin: tf.Tensor) -> Linear:
    """Counter-clockwise on screen (y points down) by the angle whose cos and sin are given."""
    return cos, -sin, sin, cos


def exact_cos_sin(degrees: float) -> tuple[float, float]:
    """cos and sin, exact (0, +-1) for multiples of 90 degrees so quarter turns permute pixels."""
    if float(degrees) % 90 == 0:
        quarter = round(float(degrees) / 90) % 4
        return [(1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)][quarter]
    radians = math.radians(degrees)
    return math.cos(radians), math.sin(radians)


def zoom_inverse(scale: tf.Tensor) -> Linear:
    """Content scaled by ``scale`` about the centre: < 1 shrinks it onto the fill background."""
    inv = 1.0 / scale
    zero = tf.zeros_like(inv)
    return inv, zero, zero, inv


def shear_inverse(shear_x: tf.Tensor, shear_y: tf.Tensor) -> Linear:
    """Forward [[1, kx], [ky, 1]] with k = tan(angle); |angle| < 45 degrees keeps it invertible."""
    kx, ky = tf.tan(shear_x * (math.pi / 180)), tf.tan(shear_y * (math.pi / 180))
    det = 1.0 - kx * ky
    return 1.0 / det, -kx / det, -ky / det, 1.0 / det


def centred_grid(height: int, width: int) -> tuple[tf.Tensor, tf.Tensor]:
    """(1, H, W) x and y of every output pixel relative to the image centre."""
    ys = tf.range(height, dtype=tf.float32) - (height - 1) / 2
    xs = tf.range(width, dtype=tf.float32) - (width - 1) / 2
    y, x = tf.meshgrid(ys, xs, indexing="ij")
    return x[None], y[None]


def gaussian_smooth(field: tf.Tensor, sigma: float) -> tf.Tensor:
    """Separable Gaussian filter of a (B, H, W, C) field, zero outside (scipy mode='constant')."""
    radius = max(1, math.ceil(3 * sigma))
    taps = tf.exp(-0.5 * (tf.range(-radius, radius + 1, dtype=tf.float32) / sigma) ** 2)
    taps /= tf.reduce_sum(taps)
    channels = field.shape[-1]
    along_y = tf.tile(tf.reshape(taps, [-1, 1, 1, 1]), [1, 1, channels, 1])
    along_x = tf.reshape(along_y, [1, -1, channels, 1])
    field = tf.nn.depthwise_conv2d(field, along_y, [1, 1, 1, 1], "SAME")
    return tf.nn.depthwise_conv2d(field, along_x, [1, 1, 1, 1], "SAME")


def elastic_field(noise: tf.Tensor, alpha: float, sigma: float, size: int) -> tf.Tensor:
    """Simard's displacement: alpha * Gaussian(sigma) * noise, with noise (B, H, W, 2) uniform in
    [-1, 1]. ``alpha``/``sigma`` are in pixels at REFERENCE_SIZE and scale geometrically to the
    image's shorter side ``size``: sigma by f = size/512, alpha by f**2 (a smoothed white noise's
    amplitude falls as 1/sigma), so displacements scale by f and the warp looks the same."""
    f = size / REFERENCE_SIZE
    return gaussian_smooth(noise, max(sigma * f, 0.1)) * (alpha * f * f)


def smooth_field(nodes: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """Displacement interpolated (bicubic) from a coarse (B, g+1, g+1, 2) grid of node moves in
    pixels; the outer ring of nodes is held still so the image frame stays in place."""
    inner = tf.pad(tf.ones([nodes.shape[1] - 2, nodes.shape[2] - 2, 1]), [[1, 1], [1, 1], [0, 0]])
    return tf.image.resize(nodes * inner, [height, width], method="bicubic")


def radial_field(
    x: tf.Tensor,
    y: tf.Tensor,
    centre_x: tf.Tensor,
    centre_y: tf.Tensor,
    radius: float,
    amount: tf.Tensor,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Barrel (amount > 0) or pincushion (< 0) distortion inside a disk, the legacy formula: a
    pixel at distance r < R from the centre shows the source at r * sin(pi/2 * r/R) ** amount.
    Continuous with a continuous derivative at r = R, identity outside. Per-image (B,) centres
    (in the same centred pixel coordinates as x, y) and amounts."""
    dx = x - centre_x[:, None, None]
    dy = y - centre_y[:, None, None]
    r = tf.sqrt(dx * dx + dy * dy)
    inside = r < radius
    s = tf.sin((math.pi / 2) * tf.minimum(r / radius, 1.0))
    factor = tf.pow(tf.maximum(s, 1e-6), amount[:, None, None])  # finite at the centre
    move = tf.where(inside, factor - 1.0, 0.0)
    return move * dx, move * dy


def reflect(coord: tf.Tensor, size: int) -> tf.Tensor:
    """Mirror at the image border (half-sample symmetric: ... b a | a b c d | d c ...)."""
    period = 2.0 * size
    t = tf.math.floormod(coord + 0.5, period)
    return tf.where(t > size, period - t, t) - 0.5


def resample(
    values: tf.Tensor,
    src_x: tf.Tensor,
    src_y: tf.Tensor,
    mode: str,
    fill: tf.Tensor,
    exact: bool = False,
) -> tf.Tensor:
    """Bilinear samples of (B, H, W, C) ``values`` at (B, H, W) source coordinates.

    ``mode``: reflect | nearest (clamp to the border) | constant (``fill``, one value per
    channel, outside). Integer coordinates give exact copies of the source values; with
    ``exact`` the caller promises integer coordinates and one gather replaces four.
    """
    height, width, channels = values.shape[1], values.shape[2], values.shape[3]
    if mode == "reflect":
        src_x, src_y = reflect(src_x, width), reflect(src_y, height)
    elif mode == "constant":
        # A one-pixel frame of fill, then clamping: every corner outside reads the frame.
        frame = tf.pad(
            tf.zeros([1, height, width, 1]), [[0, 0], [1, 1], [1, 1], [0, 0]], constant_values=1.0
        )
        values = tf.pad(values, [[0, 0], [1, 1], [1, 1], [0, 0]]) + frame * fill
        height, width = height + 2, width + 2
        src_x, src_y = src_x + 1.0, src_y + 1.0
    flat = tf.reshape(values, [-1, channels])
    base = (tf.range(tf.shape(values)[0]) * (height * width))[:, None, None]

    def clamp(v: tf.Tensor, size: int) -> tf.Tensor:
        return tf.clip_by_value(v, 0, size - 1)

    if exact:
        x = clamp(tf.cast(tf.round(src_x), tf.int32), width)
        y = clamp(tf.cast(tf.round(src_y), tf.int32), height)
        out = tf.gather(flat, base + y * width + x)
    else:
        x0, y0 = tf.floor(src_x), tf.floor(src_y)
        wx, wy = (src_x - x0)[..., None], (src_y - y0)[..., None]
        x0, y0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
        xa, xb = clamp(x0, width), clamp(x0 + 1, width)
        row_a, row_b = base + clamp(y0, height) * width, base + clamp(y0 + 1, height) * width
        top_left, top_right = tf.gather(flat, row_a + xa), tf.gather(flat, row_a + xb)
        bottom_left, bottom_right = tf.gather(flat, row_b + xa), tf.gather(flat, row_b + xb)
        # Lerps: with zero weights (integer coordinates) the top-left value comes out exactly.
        top = top_left + wx * (top_right - top_left)
        bottom = bottom_left + wx * (bottom_right - bottom_left)
        out = top + wy * (bottom - top)
    return out
