"""Tiled inference benchmark: a 4096x4096 image through the default UNet.

Prints, measured side by side in this one run:
  1. megapixels/s of our sliding-window inference (tiles of the model input batched per model
     call, Gaussian-blended) vs. the old scripts' loop predicting one tile at a time with
     ``model.predict`` and pasting tiles without blending; also vs. a one-tile loop through the
     same compiled predict step, which isolates what batching itself buys;
  2. peak RSS of the process after tiled inference, and the NumPy working set of it;
  3. the seam check: on an image the model can take whole (the same weights in a model built
     for 1024x1024), the largest and mean difference between tiled and whole-image
     probabilities, with Gaussian, uniform and no blending (old-style pasting), and the
     differences on the tile boundary lines vs. elsewhere.

The image is an 8x8 mosaic of real 512x512 LBC slides from
../shared/data/cervical_nucleus_lbc_512 at their own resolution (generated cytology-like
images when absent); the model is the default UNet of seg/conf/model/unet.yaml, randomly
initialised (weights=None, nothing downloads) and briefly trained on 128-pixel crops of the same
data so that its probabilities have structure (``--train-steps 0``: untrained).

    python bench/infer.py [--size 4096] [--train-steps 60] [--batch 8] [--overlap 0.25]
"""

from __future__ import annotations

import argparse
import os
import resource
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "cervical_nucleus_lbc_512"
TILE = (128, 128)  # the default dataset.image_size: the model input
WHOLE = 1024  # side of the seam-check image the model takes whole


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """Current resident set size (Linux /proc; the peak where unavailable)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()


def default_unet(size: tuple[int, int]):
    """The default UNet of conf/model/unet.yaml for RGB input of ``size``, one sigmoid output."""
    from omegaconf import OmegaConf

    from seg.models.unet import build_unet

    spec = OmegaConf.to_container(OmegaConf.load(ROOT / "seg" / "conf" / "model" / "unet.yaml"))
    spec = {k: v for k, v in spec.items() if k not in ("defaults", "_target_")}
    return build_unet((*size, 3), 1, **spec)


def load_pairs(count: int) -> tuple[list[np.ndarray], list[np.ndarray], str]:
    """RGB float images and binary masks: the real LBC data, or generated demo images."""
    from seg.data.io import load_image, load_mask

    if SHARED.is_dir():
        names = sorted(p.name for p in (SHARED / "images").iterdir())[:count]
        images = [load_image(SHARED / "images" / n, None, 3) for n in names]
        masks = []
        for n in names:
            mask = next((SHARED / "masks").glob(Path(n).stem + ".*"))
            masks.append(load_mask(mask, None, 0.5))
        return images, masks, f"{len(names)} LBC slides from {SHARED}"
    import tempfile

    from seg.data.demo import DemoSpec, ensure_demo_dataset
    from seg.data.pairs import split_pairs

    root = ensure_demo_dataset(
        Path(tempfile.mkdtemp()), DemoSpec(image_size=512, num_train=count, num_valid=1, num_test=1)
    )
    pairs = split_pairs(root, "train", "images", "masks")[:count]
    images = [load_image(p.image, None, 3) for p in pairs]
    masks = [load_mask(p.mask, None, 0.5) for p in pairs]
    return images, masks, f"{len(pairs)} generated 512x512 demo images"


def mosaic(images: list[np.ndarray], side: int) -> np.ndarray:
    """A side x side image tiled from the images (repeated as needed), at their resolution."""
    h, w = images[0].shape[:2]
    rows = []
    k = 0
    for _ in range(-(-side // h)):
        row = []
        for _ in range(-(-side // w)):
            row.append(images[k % len(images)][:h, :w])
            k += 1
        rows.append(np.concatenate(row, axis=1))
    return np.ascontiguousarray(np.concatenate(rows, axis=0)[:side, :side])


def brief_training(model, images, masks, steps: int, seed: int = 0) -> float:
    """``steps`` Adam steps of BCE+dice on random 128-pixel crops; returns the last loss."""
    import keras

    from seg.losses import SegmentationLoss

    if steps <= 0:
        return float("nan")
    rng = np.random.default_rng(seed)

    def crops(n: int) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for _ in range(n):
            i = int(rng.integers(len(images)))
            y = int(rng.integers(images[i].shape[0] - TILE[0] + 1))
            x = int(rng.integers(images[i].shape[1] - TILE[1] + 1))
            xs.append(images[i][y : y + TILE[0], x : x + TILE[1]])
            ys.append(masks[i][y : y + TILE[0], x : x + TILE[1], None].astype(np.float32))
        return np.stack(xs), np.stack(ys)

    model.compile(keras.optimizers.Adam(1e-3), SegmentationLoss.from_preset("bce_dice"))
    loss = float("nan")
    for _ in range(steps):
        loss = float(model.train_on_batch(*crops(8)))
    return loss


def old_loop(model, image: np.ndarray, overlap: float, use_predict: bool) -> np.ndarray:
    """One tile per model call, pasted without blending (later tiles overwrite earlier ones).
    ``use_predict``: ``model.predict`` as the old scripts did; else the compiled step."""
    from seg.inference.predictor import predict_batch
    from seg.inference.tiling import tile_grid

    out = np.zeros((*image.shape[:2], 1), np.float32)
    th, tw = TILE
    for y, x in tile_grid(image.shape[:2], TILE, overlap):
        tile = image[None, y : y + th, x : x + tw]
        prob = model.predict(tile, verbose=0) if use_predict else predict_batch(model, tile)
        out[y : y + th, x : x + tw] = prob[0]
    return out


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def seam_report(model, image: np.ndarray, overlap: float, batch: int) -> dict[str, float]:
    """Tiled vs. whole-image probabilities of a WHOLE x WHOLE crop."""
    from seg.inference.predictor import predict_batch
    from seg.inference.tiling import sliding_window, tile_grid

    whole_model = default_unet((WHOLE, WHOLE))
    whole_model.set_weights(model.get_weights())
    crop = image[:WHOLE, :WHOLE]
    whole = predict_batch(whole_model, crop[None])[0]
    predict = lambda b: predict_batch(model, b)  # noqa: E731
    results = {
        "gaussian": sliding_window(crop, predict, TILE, overlap, batch),
        "uniform": sliding_window(crop, predict, TILE, overlap, batch, sigma=0.0),
        "none (old pasting)": old_loop(model, crop, overlap, use_predict=False),
    }
    lines = np.zeros(crop.shape[:2], bool)  # pixels on a tile edge (inside the image)
    for y, x in tile_grid(crop.shape[:2], TILE, overlap):
        for edge in (y, y + TILE[0] - 1):
            if 0 < edge < WHOLE - 1:
                lines[edge, x : x + TILE[1]] = True
        for edge in (x, x + TILE[1] - 1):
            if 0 < edge < WHOLE - 1:
                lines[y : y + TILE[0], edge] = True
    report = {"whole_std": float(whole.std())}
    for name, tiled in results.items():
        diff = np.abs(tiled - whole)[..., 0]
        report[name] = (
            float(diff.max()),
            float(diff.mean()),
            float(diff[lines].mean()),
            float(diff[~lines].mean()),
            float(((tiled > 0.5) != (whole > 0.5)).mean()),
        )
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--train-steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=8, help="tiles per model call")
    parser.add_argument("--overlap", type=float, default=0.25)
    args = parser.parse_args()

    import keras

    from seg.inference.predictor import predict_batch
    from seg.inference.tiling import sliding_window, tile_grid

    keras.utils.set_random_seed(0)
    images, masks, source = load_pairs(64)
    image = mosaic(images, args.size)
    model = default_unet(TILE)
    loss, train_s = timed(lambda: brief_training(model, images, masks, args.train_steps))
    tiles = len(tile_grid(image.shape[:2], TILE, args.overlap))
    mp = image.shape[0] * image.shape[1] / 1e6
    print(
        f"machine: {os.cpu_count()} CPUs, shared with other jobs (load average "
        f"{os.getloadavg()[0]:.1f} at start): absolute rates vary, ratios are measured "
        "side by side"
    )
    print(f"image: {args.size}x{args.size} mosaic of {source}")
    print(
        f"model: default UNet (seg/conf/model/unet.yaml), input {TILE[0]}x{TILE[1]}x3, "
        f"{model.count_params():,} parameters, {args.train_steps} training steps "
        f"({train_s:.0f} s, last loss {loss:.3f})"
    )
    print(f"tiles: {tiles} of {TILE[0]}x{TILE[1]}, overlap {args.overlap}")

    predict = lambda b: predict_batch(model, b)  # noqa: E731
    # Trace the predict step for every batch shape used before timing anything.
    for n in {1, args.batch, tiles % args.batch or args.batch}:
        predict(np.repeat(image[None, : TILE[0], : TILE[1]], n, axis=0))
    model.predict(image[None, : TILE[0], : TILE[1]], verbose=0)
    rss_before = rss_mb()
    tracemalloc.start()
    ours, ours_s = timed(lambda: sliding_window(image, predict, TILE, args.overlap, args.batch))
    numpy_peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    rss = peak_rss_mb()
    _, compiled_s = timed(lambda: old_loop(model, image, args.overlap, use_predict=False))
    _, old_s = timed(lambda: old_loop(model, image, args.overlap, use_predict=True))
    print(
        f"ours: batched ({args.batch} tiles/call), Gaussian-blended: {mp / ours_s:7.3f} MP/s "
        f"({ours_s:.1f} s)"
    )
    print(
        f"old way: one tile per model.predict, pasted:        {mp / old_s:7.3f} MP/s "
        f"({old_s:.1f} s)"
    )
    print(
        f"one tile per call of the same compiled step:         {mp / compiled_s:7.3f} MP/s "
        f"({compiled_s:.1f} s)"
    )
    print(f"speed-up over the old way:                  {old_s / ours_s:6.2f}x  (goal >= 3)")
    print(
        f"speed-up over one tile per compiled call:   {compiled_s / ours_s:6.2f}x  "
        "(batching alone; a 2-core CPU is compute-bound, a GPU gains far more)"
    )
    print(
        f"RSS before tiled inference {rss_before:.0f} MB (model, TF, the image: "
        f"{image.nbytes / 2**20:.0f} MB float32), peak after it {rss:.0f} MB (the peak includes "
        f"the brief training); NumPy peak during it {numpy_peak:.0f} MB"
    )
    print(f"probabilities mean {ours.mean():.3f}, std {ours.std():.3f}")

    seams = seam_report(model, image, args.overlap, args.batch)
    print(
        f"seam check on a {WHOLE}x{WHOLE} crop the model also takes whole "
        f"(probability std {seams['whole_std']:.3f}):"
    )
    print(
        "  blending             max|diff|  mean|diff|  on tile edges  elsewhere  mask disagreement"
    )
    for name in ("gaussian", "uniform", "none (old pasting)"):
        mx, mean, edge, rest, flips = seams[name]
        print(f"  {name:20s} {mx:9.4f}  {mean:10.5f}  {edge:13.5f}  {rest:9.5f}  {flips:16.5%}")
    print(
        f"headline: {old_s / ours_s:.1f} tiled-batched/one-tile-at-a-time (old model.predict "
        "loop) megapixels-per-second ratio"
    )


if __name__ == "__main__":
    main()
