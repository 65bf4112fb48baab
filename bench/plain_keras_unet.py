"""The plain Keras UNet script a user writes instead of seg (bench/recipes.py's baseline):
images and masks read into memory, random flips, a 5-level UNet with BatchNorm, Adam at a
fixed 1e-3, BCE + dice, the best epoch by validation loss kept, trained until a wall-clock
budget; then the test split predicted and scored per image by seg's evaluation (the only seg
code it uses, so that both sides are scored alike).

    python bench/plain_keras_unet.py DATASET_ROOT SIDE BUDGET_MINUTES OUT.json
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import keras
import numpy as np
import tensorflow as tf


def load(folder: Path, side: int) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    images = sorted((folder / "images").iterdir())
    masks = {p.stem: p for p in (folder / "masks").iterdir()}
    x = [
        cv2.resize(
            cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB),
            (side, side),
            interpolation=cv2.INTER_AREA,
        )
        / 255.0
        for p in images
    ]
    y = [
        cv2.resize(
            (cv2.imread(str(masks[p.stem]), cv2.IMREAD_GRAYSCALE) > 127).astype("f4"),
            (side, side),
            interpolation=cv2.INTER_AREA,
        )
        > 0.5
        for p in images
    ]
    return np.array(x, "f4"), np.array(y, "f4")[..., None], [masks[p.stem] for p in images]


def unet(side: int, filters: int = 16, levels: int = 5) -> keras.Model:
    def block(x, n):
        for _ in range(2):
            x = keras.layers.Conv2D(n, 3, padding="same", use_bias=False)(x)
            x = keras.layers.Activation("relu")(keras.layers.BatchNormalization()(x))
        return x

    inputs = keras.Input((side, side, 3))
    x, skips = inputs, []
    for level in range(levels - 1):
        x = block(x, filters * 2**level)
        skips.append(x)
        x = keras.layers.MaxPooling2D()(x)
    x = block(x, filters * 2 ** (levels - 1))
    for level in reversed(range(levels - 1)):
        x = keras.layers.Conv2DTranspose(filters * 2**level, 2, strides=2)(x)
        x = block(keras.layers.Concatenate()([x, skips[level]]), filters * 2**level)
    return keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(x))


def bce_dice(y_true, y_pred):
    inter = tf.reduce_sum(y_true * y_pred, axis=(1, 2, 3))
    dice = (2 * inter + 1) / (tf.reduce_sum(y_true + y_pred, axis=(1, 2, 3)) + 1)
    return keras.losses.binary_crossentropy(y_true, y_pred, axis=(1, 2, 3)) + (1 - dice)


class Budget(keras.callbacks.Callback):
    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds, self.start = seconds, time.perf_counter()

    def on_epoch_end(self, epoch, logs=None) -> None:
        elapsed = time.perf_counter() - self.start
        if elapsed + elapsed / (epoch + 1) > self.seconds:
            self.model.stop_training = True


def main(root: Path, side: int, budget: float, out: Path) -> None:
    (x, y, _), (vx, vy, _) = load(root / "train", side), load(root / "valid", side)
    flips = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(x))
        .map(
            lambda a, b: tf.cond(
                tf.random.uniform(()) < 0.5, lambda: (a[:, ::-1], b[:, ::-1]), lambda: (a, b)
            )
        )
        .map(
            lambda a, b: tf.cond(
                tf.random.uniform(()) < 0.5, lambda: (a[::-1], b[::-1]), lambda: (a, b)
            )
        )
        .batch(8)
        .prefetch(2)
    )
    model = unet(side)
    model.compile(keras.optimizers.Adam(1e-3), loss=bce_dice)
    weights = out.with_suffix(".weights.h5")
    best = keras.callbacks.ModelCheckpoint(
        str(weights), save_best_only=True, save_weights_only=True
    )
    start = time.perf_counter()
    history = model.fit(
        flips,
        validation_data=(vx, vy),
        epochs=1000,
        verbose=0,
        callbacks=[best, Budget(budget * 60)],
    )
    fit_minutes = (time.perf_counter() - start) / 60
    model.load_weights(weights)
    from seg.data.io import load_mask
    from seg.evaluation.scoring import Evaluation

    tx, _, mask_files = load(root / "test", side)
    evaluation = Evaluation()
    for prob, mask_file in zip(model.predict(tx, verbose=0), mask_files, strict=True):
        truth = load_mask(mask_file, None, 0.5)
        prob = cv2.resize(prob[..., 0], truth.shape[::-1])[..., None]  # at the mask's size
        evaluation.add(mask_file.name, truth, (prob[..., 0] > 0.5).astype(np.uint8), prob)
    dice = [row["dice"] for row in evaluation.per_image_rows()]
    out.write_text(
        json.dumps(
            {
                "dice": float(np.mean(dice)),
                "std": float(np.std(dice)),
                "epochs": len(history.history["loss"]),
                "fit_min": fit_minutes,
            }
        )
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4]))
