"""Checking the files a run reads before the run opens, all problems reported at once.

Every file is decoded once (threads: OpenCV releases the GIL) and only a few numbers per file
are kept, so memory stays flat however large the dataset. A pair is checked as the pipeline
will read it (:func:`seg.data.io.mask_file_labels`): both files decode, the mask has its
image's height and width, and its values are what the config says (colours of
``dataset.mask.colors``, class indices below ``dataset.num_classes``).

Across a split: masks that are all background, or (binary) all foreground, in every file
of the *train* split are an error, since nothing can be learnt from them and they mostly mean
the masks are read wrongly (threshold, 0/1 vs 0/255, inverted masks). In a valid or test
split they are only a warning (a test set of healthy cases is legitimate).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from seg.data.conventions import convention, unread_foreground
from seg.data.io import mask_raw_labels, read_oriented, read_raw
from seg.data.pairs import Pair
from seg.data.preprocess import MaskPreprocess
from seg.errors import DatasetError, SegError
from seg.machine import cpu_count

log = logging.getLogger(__name__)

_SHOWN = 8  # problems listed in the error before "... and N more"
T = TypeVar("T")


@dataclass(frozen=True)
class MaskReading:
    """How masks become labels: what the config says (dataset.mask_threshold, .num_classes,
    .mask)."""

    threshold: float
    num_classes: int = 1
    spec: MaskPreprocess = field(default_factory=MaskPreprocess)


@dataclass(frozen=True)
class PairFacts:
    """What checking one pair found: its problems, and for a readable mask the fraction of its
    pixels that are foreground (not class 0), the count of pixels of each class, the binary
    mask's convention (``0/1``, ``0/255``; seg.data.conventions) and how many of the pair's
    files a viewer turns (EXIF orientation)."""

    problems: tuple[str, ...] = ()
    foreground: float | None = None
    class_pixels: tuple[int, ...] = ()
    convention: str | None = None
    turned: int = 0


@dataclass
class Problems:
    """User errors collected so that one message lists them all; warnings are logged."""

    errors: list[str] = field(default_factory=list)

    def attempt(self, action: Callable[[], T]) -> T | None:
        """The action's result, or None with its user error recorded."""
        try:
            return action()
        except SegError as err:
            self.errors.append(str(err))
            return None

    def raise_if_any(self) -> None:
        """One DatasetError, one line: the problems, then how many more there are."""
        if not self.errors:
            return
        if len(self.errors) == 1:
            raise DatasetError(self.errors[0])
        shown = "; ".join(self.errors[:_SHOWN])
        more = len(self.errors) - _SHOWN
        raise DatasetError(
            f"{len(self.errors)} problems in the input files (nothing was started): {shown}"
            + (f"; ... and {more} more" if more > 0 else "")
        )


def _in_threads(function: Callable[[T], object], items: Iterable[T]) -> list:
    with ThreadPoolExecutor(max_workers=min(8, cpu_count())) as pool:
        return list(pool.map(function, items))


def image_problem(path: Path) -> str | None:
    """Why an image file cannot be read (None: it decodes)."""
    try:
        read_raw(path)
    except DatasetError as err:
        return str(err)
    return None


def inspect_pair(pair: Pair, reading: MaskReading) -> PairFacts:
    """Decode the image and the mask once; the pair's problems and its mask's label counts."""
    problems = []
    turned = 0
    try:
        image, orientation = read_oriented(pair.image)
        image_size, turned = image.shape[:2], int(orientation != 1)
    except DatasetError as err:
        problems.append(str(err))
        image_size = None
    spec = reading.spec
    try:
        raw, orientation = read_oriented(pair.mask, palette_indices=not spec.colors)
        labels = mask_raw_labels(raw, pair.mask, reading.threshold, reading.num_classes, spec)
    except DatasetError as err:
        return PairFacts((*problems, str(err)))
    turned += int(orientation != 1)
    if image_size is not None and labels.shape[:2] != image_size:
        problems.append(
            f"{pair.mask}: mask is {labels.shape[1]}x{labels.shape[0]} px but its image "
            f"{pair.image.name} is {image_size[1]}x{image_size[0]} (width x height): a mask "
            "must have its image's size; resize or replace it"
        )
    binary_grey = reading.num_classes == 1 and not spec.colors
    if binary_grey and (lost := unread_foreground(raw, labels, reading.threshold, spec, pair.mask)):
        problems.append(lost)
    counts = np.bincount(
        labels.ravel().astype(np.int64, copy=False), minlength=max(2, reading.num_classes)
    )
    foreground = 1.0 - counts[0] / max(1, labels.size)
    return PairFacts(
        tuple(problems),
        float(foreground),
        tuple(int(c) for c in counts),
        convention(raw) if binary_grey else None,
        turned,
    )


def check_images(files: list[Path], problems: Problems) -> None:
    """Every image decodes (seg-infer input=)."""
    problems.errors.extend(p for p in _in_threads(image_problem, files) if p)


def check_pairs(
    pairs: list[Pair], reading: MaskReading, split: str, problems: Problems, *, train: bool = False
) -> None:
    """Every pair of a split (named ``split`` in messages) as :func:`inspect_pair` checks it,
    then its masks as a whole; ``train``: degenerate masks are an error, not a warning."""
    facts: list[PairFacts] = _in_threads(lambda p: inspect_pair(p, reading), pairs)
    for fact in facts:
        problems.errors.extend(fact.problems)
    _say_readings(facts, split)
    read = [f for f in facts if f.foreground is not None]
    if not read or len(read) < len(facts):
        return  # unreadable masks are the problem to fix first
    _check_split_labels(read, reading, split, problems, train)


def _say_readings(facts: list[PairFacts], split: str) -> None:
    """One line each for readings applied that a user may not expect: files turned by their
    EXIF orientation, and binary masks of more than one convention (each read right)."""
    turned = sum(f.turned for f in facts)
    if turned:
        log.info(
            "%s: %d files carry an EXIF orientation and are read as a viewer shows them "
            "(turned), so that masks drawn on the displayed image fit",
            split,
            turned,
        )
    kinds = Counter(f.convention for f in facts if f.convention is not None)
    if len(kinds) > 1:
        shown = ", ".join(f"{n} hold {kind}" for kind, n in kinds.most_common())
        log.info(
            "%s: binary masks of %d conventions, each read as binary: %s", split, len(kinds), shown
        )


def _check_split_labels(
    facts: list[PairFacts], reading: MaskReading, split: str, problems: Problems, train: bool
) -> None:
    def degenerate(what: str, fix: str) -> None:
        message = f"{split}: {what} in all {len(facts)} masks: {fix}"
        if train:
            problems.errors.append(f"{message} (nothing can be learnt from such masks)")
        else:
            log.warning("%s", message)

    how = (
        "check dataset.mask_threshold and the mask format (0/1 or 0/255 grey, palette "
        "indices, or colours listed in dataset.mask.colors)"
    )
    if all(f.foreground == 0.0 for f in facts):
        degenerate("no foreground pixel", f"{how}; foreground must be non-zero")
    elif reading.num_classes == 1 and all(f.foreground == 1.0 for f in facts):
        degenerate(
            "every pixel is foreground",
            f"{how}; are the masks inverted (foreground must be the bright value)?",
        )
    elif reading.num_classes > 1 and train:
        pixels = np.sum([f.class_pixels[: reading.num_classes] for f in facts], axis=0)
        absent = [str(k) for k in range(1, reading.num_classes) if pixels[k] == 0]
        if absent:
            log.warning(
                "%s: class(es) %s never occur in its masks (dataset.num_classes=%d)",
                split,
                ", ".join(absent),
                reading.num_classes,
            )
