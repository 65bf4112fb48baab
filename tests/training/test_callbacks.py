"""seg's callbacks: the per-epoch large-image mask (seg.training.callbacks.LargeImageMask)
inside a real Keras fit, and the prediction watch that warns of empty or full predictions."""

from __future__ import annotations

import keras
import numpy as np

from seg.data.preprocess import ImagePreprocess
from seg.inference.predictor import InferenceSettings
from seg.training.callbacks import LargeImageMask, PredictionWatch
from tests.support.runs import RecordingRun


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


def _watched(sensitivities: list[float], specificity: float = 0.9, foreground: float = 0.02):
    run = RecordingRun()
    watch = PredictionWatch(run, foreground, threshold=0.5, epochs=3)
    for epoch, value in enumerate(sensitivities):
        watch.on_epoch_end(epoch, {"val_sensitivity": value, "val_specificity": specificity})
    return run.tags.get("seg.warning", "")


def test_empty_predictions_for_three_epochs_are_named_once_with_their_likely_causes(
    caplog,
) -> None:
    said = _watched([0.2, 0.0, 0.0, 0.0, 0.0])
    assert said.startswith(
        "the validation masks predicted have been empty for 3 epochs "
        "(to epoch 4) while 2.0% of the validation pixels are foreground"
    )
    assert "loss=bce_dice" in said and "inference.threshold=0.5" in said
    assert sum("have been empty" in r.message for r in caplog.records) == 1


def test_a_model_that_recovers_in_time_or_a_truth_without_foreground_gives_no_warning() -> None:
    assert _watched([0.0, 0.0, 0.3, 0.0, 0.0]) == ""  # never three in a row
    assert _watched([0.0, 0.0, 0.0], foreground=0.0) == ""  # nothing to find


def test_everything_predicted_foreground_suggests_inverted_masks() -> None:
    said = _watched([1.0, 1.0, 1.0], specificity=0.0)
    assert "predicted foreground for 3 epochs" in said and "dataset.mask.invert=true" in said
