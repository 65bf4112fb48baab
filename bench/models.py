"""Cost of every architecture at its default config (conf/model/<name>.yaml), side by side.

Per model: parameters; FLOPs per image of inference (forward) and of a training step (forward
and backward; the optimizer's update left out), counted on the graph of a traced function with
the per-op FLOP statistics TensorFlow registers for its profiler (convolutions, matmuls,
element-wise ops; conv gradients and Einsum by their own rule, see below); training and
inference images/s at 128x128, batch 8 (a few warm-up steps, then timed steps); and the
achieved FLOP/s as a fraction of a large float32 tf.matmul's FLOP/s measured in the same run
(how close each model drives the CPU to its limit).

    python bench/models.py                              # all models, best of 3 x 5 steps
    python bench/models.py --models unet,u2net --steps 2 --repeats 1

Numbers from a machine shared with other jobs are noisy: compare rows of one run.
"""

from __future__ import annotations

import argparse
import os
import re
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
import tensorflow as tf
from hydra import compose, initialize_config_dir
from tensorflow.python.framework import ops as tf_ops

from seg.cli import CONF_DIR  # importing the CLI registers the config schemas
from seg.config.model import MODEL_SCHEMAS
from seg.training.factory import build_model

MATMUL_SIDE = 2048


def matmul_flops_per_second(repeats: int = 3) -> float:
    """FLOP/s of a 2048 x 2048 float32 matmul: the CPU's practical peak for dense math."""
    a = tf.random.uniform((MATMUL_SIDE, MATMUL_SIDE))
    b = tf.random.uniform((MATMUL_SIDE, MATMUL_SIDE))
    product = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    per_second = images_per_second(lambda: product().numpy(), 1, 1, 5, repeats)
    return per_second * 2 * MATMUL_SIDE**3


# Gradient (and transposed) convolutions. TensorFlow's registered FLOP rules for them count
# every element of the *input* times the whole kernel, as if stride 1 and 'same' padding: 4x
# too much for a 2x2 stride-2 transposed conv, and far too much for the strided
# space-to-batch convs of dilated layers. Their true cost is that of the forward conv.
_CONV_GRADIENTS = {
    "Conv2DBackpropInput",
    "Conv2DBackpropFilter",
    "DepthwiseConv2dNativeBackpropInput",
    "DepthwiseConv2dNativeBackpropFilter",
}


def _conv_gradient_flops(op: tf.Operation) -> int:
    """2 x (positions of the forward output) x (filter elements), as for the forward conv."""
    out_backprop = op.inputs[2].shape  # (N, H_out, W_out, C_out)
    # The filter: an input of ...BackpropInput; the gradient ...BackpropFilter computes.
    kernel = op.inputs[1].shape if op.type.endswith("Input") else op.outputs[0].shape
    return 2 * int(np.prod(out_backprop[:-1])) * int(np.prod(kernel))


def _einsum_flops(op: tf.Operation) -> int:
    """2 x the product of every index size (no rule is registered; Keras lowers its own
    einsums to matmuls, but a raw tf.einsum would go uncounted)."""
    inputs = op.get_attr("equation").decode().split("->")[0].split(",")
    sizes: dict[str, int] = {}
    for letters, tensor in zip(inputs, op.inputs, strict=True):
        for letter, size in zip(re.sub(r"[^a-zA-Z]", "", letters), tensor.shape, strict=True):
            sizes[letter] = int(size)
    return 2 * int(np.prod(list(sizes.values())))


def count_flops(function: tf.types.experimental.ConcreteFunction) -> int:
    """FLOPs of one call of a traced function (every shape static: the input spec fixes the
    batch): the per-op FLOP statistics TensorFlow registers, which its profiler sums
    (convolutions, matmuls, element-wise ops), with the conv-gradient and Einsum rules above."""
    graph, total = function.graph, 0
    for op in graph.get_operations():
        if op.type in _CONV_GRADIENTS:
            total += _conv_gradient_flops(op)
        elif op.type == "Einsum":
            total += _einsum_flops(op)
        else:
            total += int(tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value or 0)
    return total


def model_flops(model: keras.Model, shape: tuple[int, int, int]) -> tuple[int, int]:
    """(inference, training step) FLOPs per image: forward; forward plus gradients."""
    x_spec = tf.TensorSpec((1, *shape), tf.float32)
    y_spec = tf.TensorSpec((1, *shape[:2], 1), tf.float32)
    forward = tf.function(lambda x: model(x, training=False)).get_concrete_function(x_spec)
    loss_fn = keras.losses.BinaryCrossentropy()

    def gradients(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        return tape.gradient(loss, model.trainable_variables)

    backward = tf.function(gradients).get_concrete_function(x_spec, y_spec)
    return count_flops(forward), count_flops(backward)


def images_per_second(step, batch: int, warmup: int, steps: int, repeats: int) -> float:
    """The fastest of ``repeats`` rounds of ``steps`` timed steps: other jobs on a shared
    machine only ever slow a round down, so the best round is the least disturbed one."""
    for _ in range(warmup):
        step()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        best = min(best, time.perf_counter() - start)
    return steps * batch / best


def default_model(name: str, shape: tuple[int, int, int]) -> keras.Model:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        node = compose("train", overrides=[f"model={name}"]).model
    keras.utils.set_random_seed(0)
    return build_model(node, shape[:2], shape[2], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models",
        default=",".join(MODEL_SCHEMAS),
        help="comma-separated model names (default: all)",
    )
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (the best counts)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=128, help="image side (square, RGB)")
    args = parser.parse_args()
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = sorted(set(names) - set(MODEL_SCHEMAS))
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {', '.join(MODEL_SCHEMAS)}")
    shape = (args.size, args.size, 3)
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, *shape), dtype=np.float32)
    y = (rng.random((args.batch, *shape[:2], 1)) > 0.5).astype(np.float32)

    peaks = []  # measured before every model and at the end: the best is the CPU's peak
    rows = []
    for name in names:
        peaks.append(matmul_flops_per_second())
        model = default_model(name, shape)
        infer_flops, train_flops = model_flops(model, shape)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
        model.optimizer.build(model.trainable_variables)  # one trace, not two
        timing = (args.batch, args.warmup, args.steps, args.repeats)
        train = images_per_second(lambda m=model: m.train_on_batch(x, y), *timing)
        infer = images_per_second(lambda m=model: m.predict_on_batch(x), *timing)
        rows.append((name, model.count_params(), infer_flops, train_flops, train, infer))
        print(f"measured {name}", flush=True)
        keras.backend.clear_session()
    peaks.append(matmul_flops_per_second())
    peak = max(peaks)

    print(
        f"\nmatmul peak: {peak / 1e9:.1f} GFLOP/s ({MATMUL_SIDE}x{MATMUL_SIDE} float32, best "
        f"of {len(peaks)} measurements between the models, lowest {min(peaks) / 1e9:.1f}); "
        f"images {args.size}x{args.size}x3, batch {args.batch}, best of {args.repeats} "
        f"rounds of {args.steps} steps\n"
    )
    header = (
        "model",
        "params",
        "GFLOP/img fwd",
        "GFLOP/img train",
        "train img/s",
        "infer img/s",
        "train/peak",
        "infer/peak",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    best = (0.0, "")
    for name, params, infer_flops, train_flops, train, infer in rows:
        train_fraction = train_flops * train / peak
        infer_fraction = infer_flops * infer / peak
        best = max(best, (train_fraction, name))
        print(
            f"| {name} | {params / 1e6:.2f} M | {infer_flops / 1e9:.2f} | "
            f"{train_flops / 1e9:.2f} | {train:.1f} | {infer:.1f} | "
            f"{train_fraction:.1%} | {infer_fraction:.1%} |"
        )
    print(
        f"\nheadline: {best[0]:.3f} best training FLOP/s as a fraction of matmul peak ({best[1]})"
    )


if __name__ == "__main__":
    main()
