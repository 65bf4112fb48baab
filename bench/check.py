"""Cost of checking a dataset before the run opens (seg.data.check), side by side with:

  1. the readability pass the train stage made before (decode every file, nothing else);
  2. the first pass of the training tf.data pipeline (decode, resize, fill the cache), which
     every run pays in its first epoch anyway.

On ../shared/data/pap_smear_herlev_128 (train + valid) where present, else on generated
128x128 JPEG pairs. Each is timed ``--rounds`` times; the best round counts.

    python bench/check.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import cv2
import numpy as np

from seg.data.check import MaskReading, Problems, check_images, check_pairs
from seg.data.pairs import Pair, split_pairs

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "pap_smear_herlev_128"


def generated(root: Path, count: int = 1200) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "valid"):
        for i in range(count if split == "train" else count // 5):
            mask = np.zeros((128, 128), np.uint8)
            cv2.circle(mask, (int(rng.integers(30, 98)), int(rng.integers(30, 98))), 20, 255, -1)
            image = rng.normal(0, 20, (128, 128, 3)) + np.where(mask[..., None], 180, 60)
            for kind, array in (
                ("images", np.clip(image, 0, 255).astype(np.uint8)),
                ("masks", mask),
            ):
                (root / split / kind).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(root / split / kind / f"{i:05d}.jpg"), array)
    return root


def best_of(rounds: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def seg_check(pairs: dict[str, list[Pair]]) -> None:
    problems = Problems()
    for split, listed in pairs.items():
        check_pairs(listed, MaskReading(0.5), split, problems, train=split == "train")
    problems.raise_if_any()


def readability_pass(pairs: list[Pair]) -> None:
    problems = Problems()
    check_images([p for pair in pairs for p in (pair.image, pair.mask)], problems)
    problems.raise_if_any()


def pipeline_first_pass(pairs: list[Pair]) -> None:
    from seg.data.pipeline import Preprocessing, make_dataset

    prep = Preprocessing(size=(128, 128), channels=3, num_classes=1, mask_threshold=0.5)
    for _ in make_dataset(pairs, prep, 16, training=True, cache="memory"):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = SHARED if SHARED.is_dir() else generated(Path(tmp))
        pairs = {s: split_pairs(root, s, "images", "masks") for s in ("train", "valid")}
        every = pairs["train"] + pairs["valid"]
        print(f"data: {root} ({len(every)} pairs, {2 * len(every)} files)")
        check = best_of(args.rounds, lambda: seg_check(pairs))
        readable = best_of(args.rounds, lambda: readability_pass(every))
        pipeline = best_of(args.rounds, lambda: pipeline_first_pass(every))
    print(
        f"pre-run check (decode + mask labels + sizes): {check:6.2f} s "
        f"({len(every) / check:7.0f} pairs/s)"
    )
    print(
        f"old readability pass (decode only):           {readable:6.2f} s "
        f"({len(every) / readable:7.0f} pairs/s)"
    )
    print(
        f"tf.data first pass (decode, resize, cache):   {pipeline:6.2f} s "
        f"({len(every) / pipeline:7.0f} pairs/s)"
    )
    print(f"check / old readability pass: {check / readable:.2f}")
    print(f"check / pipeline first pass:  {check / pipeline:.2f}")
    print(f"headline: {check / readable:.2f} pre-run check / old readability pass time ratio")


if __name__ == "__main__":
    main()
