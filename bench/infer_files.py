"""Inference on image files: seg's predictor against the old scripts' one-image-at-a-time
inferencer, on the 129 test images of ../shared/data/pap_smear_herlev_128 (generated images
when absent) and the ``pap_smear_herlev_128`` experiment's model (random weights: the speed
does not depend on them).

Both read every file, predict its mask at the file's size and write the mask and an overlay:
  - the old way: per image ``cv2.imread``, nearest-neighbour resize, ``model.predict`` of one
    image, threshold, ``cv2.imwrite`` of the mask and the overlay (the old scripts' loop; the
    model in float32, TensorFlow's default threads, as the old scripts ran unpinned);
  - seg: ``Predictor.predict_files`` (files read by a thread pool, batches of
    ``inference.batch_size``, seg's dtype policy) and ``write_outputs`` with the default
    outputs (mask, overlay, contours, colour mask: two more files per image than the old way);
  - seg in float32, to show what the dtype policy buys.

Interleaved rounds after a warm-up round; the median is reported, with CPU-seconds.

    python bench/infer_files.py [--rounds 3]

Last line: ``headline: <r> seg/old-inferencer images per second``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import cv2
import keras
import numpy as np
from train_speed import SHARED, SIZE, compose, load_average  # beside this script

OUTPUTS = ("masks", "overlays")


def test_files(work: Path) -> tuple[list[Path], str]:
    if SHARED.is_dir():
        folder = SHARED / "test" / "images"
        return sorted(folder.iterdir()), str(folder)
    from seg.data.demo import DemoSpec, ensure_demo_dataset

    root = ensure_demo_dataset(
        work, DemoSpec(image_size=SIZE[0], num_train=8, num_valid=8, num_test=129)
    )
    return sorted((root / "test" / "images").iterdir()), f"generated {root}"


def old_inferencer(model: keras.Model, files: list[Path], out: Path) -> None:
    """The old scripts' loop: one file, one ``model.predict``, two files written."""
    for folder in OUTPUTS:
        (out / folder).mkdir(parents=True, exist_ok=True)
    for path in files:
        bgr = cv2.imread(str(path))
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        x = cv2.resize(rgb, SIZE[::-1], interpolation=cv2.INTER_NEAREST) / 255.0
        prob = model.predict(x[None].astype("float32"), verbose=0)[0, ..., 0]
        mask = (cv2.resize(prob, (w, h), interpolation=cv2.INTER_NEAREST) > 0.5) * 255
        cv2.imwrite(str(out / "masks" / f"{path.stem}.png"), mask.astype(np.uint8))
        overlay = bgr.copy()
        overlay[mask > 0] = (0.6 * overlay[mask > 0] + 0.4 * np.array([0, 0, 255])).astype(np.uint8)
        cv2.imwrite(str(out / "overlays" / f"{path.stem}.png"), overlay)


def seg_inference(model: keras.Model, files: list[Path], out: Path, cfg) -> None:
    """seg-infer's stage: the predictor and the outputs, as configured."""
    from seg.data.dataset import preprocessing_from_config
    from seg.inference.outputs import OutputStyle, write_outputs
    from seg.inference.postprocess import Postprocess
    from seg.inference.predictor import InferenceSettings, Predictor
    from seg.training.factory import plain

    inf = cfg.inference
    settings = InferenceSettings.from_config(plain(inf))
    predictor = Predictor(model, settings, preprocessing_from_config(cfg.dataset).image)
    style = OutputStyle(
        inf.threshold,
        inf.overlay_alpha,
        tuple(inf.overlay_color),
        postprocess=Postprocess.from_config(inf.threshold, plain(inf.postprocess)),
    )
    for prediction in predictor.predict_files(files, progress=False):
        write_outputs(prediction, out, style)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"load average at start: {load_average()}; cores: {os.cpu_count()}")
    from seg.training.factory import build_model
    from seg.training.precision import precision_policy

    work = Path(tempfile.mkdtemp(prefix="seg-infer-files-"))
    files, source = test_files(work)
    cfg = compose()
    policy = precision_policy(cfg.trainer.mixed_precision, str(cfg.trainer.mixed_precision_dtype))
    keras.utils.set_random_seed(0)
    float32 = build_model(cfg.model, SIZE, 3, 1, "float32")
    policed = build_model(cfg.model, SIZE, 3, 1, policy)
    policed.set_weights(float32.get_weights())
    print(
        f"data: {source}, {len(files)} images; the experiment's UNet "
        f"({float32.count_params() / 1e6:.1f} M parameters)"
    )
    variants: dict[str, Callable[[Path], None]] = {
        "old inferencer (one image per predict)": lambda o: old_inferencer(float32, files, o),
        f"seg ({policy}, batches of {cfg.inference.batch_size})": (
            lambda o: seg_inference(policed, files, o, cfg)
        ),
        "seg in float32": lambda o: seg_inference(float32, files, o, cfg),
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for r in range(args.rounds + 1):
        names = list(variants)
        for name in names[r % len(names) :] + names[: r % len(names)]:
            out = Path(tempfile.mkdtemp(dir=work))
            wall, cpu = time.perf_counter(), time.process_time()
            variants[name](out)
            if r:  # round 0 warms up (tracing, the first reads)
                times[name].append(
                    (
                        (time.perf_counter() - wall) / len(files),
                        (time.process_time() - cpu) / len(files),
                    )
                )
    old = statistics.median(w for w, _ in times[names[0]])
    print(f"\n{'variant':42s} {'img/s':>7s} {'CPU-s/img':>10s} {'vs old':>7s}")
    for name, rounds in times.items():
        wall = statistics.median(w for w, _ in rounds)
        cpu = statistics.median(c for _, c in rounds)
        print(f"{name:42s} {1 / wall:7.1f} {cpu:10.4f} {old / wall:6.2f}x")
    seg = statistics.median(w for w, _ in times[names[1]])
    print(f"\nload average at end: {load_average()}")
    print(f"headline: {old / seg:.2f} seg/old-inferencer images per second")


if __name__ == "__main__":
    main()
