"""The per-epoch large-image callback (seg.training.callbacks.LargeImageMask) inside a real
Keras fit."""

from __future__ import annotations

import keras
import numpy as np

from seg.data.preprocess import ImagePreprocess
from seg.inference.predictor import InferenceSettings
from seg.training.callbacks import LargeImageMask


class RecordingRun:
    """What a callback logs, kept in memory (seg.tracking.tracker.Tracker logs to MLflow)."""

    def __init__(self) -> None:
        self.images: list[tuple[str, int, np.ndarray]] = []

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass

    def log_image(self, image: np.ndarray, key: str, step: int) -> None:
        self.images.append((key, step, image))


def test_large_image_mask_is_predicted_tiled_and_logged_every_n_epochs() -> None:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((16, 16, 3)), keras.layers.Conv2D(1, 1, activation="sigmoid")]
    )
    model.compile("sgd", "binary_crossentropy")
    model.layers[-1].set_weights(
        [np.array([8.0, 0, 0], np.float32).reshape(1, 1, 3, 1), np.array([-4.0], np.float32)]
    )
    image = np.zeros((64, 48, 3), np.float32)  # 4x3 tiles of the model input
    image[:, 24:, 0] = 1.0  # right half red: foreground for this model
    run = RecordingRun()
    palette = np.array([(0, 0, 0), (0, 255, 0)], np.uint8)
    callback = LargeImageMask(
        run, image, "slide", InferenceSettings(), ImagePreprocess(), palette, every=2, max_side=32
    )
    x = np.zeros((4, 16, 16, 3), np.float32)
    model.fit(
        x, np.zeros((4, 16, 16, 1), np.float32), epochs=3, verbose=0, callbacks=[callback]
    )  # lr 0.01 on zeros: the weights barely move
    assert [(key, step) for key, step, _ in run.images] == [
        ("val_large_slide", 0),
        ("val_large_slide", 2),
    ]
    shown = run.images[-1][2]
    assert shown.shape == (32, 24, 3) and shown.dtype == np.uint8
    # right half: red image tinted green (foreground); left half: black, untouched
    assert (shown[:, 14:, 1] > 80).all() and not shown[:, :10].any()
