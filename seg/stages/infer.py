"""Stage infer: masks and overlays for input=<folder | glob | file>, or for the test split
after training; files go to output= (or the run dir), a sample to MLflow."""

from __future__ import annotations

import logging
from pathlib import Path

from seg.data.dataset import load_split
from seg.inference import (
    OutputStyle,
    collect_inputs,
    model_classes,
    predict_files,
    write_outputs,
)
from seg.run import Context

log = logging.getLogger(__name__)


def infer(ctx: Context) -> None:
    cfg = ctx.cfg
    model = ctx.trained_or_loaded_model()
    if cfg.input:
        files = collect_inputs(cfg.input)
    else:
        files = [p.image for p in load_split(cfg.dataset, "test")]
    default_dir = ctx.output_dir / "inference"
    out_dir = Path(cfg.output).expanduser().resolve() if cfg.output else default_dir
    inf = cfg.inference
    style = OutputStyle(inf.threshold, inf.overlay_alpha, tuple(inf.overlay_color),
                        inf.save_probabilities, ctx.palette(model_classes(model)))
    count = 0
    for pred in predict_files(model, files, inf.batch_size, preprocess=ctx.preprocessing.image):
        written = write_outputs(pred, out_dir, style)
        if count < inf.log_samples:
            for path in written.values():  # inference/masks/, inference/overlays/, ...
                ctx.tracker.log_artifact(path, f"inference/{path.parent.name}")
        count += 1
    ctx.tracker.log_metrics({"inferred_images": count})
    ctx.tracker.set_tags({"seg.inference_dir": str(out_dir)})
    ctx.results["inferred_images"] = count
    log.info("inference: %d images -> %s", count, out_dir)
