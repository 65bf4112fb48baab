"""Stage infer: masks, overlays, contours and colour masks for input=<folder | glob | file>, or
for the test split after training; files go to output= (or the run dir), a sample to MLflow."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from seg.data.dataset import load_split
from seg.inference.outputs import OutputStyle, collect_inputs, write_outputs
from seg.inference.postprocess import Postprocess
from seg.inference.predictor import InferenceSettings, Predictor, model_classes
from seg.runner.context import Context
from seg.training.factory import plain

log = logging.getLogger(__name__)


def build_predictor(ctx: Context, model, dataset_split: bool) -> Predictor:
    """The model with its preprocessing and the configured tiling and TTA.

    ``dataset_split``: the images are a split of the configured dataset, which training fed
    whole, resized to the model input; ``inference.tiling=auto`` then resizes them the same way
    (tiling them at their own resolution would show the model another scale than it learnt).
    Other inputs (seg-infer input=, seg-eval data_dir=) are tiled when larger than a tile.
    """
    settings = InferenceSettings.from_config(plain(ctx.cfg.inference))
    if dataset_split and settings.tiling == "auto":
        settings = replace(settings, tiling="off")
    prep = ctx.preprocessing
    return Predictor(model, settings, prep.image, training_size=prep.size)


def output_style(ctx: Context, classes: int) -> OutputStyle:
    inf = ctx.cfg.inference
    return OutputStyle(
        inf.threshold,
        inf.overlay_alpha,
        tuple(inf.overlay_color),
        inf.save_probabilities,
        ctx.palette(classes),
        inf.save_contours,
        inf.save_colored_masks,
        Postprocess.from_config(inf.threshold, plain(inf.postprocess)),
    )


def infer(ctx: Context) -> None:
    cfg = ctx.cfg
    model = ctx.trained_or_loaded_model()
    if cfg.input:
        files = collect_inputs(cfg.input)
    else:
        files = [p.image for p in load_split(cfg.dataset, "test")]
    default_dir = ctx.output_dir / "inference"
    out_dir = Path(cfg.output).expanduser().resolve() if cfg.output else default_dir
    style = output_style(ctx, model_classes(model))
    count = tiled = 0
    predictor = build_predictor(ctx, model, dataset_split=not cfg.input)
    for pred in predictor.predict_files(files):
        written = write_outputs(pred, out_dir, style)
        if count < cfg.inference.log_samples:
            for path in written.values():  # inference/masks/, inference/overlays/, ...
                ctx.tracker.log_artifact(path, f"inference/{path.parent.name}")
        count += 1
        tiled += pred.tiled
    ctx.tracker.log_metrics({"inferred_images": count, "inferred_images_tiled": tiled})
    ctx.tracker.set_tags({"seg.inference_dir": str(out_dir)})
    ctx.results["inferred_images"] = count
    log.info("inference: %d images (%d tiled) -> %s", count, tiled, out_dir)
