"""Stage evaluate: the model (best checkpoint, or checkpoint=...) on a split or a folder with
masks, scored per image at each mask's original size (predicted as seg-infer predicts: tiling,
TTA, post-processing); CSVs, aggregates, the threshold sweep and figures to MLflow."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seg.data.classes import class_names
from seg.data.dataset import folder_pairs, load_split, mask_preprocess
from seg.data.io import load_mask, write_png
from seg.data.preprocess import differences
from seg.errors import DatasetError
from seg.evaluation.reports import plot_distribution, plot_gallery, plot_threshold_sweep
from seg.evaluation.scoring import Evaluation, Extremes, ThresholdSweep
from seg.files import written_whole
from seg.inference.predictor import model_classes, model_geometry
from seg.inference.visualize import comparison, vstack
from seg.runner.context import Context
from seg.runner.preflight import check_classes
from seg.runner.stages.infer import build_predictor, output_style
from seg.training.factory import build_loss

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
            "tiled)",
            list(data.image_size),
            data.channels,
            list(size),
            channels,
        )


def _check_mask_reading(ctx: Context) -> None:
    """Ground truth is read as this config's dataset.mask says (it describes the files being
    scored); say so when the model was trained reading masks another way."""
    data, prep = ctx.cfg.dataset, ctx.preprocessing
    trained = {**prep.mask.to_dict(), "mask_threshold": prep.mask_threshold}
    configured = {**mask_preprocess(data).to_dict(), "mask_threshold": data.mask_threshold}
    if trained != configured:
        log.warning(
            "ground-truth masks are read as this config's dataset.mask says, which "
            "differs from the model's training: %s",
            differences(trained, configured),
        )


def _one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    """A label map as the loss takes it: (1,H,W,1) binary or (1,H,W,K) one-hot float32."""
    if classes == 1:
        return labels[None, ..., None].astype(np.float32)
    return np.eye(classes, dtype=np.float32)[labels][None]


@dataclass
class Scores:
    """What the evaluation of a split gathers, image by image."""

    evaluation: Evaluation
    sweep: ThresholdSweep | None  # binary models: dice over thresholds
    colors: np.ndarray | None  # class colours of the pictures (None: binary)
    extremes: Extremes = field(default_factory=lambda: Extremes(GALLERY_CASES))
    losses: list[float] = field(default_factory=list)
    samples: list[np.ndarray] = field(default_factory=list)  # image | truth | prediction


def evaluate(ctx: Context) -> None:
    cfg = ctx.cfg
    model = ctx.trained_or_loaded_model()
    _check_geometry(ctx, model)
    classes = model_classes(model)
    check_classes(ctx, classes)
    _check_mask_reading(ctx)
    if cfg.data_dir:
        pairs, prefix = folder_pairs(cfg.data_dir, cfg.dataset), "eval"
    else:
        pairs, prefix = load_split(cfg.dataset, cfg.split), str(cfg.split)
    scores = _score(ctx, model, pairs, classes)
    _report(ctx, scores, prefix, len(pairs), _validation_threshold(ctx, model, classes))


def _validation_threshold(ctx: Context, model, classes: int) -> float | None:
    """The threshold with the best mean dice on the validation split, for a binary model
    evaluated on another split of its dataset (a threshold chosen on the split it is reported
    for would flatter it); None for a folder (data_dir=) or a dataset without a valid split.
    The valid split itself chooses its own."""
    cfg = ctx.cfg
    if classes != 1 or cfg.data_dir or str(cfg.split) == "valid":
        return None
    try:
        pairs = load_split(cfg.dataset, "valid")
    except DatasetError:
        return None
    if not pairs:
        return None
    mask_spec, style = mask_preprocess(cfg.dataset), output_style(ctx, classes)
    masks = {p.image: p.mask for p in pairs}
    sweep = ThresholdSweep()
    predictor = build_predictor(ctx, model, dataset_split=True)
    for pred in predictor.predict_files([p.image for p in pairs], label="threshold (valid)"):
        truth = load_mask(masks[pred.path], None, cfg.dataset.mask_threshold, 1, mask_spec)
        sweep.add(truth, style.postprocess.probabilities(pred.probs)[..., 0])
    return sweep.best()[0]


def _score(ctx: Context, model, pairs: list, classes: int) -> Scores:
    """Every pair predicted as seg-infer predicts it and scored at the mask's own size."""
    cfg = ctx.cfg
    mask_spec = mask_preprocess(cfg.dataset)
    names = class_names(classes, cfg.dataset.class_names) if classes > 1 else None
    colors = ctx.palette(classes)
    loss_fn = build_loss(cfg.loss) if cfg.get("loss") is not None else None
    scores = Scores(Evaluation(names), ThresholdSweep() if classes == 1 else None, colors)
    masks = {p.image: p.mask for p in pairs}
    style = output_style(ctx, classes)
    predictor = build_predictor(ctx, model, dataset_split=not cfg.data_dir)
    for pred in predictor.predict_files([p.image for p in pairs], label="evaluation"):
        truth = load_mask(masks[pred.path], None, cfg.dataset.mask_threshold, classes, mask_spec)
        probs = style.postprocess.probabilities(pred.probs)  # what the threshold sees
        predicted = style.labels(pred.probs)
        row = scores.evaluation.add(pred.path.name, truth, predicted, probs)
        if scores.sweep is not None:
            scores.sweep.add(truth, probs[..., 0])
        scores.extremes.add(pred.path.name, row["dice"], pred.image, truth, predicted)
        if loss_fn is not None:
            scores.losses.append(float(loss_fn(_one_hot(truth, classes), pred.probs[None])))
        if len(scores.samples) < cfg.inference.log_samples:
            scores.samples.append(comparison(pred.image, truth, predicted, palette=colors))
    return scores


def _best_threshold(
    sweep: ThresholdSweep, chosen: float | None, prefix: str
) -> tuple[float, float] | None:
    """(threshold, this split's mean dice at it): the threshold chosen on the validation
    split, or the valid split's own best; None where no split but this one could choose."""
    if chosen is None:
        return sweep.best() if prefix == "valid" else None
    curves = sweep.curves()
    index = int(np.argmin(np.abs(curves["threshold"] - chosen)))
    return float(curves["threshold"][index]), float(curves["mean_dice"][index])


def _report(
    ctx: Context, scores: Scores, prefix: str, count: int, chosen: float | None = None
) -> None:
    """CSVs, figures and ``<prefix>_*`` metrics to the run (and its results); ``chosen``:
    the threshold the validation split chose (see :func:`_validation_threshold`)."""
    out = ctx.output_dir / "evaluation"
    evaluation = scores.evaluation
    evaluation.write_csv(out / "per_image.csv", out / "evaluation.csv")
    ctx.tracker.log_artifact(out / "per_image.csv")
    ctx.tracker.log_artifact(out / "evaluation.csv")
    summary = evaluation.summary()
    metrics = {f"{prefix}_{k}": v for k, v in summary.items()}
    if scores.losses:
        metrics[f"{prefix}_loss"] = float(np.mean(scores.losses))
    figures = [
        plot_distribution(
            [r["dice"] for r in evaluation.per_image_rows()], out / "dice_distribution.png"
        ),
        plot_gallery(
            scores.extremes.worst(),
            scores.extremes.best(),
            out / "gallery.png",
            palette=scores.colors,
        ),
    ]
    best = None
    if scores.sweep is not None:
        best = _best_threshold(scores.sweep, chosen, prefix)
        if best is not None:
            metrics[f"{prefix}_best_threshold"], metrics[f"{prefix}_best_threshold_dice"] = best
        figures.append(
            plot_threshold_sweep(
                scores.sweep.curves(),
                best or scores.sweep.best(),
                ctx.cfg.inference.threshold,
                out / "threshold_sweep.png",
            )
        )
        figures.append(_write_sweep(scores.sweep, out / "threshold_sweep.csv"))
    ctx.tracker.log_metrics(metrics)
    ctx.results.update(metrics)
    if scores.samples:
        write_png(out / "samples.png", vstack(scores.samples))
        figures.append(out / "samples.png")
    for path in figures:
        ctx.tracker.log_artifact(path, "evaluation")
    log.info(
        "%s: dice %.4f (pooled %.4f), iou %.4f, hd95 %.2f px over %d images%s",
        prefix,
        summary["dice"],
        summary["dice_pooled"],
        summary["iou"],
        summary["hd95"],
        count,
        f"; threshold {best[0]:.2f} (the best on valid): dice {best[1]:.4f}" if best else "",
    )


def _write_sweep(sweep: ThresholdSweep, path: Path) -> Path:
    """threshold_sweep.csv: one row per threshold, the curves of the plot."""
    curves = sweep.curves()
    with written_whole(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(list(curves))
        writer.writerows(zip(*(values.tolist() for values in curves.values()), strict=True))
    return path
