"""Reading images and masks into the one representation every stage uses.

Training, evaluation and inference all read through :func:`decode_image` + :func:`prepare_image`
(:func:`load_image` is the two in one) and :func:`load_mask`, so colour order (RGB), bit depth
normalisation, resizing and the configured preprocessing (:mod:`seg.data.preprocess`) are
identical everywhere.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import cv2
import numpy as np
import tifffile
from PIL import Image

from seg.data.preprocess import (
    ImagePreprocess,
    MaskPreprocess,
    adjust_intensities,
    encode_for_model,
    full_scale,
    mask_labels,
    working_channels,
)
from seg.errors import DatasetError
from seg.files import written_whole

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# Pixel depths with a meaning here: 8/16-bit scaled by their full scale, float taken as [0, 1].
SUPPORTED_DEPTHS = (np.uint8, np.uint16, np.float32)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_PALETTE = 3  # IHDR colour type of an indexed-colour PNG


def _is_palette_png(data: np.ndarray) -> bool:
    """Indexed-colour PNG: the signature, then IHDR whose colour type is byte 25."""
    return len(data) > 25 and data[:8].tobytes() == _PNG_SIGNATURE and data[25] == _PNG_PALETTE


def _truncated_jpeg(data: np.ndarray) -> bool:
    """A JPEG whose last scan has no end-of-image marker after it: cut short. (libjpeg decodes
    such a file without an error, filling the missing rows with grey.) Marker bytes cannot
    occur inside entropy-coded data, where 0xFF is always escaped."""
    if data[:3].tobytes() != b"\xff\xd8\xff":
        return False
    raw = data.tobytes()
    return raw.rfind(b"\xff\xd9") < raw.rfind(b"\xff\xda")


def _palette_indices(data: np.ndarray) -> np.ndarray | None:
    """The HxW index image of a palette PNG (OpenCV only gives its colours, so Pillow reads
    it); None if it does not decode."""
    try:
        with Image.open(BytesIO(data.tobytes())) as image:
            return np.array(image) if image.mode == "P" else None
    except (OSError, ValueError):
        return None


_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*")
_TIFF_PLANAR_SEPARATE = 2


def _grey_alpha_tiff(data: np.ndarray) -> np.ndarray | None:
    """A grey+alpha TIFF as HxWx4 (grey three times, then alpha), the layout OpenCV gives a
    grey+alpha PNG; None for any other file. OpenCV's TIFF decoder drops such an alpha, which
    would leave transparent pixels their grey instead of white."""
    if data[:4].tobytes() not in _TIFF_SIGNATURES:
        return None
    try:
        with tifffile.TiffFile(BytesIO(data.tobytes())) as tif:
            page = tif.pages[0]
            if page.samplesperpixel != 2 or not page.extrasamples:
                return None
            pixels = page.asarray()
            if page.planarconfig == _TIFF_PLANAR_SEPARATE:
                pixels = np.moveaxis(pixels, 0, -1)
    except (tifffile.TiffFileError, ValueError, OSError):
        return None
    if pixels.ndim != 3 or pixels.shape[2] != 2:
        return None
    grey, alpha = pixels[:, :, 0], pixels[:, :, 1]
    return np.dstack([grey, grey, grey, alpha])


_EXIF_ORIENTATION = 0x0112  # the EXIF tag of how a viewer turns the stored pixels
_EXIF_HEAD = 1 << 16  # JPEG: EXIF sits in an APP1 segment at the start


def _may_have_exif(data: np.ndarray) -> bool:
    """Cheap byte tests first, so Pillow parses only files that can hold an orientation (for a
    PNG it would decode the whole image to look for the chunk)."""
    head = data[:4].tobytes()
    if head.startswith(b"\xff\xd8\xff"):
        return b"Exif\x00\x00" in data[:_EXIF_HEAD].tobytes()
    if head == _PNG_SIGNATURE[:4]:
        return b"eXIf" in data.tobytes()
    return head in _TIFF_SIGNATURES or head == b"RIFF"  # WebP: RIFF....WEBP


def exif_orientation(data: np.ndarray) -> int:
    """The file's EXIF orientation (1-8; 1, the default, leaves the pixels as stored)."""
    if not _may_have_exif(data):
        return 1
    try:
        with Image.open(BytesIO(data.tobytes())) as image:
            value = image.getexif().get(_EXIF_ORIENTATION, 1)
    except (OSError, ValueError, SyntaxError):  # Pillow's parsers raise these on odd headers
        return 1
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1


def as_displayed(array: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels turned as a viewer shows them for an EXIF ``orientation`` (Pillow's
    ``ImageOps.exif_transpose``): masks are drawn on what a person sees."""
    turns = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
        8: lambda a: np.rot90(a, 1),
    }
    turn = turns.get(orientation)
    return array if turn is None else np.ascontiguousarray(turn(array))


def read_raw(path: Path, *, palette_indices: bool = False) -> np.ndarray:
    """:func:`read_oriented`'s pixels."""
    return read_oriented(path, palette_indices=palette_indices)[0]


def read_oriented(path: Path, *, palette_indices: bool = False) -> tuple[np.ndarray, int]:
    """Decode a file (any depth, 1-4 channels, BGR order) as a viewer shows it, with the EXIF
    orientation applied (1: none); one clear error if it does not decode or its values have no
    agreed meaning.

    ``palette_indices``: an indexed-colour (palette) PNG gives its HxW indices, not the colours
    they stand for (index masks saved with a palette for viewing). An EXIF orientation (photos,
    scanners) is applied, as every viewer and ``cv2.imread`` do; OpenCV's unchanged decoding
    would give the stored pixels, turned against the masks drawn on the displayed image.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DatasetError(f"{path}: empty file (0 bytes): replace or remove it")
    # imdecode from bytes handles non-ASCII paths and never prints to stderr for a bad file.
    data = np.fromfile(str(path), dtype=np.uint8)
    array = _palette_indices(data) if palette_indices and _is_palette_png(data) else None
    if array is None and not _truncated_jpeg(data):
        array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if array is not None and array.ndim == 2 and (grey_alpha := _grey_alpha_tiff(data)) is not None:
        array = grey_alpha
    if array is None or array.size == 0:
        raise DatasetError(
            f"{path}: not a readable image (corrupt, truncated or unsupported format): "
            "replace or remove it"
        )
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    if array.dtype not in SUPPORTED_DEPTHS:
        # Signed or 32-bit integers (e.g. CT values in TIFF) have no agreed "white": scaling them
        # would silently clip; and OpenCV's colour conversions refuse them.
        raise DatasetError(
            f"{path}: {array.dtype} pixels are not supported: save it as 8- or 16-bit unsigned "
            "integers (or 32-bit float in [0, 1])"
        )
    if array.dtype == np.float32:
        _check_float_range(array, path)
    orientation = exif_orientation(data)
    return as_displayed(array, orientation), orientation


FLOAT_SLACK = 1e-3  # float pixels this far outside [0, 1] are rounding, not another scale


def _check_float_range(array: np.ndarray, path: Path) -> None:
    """Float pixels are read as [0, 1]: NaN, or values on another scale (0-255 saved as float,
    Hounsfield units), would be clipped to black and white without a word."""
    if not np.isfinite(array).all():
        raise DatasetError(
            f"{path}: pixel values are not finite (NaN or infinity), which would make the loss "
            "NaN: replace them or remove the file"
        )
    low, high = float(array.min(initial=0.0)), float(array.max(initial=0.0))
    if low < -FLOAT_SLACK or high > 1 + FLOAT_SLACK:
        scale = " (0-255 levels saved as float?)" if high <= 255 and low >= 0 else ""
        raise DatasetError(
            f"{path}: float pixels from {low:g} to {high:g} found{scale}; float images are "
            "read as [0, 1], so the rest would clip to black or white: save it as 8- or "
            "16-bit integers, or scale it to [0, 1]"
        )


def read_mask(path: Path, spec: MaskPreprocess | None = None) -> np.ndarray:
    """A mask file as stored: a palette PNG gives its indices unless the masks are
    colour-coded (``dataset.mask.colors``), whose colours are what counts."""
    return read_raw(path, palette_indices=not (spec and spec.colors))


def to_rgb_float(array: np.ndarray, channels: int) -> np.ndarray:
    """Raw decoded array -> float32 HxWxC in [0, 1], RGB (C=3) or grey (C=1)."""
    scaled = array.astype(np.float32) / full_scale(array)
    if scaled.ndim == 3 and scaled.shape[2] == 4:
        # Composite RGBA on white so transparent regions do not become black (background).
        alpha = scaled[:, :, 3:4]
        scaled = scaled[:, :, :3] * alpha + (1.0 - alpha)
    if scaled.ndim == 3 and scaled.shape[2] == 1:
        scaled = scaled[:, :, 0]
    if scaled.ndim == 2:
        grey = scaled
        out = grey[:, :, None] if channels == 1 else np.repeat(grey[:, :, None], 3, axis=2)
        return np.ascontiguousarray(np.clip(out, 0.0, 1.0))
    rgb = cv2.cvtColor(scaled, cv2.COLOR_BGR2RGB)
    if channels == 1:
        return np.clip(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[:, :, None], 0.0, 1.0)
    return np.clip(rgb, 0.0, 1.0)


def resize(array: np.ndarray, height: int, width: int, *, nearest: bool = False) -> np.ndarray:
    """Resize HxW(xC) keeping the channel axis; area when shrinking, linear when enlarging."""
    if array.shape[0] == height and array.shape[1] == width:
        return array
    if nearest:
        # Centre-aligned like area/linear (INTER_NEAREST takes each block's top-left pixel:
        # shrunk masks would sit up to half a block up-left of their images).
        interpolation = cv2.INTER_NEAREST_EXACT
    elif height < array.shape[0] and width < array.shape[1]:
        interpolation = cv2.INTER_AREA
    else:
        interpolation = cv2.INTER_LINEAR
    out = cv2.resize(array, (width, height), interpolation=interpolation)
    if array.ndim == 3 and out.ndim == 2:
        out = out[:, :, None]
    if not nearest and out.dtype.kind == "f":
        # Area/linear weights make convex combinations, but OpenCV's rounding can step an ulp
        # past the source's range (1.0000001 from a 0/1 image): clip back into it.
        out = np.clip(out, array.min(), array.max())
    return out


def decode_image(raw: np.ndarray, channels: int, spec: ImagePreprocess | None = None) -> np.ndarray:
    """Decoded file -> float32 HxWxC in [0, 1] at its own size: RGB, or grey when the model gets
    grey (``spec.color``), before any preprocessing. Inference keeps it for overlays."""
    return to_rgb_float(raw, working_channels(spec or ImagePreprocess(), channels))


def working_image(
    image: np.ndarray, size: tuple[int, int] | None, spec: ImagePreprocess | None = None
) -> np.ndarray:
    """A decoded image resized to (h, w), after the intensity steps of ``dataset.preprocess``:
    grey or RGB in [0, 1], what augmentation works on."""
    if size is not None:
        image = resize(image, *size)
    return adjust_intensities(image, spec or ImagePreprocess())


def prepare_image(
    image: np.ndarray,
    size: tuple[int, int] | None,
    channels: int,
    spec: ImagePreprocess | None = None,
) -> np.ndarray:
    """A decoded image as the model sees it: resized to (h, w), then ``dataset.preprocess``.

    The one path from pixels to model input, for training, evaluation and inference alike
    (training encodes after augmentation: :func:`working_image`, then the same encoding).
    """
    spec = spec or ImagePreprocess()
    return encode_for_model(working_image(image, size, spec), channels, spec)


def load_image(
    path: Path,
    size: tuple[int, int] | None,
    channels: int,
    spec: ImagePreprocess | None = None,
    *,
    encode: bool = True,
) -> np.ndarray:
    """An image file as the model sees it: float32 HxWxC, resized to (h, w) and preprocessed
    (by default RGB or grey in [0, 1]); with ``encode=False`` the working image instead."""
    image = decode_image(read_raw(path), channels, spec)
    if encode:
        return prepare_image(image, size, channels, spec)
    return working_image(image, size, spec)


def _listing_values(values: np.ndarray, shown: int = 5) -> str:
    head = ", ".join(str(int(v)) for v in values[:shown])
    return head + (f" ... ({len(values)} distinct)" if len(values) > shown else "")


def check_class_indices(labels: np.ndarray, num_classes: int, path: Path) -> None:
    """Multiclass labels must be 0..num_classes-1: one_hot would silently turn other values
    into all-zero vectors (pixels of no class at all)."""
    if labels.max(initial=0) >= num_classes:
        bad = np.unique(labels[labels >= num_classes])
        raise DatasetError(
            f"{path}: mask values {_listing_values(bad)} are not class indices "
            f"0..{num_classes - 1}: multiclass masks must be index images (pixel value = "
            "class) or colour-coded with dataset.mask.colors; check dataset.num_classes"
        )


def mask_file_labels(
    path: Path, threshold: float, num_classes: int = 1, spec: MaskPreprocess | None = None
) -> np.ndarray:
    """A mask file's labels at its own size: {0, 1} binary, checked class indices otherwise."""
    spec = spec or MaskPreprocess()
    return mask_raw_labels(read_mask(Path(path), spec), Path(path), threshold, num_classes, spec)


def mask_raw_labels(
    raw: np.ndarray, path: Path, threshold: float, num_classes: int, spec: MaskPreprocess
) -> np.ndarray:
    """A decoded mask file's labels (:func:`mask_file_labels` after the read)."""
    labels = mask_labels(raw, threshold, num_classes, spec, path)
    if num_classes > 1:
        check_class_indices(labels, num_classes, path)
    return labels


def load_mask(
    path: Path,
    size: tuple[int, int] | None,
    threshold: float,
    num_classes: int = 1,
    spec: MaskPreprocess | None = None,
) -> np.ndarray:
    """A mask as the loss sees it: HxW uint8 labels, resized to (h, w).

    Binary masks are thresholded at the file's size (``threshold``, or Otsu/triangle per
    ``spec``), resized as grey levels and thresholded again at 0.5, which keeps edges smooth
    and the mask binary; index and colour-coded masks are resized with nearest neighbour.
    """
    labels = mask_file_labels(path, threshold, num_classes, spec)
    if num_classes > 1:
        labels = labels.astype(np.uint8)
        return labels if size is None else resize(labels, *size, nearest=True)
    labels = labels.astype(np.float32)
    if size is not None:
        labels = resize(labels, *size)
    return (labels >= 0.5).astype(np.uint8)


def write_png(path: Path, rgb_or_grey: np.ndarray) -> None:
    """Write uint8/uint16 RGB or grey as PNG (converting RGB to OpenCV's BGR).

    Written beside ``path`` and renamed over it: a reader never sees half a file, and a
    symlink already at ``path`` is replaced, not followed (so it cannot redirect the write
    outside the output folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = rgb_or_grey
    if array.ndim == 3 and array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", array)
    if not ok:
        raise DatasetError(f"{path}: could not encode the image as PNG")
    try:
        with written_whole(path) as tmp:
            tmp.write_bytes(encoded.tobytes())
    except OSError as err:
        raise DatasetError(
            f"{path}: could not write the image ({err.strerror}; check the folder is writable)"
        ) from err
