"""Property tests of config overrides, with Hypothesis: Hydra's compose API in-process on the
project's conf/ and ConfigStore schemas, then seg.config.validation.validate, as seg-train does.

Random VALID values of typed fields (ints and floats in range, enums, bools, lists, group
choices) compose, validate and land in the config; INVALID ones (out of range, non-finite,
wrong type, unknown key, unknown enum member, unknown group choice) fail with an error naming
the key. The valid/invalid ranges below are those seg/config.py documents and checks.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

import pytest
from hydra.errors import ConfigCompositionException
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from seg.config.augmentation import FillMode
from seg.config.dataset import Binarization, CacheMode, ColorSpace, Normalization, UnknownColors
from seg.config.inference import ThresholdMethod, TileBlending, Tiling
from seg.config.loss import loss_options
from seg.config.model import MODEL_SCHEMAS
from seg.config.run import Direction
from seg.config.trainer import MixedDtype, Optimizer
from seg.config.validation import validate
from seg.errors import ConfigError
from tests.support.compose import compose_run, group_options
from tests.support.properties import examples

BINARY_LOSSES, CATEGORICAL_LOSSES = loss_options()["binary"], loss_options()["categorical"]

# --------------------------------------------------------------------------- value strategies


def ints(low: int, high: int) -> st.SearchStrategy[int]:
    return st.sampled_from([low, high]) | st.integers(low, high)


def floats(
    low: float, high: float, *, open_low: bool = False, open_high: bool = False
) -> st.SearchStrategy[float]:
    bounds = [v for v, is_open in ((low, open_low), (high, open_high)) if not is_open]
    drawn = st.floats(low, high, exclude_min=open_low, exclude_max=open_high, allow_subnormal=False)
    return (st.sampled_from(bounds) | drawn) if bounds else drawn


def enum(kind: type[Enum]) -> st.SearchStrategy[str]:
    return st.sampled_from([m.value for m in kind])


def pair(values: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return st.tuples(values, values).map(sorted)


BOOLS = st.booleans()
BIG = 10**6
BELOW_ONE = st.integers(-BIG, 0)
NEGATIVE = st.integers(-BIG, -1)
NEGATIVE_FLOAT = st.floats(-1e6, 0.0, exclude_max=True)
NOT_POSITIVE = st.floats(-1e6, 0.0)
ABOVE_ONE = st.floats(1.0, 1e6, exclude_min=True)


def optional(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | values


@dataclass(frozen=True)
class Field:
    """A typed config field: what is valid, and what validate() must refuse (out of range)."""

    key: str
    kind: str  # int | float | bool | enum | list | choice (a string of a few words)
    valid: st.SearchStrategy[Any]
    invalid: st.SearchStrategy[Any] | None = None
    members: frozenset[str] = frozenset()  # of an enum


def enum_field(key: str, kind: type[Enum]) -> Field:
    return Field(key, "enum", enum(kind), members=frozenset(m.value for m in kind))


def probability(key: str) -> Field:
    return Field(key, "float", floats(0, 1), NEGATIVE_FLOAT | ABOVE_ONE)


def interval_field(key: str, low: float, high: float) -> Field:
    """[lo, hi] within [low, high]; refused: reversed, out of bounds, not two values."""
    inside = floats(low, high)
    reversed_ = st.tuples(inside, inside).filter(lambda t: t[0] > t[1]).map(list)
    outside = st.tuples(st.floats(low - 1e3, low, exclude_max=True), inside).map(list)
    return Field(
        key,
        "list",
        pair(inside),
        reversed_
        | outside
        | st.lists(inside, min_size=0, max_size=1)
        | st.lists(inside, min_size=3, max_size=4),
    )


RESERVED = {"true", "false", "yes", "no", "on", "off", "y", "n", "null", "none"}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


WORDS = st.from_regex(r"[a-z][a-z_]{0,9}", fullmatch=True).filter(
    lambda w: w not in RESERVED and not _is_number(w)
)


AUG = "augmentation"
FIELDS = [
    Field("seed", "int", ints(0, 2**32 - 1), NEGATIVE | st.integers(2**32, 2**40)),
    Field("trainer.epochs", "int", ints(1, BIG), BELOW_ONE),
    Field("trainer.batch_size", "int", ints(1, 4096), BELOW_ONE),
    Field("trainer.learning_rate", "float", floats(0, 10, open_low=True), NOT_POSITIVE),
    enum_field("trainer.optimizer", Optimizer),
    Field("trainer.steps_per_epoch", "int", optional(ints(1, BIG)), BELOW_ONE),
    Field("trainer.validation_steps", "int", optional(ints(1, BIG)), BELOW_ONE),
    Field("trainer.threads", "int", optional(ints(1, 256)), BELOW_ONE),
    Field("trainer.deterministic", "bool", BOOLS),
    Field(
        "trainer.mixed_precision",
        "choice",
        st.sampled_from(["auto", "true", "false"]) | BOOLS,
        WORDS.filter(lambda w: w not in ("auto", "true", "false")),
    ),
    enum_field("trainer.mixed_precision_dtype", MixedDtype),
    Field("trainer.weight_decay", "float", floats(0, 10), NEGATIVE_FLOAT),
    Field(
        "trainer.momentum",
        "float",
        floats(0, 1, open_high=True),
        NEGATIVE_FLOAT | st.floats(1.0, 1e6),
    ),
    Field("trainer.clipvalue", "float", optional(floats(0, 100, open_low=True)), NOT_POSITIVE),
    Field("trainer.clipnorm", "float", optional(floats(0, 100, open_low=True)), NOT_POSITIVE),
    Field("callbacks.early_stopping.patience", "int", ints(0, BIG), NEGATIVE),
    Field("callbacks.early_stopping.min_delta", "float", floats(0, 10), NEGATIVE_FLOAT),
    Field(
        "callbacks.reduce_lr.factor",
        "float",
        floats(0, 1, open_low=True, open_high=True),
        NOT_POSITIVE | st.floats(1.0, 1e6),
    ),
    Field("callbacks.reduce_lr.patience", "int", ints(0, BIG), NEGATIVE),
    Field("callbacks.reduce_lr.min_lr", "float", floats(0, 1), NEGATIVE_FLOAT),
    Field(
        "dataset.image_size",
        "list",
        st.lists(ints(1, 4096), min_size=2, max_size=2),
        st.lists(ints(1, 64), min_size=2, max_size=2).map(lambda s: [s[0], 0])
        | st.lists(ints(1, 64), min_size=1, max_size=1)
        | st.lists(ints(1, 64), min_size=3, max_size=3)
        | st.tuples(NEGATIVE, ints(1, 64)).map(list),
    ),
    Field(
        "dataset.channels",
        "int",
        st.sampled_from([1, 3]),
        st.integers(-BIG, BIG).filter(lambda c: c not in (1, 3)),
    ),
    Field(
        "dataset.mask_threshold",
        "float",
        floats(0, 1, open_high=True),
        NEGATIVE_FLOAT | st.floats(1.0, 1e6),
    ),
    Field("dataset.shuffle_buffer", "int", ints(1, BIG), BELOW_ONE),
    Field("dataset.limit", "int", optional(ints(1, BIG)), BELOW_ONE),
    enum_field("dataset.cache", CacheMode),
    Field("dataset.verify", "bool", BOOLS),
    Field("dataset.preprocess.invert", "bool", BOOLS),
    Field("dataset.preprocess.gamma", "float", floats(0, 20, open_low=True), NOT_POSITIVE),
    Field("dataset.preprocess.contrast", "float", floats(0, 20, open_low=True), NOT_POSITIVE),
    Field("dataset.preprocess.sharpen", "float", floats(0, 10), NEGATIVE_FLOAT),
    Field("dataset.preprocess.sharpen_sigma", "float", floats(0, 20, open_low=True), NOT_POSITIVE),
    Field("dataset.preprocess.clahe.clip_limit", "float", floats(0, 40), NEGATIVE_FLOAT),
    enum_field("dataset.preprocess.color", ColorSpace),
    enum_field("dataset.preprocess.normalize", Normalization),
    enum_field("dataset.mask.binarize", Binarization),
    enum_field("dataset.mask.unknown_colors", UnknownColors),
    Field(
        "dataset.mask.blur",
        "int",
        st.just(0) | st.integers(1, 50).map(lambda k: 2 * k + 1),
        st.integers(-BIG, BIG).filter(lambda k: k != 0 and (k < 3 or k % 2 == 0)),
    ),
    enum_field(f"{AUG}.fill.mode", FillMode),
    Field(f"{AUG}.fill.value", "float", floats(0, 1), NEGATIVE_FLOAT | ABOVE_ONE),
    Field(f"{AUG}.preview", "int", ints(0, 64), NEGATIVE),
    *(probability(f"{AUG}.{op}.p") for op in ("hflip", "rotation", "elastic", "noise")),
    Field(
        f"{AUG}.rotation.range",
        "float",
        floats(0, 180),
        NEGATIVE_FLOAT | st.floats(180, 1e6, exclude_min=True),
    ),
    Field(
        f"{AUG}.zoom.min_scale",
        "float",
        floats(0, 1.1, open_low=True),  # max_scale 1.1
        NOT_POSITIVE | st.floats(1.1, 1e6, exclude_min=True),
    ),
    Field(
        f"{AUG}.shear.range",
        "float",
        floats(0, 45),
        NEGATIVE_FLOAT | st.floats(45, 1e6, exclude_min=True),
    ),
    Field(f"{AUG}.translation.range", "float", floats(0, 1), NEGATIVE_FLOAT | ABOVE_ONE),
    Field(f"{AUG}.elastic.alpha", "float", floats(0, 1e4), NEGATIVE_FLOAT),
    Field(f"{AUG}.elastic.sigma", "float", floats(0, 100, open_low=True), NOT_POSITIVE),
    Field(f"{AUG}.smooth_distortion.grid", "int", ints(2, 64), st.integers(-BIG, 1)),
    Field(
        f"{AUG}.smooth_distortion.magnitude",
        "float",
        floats(0, 0.5),
        NEGATIVE_FLOAT | st.floats(0.5, 1e6, exclude_min=True),
    ),
    Field(f"{AUG}.barrel.radius", "float", floats(0, 5, open_low=True), NOT_POSITIVE),
    Field(
        f"{AUG}.hue.range",
        "float",
        floats(0, 0.5),
        NEGATIVE_FLOAT | st.floats(0.5, 1e6, exclude_min=True),
    ),
    Field(
        f"{AUG}.barrel.centres",
        "list",
        st.lists(st.tuples(ints(0, 1), floats(0, 1)).map(list), max_size=3),
        st.lists(
            st.tuples(ints(0, 1), st.floats(1, 1e3, exclude_min=True)).map(list),
            min_size=1,
            max_size=2,
        )
        | st.lists(st.lists(ints(0, 1), min_size=3, max_size=3), min_size=1, max_size=2),
    ),
    interval_field(f"{AUG}.gamma.gamma", 0.05, 20),
    interval_field(f"{AUG}.blur.sigma", 0, 10),
    interval_field(f"{AUG}.noise.std", 0, 1),
    interval_field(f"{AUG}.pincushion.amount", 0, 0.99),
    Field(
        "inference.threshold",
        "float",
        floats(0, 1, open_low=True, open_high=True),
        NOT_POSITIVE | st.floats(1.0, 1e6),
    ),
    Field("inference.batch_size", "int", ints(1, 1024), BELOW_ONE),
    enum_field("inference.tiling", Tiling),
    enum_field("inference.tile_blending", TileBlending),
    Field(
        "inference.tile_overlap",
        "float",
        floats(0, 1, open_high=True),
        NEGATIVE_FLOAT | st.floats(1.0, 1e6),
    ),
    Field("inference.tile_sigma", "float", floats(0, 10, open_low=True), NOT_POSITIVE),
    Field("inference.pad_multiple", "int", ints(1, 1024), BELOW_ONE),
    Field("inference.overlay_alpha", "float", floats(0, 1), NEGATIVE_FLOAT | ABOVE_ONE),
    Field(
        "inference.overlay_color",
        "list",
        st.lists(ints(0, 255), min_size=3, max_size=3),
        st.tuples(ints(0, 255), ints(0, 255), st.integers(256, BIG) | NEGATIVE).map(list)
        | st.lists(ints(0, 255), min_size=2, max_size=2),
    ),
    enum_field("inference.postprocess.method", ThresholdMethod),
    Field("inference.postprocess.blur_sigma", "float", floats(0, 50), NEGATIVE_FLOAT),
    Field("inference.postprocess.min_size", "int", ints(0, BIG), NEGATIVE),
    Field("inference.postprocess.open_radius", "int", ints(0, 64), NEGATIVE),
    Field("inference.postprocess.fill_holes", "bool", BOOLS),
    enum_field("optimized_direction", Direction),
    Field("callbacks.curves", "bool", BOOLS),
    Field("mlflow.log_model", "bool", BOOLS),
]
BY_KEY = {f.key: f for f in FIELDS}
RANGED = [f for f in FIELDS if f.invalid is not None]
FLOATS = [f for f in FIELDS if f.kind == "float"]
# Valid alone, but not together: grey input cannot carry a colour conversion to 3 channels.
# (imagenet normalisation needs RGB or grey).
CONFLICTS = {
    frozenset({"dataset.channels", "dataset.preprocess.color"}),
    frozenset({"dataset.channels", "dataset.preprocess.normalize"}),
    frozenset({"dataset.preprocess.color", "dataset.preprocess.normalize"}),
}


def render(value: Any) -> str:
    """A value as Hydra's override grammar reads it back (repr keeps floats exact)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return "[" + ",".join(render(v) for v in value) + "]"
    return repr(value) if isinstance(value, float) else str(value)


def landed(cfg: Any, key: str) -> Any:
    value = OmegaConf.select(cfg, key)
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, enum_to_str=True)
    return value.value if isinstance(value, Enum) else value


def _full_error(err: BaseException) -> str:
    """An exception's message with its causes (Hydra wraps OmegaConf's full_key message)."""
    parts: list[str] = []
    while err is not None and len(parts) < 10:
        parts.append(str(err))
        err = err.__cause__ or err.__context__
    return "\n".join(parts)


# --------------------------------------------------------------------------- valid values


@st.composite
def valid_overrides(draw: st.DrawFn) -> dict[str, Any]:
    fields = draw(
        st.lists(st.sampled_from(FIELDS), min_size=1, max_size=4, unique_by=lambda f: f.key)
    )
    keys = {f.key for f in fields}
    assume(not any(c <= keys for c in CONFLICTS))
    return {f.key: draw(f.valid, label=f.key) for f in fields}


@settings(max_examples=examples(10))
@given(values=valid_overrides())
def test_valid_values_compose_validate_and_land(values: dict[str, Any]) -> None:
    cfg = compose_run("train", [f"{k}={render(v)}" for k, v in values.items()])
    validate(cfg)
    for key, value in values.items():
        assert landed(cfg, key) == value, key


@settings(max_examples=examples(5))
@given(
    model=st.sampled_from(group_options("model")),
    classes=st.sampled_from([1, 2, 5]),
    data=st.data(),
    augmentation=st.sampled_from(group_options("augmentation")),
    debug=st.booleans(),
)
def test_group_choice_combinations_compose_and_validate(
    model: str, classes: int, data: st.DataObject, augmentation: str, debug: bool
) -> None:
    losses = BINARY_LOSSES if classes == 1 else CATEGORICAL_LOSSES
    loss = data.draw(st.sampled_from(losses), label="loss")
    overrides = [
        f"model={model}",
        f"loss={loss}",
        f"augmentation={augmentation}",
        f"dataset.num_classes={classes}",
    ]
    cfg = compose_run("train", overrides + (["debug=fast"] if debug else []))
    validate(cfg)
    assert cfg.loss.name == loss and cfg.augmentation.name == augmentation
    assert OmegaConf.get_type(cfg.model) is MODEL_SCHEMAS[model]


# --------------------------------------------------------------------------- invalid values


@settings(max_examples=examples(12))
@given(data=st.data(), field=st.sampled_from(RANGED))
def test_out_of_range_values_are_refused_naming_the_key(data: st.DataObject, field: Field) -> None:
    value = data.draw(field.invalid, label=field.key)
    cfg = compose_run("train", [f"{field.key}={render(value)}"])
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    # the key, or the element of a list it holds (augmentation.barrel.centres[0])
    assert re.match(rf"{re.escape(field.key)}(\[\d+\])*:", str(info.value)), str(info.value)


@settings(max_examples=examples(6))
@given(field=st.sampled_from(FLOATS), value=st.sampled_from([math.inf, -math.inf, math.nan]))
def test_non_finite_floats_are_refused_naming_the_key(field: Field, value: float) -> None:
    """inf passes a "> 0" check and NaN fails every comparison silently (NaN <= x is False
    but so is NaN > x): neither may reach a run."""
    cfg = compose_run("train", [f"{field.key}={render(value)}"])
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    assert str(info.value).startswith(f"{field.key}:"), str(info.value)


def wrong_values(field: Field) -> st.SearchStrategy[str]:
    """Override text of the wrong type for ``field``: a word (for an enum: not a member), a
    fraction for an int, a list for a scalar and a scalar for a list."""
    if field.kind == "enum":
        return WORDS.filter(lambda w: w not in field.members)
    if field.kind == "list":
        return WORDS | st.integers(-9, 9).map(str)
    if field.kind == "choice":  # a string: any word composes, validate() refuses it
        return st.lists(st.integers(0, 9), min_size=1, max_size=2).map(render)
    texts = WORDS | st.lists(st.integers(0, 9), min_size=1, max_size=2).map(render)
    if field.kind == "int":
        texts |= st.floats(-1e3, 1e3).filter(lambda f: not f.is_integer()).map(repr)
    return texts


@settings(max_examples=examples(10))
@given(data=st.data(), field=st.sampled_from(FIELDS))
def test_wrong_types_and_unknown_enum_members_fail_at_composition_naming_the_key(
    data: st.DataObject, field: Field
) -> None:
    text = data.draw(wrong_values(field), label=field.key)
    with pytest.raises(ConfigCompositionException) as info:
        compose_run("train", [f"{field.key}={text}"])
    assert f"full_key: {field.key}" in _full_error(info.value), _full_error(info.value)


STRUCT_NODES = [
    "trainer",
    "dataset",
    "dataset.preprocess",
    "dataset.mask",
    "model",
    "loss",
    "augmentation",
    "augmentation.zoom",
    "callbacks.early_stopping",
    "inference",
    "inference.postprocess",
    "mlflow",
    "",
]


@functools.cache
def _default_train_config() -> Any:
    return compose_run("train", [])


@settings(max_examples=examples(6))
@given(node=st.sampled_from(STRUCT_NODES), name=WORDS)
def test_unknown_keys_fail_at_composition_naming_the_key(node: str, name: str) -> None:
    default = _default_train_config()
    assume(name not in (OmegaConf.select(default, node) if node else default))
    key = f"{node}.{name}" if node else name
    with pytest.raises(ConfigCompositionException) as info:
        compose_run("train", [f"{key}=1"])
    assert key in _full_error(info.value), _full_error(info.value)


@settings(max_examples=examples(6))
@given(
    group=st.sampled_from(
        [
            "debug",
            "experiment",
            "hparams_search",
            "model",
            "loss",
            "augmentation",
            "dataset",
            "trainer",
            "callbacks",
            "inference",
        ]
    ),
    name=WORDS,
)
def test_unknown_group_choices_fail_naming_the_group(group: str, name: str) -> None:
    assume(name not in group_options(group))
    with pytest.raises(ConfigCompositionException) as info:
        compose_run("train", [f"{group}={name}"])
    message = _full_error(info.value)
    assert f"Could not find '{group}/{name}'" in message
    assert f"Available options in '{group}'" in message
