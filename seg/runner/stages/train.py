"""Stage train: data, model, compile, callbacks, fit, finish; the best checkpoint becomes the
run's model (evaluate and infer use it, with the preprocessing it trained with)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from seg.config.trainer import budget_seconds
from seg.data.augment import active_ops, as_spec
from seg.data.classes import class_names
from seg.data.dataset import dataset_root, load_split, preprocessing_from_config
from seg.data.io import decode_image, read_raw, write_png
from seg.data.pairs import Pair
from seg.data.pipeline import Preprocessing, make_dataset
from seg.data.preprocess import for_display
from seg.evaluation.curves import plot_curves, read_history
from seg.evaluation.metrics import default_metrics
from seg.inference.predictor import InferenceSettings
from seg.inference.visualize import comparison, vstack
from seg.runner.context import Context
from seg.runner.resume import LAST_CHECKPOINT_DIR
from seg.runner.stages.infer import output_style
from seg.tracking.models import PREPROCESSING_FILE, write_preprocessing
from seg.training.budget import TimeBudget
from seg.training.callback_list import CheckpointFiles, build_callbacks
from seg.training.callbacks import EpochLine, EpochMasks, LargeImageMask, PredictionWatch
from seg.training.checkpoints import BEST_STATE, model_file, read_state
from seg.training.distribute import global_batch_size, make_strategy
from seg.training.factory import build_loss, build_model, build_optimizer, plain, schedule_of
from seg.training.precision import precision_policy
from seg.training.recorder import EpochRecorder, restore_state, write_csv

log = logging.getLogger(__name__)
WATCHED_MASKS = 32  # validation masks whose foreground the prediction watch compares with


@dataclass
class TrainingData:
    """What the fit reads: the pairs, how they become tensors, the pipelines, the devices."""

    prep: Preprocessing
    train_pairs: list[Pair]
    valid_pairs: list[Pair]
    train: Any  # tf.data.Dataset of (image, mask) batches, augmented
    valid: Any
    strategy: Any  # tf.distribute.Strategy
    steps_per_epoch: int  # training steps (batches) per epoch


def train(ctx: Context) -> None:
    """Data, model, compile, callbacks, fit, finish."""
    data = _data(ctx)
    model = _compiled_model(ctx, data)
    files = _checkpoint_files(ctx)
    _save_preprocessing(ctx, data.prep, files.best.parent)
    callbacks, recorder, budget = _callbacks(ctx, data, files, model)
    ctx.tracker.log_metrics({"model_parameters": model.count_params()})
    initial_epoch = _restore(ctx, model, recorder, data.strategy)
    trainer = ctx.cfg.trainer
    try:
        with ctx.phases.timed("fit"):
            model.fit(
                data.train,
                validation_data=data.valid,
                epochs=trainer.epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=trainer.steps_per_epoch,
                validation_steps=trainer.validation_steps,
                callbacks=callbacks,
                verbose=0 if trainer.verbose is None else trainer.verbose,  # or EpochLine
                shuffle=False,  # tf.data already reshuffles every epoch from the run's seed
            )
    except BaseException:
        _keep_best_model(ctx, model, files)  # an interrupted or failed fit keeps its best too
        raise
    finally:
        history = _report_history(ctx, files.history_csv)
    if budget is not None and (said := budget.report()) is not None:
        log.info("trainer.time_budget: %s", said)
        ctx.tracker.set_tags({"seg.time_budget": said})
    _finish(ctx, _best_model(ctx, model, files), data, history)


def _data(ctx: Context) -> TrainingData:
    """The train and valid pairs (checked by seg.runner.preflight before the run opened) as
    tf.data pipelines, batched for the distribution strategy."""
    cfg, out = ctx.cfg, ctx.output_dir
    data, trainer = cfg.dataset, cfg.trainer
    prep = preprocessing_from_config(data)
    root = dataset_root(data)
    ctx.tracker.set_tags({"seg.dataset_root": str(root)})
    train_pairs, valid_pairs = load_split(data, "train", root), load_split(data, "valid", root)
    log.info("dataset %s: %d train, %d valid pairs", root, len(train_pairs), len(valid_pairs))
    augmentation = as_spec(cfg.augmentation)
    log.info(
        "augmentation %s: %s", cfg.augmentation.name, ", ".join(active_ops(augmentation)) or "none"
    )
    strategy = make_strategy(str(trainer.strategy))
    replicas = strategy.num_replicas_in_sync
    batch = global_batch_size(trainer.batch_size, trainer.batch_size_per_replica, replicas)
    ctx.tracker.set_tags({"seg.replicas": str(replicas), "seg.global_batch_size": str(batch)})
    log.info("strategy %s: %d replica(s), global batch %d", trainer.strategy, replicas, batch)
    train_ds = make_dataset(
        train_pairs,
        prep,
        batch,
        training=True,
        augmentation=augmentation,
        seed=cfg.seed,
        cache=data.cache.value,
        cache_file=out / "cache" / "train",
        shuffle_buffer=data.shuffle_buffer,
        repeat=trainer.steps_per_epoch is not None,
        input_niceness=data.input_niceness,
    )
    valid_ds = make_dataset(
        valid_pairs,
        prep,
        batch,
        cache=data.cache.value,
        cache_file=out / "cache" / "valid",
        repeat=trainer.validation_steps is not None,
    )
    if cfg.augmentation.preview > 0:
        _preview(ctx, train_ds, cfg.augmentation.preview, ctx.palette(prep.num_classes, prep))
    steps = trainer.steps_per_epoch or math.ceil(len(train_pairs) / batch)
    return TrainingData(prep, train_pairs, valid_pairs, train_ds, valid_ds, strategy, steps)


def _compiled_model(ctx: Context, data: TrainingData) -> keras.Model:
    """The configured model, loss, optimizer and metrics, with their variables on every
    replica of the strategy."""
    cfg, prep, trainer = ctx.cfg, data.prep, ctx.cfg.trainer
    policy = precision_policy(trainer.mixed_precision, str(trainer.mixed_precision_dtype))
    ctx.tracker.set_tags({"seg.dtype_policy": policy})  # what mixed_precision_dtype=auto chose
    names = class_names(prep.num_classes, cfg.dataset.class_names) if prep.num_classes > 1 else ()
    with data.strategy.scope():
        model = build_model(cfg.model, prep.size, prep.channels, prep.num_classes, policy)
        model.compile(
            # in a LossScaleOptimizer if mixed_float16; a schedule over all the steps
            optimizer=build_optimizer(trainer, trainer.epochs * data.steps_per_epoch),
            loss=build_loss(cfg.loss),
            metrics=default_metrics(cfg.inference.threshold, names),
            jit_compile="auto" if trainer.jit_compile is None else trainer.jit_compile,
            steps_per_execution=_steps_per_execution(trainer),
        )
        # The optimizer's slots made now, not inside the first traced step: there they would
        # make TensorFlow trace the training step twice (seconds on a large model).
        model.optimizer.build(model.trainable_variables)
    return model


def _steps_per_execution(trainer) -> int:
    """trainer.steps_per_execution, or 1 under a distribution strategy: Keras 3.15's
    multi-step loop fails under MirroredStrategy ("You must feed a value for placeholder
    tensor ... while/cond/Placeholder")."""
    if str(trainer.strategy) == "default" or trainer.steps_per_execution == 1:
        return trainer.steps_per_execution
    log.info(
        "trainer.steps_per_execution=%d: 1 under trainer.strategy=%s (Keras cannot run "
        "several steps per call there)",
        trainer.steps_per_execution,
        trainer.strategy,
    )
    return 1


def _checkpoint_files(ctx: Context) -> CheckpointFiles:
    weights_only = ctx.cfg.callbacks.checkpoint.save_weights_only
    best = ctx.output_dir / "checkpoints" / ("best.weights.h5" if weights_only else "best.keras")
    best.parent.mkdir(parents=True, exist_ok=True)
    return CheckpointFiles(
        best, ctx.output_dir / LAST_CHECKPOINT_DIR, ctx.output_dir / "train_history.csv"
    )


def _save_preprocessing(ctx: Context, prep: Preprocessing, checkpoint_dir: Path) -> None:
    """preprocessing.json beside the checkpoint and in the run's artifacts, written before fit
    so that even an interrupted run's best checkpoint can be used the way it was trained."""
    path = write_preprocessing(checkpoint_dir / PREPROCESSING_FILE, prep.to_dict())
    ctx.tracker.log_artifact(path)


def _callbacks(
    ctx: Context, data: TrainingData, files: CheckpointFiles, model: keras.Model
) -> tuple[list[keras.callbacks.Callback], EpochRecorder, TimeBudget | None]:
    """The callbacks group's list (seg.training.callback_list), with the masks per epoch and
    the time budget."""
    masks, prep, trainer = ctx.cfg.callbacks.epoch_masks, data.prep, ctx.cfg.trainer
    before: tuple[keras.callbacks.Callback, ...] = ()
    if masks is not None and masks.large_image:
        before += (_large_image_callback(ctx, prep),)
    _, labels = _sample(data.valid_pairs, prep, WATCHED_MASKS)
    watch = PredictionWatch(ctx.tracker, float(np.mean(labels > 0)), ctx.cfg.inference.threshold)
    before += (watch,)
    budget = None
    if (seconds := budget_seconds(trainer.time_budget)) is not None:
        start = ctx.resume.state.epoch + 1 if ctx.resume else 0
        budget = TimeBudget(
            seconds,
            trainer.epochs,
            data.steps_per_epoch,
            schedule_of(model.optimizer),
            initial_epoch=start,
        )
        before += (budget,)
    after: tuple[keras.callbacks.Callback, ...] = ()
    if masks is not None and masks.num_images > 0:
        images, labels = _sample(data.valid_pairs, prep, masks.num_images)
        after = (
            EpochMasks(
                ctx.tracker,
                images,
                labels,
                [p.name for p in data.valid_pairs[: len(images)]],
                threshold=ctx.cfg.inference.threshold,
                every=masks.every,
                display=for_display(images),
                palette=ctx.palette(prep.num_classes, prep),
            ),
        )
    if trainer.verbose is None:  # seg's one line per epoch instead of Keras' 400 columns
        shown = (
            "loss",
            "val_loss",
            str(ctx.cfg.callbacks.checkpoint.monitor),
            str(ctx.cfg.get("optimized_metric") or ""),
        )
        names = tuple(dict.fromkeys(name for name in shown if name))
        after += (EpochLine(trainer.epochs, data.steps_per_epoch, names),)
    resumed = ctx.resume.state if ctx.resume else None
    callbacks, recorder = build_callbacks(
        ctx.cfg.callbacks, ctx.tracker, files, resumed, before, after, str(trainer.schedule.name)
    )
    return callbacks, recorder, budget


def _sample(pairs: list[Pair], prep: Preprocessing, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` pairs as model inputs (N,H,W,C) and label maps (N,H,W) uint8."""
    loaded = [prep.load_pair(str(p.image).encode(), str(p.mask).encode()) for p in pairs[:n]]
    images = np.stack([im for im, _ in loaded])
    labels = np.stack([m for _, m in loaded])
    return images, labels


def _large_image_callback(ctx: Context, prep: Preprocessing) -> LargeImageMask:
    masks, inf = ctx.cfg.callbacks.epoch_masks, ctx.cfg.inference
    path = Path(masks.large_image).expanduser()
    image = decode_image(read_raw(path), prep.channels, prep.image)  # a bad file fails now
    return LargeImageMask(
        ctx.tracker,
        image,
        path.stem,
        InferenceSettings.from_config(plain(inf)),
        prep.image,
        output_style(ctx, prep.num_classes).colors(prep.num_classes),
        threshold=inf.threshold,
        every=masks.every,
        max_side=masks.large_image_max_side,
    )


def _preview(ctx: Context, dataset, count: int, colors: np.ndarray | None) -> None:
    """augmentation.preview=N: what training sees, image | mask overlay, N rows."""
    rows = []
    for image, mask in dataset.unbatch().take(count):
        image, mask = image.numpy(), mask.numpy()
        labels = mask[..., 0] > 0.5 if mask.shape[-1] == 1 else mask.argmax(-1)
        rows.append(comparison(image, None, labels, palette=colors))
    if rows:
        path = ctx.output_dir / "augmentation_preview.png"
        write_png(path, vstack(rows))
        ctx.tracker.log_artifact(path)


def _restore(ctx: Context, model: keras.Model, recorder: EpochRecorder, strategy: Any) -> int:
    """A resumed run: the weights and optimizer state of its last checkpoint; the epochs it
    holds that the run has not logged yet (interrupted in between) are logged now. Returns
    the epoch fit starts at (0 for a new run)."""
    if ctx.resume is None:
        return 0
    state = ctx.resume.state
    with strategy.scope():
        restore_state(model, state)
    recorder.log_missing(ctx.tracker.logged_steps("epoch_time"))
    write_csv(recorder.history_csv, recorder.history)
    return state.epoch + 1


def _report_history(ctx: Context, history_csv: Path) -> dict[str, list[float]]:
    """Curves and the history CSV, logged even when fit stopped on an error."""
    history = read_history(history_csv)
    if history and ctx.cfg.callbacks.curves:
        plot_curves(history, ctx.output_dir / "curves")
        ctx.tracker.log_artifact(ctx.output_dir / "curves", "curves")
    if history_csv.is_file():
        ctx.tracker.log_artifact(history_csv)
    return history


def _best_model(
    ctx: Context, model: keras.Model, files: CheckpointFiles
) -> tuple[keras.Model, Path]:
    """The run's model: the best epoch's weights (or, when the monitored value never
    improved, the last), written once as its model file; the model (uncompiled) and the file."""
    weights_only = ctx.cfg.callbacks.checkpoint.save_weights_only
    best = files.best.parent / BEST_STATE
    path = files.best
    if best.is_file():
        read_state(model, best)
    else:
        log.warning(
            "no best checkpoint was kept (monitor %s); using the last weights",
            ctx.cfg.callbacks.checkpoint.monitor,
        )
        path = files.best.parent / ("last.weights.h5" if weights_only else "last.keras")
    with ctx.phases.timed("model_file"):
        return model_file(model, path, weights_only), path


def _keep_best_model(ctx: Context, model: keras.Model, files: CheckpointFiles) -> None:
    """The best model file of a fit that stopped on an error or an interruption, if an epoch
    was kept; a failure here is logged, not raised (the fit's own error is the one to see)."""
    if not (files.best.parent / BEST_STATE).is_file():
        return
    try:
        _best_model(ctx, model, files)
    except Exception as err:  # reported, not raised: the fit's own error follows
        log.warning("could not write the best model file %s: %s", files.best, err)


def _best_results(history: dict[str, list[float]]) -> dict[str, float]:
    """Best value of every metric: minimum for losses, maximum otherwise."""
    best = {}
    for key, values in history.items():
        if key in ("epoch", "lr", "epoch_time", "learning_rate") or not values:
            continue
        finite = [v for v in values if np.isfinite(v)]
        if finite:
            best[key] = min(finite) if "loss" in key else max(finite)
    return best


def _finish(
    ctx: Context,
    best: tuple[keras.Model, Path],
    data: TrainingData,
    history: dict[str, list[float]],
) -> None:
    """The run's model for the next stages, its best values, and the model logged (or its
    checkpoint file, with mlflow.log_model=false)."""
    model, path = best
    ctx.model, ctx.preprocessing = model, data.prep  # evaluate/infer use what training used
    best_values = _best_results(history)
    ctx.results.update(best_values)
    # Tags, not metrics: twenty one-point charts would head the run's metrics (the MLflow UI
    # sorts them by name), above the curves; the optimised one is the metric `objective`.
    ctx.tracker.set_tags({f"seg.best.{k}": f"{v:.6g}" for k, v in best_values.items()})
    if ctx.cfg.mlflow.log_model:
        sample, _ = _sample(data.valid_pairs, data.prep, 1)
        with ctx.phases.timed("log_model"):
            ctx.tracker.log_keras_model(model, sample, preprocessing=data.prep.to_dict())
            if name := ctx.cfg.mlflow.get("register_model"):
                version = ctx.tracker.register_model(str(name))
                log.info("model registered as %s version %s", name, version or "(pending)")
    else:
        ctx.tracker.log_artifact(path, "checkpoints")
