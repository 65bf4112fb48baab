"""Property tests of the image and mask reader (seg.data.io), with Hypothesis.

Files of random sizes (1xN included), depths, channel layouts and formats are written to a
temporary folder, read back through the functions the pipeline uses (``load_image``,
``load_mask``, ``read_raw``) and compared with a NumPy reference of the documented semantics:
RGB (or BT.601 grey) float32 in [0, 1], 8/16-bit scaled by their full scale, grey replicated,
alpha composited on white; masks binary whatever their foreground value; anything unreadable a
DatasetError naming the file.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from seg.data.io import load_image, load_mask, read_raw, resize
from seg.errors import DatasetError
from tests.support.data import write_image
from tests.support.properties import examples

PIL_IMAGE = pytest.importorskip("PIL.Image")

LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, what grey model input is
# Lossless formats and what each stores (OpenCV writes them; grey+alpha comes from Pillow as
# PNG, 8-bit only, and from tifffile as TIFF).
LOSSLESS = {
    ".png": ((np.uint8, np.uint16), (1, 2, 3, 4)),
    ".tif": ((np.uint8, np.uint16, np.float32), (1, 2, 3, 4)),
    ".bmp": ((np.uint8,), (1, 3)),
    ".webp": ((np.uint8,), (3, 4)),
}
JPEG_TOLERANCE = 8 / 255  # quality 100 without chroma subsampling

sides = st.integers(1, 48)


@contextmanager
def folder() -> Iterator[Path]:
    """A fresh folder per example (pytest's tmp_path is shared by all examples of a test)."""
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def full_scale(dtype: type) -> float:
    return float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0


def pixels(rng: np.random.Generator, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """Random values with the extremes (0 and full scale) always present when there is room."""
    top = full_scale(dtype)
    if np.issubdtype(dtype, np.integer):
        array = rng.integers(0, int(top), shape, dtype=dtype, endpoint=True)
    else:
        array = rng.random(shape).astype(dtype)
    flat = array.reshape(-1)
    flat[:1] = 0
    flat[1:2] = top
    return array


def expected_image(rgba: np.ndarray, channels: int) -> np.ndarray:
    """The documented decoding, in NumPy: scale by full scale, composite alpha on white,
    replicate grey, BT.601 luma for a grey model. ``rgba`` is HxW(xC) in RGB(A) order."""
    x = rgba.astype(np.float64) / full_scale(rgba.dtype.type)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.shape[2] in (2, 4):
        x = x[:, :, :-1] * x[:, :, -1:] + (1.0 - x[:, :, -1:])
    if x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)
    if channels == 1:
        x = (x @ LUMA)[:, :, None]
    return x


def write_any(path: Path, rgba: np.ndarray, **params: int) -> Path:
    """RGB(A)/grey through OpenCV; grey+alpha (not an OpenCV layout) through tifffile (TIFF)
    or Pillow (PNG)."""
    if rgba.ndim == 3 and rgba.shape[2] == 2:
        if path.suffix == ".tif":
            tifffile.imwrite(path, rgba, photometric="minisblack", extrasamples=["unassalpha"])
        else:
            PIL_IMAGE.fromarray(rgba).save(path)  # uint8 (H, W, 2): mode LA
        return path
    if rgba.ndim == 3 and rgba.shape[2] == 1:
        rgba = rgba[:, :, 0]
    return write_image(path, rgba, **params)


@dataclass(frozen=True)
class ImageFile:
    suffix: str
    dtype: type
    channels: int  # stored: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA
    height: int
    width: int
    seed: int

    def array(self) -> np.ndarray:
        shape = (self.height, self.width) + ((self.channels,) if self.channels > 1 else ())
        return pixels(np.random.default_rng(self.seed), shape, self.dtype)


@st.composite
def lossless_files(draw: st.DrawFn) -> ImageFile:
    suffix = draw(st.sampled_from(sorted(LOSSLESS)))
    dtypes, layouts = LOSSLESS[suffix]
    channels = draw(st.sampled_from(layouts))
    # Pillow's LA PNG: 8-bit only
    dtype = np.uint8 if channels == 2 and suffix == ".png" else draw(st.sampled_from(dtypes))
    return ImageFile(suffix, dtype, channels, draw(sides), draw(sides), draw(st.integers(0, 2**16)))


def _assert_model_image(image: np.ndarray, shape: tuple[int, ...]) -> None:
    assert image.dtype == np.float32 and image.shape == shape
    assert np.isfinite(image).all() and image.min() >= 0.0 and image.max() <= 1.0


# --------------------------------------------------------------------------- images


@settings(max_examples=examples(60))
@given(spec=lossless_files(), channels=st.sampled_from([1, 3]))
def test_lossless_image_decodes_to_the_numpy_reference(spec: ImageFile, channels: int) -> None:
    source = spec.array()
    with folder() as tmp:
        path = write_any(tmp / f"im{spec.suffix}", source)
        image = load_image(path, None, channels)
    _assert_model_image(image, (spec.height, spec.width, channels))
    np.testing.assert_allclose(image, expected_image(source, channels), atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_grey_alpha_tiff_composites_on_white_like_png(tmp_path: Path, dtype: type) -> None:
    """OpenCV's TIFF decoder drops a grey+alpha TIFF's alpha (its PNG decoder keeps it): a
    transparent pixel must still read as white, the same as from the PNG."""
    top = np.iinfo(dtype).max
    la = np.zeros((6, 7, 2), dtype)
    la[:, :, 0] = top // 3  # dark grey everywhere
    la[:, 4:, 1] = top  # opaque on the right, transparent on the left
    tif = write_any(tmp_path / "la.tif", la)
    image = load_image(tif, None, 3)
    assert np.allclose(image[:, :4], 1.0) and np.allclose(image[:, 4:], 1 / 3, atol=1e-4)
    if dtype == np.uint8:  # Pillow writes LA PNG in 8-bit only
        png = write_any(tmp_path / "la.png", la)
        np.testing.assert_array_equal(image, load_image(png, None, 3))


@settings(max_examples=examples(20))
@given(
    channels_in=st.sampled_from([1, 3]),
    h=sides,
    w=sides,
    seed=st.integers(0, 2**16),
    channels=st.sampled_from([1, 3]),
)
def test_jpeg_decodes_close_to_its_source(
    channels_in: int, h: int, w: int, seed: int, channels: int
) -> None:
    shape = (h, w, 3) if channels_in == 3 else (h, w)
    source = pixels(np.random.default_rng(seed), shape, np.uint8)
    with folder() as tmp:
        path = write_image(
            tmp / "im.jpg",
            source,
            IMWRITE_JPEG_QUALITY=100,
            IMWRITE_JPEG_SAMPLING_FACTOR=cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
        )
        image = load_image(path, None, channels)
    _assert_model_image(image, (h, w, channels))
    np.testing.assert_allclose(image, expected_image(source, channels), atol=JPEG_TOLERANCE, rtol=0)


@settings(max_examples=examples(20))
@given(spec=lossless_files(), size=st.tuples(sides, sides), channels=st.sampled_from([1, 3]))
def test_resized_image_has_the_size_and_stays_within_the_source_range(
    spec: ImageFile, size: tuple[int, int], channels: int
) -> None:
    """Area and linear interpolation are convex combinations: no value outside the source's
    per-channel [min, max] (so a constant image stays that constant at any size)."""
    with folder() as tmp:
        path = write_any(tmp / f"im{spec.suffix}", spec.array())
        full = load_image(path, None, channels)
        image = load_image(path, size, channels)
    _assert_model_image(image, (*size, channels))
    low, high = full.min(axis=(0, 1)), full.max(axis=(0, 1))
    assert (image >= low).all() and (image <= high).all()


# --------------------------------------------------------------------------- masks

# Lossless formats and depths for masks; foreground values a mask tool writes for each depth.
MASK_FORMATS = {".png": (np.uint8, np.uint16), ".tif": (np.uint8, np.uint16), ".bmp": (np.uint8,)}
FOREGROUNDS = {np.uint8: (1, 255), np.uint16: (1, 255, 65535)}


@st.composite
def binary_masks(draw: st.DrawFn) -> np.ndarray:
    h, w = draw(sides), draw(sides)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    fraction = draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))  # empty and full masks included
    return (rng.random((h, w)) < fraction).astype(np.uint8)


@settings(max_examples=examples(60))
@given(
    truth=binary_masks(),
    suffix=st.sampled_from(sorted(MASK_FORMATS)),
    data=st.data(),
    colour=st.booleans(),
    size=st.none() | st.tuples(sides, sides),
)
def test_binary_mask_is_the_same_whatever_its_foreground_value(
    truth: np.ndarray, suffix: str, data: st.DataObject, colour: bool, size: tuple[int, int] | None
) -> None:
    """0/1, 0/255 (and 0/65535 in 16 bits), grey or RGB: one and the same binary mask."""
    dtype = data.draw(st.sampled_from(MASK_FORMATS[suffix]), label="dtype")
    foreground = data.draw(st.sampled_from(FOREGROUNDS[dtype]), label="foreground")
    stored = truth.astype(dtype) * dtype(foreground)
    if colour:
        stored = np.repeat(stored[:, :, None], 3, axis=2)
    with folder() as tmp:
        reference = load_mask(write_image(tmp / "ref.png", truth * 255), size, 0.5)
        mask = load_mask(write_image(tmp / f"m{suffix}", stored), size, 0.5)
    assert mask.dtype == np.uint8 and mask.shape == (size or truth.shape)
    assert set(np.unique(mask)) <= {0, 1}
    np.testing.assert_array_equal(mask, reference)
    if size is None:
        np.testing.assert_array_equal(mask, truth)


@settings(max_examples=examples(25))
@given(
    h=sides,
    w=sides,
    classes=st.integers(2, 8),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from([np.uint8, np.uint16]),
    size=st.none() | st.tuples(sides, sides),
)
def test_index_mask_keeps_its_labels(
    h: int, w: int, classes: int, seed: int, dtype: type, size: tuple[int, int] | None
) -> None:
    labels = np.random.default_rng(seed).integers(0, classes, (h, w)).astype(dtype)
    with folder() as tmp:
        mask = load_mask(write_image(tmp / "m.png", labels), size, 0.5, num_classes=classes)
    assert mask.dtype == np.uint8 and mask.shape == (size or (h, w))
    assert set(np.unique(mask)) <= set(np.unique(labels).tolist())  # nearest: no new labels
    if size is None:
        np.testing.assert_array_equal(mask, labels)


# --------------------------------------------------------------------------- bad files


def _loads_or_names_the_file(path: Path) -> None:
    """Image and mask loading either give valid arrays or one DatasetError naming the file."""
    for load in (lambda: load_image(path, (8, 8), 3), lambda: load_mask(path, (8, 8), 0.5)):
        try:
            out = load()
        except DatasetError as err:
            assert str(path) in str(err)
        else:
            assert out.shape[:2] == (8, 8) and np.isfinite(out).all()
            assert out.min() >= 0 and out.max() <= 1


@settings(max_examples=examples(40))
@given(content=st.binary(max_size=2048), suffix=st.sampled_from([".png", ".jpg", ".tif"]))
def test_arbitrary_bytes_load_or_fail_naming_the_file(content: bytes, suffix: str) -> None:
    with folder() as tmp:
        path = tmp / f"junk{suffix}"
        path.write_bytes(content)
        _loads_or_names_the_file(path)


@settings(max_examples=examples(40))
@given(spec=lossless_files(), cut=st.floats(0.0, 0.99))
def test_truncated_files_load_or_fail_naming_the_file(spec: ImageFile, cut: float) -> None:
    with folder() as tmp:
        path = write_any(tmp / f"im{spec.suffix}", spec.array())
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * cut)])
        _loads_or_names_the_file(path)


TIFF_DEPTHS = [np.int8, np.int16, np.int32, np.float64, np.float32]


@settings(max_examples=examples(40))
@given(
    h=sides,
    w=sides,
    channels=st.sampled_from([1, 2, 3, 4]),
    dtype=st.sampled_from(TIFF_DEPTHS),
    seed=st.integers(0, 2**16),
    special=st.sampled_from([None, np.nan, np.inf, -np.inf, -0.5, 7.0]),
)
def test_other_tiff_depths_and_layouts_load_or_fail_naming_the_file(
    h: int, w: int, channels: int, dtype: type, seed: int, special: float | None
) -> None:
    """Signed and 64-bit depths, two-channel TIFFs and non-finite or out-of-range float pixels:
    whatever OpenCV decodes, the reader returns a valid image or refuses the file by name."""
    rng = np.random.default_rng(seed)
    shape = (h, w, channels) if channels > 1 else (h, w)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        array = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    else:
        array = rng.random(shape).astype(dtype)
        if special is not None:
            array.reshape(-1)[0] = special
    with folder() as tmp:
        path = tmp / "odd.tif"
        if channels == 2:  # grey+alpha: Pillow writes it (8-bit only)
            PIL_IMAGE.fromarray(np.nan_to_num(np.clip(array, 0, 255)).astype(np.uint8)).save(path)
        else:
            try:
                written = cv2.imwrite(str(path), array)
            except cv2.error:
                written = False
            assume(written)  # a depth/layout OpenCV cannot write: nothing to read back
        _loads_or_names_the_file(path)


@settings(max_examples=examples(5))
@given(h=sides, w=sides, value=st.sampled_from([np.nan, np.inf, -np.inf]))
def test_non_finite_float_pixels_are_refused_before_training(h: int, w: int, value: float) -> None:
    """A NaN would reach the loss as NaN: read_raw (what the dataset check decodes with)
    refuses the file by name."""
    array = np.full((h, w), 0.5, np.float32)
    array[h // 2, w // 2] = value
    with folder() as tmp:
        path = tmp / "nan.tif"
        assert cv2.imwrite(str(path), array)
        with pytest.raises(DatasetError, match="not finite") as info:
            read_raw(path)
    assert str(path) in str(info.value)


def test_resizing_does_not_step_past_the_source_range() -> None:
    """What the "dev" profile found (a grey+alpha TIFF, 38x9 -> 8x8): OpenCV's area
    interpolation of a 0/1 image gave 1.0000001; the reader clips to the source's range."""
    rng = np.random.default_rng(61868)
    values = rng.integers(-(2**31), 2**31 - 1, (38, 9, 2), dtype=np.int32, endpoint=True)
    image = np.repeat((values[..., 0] > 0).astype(np.float32)[:, :, None], 3, axis=2)
    assert set(np.unique(image)) == {0.0, 1.0}
    resized = resize(image, 8, 8)
    assert resized.min() >= 0.0 and resized.max() <= 1.0, resized.max()
