"""The pipeline every converter ends in: split by group, convert, write, augment, upscale.

A converter only lists its source as :class:`Item` s (one per source image, with the id of its
group and, for datasets with an official split, that split) whose ``samples`` callable does the
format-specific work lazily, one item at a time, so memory stays flat. :func:`write_dataset`
then, in this order:

1. checks ``--dst`` (:mod:`datasets_prep.destination`: an up-to-date output is left alone);
2. keeps given splits (official ones, a CSV's), refusing them if a group straddles two, and
   assigns whole groups to splits for the rest (seeded, :mod:`datasets_prep.splitting`);
3. converts each item and writes ``<dst>/<split>/{images,masks}/<stem>`` (resized if asked);
4. only then augments offline, in the splits asked (train by default): the copies of an image
   land in its split, so augmenting can never leak a test image into training;
5. upscales test pairs into ``<dst>/test_<size>/`` for demos of tiled inference.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from datasets_prep import destination
from datasets_prep.files import Source, load, load_mask, write
from datasets_prep.splitting import SPLITS, assign_splits, carve_valid, check_no_leaks
from datasets_prep.transforms import augment_offline, resize_pair, upscale_pair
from seg.errors import DatasetError

log = logging.getLogger("datasets_prep")


@dataclass(frozen=True)
class Sample:
    """One output pair: files to copy or decode, or pixels (OpenCV channel order)."""

    stem: str
    image: Source
    mask: Source


@dataclass(frozen=True)
class Item:
    """One source unit (an image and its annotations) of a dataset to convert."""

    name: str  # how errors name it: the source file or id
    group: str  # items of one group always share a split
    samples: Callable[[], Iterable[Sample]]  # the conversion, run when the item is written
    sources: tuple[Path, ...]  # the files it reads (fingerprinted to detect changes)
    split: str | None = None  # an official split, kept as is


@dataclass(frozen=True)
class Plan:
    """The shared options of every converter (datasets_prep.cli)."""

    seed: int = 0
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    valid_fraction: float | None = None  # carve valid out of train (grouped)
    size: tuple[int, int] | None = None  # (height, width) of every written pair
    augment: tuple[str, ...] = ()
    augment_splits: tuple[str, ...] = ("train",)
    upscale_test: int | None = None  # longer side of the upscaled test copies
    upscale_limit: int | None = None  # upscale only the first N test pairs
    overwrite: bool = False


@dataclass
class Report:
    dst: Path
    up_to_date: bool = False
    pairs: Counter = field(default_factory=Counter)  # split -> converted pairs
    augmented: Counter = field(default_factory=Counter)  # split -> added copies
    upscaled: int = 0

    def summary(self) -> str:
        if self.up_to_date:
            return f"{self.dst}: up to date (same command, settings and source), nothing written"
        splits = ", ".join(f"{s} {self.pairs[s]}" for s in SPLITS)
        text = f"{self.dst}: {sum(self.pairs.values())} pairs ({splits})"
        if self.augmented:
            text += f", +{sum(self.augmented.values())} augmented copies"
        if self.upscaled:
            text += f", {self.upscaled} upscaled test pairs"
        return text


def _splits(items: list[Item], plan: Plan) -> list[str]:
    """Each item's split, by group: given splits kept (refused if a group straddles them),
    the other groups assigned (items of a group with a given split join it), valid carved."""
    given = {it.group: it.split for it in items if it.split is not None}
    check_no_leaks(
        ((it.group, it.split) for it in items if it.split is not None), "the split leaks"
    )
    free = [it.group for it in items if it.group not in given]
    of_group = assign_splits(free, plan.fractions, plan.seed) if free else {}
    of_group.update(given)
    if plan.valid_fraction is not None:
        of_group = carve_valid(of_group, plan.valid_fraction, plan.seed)
    return [of_group[it.group] for it in items]


def _settings(command: str, options: dict[str, Any], plan: Plan, items: list[Item]) -> dict:
    plan_dict = {k: v for k, v in asdict(plan).items() if k != "overwrite"}
    settings = {
        "command": command,
        "options": options,
        "plan": plan_dict,
        "source": destination.fingerprint(f for it in items for f in it.sources),
    }
    return json.loads(json.dumps(settings, default=str))  # as it reads back from prep.json


def check_stem(stem: str, owner: str) -> None:
    """An output name (often taken from an annotation file) is one plain file name: it can
    neither leave its folder (a path separator) nor hide from seg's loader, which skips
    hidden files (a leading '.', as in '.' or '..')."""
    if not stem or stem.startswith(".") or any(c in stem for c in "/\\\0"):
        raise DatasetError(
            f"{owner}: output name {stem!r} is not a plain file name (it is empty, starts with "
            "'.' or holds a path separator); rename the source file"
        )


class _Writer:
    def __init__(self, dst: Path, plan: Plan) -> None:
        self.dst, self.plan = dst, plan
        self.report = Report(dst)
        self.owner: dict[str, str] = {}  # written stem -> item name

    def _put(self, folder: str, stem: str, image: Source, mask: Source, owner: str) -> None:
        check_stem(stem, owner)
        key = f"{folder}/{stem}"
        if key in self.owner:
            raise DatasetError(
                f"{owner}: output name {stem!r} is also produced by "
                f"{self.owner[key]}; file names must be unique"
            )
        self.owner[key] = owner
        write(image, self.dst / folder / "images", stem)
        write(mask, self.dst / folder / "masks", stem)

    def item(self, item: Item, split: str) -> None:
        plan = self.plan
        augment = bool(plan.augment) and split in plan.augment_splits
        for sample in item.samples():
            upscale = (
                split == "test"
                and plan.upscale_test is not None
                and (plan.upscale_limit is None or self.report.upscaled < plan.upscale_limit)
            )
            # Unchanged files are copied (sample.image/mask); pixels are decoded only if needed.
            image, mask = sample.image, sample.mask
            if plan.size or augment or upscale:
                image, mask = load(image), load_mask(mask)
                if image.shape[:2] != mask.shape[:2]:
                    raise DatasetError(
                        f"{item.name}: image {image.shape[1]}x{image.shape[0]} "
                        f"and mask {mask.shape[1]}x{mask.shape[0]} differ in size"
                    )
            if upscale:
                big = upscale_pair(image, mask, plan.upscale_test)
                self._put(f"test_{plan.upscale_test}", sample.stem, *big, item.name)
                self.report.upscaled += 1
            if plan.size:
                image, mask = resize_pair(image, mask, plan.size)
            else:
                image, mask = sample.image, sample.mask
            self._put(split, sample.stem, image, mask, item.name)
            self.report.pairs[split] += 1
            if augment:
                for name, aug_image, aug_mask in augment_offline(
                    load(image), load_mask(mask), plan.augment
                ):
                    self._put(split, f"{sample.stem}__{name}", aug_image, aug_mask, item.name)
                    self.report.augmented[split] += 1


def write_dataset(
    command: str, items: list[Item], src: Path, dst: Path, plan: Plan, options: dict[str, Any]
) -> Report:
    """Convert ``items`` into ``dst`` (see the module docstring); ``options`` are the
    converter's own settings, recorded so that a re-run with others is noticed."""
    dst = Path(dst).resolve()
    destination.check_apart(src, dst)
    if not items:
        raise DatasetError(f"--src {src}: nothing to convert")
    settings = _settings(command, options, plan, items)
    if destination.prepare(dst, settings, plan.overwrite):
        return Report(dst, up_to_date=True)
    splits = _splits(items, plan)
    writer = _Writer(dst, plan)
    order = sorted(range(len(items)), key=lambda i: items[i].name)
    for i in tqdm(order, desc=command, unit="image", dynamic_ncols=True):
        writer.item(items[i], splits[i])
    destination.finish(dst, settings)
    return writer.report
