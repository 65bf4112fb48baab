"""Reading images and masks (seg.data.io) and finding/validating pairs (seg.data.pairs)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageOps

from seg.data.check import MaskReading, Problems, check_pairs
from seg.data.io import load_image, load_mask, read_raw
from seg.data.pairs import Pair, find_pairs, split_pairs
from seg.errors import DatasetError
from tests.support.data import circle_mask, write_image


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return float((a & b).sum() / max((a | b).sum(), 1))


def _assert_unit_float(array: np.ndarray, shape: tuple[int, ...]) -> None:
    assert array.dtype == np.float32
    assert array.shape == shape
    assert array.min() >= 0.0 and array.max() <= 1.0


# --------------------------------------------------------------------------- images


def test_colour_image_is_rgb_in_unit_range(tmp_path: Path) -> None:
    bgr = np.zeros((8, 10, 3), np.uint8)
    bgr[..., 2] = 255  # OpenCV order: channel 2 is red
    bgr[..., 1] = 128
    path = tmp_path / "red.png"
    assert cv2.imwrite(str(path), bgr)

    rgb = load_image(path, None, 3)
    _assert_unit_float(rgb, (8, 10, 3))
    np.testing.assert_allclose(rgb[0, 0], [1.0, 128 / 255, 0.0], atol=1e-6)

    grey = load_image(path, None, 1)
    _assert_unit_float(grey, (8, 10, 1))
    expected = (0.299 * 255 + 0.587 * 128) / 255  # ITU-R BT.601 luma of pure red + half green
    assert grey[0, 0, 0] == pytest.approx(expected, abs=2 / 255)


def test_grey_image_is_repeated_or_kept(tmp_path: Path) -> None:
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    path = write_image(tmp_path / "g.png", grey)
    one = load_image(path, None, 1)
    three = load_image(path, None, 3)
    _assert_unit_float(one, (6, 8, 1))
    _assert_unit_float(three, (6, 8, 3))
    np.testing.assert_allclose(one[..., 0], grey / 255.0, atol=1e-6)
    for c in range(3):
        np.testing.assert_array_equal(three[..., c], one[..., 0])


def test_rgba_transparent_pixels_are_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255  # opaque red ...
    rgba[..., 3] = 255
    rgba[0, 0] = (0, 0, 0, 0)  # ... except one fully transparent black pixel
    rgba[1, 1] = (0, 0, 255, 128)  # and one half-transparent blue
    path = write_image(tmp_path / "rgba.png", rgba)
    image = load_image(path, None, 3)
    _assert_unit_float(image, (4, 4, 3))
    np.testing.assert_allclose(image[0, 0], [1.0, 1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(image[2, 2], [1.0, 0.0, 0.0], atol=1e-6)
    a = 128 / 255
    np.testing.assert_allclose(image[1, 1], [1 - a, 1 - a, 1.0], atol=1e-6)


def test_16_bit_png_is_scaled_by_65535(tmp_path: Path) -> None:
    array = np.zeros((4, 6), np.uint16)
    array[0, 0] = 65535
    array[1, 1] = 32768
    array[2, 2] = 255  # would be "white" if wrongly scaled by 255
    path = write_image(tmp_path / "deep.png", array)
    assert read_raw(path).dtype == np.uint16
    image = load_image(path, None, 1)
    _assert_unit_float(image, (4, 6, 1))
    assert image[0, 0, 0] == pytest.approx(1.0)
    assert image[1, 1, 0] == pytest.approx(32768 / 65535)
    assert image[2, 2, 0] == pytest.approx(255 / 65535)

    rgb16 = np.zeros((4, 6, 3), np.uint16)
    rgb16[..., 0] = 65535
    image = load_image(write_image(tmp_path / "deep_rgb.png", rgb16), None, 3)
    _assert_unit_float(image, (4, 6, 3))
    np.testing.assert_allclose(image[0, 0], [1.0, 0.0, 0.0], atol=1e-6)


def test_palette_png_is_expanded_to_rgb(tmp_path: Path) -> None:
    pil = pytest.importorskip("PIL.Image")
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[:3] = (255, 0, 0)
    rgb[3:] = (0, 0, 255)
    path = tmp_path / "palette.png"
    pil.fromarray(rgb).convert("P", palette=pil.Palette.ADAPTIVE, colors=4).save(path)
    assert pil.open(path).mode == "P"
    image = load_image(path, None, 3)
    _assert_unit_float(image, (6, 8, 3))
    np.testing.assert_allclose(image[0, 0], [1.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(image[5, 7], [0.0, 0.0, 1.0], atol=1e-6)
    _assert_unit_float(load_image(path, None, 1), (6, 8, 1))


def test_non_square_resize_keeps_height_and_width_order(tmp_path: Path) -> None:
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[:32] = 255  # top half white: survives resizing only if rows stay rows
    path = write_image(tmp_path / "sq.png", rgb)
    image = load_image(path, (32, 48), 3)
    _assert_unit_float(image, (32, 48, 3))
    assert image[:14].min() > 0.99 and image[18:].max() < 0.01
    assert load_image(path, (48, 32), 1).shape == (48, 32, 1)
    # Enlarging one side while shrinking the other.
    assert load_image(path, (16, 96), 3).shape == (16, 96, 3)


# --------------------------------------------------------------------------- masks


@pytest.mark.parametrize("foreground", [255, 1])
def test_binary_mask_values_0_255_and_0_1(tmp_path: Path, foreground: int) -> None:
    truth = circle_mask(24, 32, (16, 12), 7) > 0
    path = write_image(tmp_path / "m.png", truth.astype(np.uint8) * foreground)
    mask = load_mask(path, None, 0.5)
    assert mask.shape == (24, 32) and mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, truth.astype(np.uint8))


def test_noisy_jpeg_mask_is_binarised_close_to_the_circle(tmp_path: Path) -> None:
    truth = circle_mask(64, 64, (30, 34), 18)
    path = write_image(tmp_path / "m.jpg", truth, IMWRITE_JPEG_QUALITY=50)
    raw = read_raw(path)
    assert len(np.unique(raw)) > 2  # the file really is noisy
    mask = load_mask(path, None, 0.5)
    assert set(np.unique(mask)) == {0, 1}
    assert _iou(mask, truth) > 0.95


def test_rgb_mask_is_converted_through_grey(tmp_path: Path) -> None:
    truth = circle_mask(32, 32, (16, 16), 9)
    colour = np.repeat(truth[..., None], 3, axis=2)
    mask = load_mask(write_image(tmp_path / "rgb.png", colour), None, 0.5)
    np.testing.assert_array_equal(mask, (truth > 0).astype(np.uint8))

    # A pure-red mask is foreground only if its grey level exceeds the threshold (0.299*255).
    red = np.zeros((32, 32, 3), np.uint8)
    red[truth > 0] = (255, 0, 0)
    path = write_image(tmp_path / "red.png", red)
    assert load_mask(path, None, 0.5).max() == 0
    np.testing.assert_array_equal(load_mask(path, None, 0.2), (truth > 0).astype(np.uint8))


@pytest.mark.parametrize("size", [(16, 24), (48, 40), (64, 64)])
def test_resized_mask_stays_binary_and_in_place(tmp_path: Path, size: tuple[int, int]) -> None:
    truth = circle_mask(32, 32, (12, 18), 8)
    mask = load_mask(write_image(tmp_path / "m.png", truth), size, 0.5)
    assert mask.shape == size and mask.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 1}
    expected = cv2.resize(truth, size[::-1], interpolation=cv2.INTER_NEAREST) > 0
    assert _iou(mask, expected) > 0.85


def test_multiclass_index_mask_keeps_labels_when_resized(tmp_path: Path) -> None:
    labels = np.zeros((20, 30), np.uint8)
    labels[:, 10:20] = 1
    labels[:, 20:] = 2
    path = write_image(tmp_path / "idx.png", labels)
    np.testing.assert_array_equal(load_mask(path, None, 0.5, num_classes=3), labels)
    resized = load_mask(path, (10, 15), 0.5, num_classes=3)
    assert resized.shape == (10, 15)
    assert set(np.unique(resized)) == {0, 1, 2}  # nearest: no in-between labels


def test_shrunk_index_mask_stays_on_its_image(tmp_path: Path) -> None:
    """Nearest neighbour samples each block's centre, where the area-averaged image is: in
    each 4-pixel block only the first column is background, so every shrunk pixel is class 1
    (taking each block's top-left pixel would make them all background)."""
    labels = np.ones((8, 8), np.uint8)
    labels[:, ::4] = 0
    path = write_image(tmp_path / "idx.png", labels)
    np.testing.assert_array_equal(load_mask(path, (2, 2), 0.5, num_classes=3), 1)


def test_multiclass_mask_with_values_beyond_num_classes_is_an_error(tmp_path: Path) -> None:
    # A 0/255 mask given num_classes=3 would otherwise one-hot to all-zero (classless) pixels.
    labels = np.zeros((8, 8), np.uint8)
    labels[:4] = 255
    path = write_image(tmp_path / "binary_255.png", labels)
    with pytest.raises(DatasetError, match="255") as info:
        load_mask(path, (4, 4), 0.5, num_classes=3)
    assert str(path) in str(info.value)
    labels[:4] = 2
    path = write_image(tmp_path / "ok.png", labels)
    assert load_mask(path, None, 0.5, num_classes=3).max() == 2
    # 16-bit index masks: 257 must not wrap to class 1
    wide = labels.astype(np.uint16)
    wide[0, 0] = 257
    path = write_image(tmp_path / "wide.png", wide)
    with pytest.raises(DatasetError, match="mask values 257 are not class indices"):
        load_mask(path, None, 0.5, num_classes=3)
    path = write_image(tmp_path / "wide_ok.png", labels.astype(np.uint16))
    np.testing.assert_array_equal(load_mask(path, None, 0.5, num_classes=3), labels)


# --------------------------------------------------------------------------- read errors


def _valid_png(path: Path) -> Path:
    return write_image(path, np.random.default_rng(0).integers(0, 255, (32, 32, 3), np.uint8))


@pytest.mark.parametrize("kind", ["missing", "empty", "truncated", "text"])
def test_read_raw_errors_name_the_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"bad_{kind}.png"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        data = _valid_png(tmp_path / "good.png").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "text":
        path.write_text("this is not an image\n" * 20)
    with pytest.raises(DatasetError) as info:
        read_raw(path)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------- pairs


def _touch_image(path: Path) -> Path:
    return write_image(path, np.zeros((4, 4), np.uint8))


def test_find_pairs_matches_stems_across_suffixes_sorted(tmp_path: Path) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    for name in ("c.jpg", "a.jpg", "b.png"):
        _touch_image(images / name)
    for name in ("b.png", "c.bmp", "a.png"):
        _touch_image(masks / name)
    pairs = find_pairs(images, masks)
    assert [p.name for p in pairs] == ["a", "b", "c"]
    assert pairs[0] == Pair(images / "a.jpg", masks / "a.png")
    assert pairs[2] == Pair(images / "c.jpg", masks / "c.bmp")


def test_find_pairs_reports_every_mismatch_at_once(tmp_path: Path) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    for name in ("a.png", "lonely_image.png", "other_image.jpg"):
        _touch_image(images / name)
    for name in ("a.png", "orphan_mask.png"):
        _touch_image(masks / name)
    with pytest.raises(DatasetError) as info:
        find_pairs(images, masks)
    message = str(info.value)
    for name in ("lonely_image.png", "other_image.jpg", "orphan_mask.png"):
        assert name in message
    assert str(images) in message and str(masks) in message


def test_find_pairs_empty_images_folder_names_it(tmp_path: Path) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    _touch_image(masks / "a.png")
    with pytest.raises(DatasetError, match="no images") as info:
        find_pairs(images, masks)
    assert str(images) in str(info.value)


def test_find_pairs_missing_folder_names_it(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    with pytest.raises(DatasetError) as info:
        find_pairs(tmp_path / "images", tmp_path / "masks")
    assert str(tmp_path / "masks") in str(info.value)


def test_find_pairs_duplicate_stems_are_an_error(tmp_path: Path) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    _touch_image(images / "a.png")
    _touch_image(images / "a.jpg")
    _touch_image(masks / "a.png")
    with pytest.raises(DatasetError) as info:
        find_pairs(images, masks)
    assert "a.png" in str(info.value) and "a.jpg" in str(info.value)


def test_find_pairs_ignores_hidden_and_non_image_files(tmp_path: Path) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    _touch_image(images / "a.png")
    _touch_image(masks / "a.png")
    _touch_image(images / ".hidden.png")  # e.g. macOS ._ files
    _touch_image(masks / "._a.png")
    (images / "notes.txt").write_text("x")
    (masks / "Thumbs.db").write_bytes(b"x")
    (images / "sub.png").mkdir()  # a folder with an image suffix is not a file
    assert find_pairs(images, masks) == [Pair(images / "a.png", masks / "a.png")]


def test_image_suffixes_are_case_insensitive(tmp_path: Path) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    _touch_image(images / "a.PNG")
    _touch_image(masks / "a.png")
    assert [p.name for p in find_pairs(images, masks)] == ["a"]


def test_check_pairs_reports_all_unreadable_files(tmp_path: Path) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    for name in ("a", "b", "c"):
        _valid_png(images / f"{name}.png")
        _valid_png(masks / f"{name}.png")
    (images / "b.png").write_bytes(b"")
    (masks / "c.png").write_text("not a png")
    problems = Problems()
    check_pairs(find_pairs(images, masks), MaskReading(0.5), "train", problems)
    with pytest.raises(DatasetError) as info:
        problems.raise_if_any()
    message = str(info.value)
    assert str(images / "b.png") in message and str(masks / "c.png") in message
    assert str(images / "a.png") not in message
    assert message.startswith("2 problems")


def test_check_pairs_passes_on_good_files(tmp_path: Path, make_dataset_tree) -> None:
    root = make_dataset_tree(tmp_path / "ds", n=3, splits=("train",))
    problems = Problems()
    check_pairs(
        split_pairs(root, "train", "images", "masks"),
        MaskReading(0.5),
        "train",
        problems,
        train=True,
    )
    assert problems.errors == []


def test_split_pairs(tmp_path: Path, make_dataset_tree) -> None:
    root = make_dataset_tree(tmp_path / "ds", n=3, size=(16, 24))
    pairs = split_pairs(root, "valid", "images", "masks")
    assert [p.name for p in pairs] == ["sample_000", "sample_001", "sample_002"]
    assert all(p.image.parent == root / "valid" / "images" for p in pairs)
    with pytest.raises(DatasetError) as info:
        split_pairs(root, "holdout", "images", "masks")
    assert str(root / "holdout") in str(info.value)


# --------------------------------------------------------------------------- EXIF orientation


def _with_orientation(path: Path, pixels: np.ndarray, orientation: int, **save: object) -> Path:
    """``pixels`` (RGB) saved by Pillow with an EXIF orientation tag."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, exif=exif, **save)
    return path


@pytest.mark.parametrize("orientation", range(1, 9))
def test_an_exif_orientation_is_applied_as_viewers_do(tmp_path: Path, orientation: int) -> None:
    """Every orientation turns the stored pixels as Pillow's exif_transpose (what viewers
    show), so a non-square image comes out in its displayed shape."""
    rng = np.random.default_rng(orientation)
    stored = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)
    path = _with_orientation(tmp_path / "photo.png", stored, orientation)
    with Image.open(path) as image:
        shown = np.array(ImageOps.exif_transpose(image))
    read = read_raw(path)[..., ::-1]  # BGR -> RGB
    np.testing.assert_array_equal(read, shown)
    jpeg = _with_orientation(tmp_path / "photo.jpg", stored, orientation, quality=95)
    assert read_raw(jpeg).shape == shown.shape  # the JPEG path too


def test_a_jpeg_without_exif_is_read_as_stored(tmp_path: Path) -> None:
    stored = np.zeros((8, 16, 3), np.uint8)
    path = tmp_path / "plain.jpg"
    Image.fromarray(stored).save(path)
    assert read_raw(path).shape == (8, 16, 3)


def test_float_images_off_the_unit_range_are_refused_with_what_was_found(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ct.tif"
    tifffile.imwrite(path, np.linspace(-1000, 3000, 64, dtype=np.float32).reshape(8, 8))
    with pytest.raises(DatasetError, match=r"ct\.tif: float pixels from -1000 to 3000 found;"):
        read_raw(path)
    tifffile.imwrite(path, np.full((8, 8), 1.0004, np.float32))  # rounding: still [0, 1]
    assert read_raw(path).max() == pytest.approx(1.0004)
