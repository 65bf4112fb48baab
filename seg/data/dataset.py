"""A configured dataset: where its files are (generating the demo if needed), its splits, and
how its files become tensors."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from seg.data.demo import DemoSpec, ensure_demo_dataset
from seg.data.pairs import Pair, find_pairs, split_pairs
from seg.data.preprocess import ImagePreprocess, MaskPreprocess
from seg.errors import DatasetError
from seg.files import folder_problem

if TYPE_CHECKING:
    from seg.data.pipeline import Preprocessing


def dataset_root(data: DictConfig) -> Path:
    """Absolute root of the dataset; the embedded demo is generated on first use."""
    root = Path(data.root).expanduser().resolve()
    if data.synthetic is not None:
        if problem := folder_problem(root, "dataset.root"):  # generated here on first use
            raise DatasetError(problem)
        s = data.synthetic
        spec = DemoSpec(
            image_size=s.image_size,
            num_train=s.num_train,
            num_valid=s.num_valid,
            num_test=s.num_test,
            target=str(getattr(s.target, "value", s.target)),
            seed=s.seed,
        )
        return ensure_demo_dataset(root, spec)
    if not root.is_dir():
        found = "is a file, not a folder" if root.exists() else "folder not found"
        raise DatasetError(
            f"dataset.root={data.root}: {found}; it must hold "
            f"{{{data.splits.train},{data.splits.valid},{data.splits.test}}}/"
            f"{{{data.images_dir},{data.masks_dir}}}"
        )
    return root


def load_split(data: DictConfig, split: str, root: Path | None = None) -> list[Pair]:
    """Pairs of a split named by its key in dataset.splits (train/valid/test) or its folder."""
    folder = data.splits.get(split, split)
    pairs = split_pairs(root or dataset_root(data), folder, data.images_dir, data.masks_dir)
    return pairs[: data.limit] if data.limit else pairs


def folder_pairs(folder: Path, data: DictConfig) -> list[Pair]:
    """Pairs of a folder holding images/ and masks/ (seg-eval data_dir=...)."""
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise DatasetError(
            f"data_dir={folder}: folder not found; name a folder holding "
            f"{data.images_dir}/ and {data.masks_dir}/"
        )
    return find_pairs(folder / data.images_dir, folder / data.masks_dir)


def _container(node: DictConfig | None) -> dict | None:
    if node is None:
        return None
    return OmegaConf.to_container(node, resolve=True, enum_to_str=True)


def image_preprocess(data: DictConfig) -> ImagePreprocess:
    """``dataset.preprocess`` as the spec seg.data.io applies (all off when absent)."""
    return ImagePreprocess.from_dict(_container(data.get("preprocess")))


def mask_preprocess(data: DictConfig) -> MaskPreprocess:
    """``dataset.mask`` as the spec seg.data.io applies (defaults when absent)."""
    return MaskPreprocess.from_dict(_container(data.get("mask")))


def preprocessing_from_config(data: DictConfig) -> Preprocessing:
    """The configured :class:`seg.data.pipeline.Preprocessing` (what training uses and saves)."""
    from seg.data.pipeline import Preprocessing  # tf.data: imported only when needed

    return Preprocessing(
        size=(int(data.image_size[0]), int(data.image_size[1])),
        channels=int(data.channels),
        num_classes=int(data.num_classes),
        mask_threshold=float(data.mask_threshold),
        image=image_preprocess(data),
        mask=mask_preprocess(data),
    )
