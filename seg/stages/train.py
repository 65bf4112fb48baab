"""Stage train: tf.data pipelines -> model -> compile -> fit with callbacks; the best
checkpoint becomes the run's model."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np

from seg.callbacks import (
    DivergenceGuard,
    EpochMasks,
    EpochRecorder,
    LargeImageMask,
    TrainingState,
    write_csv,
)
from seg.classes import class_names
from seg.curves import plot_curves, read_history
from seg.data.augment import active_ops, as_spec
from seg.data.dataset import dataset_root, load_split, preprocessing_from_config
from seg.data.io import decode_image, read_raw
from seg.data.pairs import Pair
from seg.data.pipeline import Preprocessing, make_dataset
from seg.data.preprocess import for_display
from seg.distribute import global_batch_size, make_strategy
from seg.factory import build_loss, build_model, build_optimizer, plain, precision_policy
from seg.inference import InferenceSettings
from seg.metrics import default_metrics
from seg.model_files import load_model_file
from seg.resume import LAST_CHECKPOINT_DIR
from seg.run import Context
from seg.stages.infer import output_style
from seg.tracking import PREPROCESSING_FILE, write_preprocessing
from seg.visualize import comparison, vstack

log = logging.getLogger(__name__)


def preprocessing(ctx: Context) -> Preprocessing:
    return preprocessing_from_config(ctx.cfg.dataset)


def _save_preprocessing(ctx: Context, prep: Preprocessing, checkpoint_dir: Path) -> None:
    """preprocessing.json beside the checkpoint and in the run's artifacts, written before fit
    so that even an interrupted run's best checkpoint can be used the way it was trained."""
    path = write_preprocessing(checkpoint_dir / PREPROCESSING_FILE, prep.to_dict())
    ctx.tracker.log_artifact(path)


def _sample(pairs: list[Pair], prep: Preprocessing, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` pairs as model inputs (N,H,W,C) and label maps (N,H,W) uint8."""
    loaded = [prep.load_pair(str(p.image).encode(), str(p.mask).encode()) for p in pairs[:n]]
    images = np.stack([im for im, _ in loaded])
    labels = np.stack([m for _, m in loaded])
    return images, labels


def _callbacks(ctx: Context, checkpoint: Path, history_csv: Path, valid: list[Pair],
               prep: Preprocessing) -> tuple[list[keras.callbacks.Callback], EpochRecorder]:
    """The divergence guard first (no NaN epoch reaches a checkpoint), Keras' callbacks, then
    the EpochRecorder (after those whose progress it saves), then the per-epoch masks (after
    the checkpoint, so a resumed run never logs an epoch twice)."""
    cb = ctx.cfg.callbacks
    callbacks: list[keras.callbacks.Callback] = [
        DivergenceGuard(ctx.resume.state.epoch if ctx.resume else None),
        keras.callbacks.ModelCheckpoint(
            str(checkpoint), monitor=cb.checkpoint.monitor, mode=cb.checkpoint.mode.value,
            save_best_only=True, save_weights_only=cb.checkpoint.save_weights_only,
        ),
    ]
    if cb.early_stopping is not None:
        es = cb.early_stopping
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=es.monitor, mode=es.mode.value, patience=es.patience,
            min_delta=es.min_delta, restore_best_weights=es.restore_best_weights,
        ))
    if cb.reduce_lr is not None:
        rl = cb.reduce_lr
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor=rl.monitor, mode=rl.mode.value, factor=rl.factor, patience=rl.patience,
            min_lr=rl.min_lr,
        ))
    if cb.epoch_masks is not None and cb.epoch_masks.large_image:
        callbacks.append(_large_image_callback(ctx, prep))
    recorder = EpochRecorder(
        ctx.tracker, ctx.output_dir / LAST_CHECKPOINT_DIR, history_csv, callbacks,
        resumed=ctx.resume.state if ctx.resume else None,
    )
    callbacks.append(recorder)
    if cb.epoch_masks is not None and cb.epoch_masks.num_images > 0:
        images, labels = _sample(valid, prep, cb.epoch_masks.num_images)
        callbacks.append(EpochMasks(
            ctx.tracker, images, labels, [p.name for p in valid[: len(images)]],
            threshold=ctx.cfg.inference.threshold, every=cb.epoch_masks.every,
            display=for_display(images), palette=ctx.palette(prep.num_classes, prep),
        ))
    return callbacks, recorder


def _large_image_callback(ctx: Context, prep: Preprocessing) -> LargeImageMask:
    masks, inf = ctx.cfg.callbacks.epoch_masks, ctx.cfg.inference
    path = Path(masks.large_image).expanduser()
    image = decode_image(read_raw(path), prep.channels, prep.image)  # a bad file fails now
    return LargeImageMask(
        ctx.tracker, image, path.stem, InferenceSettings.from_config(plain(inf)), prep.image,
        output_style(ctx, prep.num_classes).colors(prep.num_classes), threshold=inf.threshold,
        every=masks.every, max_side=masks.large_image_max_side,
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
        from seg.data.io import write_png

        write_png(path, vstack(rows))
        ctx.tracker.log_artifact(path)


def _report_history(ctx: Context, history_csv: Path) -> dict[str, list[float]]:
    """Curves and the history CSV, logged even when fit stopped on an error."""
    history = read_history(history_csv)
    if history and ctx.cfg.callbacks.curves:
        plot_curves(history, ctx.output_dir / "curves")
        ctx.tracker.log_artifact(ctx.output_dir / "curves", "curves")
    if history_csv.is_file():
        ctx.tracker.log_artifact(history_csv)
    return history


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


def _auto_verbosity() -> int:
    """Keras' progress bar in a terminal; in a log file it would be thousands of lines."""
    return 1 if sys.stdout.isatty() else 2


def _restore(model: keras.Model, state: TrainingState, recorder: EpochRecorder,
             run: Any) -> int:
    """Weights and optimizer state of the last checkpoint; the epochs it holds that the run
    has not logged yet (interrupted in between) are logged now. Returns the next epoch."""
    model.optimizer.build(model.trainable_variables)  # else Keras skips the optimizer state
    model.load_weights(state.weights)
    recorder.log_missing(run.logged_steps("epoch_time"))
    write_csv(recorder.history_csv, recorder.history)
    return state.epoch + 1


def train(ctx: Context) -> None:
    cfg, out = ctx.cfg, ctx.output_dir
    data, trainer = cfg.dataset, cfg.trainer
    prep = preprocessing(ctx)
    augmentation = as_spec(cfg.augmentation)
    root = dataset_root(data)
    ctx.tracker.set_tags({"seg.dataset_root": str(root)})
    # Listed again (milliseconds): seg.preflight decoded and checked every file before the run.
    train_pairs = load_split(data, "train", root)
    valid_pairs = load_split(data, "valid", root)
    log.info("dataset %s: %d train, %d valid pairs", root, len(train_pairs), len(valid_pairs))
    aug_cfg = cfg.augmentation
    log.info("augmentation %s: %s", aug_cfg.name, ", ".join(active_ops(augmentation)) or "none")
    strategy = make_strategy(str(trainer.strategy))
    replicas = strategy.num_replicas_in_sync
    batch = global_batch_size(trainer.batch_size, trainer.batch_size_per_replica, replicas)
    ctx.tracker.set_tags({"seg.replicas": str(replicas), "seg.global_batch_size": str(batch)})
    log.info("strategy %s: %d replica(s), global batch %d", trainer.strategy, replicas, batch)
    cache = data.cache.value
    train_ds = make_dataset(
        train_pairs, prep, batch, training=True, augmentation=augmentation,
        seed=cfg.seed, cache=cache, cache_file=out / "cache" / "train",
        shuffle_buffer=data.shuffle_buffer, repeat=trainer.steps_per_epoch is not None,
        input_niceness=data.input_niceness,
    )
    valid_ds = make_dataset(
        valid_pairs, prep, batch, cache=cache, cache_file=out / "cache" / "valid",
        repeat=trainer.validation_steps is not None,
    )
    if aug_cfg.preview > 0:
        _preview(ctx, train_ds, aug_cfg.preview, ctx.palette(prep.num_classes, prep))

    policy = precision_policy(trainer.mixed_precision, str(trainer.mixed_precision_dtype))
    ctx.tracker.set_tags({"seg.dtype_policy": policy})  # what mixed_precision_dtype=auto chose
    with strategy.scope():  # variables of the model and the optimizer live on every replica
        model = build_model(cfg.model, prep.size, prep.channels, prep.num_classes, policy)
        names = class_names(prep.num_classes, data.class_names) if prep.num_classes > 1 else ()
        model.compile(
            optimizer=build_optimizer(trainer),  # in a LossScaleOptimizer if mixed_float16
            loss=build_loss(cfg.loss),
            metrics=default_metrics(cfg.inference.threshold, names),
            jit_compile="auto" if trainer.jit_compile is None else trainer.jit_compile,
        )
    weights_only = cfg.callbacks.checkpoint.save_weights_only
    checkpoint = out / "checkpoints" / ("best.weights.h5" if weights_only else "best.keras")
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    _save_preprocessing(ctx, prep, checkpoint.parent)
    history_csv = out / "train_history.csv"
    callbacks, recorder = _callbacks(ctx, checkpoint, history_csv, valid_pairs, prep)
    ctx.tracker.log_metrics({"model_parameters": model.count_params()})
    initial_epoch = 0
    if ctx.resume is not None:
        with strategy.scope():
            initial_epoch = _restore(model, ctx.resume.state, recorder, ctx.tracker)
    try:
        model.fit(
            train_ds,
            validation_data=valid_ds,
            epochs=trainer.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=trainer.steps_per_epoch,
            validation_steps=trainer.validation_steps,
            callbacks=callbacks,
            verbose=trainer.verbose if trainer.verbose is not None else _auto_verbosity(),
            shuffle=False,  # tf.data already reshuffles every epoch from the run's seed
        )
    finally:
        history = _report_history(ctx, history_csv)

    if checkpoint.is_file():
        if weights_only:
            model.load_weights(checkpoint)
        else:
            model = load_model_file(checkpoint, "the best checkpoint",
                                    trust=bool(cfg.get("trust_checkpoint")))
    else:  # the monitored value never improved or was never logged: keep the last weights
        log.warning("no best checkpoint was written (monitor %s); using the last weights",
                    cfg.callbacks.checkpoint.monitor)
        model.save(out / "checkpoints" / "last.keras")
    ctx.model, ctx.preprocessing = model, prep  # evaluate/infer use what training used
    best = _best_results(history)
    ctx.results.update(best)
    ctx.tracker.log_metrics({f"best_{k}": v for k, v in best.items()})
    if cfg.mlflow.log_model:
        sample, _ = _sample(valid_pairs, prep, 1)
        ctx.tracker.log_keras_model(model, sample, preprocessing=prep.to_dict())
    else:
        saved = checkpoint if not weights_only else out / "checkpoints" / "last.keras"
        ctx.tracker.log_artifact(saved, "checkpoints")
