"""Stage evaluate: the model (best checkpoint, or checkpoint=...) on a split or a folder with
masks, scored per image at each mask's original size (predicted as seg-infer predicts: tiling,
TTA, post-processing); CSVs, aggregates, the threshold sweep and figures to MLflow."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from seg.classes import class_names
from seg.data.dataset import folder_pairs, load_split, mask_preprocess
from seg.data.io import load_mask
from seg.data.preprocess import differences
from seg.errors import ConfigError
from seg.evaluation import Evaluation, Extremes, ThresholdSweep
from seg.factory import build_loss
from seg.inference import model_classes, model_geometry
from seg.reports import plot_distribution, plot_gallery, plot_threshold_sweep
from seg.run import Context
from seg.stages.infer import build_predictor, output_style
from seg.visualize import comparison, vstack

log = logging.getLogger(__name__)

GALLERY_CASES = 4  # worst and best images shown in evaluation/gallery.png


def _check_geometry(ctx: Context, model) -> None:
    """The model decides the input size; say so when the dataset config disagrees."""
    size, channels = model_geometry(model)
    data = ctx.cfg.dataset
    if list(size) != list(data.image_size) or channels != data.channels:
        log.warning(
            "dataset.image_size=%s/channels=%s differ from the model's input %s x %d; "
            "images are fed as inference.tiling says (resized to the model's input, or "
            "tiled)", list(data.image_size), data.channels,
            list(size), channels,
        )


def _check_mask_reading(ctx: Context) -> None:
    """Ground truth is read as this config's dataset.mask says (it describes the files being
    scored); say so when the model was trained reading masks another way."""
    data, prep = ctx.cfg.dataset, ctx.preprocessing
    trained = {**prep.mask.to_dict(), "mask_threshold": prep.mask_threshold}
    configured = {**mask_preprocess(data).to_dict(), "mask_threshold": data.mask_threshold}
    if trained != configured:
        log.warning("ground-truth masks are read as this config's dataset.mask says, which "
                    "differs from the model's training: %s", differences(trained, configured))


def check_classes(ctx: Context, classes: int) -> None:
    """Masks are read as dataset.num_classes says; a model of other classes cannot be scored
    on them (a 3-class model against binary masks would be silently wrong)."""
    configured = ctx.cfg.dataset.num_classes
    if configured != classes:
        raise ConfigError(
            f"dataset.num_classes={configured} but the model predicts {classes} "
            f"class{'es' if classes > 1 else ''}: set dataset.num_classes={classes} (and how "
            "its masks are coded: index PNGs or dataset.mask.colors) to evaluate it"
        )


def _one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    """A label map as the loss takes it: (1,H,W,1) binary or (1,H,W,K) one-hot float32."""
    if classes == 1:
        return labels[None, ..., None].astype(np.float32)
    return np.eye(classes, dtype=np.float32)[labels][None]


def evaluate(ctx: Context) -> None:
    cfg = ctx.cfg
    model = ctx.trained_or_loaded_model()
    _check_geometry(ctx, model)
    classes = model_classes(model)
    check_classes(ctx, classes)
    _check_mask_reading(ctx)
    mask_spec = mask_preprocess(cfg.dataset)
    names = class_names(classes, cfg.dataset.class_names) if classes > 1 else None
    colors = ctx.palette(classes)
    if cfg.data_dir:
        pairs, prefix = folder_pairs(cfg.data_dir, cfg.dataset), "eval"
    else:
        pairs, prefix = load_split(cfg.dataset, cfg.split), str(cfg.split)
    loss_fn = build_loss(cfg.loss) if cfg.get("loss") is not None else None
    evaluation = Evaluation(names)
    sweep = ThresholdSweep() if classes == 1 else None
    extremes = Extremes(GALLERY_CASES)
    losses: list[float] = []
    samples = []
    masks = {p.image: p.mask for p in pairs}
    files = [p.image for p in pairs]
    style = output_style(ctx, classes)
    predictor = build_predictor(ctx, model, dataset_split=not cfg.data_dir)
    for pred in predictor.predict_files(files):
        truth = load_mask(masks[pred.path], None, cfg.dataset.mask_threshold, classes, mask_spec)
        probs = style.postprocess.probabilities(pred.probs)  # what the threshold sees
        predicted = style.labels(pred.probs)
        row = evaluation.add(pred.path.name, truth, predicted, probs)
        if sweep is not None:
            sweep.add(truth, probs[..., 0])
        extremes.add(pred.path.name, row["dice"], pred.image, truth, predicted)
        if loss_fn is not None:
            losses.append(float(loss_fn(_one_hot(truth, classes), pred.probs[None])))
        if len(samples) < cfg.inference.log_samples:
            samples.append(comparison(pred.image, truth, predicted, palette=colors))

    out = ctx.output_dir / "evaluation"
    evaluation.write_csv(out / "per_image.csv", out / "evaluation.csv")
    ctx.tracker.log_artifact(out / "per_image.csv")
    ctx.tracker.log_artifact(out / "evaluation.csv")
    summary = evaluation.summary()
    metrics = {f"{prefix}_{k}": v for k, v in summary.items()}
    if losses:
        metrics[f"{prefix}_loss"] = float(np.mean(losses))
    figures = [
        plot_distribution([r["dice"] for r in evaluation.per_image_rows()],
                          out / "dice_distribution.png"),
        plot_gallery(extremes.worst(), extremes.best(), out / "gallery.png", palette=colors),
    ]
    if sweep is not None:
        best = sweep.best()
        metrics[f"{prefix}_best_threshold"], metrics[f"{prefix}_best_threshold_dice"] = best
        figures.append(plot_threshold_sweep(sweep.curves(), best, cfg.inference.threshold,
                                            out / "threshold_sweep.png"))
        figures.append(_write_sweep(sweep, out / "threshold_sweep.csv"))
    ctx.tracker.log_metrics(metrics)
    ctx.results.update(metrics)
    if samples:
        from seg.data.io import write_png

        write_png(out / "samples.png", vstack(samples))
        figures.append(out / "samples.png")
    for path in figures:
        ctx.tracker.log_artifact(path, "evaluation")
    log.info("%s: dice %.4f (pooled %.4f), iou %.4f, hd95 %.2f px over %d images%s", prefix,
             summary["dice"], summary["dice_pooled"], summary["iou"], summary["hd95"],
             len(pairs), f"; best threshold {best[0]:.2f} (dice {best[1]:.4f})"
             if sweep is not None else "")


def _write_sweep(sweep: ThresholdSweep, path: Path) -> Path:
    """threshold_sweep.csv: one row per threshold, the curves of the plot."""
    curves = sweep.curves()
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(list(curves))
        writer.writerows(zip(*(values.tolist() for values in curves.values()), strict=True))
    return path
