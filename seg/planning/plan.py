"""A recipe for a dataset from its fingerprint (seg.planning.fingerprint): image size, batch,
model depth and width, channels, loss, augmentation, mask reading and a time budget, each
choice with the one-line reason written beside it in the experiment YAML it becomes.

The rules are nnU-Net's, for 2D and a CPU budget: the model input keeps the median image's
shape, at most ``MAX_SIDE`` on a side unless the objects would shrink below ``MIN_OBJECT``
pixels; the network is deep enough that its bottleneck sees about ``BOTTLENECK`` pixels; the
batch holds about ``BATCH_PIXELS`` pixels; the training recipe itself (optimizer, learning
rate, schedule) is seg's default, which was chosen by measurement on two datasets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from seg.planning.fingerprint import Fingerprint, describe

MULTIPLE = 32  # sides are multiples of this (2**5: a model of up to 6 levels takes them)
MIN_SIDE, MAX_SIDE = 64, 512
SMALL_BUDGET_SIDE = 256  # the cap under a budget of at most SMALL_BUDGET minutes ...
SMALL_BUDGET = 15.0
MIN_OBJECT = 64.0  # ... unless the median object would then cover fewer pixels than this
BOTTLENECK = 8  # pixels on the bottleneck's shorter side
BATCH_PIXELS = 128 * 128 * 8  # pixels per training batch
SMALL_FOREGROUND = 0.02  # below this share of the pixels, a recall-weighted loss
FEW_IMAGES = 100  # below this many training images, strong augmentation


@dataclass(frozen=True)
class Choice:
    """One setting of the plan: the config key, its value, and why."""

    key: str
    value: Any
    why: str


def _side(length: int, scale: float) -> int:
    return max(MIN_SIDE, int(length * scale) // MULTIPLE * MULTIPLE)


def _input_size(fp: Fingerprint, budget: float) -> tuple[tuple[int, int], str]:
    h, w = fp.median_size
    cap = MAX_SIDE
    why = f"the median image ({h}x{w})"
    if budget <= SMALL_BUDGET and max(h, w) > SMALL_BUDGET_SIDE:
        shrunk = fp.object_area * (SMALL_BUDGET_SIDE / max(h, w)) ** 2
        if shrunk >= MIN_OBJECT:
            cap = SMALL_BUDGET_SIDE
            why += f", at most {cap} on a side for a {budget:g}-minute budget"
        else:
            why += (
                f"; not shrunk to {SMALL_BUDGET_SIDE} for the short budget: the median "
                f"object would cover {shrunk:.0f} px"
            )
    scale = min(1.0, cap / max(h, w))
    if scale < 1:
        why += f", scaled by {scale:.2f}"
    size = (_side(h, scale), _side(w, scale))
    return size, why + f", sides multiples of {MULTIPLE}"


def _depth(size: tuple[int, int]) -> tuple[int, str]:
    levels = int(math.log2(min(size) / BOTTLENECK)) + 1
    levels = max(3, min(6, levels))
    bottleneck = min(size) // 2 ** (levels - 1)
    return levels, f"a bottleneck of {bottleneck} px: context across the whole {min(size)} px side"


def _loss(fp: Fingerprint, classes: int) -> tuple[str, str]:
    if classes > 1:
        return "cce_dice", f"{classes} classes: crossentropy and a dice per class"
    if fp.foreground < SMALL_FOREGROUND:
        return "combo", (
            f"a small foreground ({fp.foreground:.2%} of the pixels): BCE plus a "
            "Tversky term weighing misses more than false alarms"
        )
    return "bce_dice", f"a foreground of {fp.foreground:.1%}: BCE for the pixels, dice for shape"


def plan(fp: Fingerprint, budget: float, classes: int) -> list[Choice]:
    """The choices for a dataset of this fingerprint, trained for ``budget`` minutes."""
    size, size_why = _input_size(fp, budget)
    levels, depth_why = _depth(size)
    batch = max(2, min(16, BATCH_PIXELS // (size[0] * size[1])))
    loss, loss_why = _loss(fp, classes)
    train = fp.pairs.get("train", 0)
    choices = [
        Choice("dataset.image_size", list(size), size_why),
        Choice(
            "dataset.channels",
            1 if fp.grey else 3,
            "every image is grey" if fp.grey else "colour images",
        ),
        Choice("model.num_layers", levels, depth_why),
        Choice(
            "model.base_filters",
            32 if budget >= 60 and max(size) <= 256 else 16,
            "32 filters for an hour or more on small images"
            if budget >= 60 and max(size) <= 256
            else "16 filters: what a CPU trains in the budget",
        ),
        Choice("trainer.batch_size", batch, f"about {BATCH_PIXELS // 1024}k pixels per batch"),
        Choice("loss", loss, loss_why),
        Choice(
            "augmentation",
            "strong" if train < FEW_IMAGES else "basic",
            f"{train} training images: "
            + ("few, so strong augmentation" if train < FEW_IMAGES else "flips and quarter turns"),
        ),
        Choice("trainer.time_budget", budget, f"{budget:g} minutes of training"),
        Choice("trainer.epochs", 1000, "the time budget decides (early stopping too)"),
    ]
    if fp.looks_inverted:
        choices.append(
            Choice(
                "dataset.mask.invert",
                True,
                "the masks' foreground covers most pixels: read them inverted",
            )
        )
    return choices


def _nest(choices: list[Choice]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for c in choices:
        if "." not in c.key:
            continue
        node = tree
        *parents, leaf = c.key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = c.value
    return tree


def experiment_yaml(
    name: str,
    root: Path,
    fp: Fingerprint,
    choices: list[Choice],
    budget: float,
    conf_dir: Path,
    dataset: str = "folder",
) -> str:
    """The experiment file: group overrides, the settings each with its reason as a comment,
    and the fingerprint and plan (logged with every run of it as plan.yaml)."""
    groups = {c.key: c for c in choices if "." not in c.key}
    lines = [
        "# @package _global_",
        f"# Planned by seg-plan on {date.today().isoformat()} from {root}:",
        *(f"#   {line}" for line in describe(fp)),
        f"#   seg-train --config-dir {conf_dir} experiment={name}",
        "defaults:",
        f"  - override /dataset: {dataset}  # the dataset config the plan read",
        *(f"  - override /{key}: {c.value}  # {c.why}" for key, c in groups.items()),
        "",
    ]
    settings = _nest(choices)
    settings.setdefault("dataset", {}).update({"name": name, "root": str(root)})
    why = {c.key: c.why for c in choices}
    for top, node in settings.items():
        lines.append(f"{top}:")
        lines += _node_lines(node, top, why, "  ")
    record = {
        "name": name,
        "budget_minutes": budget,
        "fingerprint": fp.to_dict(),
        "choices": {c.key: {"value": c.value, "why": c.why} for c in choices},
    }
    lines += ["# What seg-plan read and chose (logged with the run as plan.yaml):", "plan:"]
    lines += ["  " + line for line in yaml.safe_dump(record, sort_keys=False).splitlines()]
    return "\n".join(lines) + "\n"


def _node_lines(node: dict[str, Any], prefix: str, why: dict[str, str], indent: str) -> list[str]:
    lines = []
    for key, value in node.items():
        full = f"{prefix}.{key}"
        if isinstance(value, dict):
            lines.append(f"{indent}{key}:")
            lines += _node_lines(value, full, why, indent + "  ")
            continue
        text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
        comment = f"  # {why[full]}" if full in why else ""
        lines.append(f"{indent}{key}: {text}{comment}")
    return lines
