"""Everything a run will read, checked before its MLflow run opens.

A single run checks here (seg.runner.run), after its config validated and before anything is logged
or written: :func:`check_files` lists every split the stages read and decodes each of its
files once (:mod:`seg.data.check`), and seg-infer's ``input=`` images; :func:`check_model`
applies the architecture's size rule to ``dataset.image_size`` (no layer built) or resolves and
loads ``checkpoint=`` (kept for the stages, so it is loaded once). A bad input thus fails in
seconds with one line naming the file or key, and leaves no FAILED run and no half-written
output behind; a bad file found at epoch 30 cannot happen. ``dataset.verify=false`` skips the
decoding (listing and pairing still run).

A sweep's job runs the same checks inside its run, so that it shows as a FAILED child.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from omegaconf import DictConfig

from seg.config.targets import locate
from seg.data.check import MaskReading, Problems, check_images, check_pairs, image_problem
from seg.data.dataset import dataset_root, folder_pairs, load_split, mask_preprocess
from seg.errors import ConfigError
from seg.files import folder_problem
from seg.inference.outputs import collect_inputs
from seg.inference.predictor import model_classes
from seg.runner.context import Context
from seg.tracking.store_file import store_file_problem

log = logging.getLogger(__name__)


def stage_names(cfg: DictConfig) -> list[str]:
    return [str(getattr(s, "value", s)) for s in cfg.stages]


def check_model_input(cfg: DictConfig) -> None:
    """The architecture takes dataset.image_size (multiples, minimum): ConfigError if not."""
    from seg.training.factory import check_model_input_shape  # TensorFlow: after the files

    data = cfg.dataset
    check_model_input_shape(
        cfg.model,
        (int(data.image_size[0]), int(data.image_size[1])),
        int(data.channels),
        int(data.num_classes),
    )


def _mask_reading(data: DictConfig) -> MaskReading:
    return MaskReading(float(data.mask_threshold), int(data.num_classes), mask_preprocess(data))


def _split_pairs(cfg: DictConfig, split: str, root: Path, problems: Problems) -> list | None:
    return problems.attempt(lambda: load_split(cfg.dataset, split, root))


def _check_dataset(cfg: DictConfig, stages: list[str], problems: Problems) -> None:
    """The splits the stages read: train and valid (train), the evaluated split or data_dir
    (evaluate), the test split's images (infer without input=)."""
    data = cfg.dataset
    verify = bool(data.verify)
    reading = _mask_reading(data)
    reads_splits = (
        "train" in stages
        or ("evaluate" in stages and not cfg.data_dir)
        or ("infer" in stages and not cfg.input)
    )
    root = problems.attempt(lambda: dataset_root(data)) if reads_splits else None
    if reads_splits and root is None:
        return
    checked: set[str] = set()
    to_check: list[tuple[str, str]] = []  # (split, role)
    if "train" in stages:
        to_check += [("train", "train"), ("valid", "valid")]
    if "evaluate" in stages and not cfg.data_dir:
        to_check.append((str(cfg.split), "evaluated"))
    for split, role in to_check:
        folder = str(data.splits.get(split, split))
        if folder in checked:
            continue
        checked.add(folder)
        pairs = _split_pairs(cfg, split, root, problems)
        if pairs is not None and verify:
            check_pairs(
                pairs, reading, f"{role} split {root / folder}", problems, train=role == "train"
            )
    if "evaluate" in stages and cfg.data_dir:
        pairs = problems.attempt(lambda: folder_pairs(Path(cfg.data_dir), data))
        if pairs is not None and verify:
            check_pairs(pairs, reading, f"data_dir={cfg.data_dir}", problems)
    if "infer" in stages and not cfg.input and str(data.splits.test) not in checked:
        pairs = _split_pairs(cfg, "test", root, problems)
        if pairs is not None and verify:
            check_images([p.image for p in pairs], problems)


def _check_inference_input(cfg: DictConfig, problems: Problems) -> None:
    """seg-infer input= (its images decode) and output= (a folder, or nothing yet)."""
    files = problems.attempt(lambda: collect_inputs(str(cfg.input)))
    if files is not None and cfg.dataset.verify:
        check_images(files, problems)
    if cfg.output and (problem := folder_problem(str(cfg.output), "output")):
        problems.errors.append(problem)


def _check_large_image(cfg: DictConfig, problems: Problems) -> None:
    masks = cfg.callbacks.get("epoch_masks") if cfg.get("callbacks") else None
    if masks is not None and masks.get("large_image"):
        path = Path(str(masks.large_image)).expanduser()
        problem = image_problem(path)
        if problem:
            problems.errors.append(
                f"callbacks.epoch_masks.large_image: {problem}; name an "
                "image file, or null for none"
            )


def check_files(cfg: DictConfig) -> None:
    """Check the files the configured stages will read (no TensorFlow needed); raise one
    DatasetError listing every problem."""
    stages = stage_names(cfg)
    started = time.perf_counter()
    problems = Problems()
    _check_dataset(cfg, stages, problems)
    if "train" in stages:
        _check_large_image(cfg, problems)
    if "infer" in stages and cfg.input:
        _check_inference_input(cfg, problems)
    problems.raise_if_any()
    log.info("input files checked in %.1f s", time.perf_counter() - started)


def check_outputs(cfg: DictConfig, output_dir: Path) -> None:
    """Every place the run writes can be written: its output folder, and the tracking store's
    file (a SQLite store: not corrupt, nor another program's database). Before any work, so
    that a bad place fails in a second with one line instead of after training."""
    problems = Problems()
    if problem := folder_problem(output_dir, "hydra.run.dir"):
        problems.errors.append(problem)
    if problem := store_file_problem(str(cfg.mlflow.tracking_uri)):
        problems.errors.append(problem)
    if problems.errors:
        raise ConfigError("; ".join(problems.errors))


def check_callbacks(cfg: DictConfig) -> None:
    """Every callbacks.extra target names a Keras callback class the allow-list admits."""
    import keras  # TensorFlow: after the files

    for name, spec in (cfg.callbacks.get("extra") or {}).items():
        key = f"callbacks.extra.{name}"
        found = locate(spec._target_, key)
        if not (isinstance(found, type) and issubclass(found, keras.callbacks.Callback)):
            raise ConfigError(
                f"{key}._target_={spec._target_}: not a keras.callbacks.Callback "
                "class; name a callback, e.g. keras.callbacks.CSVLogger"
            )


def check_model(ctx: Context) -> None:
    """The model to train takes dataset.image_size; a checkpoint= loads (kept in ``ctx`` for
    the stages, loaded once). After TensorFlow is configured (seg.runner.run)."""
    stages = stage_names(ctx.cfg)
    if "train" in stages:
        check_model_input(ctx.cfg)
        check_callbacks(ctx.cfg)
    else:
        _check_checkpoint(ctx, stages)


def _check_checkpoint(ctx: Context, stages: list[str]) -> None:
    """Resolve and load checkpoint= now (CheckpointError: missing file, unreadable model, no
    such run); evaluation needs a model of dataset.num_classes classes."""
    model = ctx.trained_or_loaded_model()
    if "evaluate" in stages:
        check_classes(ctx, model_classes(model))


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
