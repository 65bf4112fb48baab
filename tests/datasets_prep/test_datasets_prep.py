"""datasets_prep: every converter on tiny fixtures written in the original format, the grouped
split (no leaks), offline augmentation after the split, idempotent re-runs and clear errors."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from datasets_prep import bcss, herlev, instances, isic2017, polygons, sipakmed, split, stats
from datasets_prep.polygons import rle_counts
from datasets_prep.raster import fill_polygons
from datasets_prep.splitting import assign_splits, carve_valid, leaks, split_named_in
from seg.errors import SegError

SPLITS = ("train", "valid", "test")


def read(path: Path) -> np.ndarray:
    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert array is not None, path
    return array


def stems(root: Path, split_name: str) -> list[str]:
    """Image stems of a split; checks every image has its mask (same stem)."""
    images = sorted(p.stem for p in (root / split_name / "images").iterdir())
    masks = sorted(p.stem for p in (root / split_name / "masks").iterdir())
    assert images == masks
    return images


def all_stems(root: Path) -> dict[str, list[str]]:
    return {s: stems(root, s) if (root / s).is_dir() else [] for s in SPLITS}


def flat(found: dict[str, list[str]]) -> list[str]:
    return sorted(n for names in found.values() for n in names)


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


# --- SipakMed ---------------------------------------------------------------------------

CELL_A = [(2, 2), (13, 2), (13, 13), (2, 13)]  # two cells per image, nucleus inside the first
CELL_B = [(17, 10), (29, 10), (29, 21), (17, 21)]
NUCLEUS_A = [(5, 5), (9, 5), (9, 9), (5, 9)]


def write_dat(path: Path, points: list[tuple[float, float]]) -> None:
    path.write_text("".join(f"{x:.1f},{y:.1f}\n" for x, y in points))


@pytest.fixture
def sipakmed_src(tmp_path: Path) -> Path:
    src = tmp_path / "SIPaKMeD"
    for category in ("Metaplastic", "Parabasal"):
        folder = src / f"im_{category}" / f"im_{category}"
        (folder / "CROPPED").mkdir(parents=True)
        cv2.imwrite(str(folder / "CROPPED" / "001_01.bmp"), np.zeros((8, 8, 3), np.uint8))
        for i in range(5):
            cv2.imwrite(str(folder / f"{i:03d}.bmp"), np.full((24, 32, 3), 40 * i, np.uint8))
            write_dat(folder / f"{i:03d}_cyt01.dat", CELL_A)
            write_dat(folder / f"{i:03d}_cyt02.dat", CELL_B)
            write_dat(folder / f"{i:03d}_nuc01.dat", NUCLEUS_A)
    return src


def test_sipakmed_merges_all_cells_of_an_image_into_one_mask(sipakmed_src, tmp_path) -> None:
    dst = tmp_path / "out"
    sipakmed.main(
        [
            "--src",
            str(sipakmed_src),
            "--dst",
            str(dst),
            "--categories",
            "Metaplastic",
            "--target",
            "both",
        ]
    )
    found = all_stems(dst)
    assert flat(found) == [f"Metaplastic_{i:03d}" for i in range(5)]
    assert all(found[s] for s in SPLITS)  # 5 images: 3/1/1, no split left empty
    split_name = next(s for s in SPLITS if found[s])
    mask = read(dst / split_name / "masks" / f"{found[split_name][0]}.png")
    assert mask.shape == (24, 32) and set(np.unique(mask)) == {0, 1, 2}
    assert mask[7, 7] == 2  # nucleus of cell A
    assert mask[3, 11] == 1 and mask[15, 25] == 1  # cytoplasm of BOTH cells in the one mask
    assert mask[20, 2] == 0


def test_sipakmed_binary_targets(sipakmed_src, tmp_path) -> None:
    for target, inside, outside in (("cytoplasm", (15, 25), (20, 2)), ("nucleus", (7, 7), (3, 11))):
        dst = tmp_path / target
        sipakmed.main(["--src", str(sipakmed_src), "--dst", str(dst), "--target", target])
        assert sum(len(v) for v in all_stems(dst).values()) == 10  # both categories, no CROPPED
        mask = read(next((dst / "train" / "masks").iterdir()))
        assert set(np.unique(mask)) == {0, 255}
        assert mask[inside] == 255 and mask[outside] == 0


def test_sipakmed_bad_polygon_file_is_named(sipakmed_src, tmp_path) -> None:
    bad = sipakmed_src / "im_Parabasal" / "im_Parabasal" / "002_nuc01.dat"
    bad.write_text("5,5\nfive,6\n7,7\n")
    with pytest.raises(SegError, match=re.escape(f"{bad}, line 2")):
        sipakmed.main(["--src", str(sipakmed_src), "--dst", str(tmp_path / "o")])
    bad.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(SegError, match=re.escape(str(bad))):
        sipakmed.main(["--src", str(sipakmed_src), "--dst", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()  # polygons are parsed before anything is written


# --- Herlev -------------------------------------------------------------------------------


def herlev_annotation(nucleus_rgb=(0, 0, 255), cytoplasm_rgb=(255, 0, 0)) -> np.ndarray:
    rgb = np.zeros((20, 20, 3), np.uint8)
    rgb[:] = (0, 0, 120)  # dark blue background
    rgb[2:18, 2:18] = cytoplasm_rgb
    rgb[7:12, 7:12] = nucleus_rgb
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


@pytest.fixture
def herlev_src(tmp_path: Path) -> Path:
    src = tmp_path / "smear2005"
    for cls in ("severe_dysplastic", "normal_columnar"):
        folder = src / "New database pictures" / cls
        folder.mkdir(parents=True)
        for i in range(4):
            name = f"1490{i}-{cls[:3]}"
            cv2.imwrite(str(folder / f"{name}.BMP"), np.full((20, 20, 3), 90, np.uint8))
            cv2.imwrite(str(folder / f"{name}-d.bmp"), herlev_annotation())
    return src


def test_herlev_nucleus_and_both_targets(herlev_src, tmp_path) -> None:
    dst = tmp_path / "nuc"
    herlev.main(["--src", str(herlev_src), "--dst", str(dst), "--classes", "severe_dysplastic"])
    names = flat(all_stems(dst))
    assert len(names) == 4 and all(n.endswith("-sev") for n in names)
    mask = read(next((dst / "train" / "masks").iterdir()))
    expected = np.zeros((20, 20), np.uint8)
    expected[7:12, 7:12] = 255
    np.testing.assert_array_equal(mask, expected)

    dst = tmp_path / "both"
    herlev.main(["--src", str(herlev_src), "--dst", str(dst), "--target", "both"])
    mask = read(next((dst / "train" / "masks").iterdir()))
    assert mask[9, 9] == 2 and mask[3, 3] == 1 and mask[0, 0] == 0


def test_herlev_unknown_colours_fail_listing_the_colours_present(herlev_src, tmp_path) -> None:
    with pytest.raises(SegError, match=r"-d\.bmp: no pixel near .*colours present: \(255, 0, 0\)"):
        herlev.main(
            [
                "--src",
                str(herlev_src),
                "--dst",
                str(tmp_path / "o"),
                "--nucleus-color",
                "0",
                "255",
                "0",
                "--cytoplasm-color",
                "9",
                "9",
                "9",
            ]
        )
    with pytest.raises(SegError, match="--classes nope: no such class folder"):
        herlev.main(["--src", str(herlev_src), "--dst", str(tmp_path / "o2"), "--classes", "nope"])


# --- ISIC 2017 ----------------------------------------------------------------------------


def test_isic2017_keeps_the_official_split_and_copies_images(tmp_path) -> None:
    src = tmp_path / "isic"
    layout = {
        "Training": ["0000000", "0000001"],
        "Validation": ["0000002"],
        "Test_v2": ["0000003", "0000004"],
    }
    rng = np.random.default_rng(0)
    for split_name, ids in layout.items():
        data = src / f"ISIC-2017_{split_name}_Data"
        truth = src / f"ISIC-2017_{split_name}_Part1_GroundTruth"
        data.mkdir(parents=True)
        truth.mkdir(parents=True)
        for key in ids:
            cv2.imwrite(str(data / f"ISIC_{key}.jpg"), rng.integers(0, 255, (30, 40, 3), np.uint8))
            cv2.imwrite(str(data / f"ISIC_{key}_superpixels.png"), np.zeros((30, 40, 3), np.uint8))
            mask = np.zeros((30, 40), np.uint8)
            mask[5:20, 10:30] = 255
            cv2.imwrite(str(truth / f"ISIC_{key}_segmentation.png"), mask)
    dst = tmp_path / "out"
    isic2017.main(["--src", str(src), "--dst", str(dst)])
    assert all_stems(dst) == {
        "train": ["ISIC_0000000", "ISIC_0000001"],
        "valid": ["ISIC_0000002"],
        "test": ["ISIC_0000003", "ISIC_0000004"],
    }
    copied = dst / "test" / "images" / "ISIC_0000004.jpg"
    assert copied.read_bytes() == (src / "ISIC-2017_Test_v2_Data" / "ISIC_0000004.jpg").read_bytes()
    assert set(np.unique(read(dst / "test" / "masks" / "ISIC_0000004.png"))) == {0, 255}


# --- BCSS ---------------------------------------------------------------------------------


def test_bcss_tiles_select_classes_filter_empty_tiles_and_group_by_patient(tmp_path) -> None:
    src = tmp_path / "BCSS"
    regions = [
        "TCGA-A1-A0SK-DX1_xmin1_ymin1",
        "TCGA-A1-A0SK-DX1_xmin9_ymin9",
        "TCGA-B6-0001-DX1_xmin2_ymin2",
        "TCGA-C8-0002-DX1_xmin3_ymin3",
    ]
    labels = np.zeros((64, 80), np.uint8)  # 2 x 3 tiles of 32 (last column flush: x=48)
    labels[0:32, 0:32] = 1  # tumor: tile (0, 0) full
    labels[40:64, 0:32] = 2  # stroma: tile (32, 0)
    labels[0:4, 48:80] = 1  # tile (0, 48): 4 rows of 32 = 12.5 % tumor
    (src / "rgbs_colorNormalized").mkdir(parents=True)
    (src / "masks").mkdir()
    for name in regions:
        cv2.imwrite(
            str(src / "rgbs_colorNormalized" / f"{name}.png"), np.full((64, 80, 3), 200, np.uint8)
        )
        cv2.imwrite(str(src / "masks" / f"{name}.png"), labels)
    dst = tmp_path / "out"
    bcss.main(
        [
            "--src",
            str(src),
            "--dst",
            str(dst),
            "--classes",
            "1",
            "--tile",
            "32",
            "--min-foreground",
            "0.1",
            "--fractions",
            "0.5",
            "0.25",
            "0.25",
        ]
    )
    found = all_stems(dst)
    tiles = sorted(n.split("_", 3)[-1] for n in flat(found))
    assert tiles == sorted(["y0_x0", "y0_x48"] * 4)  # stroma-only and empty tiles dropped
    split_of = {n.rsplit("_", 2)[0]: s for s, names in found.items() for n in names}
    assert split_of[regions[0]] == split_of[regions[1]]  # one patient, one split
    tile = read(dst / split_of[regions[2]] / "masks" / f"{regions[2]}_y0_x48.png")
    assert tile.shape == (32, 32) and tile[:4].all() and not tile[4:].any()

    dst = tmp_path / "multi"
    bcss.main(
        [
            "--src",
            str(src),
            "--dst",
            str(dst),
            "--classes",
            "2",
            "1",
            "--multiclass",
            "--tile",
            "32",
            "--stride",
            "16",
            "--min-foreground",
            "0.5",
        ]
    )
    values = {
        int(v) for s in SPLITS for p in (dst / s / "masks").iterdir() for v in np.unique(read(p))
    }
    assert values == {0, 1, 2}  # stroma -> 1, tumor -> 2 (order of --classes)


# --- polygons: COCO and LabelMe -----------------------------------------------------------


def rle_string(runs: list[int]) -> str:
    """COCO's compressed RLE encoding (maskApi rleToString), to test the decoder against."""
    out = []
    for i, value in enumerate(runs):
        x = value - runs[i - 2] if i > 2 else value
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = not ((c & 0x10 == 0 and x == 0) or (c & 0x10 and x == -1))
            out.append(chr((c | 0x20 if more else c) + 48))
    return "".join(out)


def column_major_runs(mask: np.ndarray) -> list[int]:
    flat = mask.T.reshape(-1).astype(int)
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    return np.diff(np.concatenate([[0], changes])).tolist()


def test_coco_polygons_and_rle_become_one_mask_per_image(tmp_path) -> None:
    src = tmp_path / "cnseg"
    (src / "images").mkdir(parents=True)
    blob = np.zeros((24, 30), bool)
    blob[3:9, 20:26] = True
    runs = column_major_runs(blob)
    assert rle_counts(rle_string(runs)) == runs
    images, annotations = [], []
    for i in range(4):
        cv2.imwrite(str(src / "images" / f"img{i}.png"), np.full((24, 30, 3), 50, np.uint8))
        images.append({"id": i, "file_name": f"img{i}.png", "height": 24, "width": 30})
        annotations += [
            {
                "id": 10 * i,
                "image_id": i,
                "category_id": 1,
                "iscrowd": 0,
                "segmentation": [[2, 2, 10, 2, 10, 10, 2, 10]],
            },
            {
                "id": 10 * i + 1,
                "image_id": i,
                "category_id": 2,
                "iscrowd": 0,
                "segmentation": [[12, 14, 18, 14, 18, 20, 12, 20]],
            },
            {
                "id": 10 * i + 2,
                "image_id": i,
                "category_id": 1,
                "iscrowd": 1,
                "segmentation": {"size": [24, 30], "counts": rle_string(runs) if i % 2 else runs},
            },
        ]
    coco = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "nucleus"}, {"id": 2, "name": "cytoplasm"}],
    }
    (src / "annotations.json").write_text(json.dumps(coco))
    dst = tmp_path / "out"
    polygons.main(
        [
            "--src",
            str(src / "annotations.json"),
            "--dst",
            str(dst),
            "--labels",
            "cytoplasm",
            "nucleus",
            "--multiclass",
        ]
    )
    for split_name, names in all_stems(dst).items():
        for name in names:
            mask = read(dst / split_name / "masks" / f"{name}.png")
            assert mask[5, 5] == 2 and mask[16, 15] == 1 and mask[0, 0] == 0
            np.testing.assert_array_equal(mask[blob], 2)  # RLE, plain or compressed
    dst = tmp_path / "nuclei"
    polygons.main(["--src", str(src), "--dst", str(dst), "--labels", "nucleus"])
    mask = read(next((dst / "train" / "masks").iterdir()))
    assert mask[5, 5] == 255 and mask[16, 15] == 0


def test_labelme_shapes_and_embedded_images(tmp_path) -> None:
    src = tmp_path / "labelme"
    src.mkdir()
    for i in range(3):
        image = np.full((20, 24, 3), 80, np.uint8)
        shapes = [
            {"label": "cell", "shape_type": "polygon", "points": [[1, 1], [8, 1], [8, 8], [1, 8]]},
            {"label": "cell", "shape_type": "rectangle", "points": [[12, 2], [20, 6]]},
            {"label": "cell", "shape_type": "circle", "points": [[15, 14], [18, 14]]},
            {"label": "cell", "shape_type": "line", "points": [[0, 19], [23, 19]]},
            {"label": "debris", "shape_type": "polygon", "points": [[1, 12], [5, 12], [5, 16]]},
        ]
        record = {
            "shapes": shapes,
            "imagePath": f"cell{i}.png",
            "imageHeight": 20,
            "imageWidth": 24,
            "imageData": None,
        }
        if i == 0:  # no image file: the embedded copy is used
            _, png = cv2.imencode(".png", image)
            record["imageData"] = base64.b64encode(png.tobytes()).decode()
        else:
            cv2.imwrite(str(src / f"cell{i}.png"), image)
        (src / f"cell{i}.json").write_text(json.dumps(record))
    dst = tmp_path / "out"
    polygons.main(
        [
            "--src",
            str(src),
            "--dst",
            str(dst),
            "--labels",
            "cell",
            "--fractions",
            "0.34",
            "0.33",
            "0.33",
        ]
    )
    found = all_stems(dst)
    assert flat(found) == ["cell0", "cell1", "cell2"]
    split_name = next(s for s in SPLITS if "cell0" in found[s])
    mask = read(dst / split_name / "masks" / "cell0.png")
    assert mask[4, 4] == 255 and mask[4, 16] == 255 and mask[14, 15] == 255
    assert mask[19, 10] == 0 and mask[14, 2] == 0  # a line has no area; debris not selected


def test_unreadable_or_malformed_annotation_file_is_named(tmp_path) -> None:
    src = tmp_path / "labelme"
    src.mkdir()
    cv2.imwrite(str(src / "a.png"), np.zeros((8, 8, 3), np.uint8))
    bad = src / "a.json"
    bad.write_text('{"shapes": [ {"label": "x", "points": [[1, 1], [2')
    with pytest.raises(SegError, match=re.escape(f"{bad}: unreadable annotation file")):
        polygons.main(["--src", str(src), "--dst", str(tmp_path / "o")])
    bad.write_text(
        json.dumps({"shapes": [{"label": "x", "points": [[1, 1], [2, 2]]}], "imagePath": "a.png"})
    )
    with pytest.raises(SegError, match=re.escape(f"{bad}: shape #0: a polygon needs at least 3")):
        polygons.main(["--src", str(src), "--dst", str(tmp_path / "o")])
    coco = tmp_path / "coco.json"
    coco.write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "a.png"}],
                "categories": [{"id": 1, "name": "x"}],
                "annotations": [
                    {
                        "id": 7,
                        "image_id": 1,
                        "category_id": 1,
                        "segmentation": [[1, 1, 6, 1, 6, 6, 1]],
                    }
                ],
            }
        )
    )  # an odd count
    with pytest.raises(SegError, match=re.escape(f"{coco}: annotation 7: points must be pairs")):
        polygons.main(["--src", str(coco), "--dst", str(tmp_path / "o"), "--images-dir", str(src)])


def test_overlapping_polygons_fill_their_union(tmp_path) -> None:
    """Touching or overlapping cells (SipakMed clusters, one COCO object in parts): their
    overlap is foreground too, not a hole."""
    a = [[2, 2], [12, 2], [12, 12], [2, 12]]
    b = [[7, 7], [17, 7], [17, 17], [7, 17]]
    mask = fill_polygons(np.zeros((20, 20), np.uint8), [np.array(a), np.array(b)], 255)
    assert mask[9, 9] == 255 and mask[4, 4] == 255 and mask[15, 15] == 255
    src = tmp_path / "coco"
    (src / "images").mkdir(parents=True)
    cv2.imwrite(str(src / "images" / "a.png"), np.zeros((20, 20, 3), np.uint8))
    (src / "annotations.json").write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "a.png"}],
                "categories": [{"id": 1, "name": "x"}],
                "annotations": [
                    {
                        "id": 1,
                        "image_id": 1,
                        "category_id": 1,
                        "segmentation": [np.ravel(a).tolist(), np.ravel(b).tolist()],
                    }
                ],
            }
        )
    )
    polygons.main(
        [
            "--src",
            str(src / "annotations.json"),
            "--dst",
            str(tmp_path / "out"),
            "--fractions",
            "1",
            "0",
            "0",
        ]
    )
    assert read(tmp_path / "out" / "train" / "masks" / "a.png")[9, 9] == 255


def test_split_names_with_a_year_or_version() -> None:
    assert [
        split_named_in(n)
        for n in (
            "instances_val2017",
            "instances_train2017",
            "ISIC-2017_Training_Data",
            "test_v2",
            "Validation",
            "annotations",
            "trainee",
        )
    ] == ["valid", "train", "train", "test", "valid", None, None]


# --- instances (DSB2018) ------------------------------------------------------------------


def test_instances_are_merged_into_one_mask(tmp_path) -> None:
    src = tmp_path / "stage1_train"
    for i in range(3):
        key = f"{i:04x}abcd"
        (src / key / "images").mkdir(parents=True)
        (src / key / "masks").mkdir()
        cv2.imwrite(str(src / key / "images" / f"{key}.png"), np.full((16, 16, 4), 255, np.uint8))
        for j, (y, x) in enumerate([(2, 2), (9, 9)]):
            instance = np.zeros((16, 16), np.uint8)
            instance[y : y + 4, x : x + 4] = 255
            cv2.imwrite(str(src / key / "masks" / f"m{j}.png"), instance)
    dst = tmp_path / "out"
    instances.main(["--src", str(src), "--dst", str(dst)])
    found = all_stems(dst)
    assert flat(found) == ["0000abcd", "0001abcd", "0002abcd"]
    mask = read(dst / "train" / "masks" / f"{found['train'][0]}.png")
    assert mask[3, 3] == 255 and mask[10, 10] == 255 and mask[7, 7] == 0
    assert read(dst / "train" / "images" / f"{found['train'][0]}.png").shape == (16, 16, 3)


# --- split: groups, CSV, augmentation after the split, upscaling ------------------------

AUGMENTED_PREFIX = re.compile(r"(?:flipped_|rotated_\d+_)?(.+)")


@pytest.fixture
def augmented_src(tmp_path: Path) -> Path:
    """A flat dataset made like the legacy makers did: each cell with rotated copies."""
    src = tmp_path / "cells"
    rng = np.random.default_rng(1)
    for cell in range(12):
        mask = np.zeros((16, 16), np.uint8)
        mask[2:7, 3:12] = 255
        image = rng.integers(0, 255, (16, 16, 3), np.uint8)
        for prefix in ("", "flipped_", "rotated_90_"):
            (src / "images").mkdir(parents=True, exist_ok=True)
            (src / "masks").mkdir(exist_ok=True)
            cv2.imwrite(str(src / "images" / f"{prefix}cell{cell:02d}.png"), image)
            cv2.imwrite(str(src / "masks" / f"{prefix}cell{cell:02d}.png"), mask)
    return src


def test_grouped_split_never_puts_a_group_in_two_splits(augmented_src, tmp_path) -> None:
    dst = tmp_path / "out"
    split.main(
        [
            "--src",
            str(augmented_src),
            "--dst",
            str(dst),
            "--group-regex",
            AUGMENTED_PREFIX.pattern,
            "--seed",
            "3",
        ]
    )
    found = all_stems(dst)
    members = [(AUGMENTED_PREFIX.fullmatch(n)[1], s) for s, names in found.items() for n in names]
    assert len(members) == 36 and all(found[s] for s in SPLITS)
    assert leaks(members) == {}
    # ...whereas splitting the files one by one (the legacy way) does leak, and is refused
    # when the source's own split is kept:
    flat = assign_splits([f"{p}cell{c:02d}" for c in range(12) for p in ("", "flipped_")], seed=3)
    assert leaks((AUGMENTED_PREFIX.fullmatch(f)[1], s) for f, s in flat.items())
    leaky = tmp_path / "leaky"
    for f, s in flat.items():
        for kind in ("images", "masks"):
            (leaky / s / kind).mkdir(parents=True, exist_ok=True)
            (leaky / s / kind / f"{f}.png").write_bytes(
                (augmented_src / kind / f"{f}.png").read_bytes()
            )
    with pytest.raises(SegError, match=r"the split leaks: .* straddle splits"):
        split.main(
            [
                "--src",
                str(leaky),
                "--dst",
                str(tmp_path / "o"),
                "--keep-splits",
                "--group-regex",
                AUGMENTED_PREFIX.pattern,
            ]
        )


def test_split_is_seeded_and_independent_of_listing_order() -> None:
    groups = [f"g{i}" for i in range(40)]
    a = assign_splits(groups, (0.7, 0.15, 0.15), seed=5)
    assert a == assign_splits(list(reversed(groups)), (0.7, 0.15, 0.15), seed=5)
    assert a != assign_splits(groups, (0.7, 0.15, 0.15), seed=6)
    counts = {s: sum(v == s for v in a.values()) for s in SPLITS}
    assert counts == {"train": 28, "valid": 6, "test": 6}
    carved = carve_valid({g: "train" for g in groups[:20]} | {"x": "test"}, 0.25, seed=0)
    assert sum(v == "valid" for v in carved.values()) == 5 and carved["x"] == "test"


def test_split_by_csv_with_valid_carved_from_train(augmented_src, tmp_path) -> None:
    csv_path = tmp_path / "groups.csv"
    rows = ["filename,cell_id,grouped_split"]
    for p in sorted((augmented_src / "images").iterdir()):
        cell = AUGMENTED_PREFIX.fullmatch(p.stem)[1]
        rows.append(f"{p.name},{cell},{'test' if cell in ('cell00', 'cell05') else 'train'}")
    csv_path.write_text("\n".join(rows) + "\n")
    dst = tmp_path / "out"
    split.main(
        [
            "--src",
            str(augmented_src),
            "--dst",
            str(dst),
            "--csv",
            str(csv_path),
            "--csv-group-column",
            "cell_id",
            "--csv-split-column",
            "grouped_split",
            "--valid-fraction",
            "0.2",
        ]
    )
    found = all_stems(dst)
    assert {AUGMENTED_PREFIX.fullmatch(n)[1] for n in found["test"]} == {"cell00", "cell05"}
    assert len(found["valid"]) == 2 * 3 and len(found["train"]) == 8 * 3
    assert leaks((AUGMENTED_PREFIX.fullmatch(n)[1], s) for s, ns in found.items() for n in ns) == {}
    edited = [r.replace(",cell05,test", ",cell05,train") for r in rows]
    csv_path.write_text("\n".join(edited) + "\n")  # same path, another split
    with pytest.raises(SegError, match="from another source"):
        split.main(
            [
                "--src",
                str(augmented_src),
                "--dst",
                str(dst),
                "--csv",
                str(csv_path),
                "--csv-group-column",
                "cell_id",
                "--csv-split-column",
                "grouped_split",
                "--valid-fraction",
                "0.2",
            ]
        )
    csv_path.write_text("\n".join(rows[:-1]) + "\n")
    with pytest.raises(SegError, match="1 file\\(s\\) of --src are not listed"):
        split.main(
            [
                "--src",
                str(augmented_src),
                "--dst",
                str(tmp_path / "o"),
                "--csv",
                str(csv_path),
                "--csv-split-column",
                "grouped_split",
            ]
        )


def test_offline_augmentation_after_the_split_and_4k_style_upscaling(
    augmented_src, tmp_path
) -> None:
    dst = tmp_path / "out"
    split.main(
        [
            "--src",
            str(augmented_src),
            "--dst",
            str(dst),
            "--group-regex",
            AUGMENTED_PREFIX.pattern,
            "--augment",
            "hflip",
            "rot90",
            "rot30",
            "--upscale-test",
            "64",
            "--upscale-limit",
            "2",
        ]
    )
    found = all_stems(dst)
    assert not any("__" in n for n in found["valid"] + found["test"])  # train only
    originals = [n for n in found["train"] if "__" not in n]
    assert sorted(found["train"]) == sorted(
        f"{n}{suffix}" for n in originals for suffix in ("", "__hflip", "__rot90", "__rot30")
    )
    name = originals[0]
    mask = read(dst / "train" / "masks" / f"{name}.png")
    np.testing.assert_array_equal(
        read(dst / "train" / "masks" / f"{name}__hflip.png"), mask[:, ::-1]
    )
    np.testing.assert_array_equal(
        read(dst / "train" / "masks" / f"{name}__rot90.png"), np.rot90(mask)
    )
    assert set(np.unique(read(dst / "train" / "masks" / f"{name}__rot30.png"))) <= {0, 255}
    big = stems(dst, "test_64")
    assert len(big) == 2 and set(big) <= set(found["test"])
    assert read(dst / "test_64" / "images" / f"{big[0]}.png").shape == (64, 64, 3)
    assert set(np.unique(read(dst / "test_64" / "masks" / f"{big[0]}.png"))) == {0, 255}
    copied = dst / "test" / "images" / f"{found['test'][0]}.png"  # unchanged: a byte copy
    assert copied.read_bytes() == (augmented_src / "images" / copied.name).read_bytes()


def test_palette_masks_keep_their_indices_and_float_tiffs_their_levels_when_rewritten(
    tmp_path,
) -> None:
    from PIL import Image

    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    (src / "masks").mkdir()
    labels = np.zeros((8, 8), np.uint8)
    labels[:, 4:] = 2
    labels[:2] = 1
    for name in ("a", "b", "c"):
        cv2.imwrite(str(src / "images" / f"{name}.tif"), np.full((8, 8), 0.6, np.float32))
        palette = Image.fromarray(labels, mode="P")
        palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
        palette.save(src / "masks" / f"{name}.png")
    dst = tmp_path / "out"
    split.main(
        [
            "--src",
            str(src),
            "--dst",
            str(dst),
            "--size",
            "8",
            "8",
            "--augment",
            "hflip",
            "--fractions",
            "1",
            "0",
            "0",
        ]
    )
    for name in ("a", "a__hflip"):
        mask = read(dst / "train" / "masks" / f"{name}.png")
        assert mask.shape == (8, 8) and set(np.unique(mask)) == {0, 1, 2}
        image = read(dst / "train" / "images" / f"{name}.png")
        assert image.dtype == np.uint16 and np.all(image == round(0.6 * 65535))


# --- idempotence and errors ---------------------------------------------------------------


def test_rerun_is_a_no_op_and_other_settings_need_overwrite(
    augmented_src, tmp_path, capsys
) -> None:
    dst = tmp_path / "out"
    args = ["--src", str(augmented_src), "--dst", str(dst), "--augment", "vflip"]
    split.main(args)
    before = tree(dst)
    split.main(args)
    assert "up to date" in capsys.readouterr().out
    assert tree(dst) == before
    with pytest.raises(SegError, match=r"converted with other settings.*--overwrite"):
        split.main([*args[:4], "--seed", "1"])
    split.main([*args[:4], "--seed", "1", "--overwrite"])
    after = all_stems(dst)
    assert sum(len(v) for v in after.values()) == 36  # the vflip copies are gone, not doubled
    (dst / "prep.json").unlink()  # as if interrupted
    with pytest.raises(SegError, match="did not finish"):
        split.main(args)
    (dst / "notes.txt").write_text("mine")
    with pytest.raises(SegError, match=re.escape("did not write (notes.txt)")):
        split.main([*args, "--overwrite"])
    assert (dst / "notes.txt").read_text() == "mine"


def test_a_copied_or_touched_source_is_the_same_source_an_edited_one_is_not(
    augmented_src, tmp_path, capsys
) -> None:
    dst = tmp_path / "out"
    split.main(["--src", str(augmented_src), "--dst", str(dst)])
    copy = tmp_path / "copy"  # e.g. re-extracted elsewhere: new location, new times
    shutil.copytree(augmented_src, copy)
    for f in copy.rglob("*"):
        os.utime(f, ns=(0, 0))
    split.main(["--src", str(copy), "--dst", str(dst)])
    assert "up to date" in capsys.readouterr().out
    image = next((copy / "images").iterdir())
    pixels = read(image)
    pixels[0, 0] = 255 - pixels[0, 0]  # edited in place
    cv2.imwrite(str(image), pixels)
    with pytest.raises(SegError, match="from another source"):
        split.main(["--src", str(copy), "--dst", str(dst)])


def test_bad_inputs_fail_with_one_line_naming_the_problem(augmented_src, tmp_path) -> None:
    missing = tmp_path / "nowhere"

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", *args], capture_output=True, text=True, timeout=120
        )

    proc = cli("datasets_prep.sipakmed", "--src", str(missing), "--dst", str(tmp_path / "o"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"error: --src {missing}: not found"
    (tmp_path / "bad.json").write_text("not json")
    proc = cli(
        "datasets_prep.polygons", "--src", str(tmp_path / "bad.json"), "--dst", str(tmp_path / "o")
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{tmp_path / 'bad.json'}: unreadable annotation file" in proc.stderr
    with pytest.raises(SegError, match="--augment spin: unknown"):
        split.main(["--src", str(augmented_src), "--dst", str(tmp_path / "o"), "--augment", "spin"])
    with pytest.raises(SegError, match="must lie outside --src"):
        split.main(["--src", str(augmented_src), "--dst", str(augmented_src / "out")])


def test_stats_counts_sizes_and_foreground_histogram(augmented_src, tmp_path, capsys) -> None:
    dst = tmp_path / "out"
    split.main(
        ["--src", str(augmented_src), "--dst", str(dst), "--group-regex", AUGMENTED_PREFIX.pattern]
    )
    stats.main(["--root", str(dst)])
    report = json.loads((dst / "stats.json").read_text())
    found = all_stems(dst)
    for s in SPLITS:
        assert report[s]["pairs"] == len(found[s])
        assert report[s]["image_sizes"] == {"16x16": len(found[s])}
        assert report[s]["foreground_mean"] == pytest.approx(45 / 256)
    assert read(dst / "foreground_fraction.png").ndim == 3
    assert "train" in capsys.readouterr().out
    split.main(
        ["--src", str(augmented_src), "--dst", str(dst), "--group-regex", AUGMENTED_PREFIX.pattern]
    )  # stats files do not make the output stale
    assert "up to date" in capsys.readouterr().out
    assert stats.foreground_fraction(np.array([[0, 1], [2, 0]], np.uint8)) == 0.5
    # 8-bit levels in a 16-bit file: foreground as seg reads it (255), not above 65535 / 2
    assert stats.foreground_fraction(np.array([[0, 255], [255, 0]], np.uint16)) == 0.5
