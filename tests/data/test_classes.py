"""Class names and palettes (seg.data.classes); colour-coded pictures of label maps
(seg.inference.visualize)."""

from __future__ import annotations

import numpy as np
import pytest

from seg.data.classes import DEFAULT_PALETTE, class_names, palette
from seg.errors import ConfigError
from seg.inference.visualize import colorize, comparison, overlay, overlay_labels, to_uint8_rgb

LABELS = np.array([[0, 1, 2], [2, 2, 0]], np.uint8)


def test_class_names_configured_or_numbered() -> None:
    assert class_names(3) == ["class0", "class1", "class2"]
    assert class_names(3, ["bg", "nucleus", "cytoplasm"]) == ["bg", "nucleus", "cytoplasm"]


def test_palette_configured_wins_and_must_cover_every_class() -> None:
    configured = [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]]
    colors = palette(3, configured, mask_colors=[((255, 0, 0), 1)])
    assert colors.dtype == np.uint8
    np.testing.assert_array_equal(colors, configured[:3])
    with pytest.raises(ConfigError, match=r"inference\.palette: 2 colours for a model of 3"):
        palette(3, configured[:2])


def test_palette_from_colour_coded_masks_then_defaults() -> None:
    # label 1 has two colours in the map (the first counts); label 2 none: the default
    mask_colors = [((0, 0, 0), 0), ((200, 10, 10), 1), ((210, 0, 0), 1), ((0, 0, 250), 3)]
    colors = palette(4, None, mask_colors)
    np.testing.assert_array_equal(
        colors, [(0, 0, 0), (200, 10, 10), DEFAULT_PALETTE[2], (0, 0, 250)]
    )


def test_default_palette_has_distinct_colours_for_many_classes() -> None:
    colors = palette(40)
    assert colors.shape == (40, 3)
    np.testing.assert_array_equal(colors[: len(DEFAULT_PALETTE)], DEFAULT_PALETTE)
    assert tuple(colors[0]) == (0, 0, 0)  # background stays black in colour masks
    assert len({tuple(c) for c in colors}) == 40
    assert palette(1, [[1, 2, 3]]) is None  # binary masks are drawn in fixed colours


def test_colorize_paints_each_class_in_its_colour() -> None:
    colors = np.array([(0, 0, 0), (255, 0, 0), (0, 0, 255)], np.uint8)
    labels = LABELS
    out = colorize(labels, colors)
    assert out.shape == (2, 3, 3) and out.dtype == np.uint8
    for k in range(3):
        assert (out[labels == k] == colors[k]).all()
    np.testing.assert_array_equal(colorize(LABELS[..., None], colors), out)  # HxWx1 too
    with pytest.raises(ValueError, match="label 2 has no colour in a palette of 2"):
        colorize(LABELS, colors[:2])


def test_overlay_labels_blends_classes_and_keeps_background() -> None:
    image = np.full((2, 3, 3), 1.0, np.float32)  # white: blending must not wrap
    colors = np.array([(9, 9, 9), (255, 0, 0), (0, 0, 255)], np.uint8)
    out = overlay_labels(image, LABELS, colors, alpha=0.5)
    np.testing.assert_array_equal(out[LABELS == 0], 255)  # class 0's colour is never painted
    np.testing.assert_array_equal(out[LABELS == 1], [[255, 128, 128]])
    np.testing.assert_array_equal(out[LABELS == 2], [[128, 128, 255]] * 3)
    # The binary overlay is the two-class case.
    np.testing.assert_array_equal(
        overlay(image, LABELS > 0, (0, 255, 0), 0.5),
        overlay_labels(image, (LABELS > 0).astype(np.uint8), [(0, 0, 0), (0, 255, 0)], 0.5),
    )


def test_comparison_binary_and_multiclass() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((2, 3, 3)).astype(np.float32)
    colors = np.array(DEFAULT_PALETTE[:3], np.uint8)
    panel = comparison(image, LABELS, LABELS, alpha=1.0, palette=colors)
    assert panel.shape == (2, 3 * 3 + 2 * 2, 3)  # image | truth | prediction, 2 px gaps
    truth_tile, pred_tile = panel[:, 5:8], panel[:, 10:13]
    np.testing.assert_array_equal(truth_tile, pred_tile)  # the same colours for both
    np.testing.assert_array_equal(truth_tile[LABELS > 0], colorize(LABELS, colors)[LABELS > 0])
    np.testing.assert_array_equal(truth_tile[LABELS == 0], to_uint8_rgb(image)[LABELS == 0])
    binary = comparison(image, LABELS > 0, LABELS == 2, alpha=1.0)
    assert (binary[:, 5:8][LABELS > 0] == (0, 200, 0)).all()  # truth green
    assert (binary[:, 10:13][LABELS == 2] == (255, 0, 0)).all()  # prediction red
