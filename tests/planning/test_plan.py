"""seg-plan: a dataset's fingerprint read from its files, the recipe chosen from it (each
choice with its reason), the experiment file it writes, and a training of that experiment that
logs the plan."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from seg.data.pairs import Pair
from seg.data.preprocess import MaskPreprocess
from seg.planning.fingerprint import Fingerprint, fingerprint
from seg.planning.plan import plan
from tests.support.cli import run_cli, tracking_uri
from tests.support.data import circle_mask, image_from_mask, write_image

BASE = Fingerprint(
    pairs={"train": 400, "valid": 80},
    median_size=(128, 128),
    min_size=(128, 128),
    max_size=(128, 128),
    grey=False,
    intensity_mean=0.5,
    intensity_std=0.2,
    foreground=0.15,
    class_shares=(0.85, 0.15),
    empty_masks=0.0,
    objects_per_image=1.0,
    object_area=2400.0,
    object_share=2400 / 128**2,
    looks_inverted=False,
)


def _chosen(fp: Fingerprint, budget: float = 30.0, classes: int = 1) -> dict[str, object]:
    return {c.key: c.value for c in plan(fp, budget, classes)}


def test_a_plan_follows_the_fingerprint() -> None:
    chosen = _chosen(BASE)
    assert chosen["dataset.image_size"] == [128, 128] and chosen["dataset.channels"] == 3
    assert chosen["model.num_layers"] == 5  # 128 / 2**4 = an 8-pixel bottleneck
    assert chosen["loss"] == "bce_dice" and chosen["augmentation"] == "basic"
    assert chosen["trainer.time_budget"] == 30.0 and "dataset.mask.invert" not in chosen
    small = dataclasses.replace(BASE, foreground=0.01, class_shares=(0.99, 0.01))
    assert _chosen(small)["loss"] == "combo"  # a recall-weighted term for a 1 % foreground
    assert _chosen(BASE, classes=3)["loss"] == "cce_dice"
    few = dataclasses.replace(BASE, pairs={"train": 24}, grey=True)
    assert _chosen(few)["augmentation"] == "strong" and _chosen(few)["dataset.channels"] == 1
    assert _chosen(dataclasses.replace(BASE, looks_inverted=True))["dataset.mask.invert"] is True


def test_large_images_are_capped_unless_their_objects_would_vanish() -> None:
    big = dataclasses.replace(BASE, median_size=(1024, 768), object_area=40_000.0)
    assert _chosen(big)["dataset.image_size"] == [512, 384]
    assert _chosen(big, budget=10)["dataset.image_size"] == [256, 192]  # a short budget
    tiny_objects = dataclasses.replace(big, object_area=400.0)  # 25 px at 256: kept at 512
    assert _chosen(tiny_objects, budget=10)["dataset.image_size"] == [512, 384]
    assert _chosen(big)["trainer.batch_size"] == 2


def _write_dataset(root: Path, inverted: bool = False) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "valid", "test"):
        for i in range(6):
            mask = circle_mask(40, 48, (20 + i, 18), 6 + i)
            image = image_from_mask(mask, rng)
            write_image(root / split / "images" / f"c{i}.png", image)
            write_image(root / split / "masks" / f"c{i}.png", 255 - mask if inverted else mask)


def test_the_fingerprint_reads_sizes_foreground_objects_and_inverted_masks(
    tmp_path: Path,
) -> None:
    _write_dataset(tmp_path / "plain")
    _write_dataset(tmp_path / "inverted", inverted=True)
    for name, inverted in (("plain", False), ("inverted", True)):
        root = tmp_path / name
        pairs = [
            Pair(p, root / "train" / "masks" / p.name)
            for p in sorted((root / "train" / "images").glob("*.png"))
        ]
        fp = fingerprint({"train": pairs}, 0.5, 1, MaskPreprocess())
        assert fp.pairs == {"train": 6} and fp.median_size == (40, 48)
        assert fp.looks_inverted is inverted
        share = np.mean([circle_mask(40, 48, (20 + i, 18), 6 + i).mean() / 255 for i in range(6)])
        assert fp.foreground == pytest.approx(1 - share if inverted else share, abs=1e-6)
        assert fp.objects_per_image == 1.0
    read_inverted = fingerprint(
        {"train": pairs}, 0.5, 1, MaskPreprocess(invert=True)
    )  # read as the plan says: the foreground is small again
    assert not read_inverted.looks_inverted


@pytest.mark.slow
def test_seg_plan_writes_an_experiment_that_seg_train_trains_and_logs(tmp_path: Path) -> None:
    root = tmp_path / "cells"
    _write_dataset(root, inverted=True)
    conf = tmp_path / "conf"
    args = [
        f"dataset.root={root}",
        "dataset.name=cells",
        f"conf_dir={conf}",
        "budget=5",
        "dataset.mask_threshold=0.4",  # a reading of the masks: carried into the experiment
    ]
    proc = run_cli("seg-plan", *args, cwd=tmp_path)
    assert "masks look inverted" in proc.stdout and "dataset.mask.invert=True" in proc.stdout
    written = conf / "experiment" / "cells.yaml"
    text = written.read_text()
    assert "invert: true  # the masks' foreground covers most pixels" in text
    assert yaml.safe_load(text)["plan"]["fingerprint"]["looks_inverted"] is True
    assert "mask_threshold: 0.4  # as given to seg-plan" in text
    again = run_cli("seg-plan", *args, cwd=tmp_path, check=False, full_error=False)
    assert again.returncode == 2 and "overwrite=true" in again.stderr  # kept, not replaced
    assert written.read_text() == text

    run_cli("seg-train", "--config-dir", str(conf), "experiment=cells", "debug=fast", cwd=tmp_path)
    client = MlflowClient(tracking_uri(tmp_path))
    (run,) = client.search_runs([client.get_experiment_by_name("cells").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["seg.plan"] == "cells"
    assert run.data.params["dataset.mask.invert"] == "True"
    assert run.data.params["dataset.mask_threshold"] == "0.4"
    assert not any(k.startswith("plan.") for k in run.data.params)  # a record, not params
    logged = yaml.safe_load(
        Path(client.download_artifacts(run.info.run_id, "plan.yaml")).read_text()
    )
    assert logged["choices"]["dataset.mask.invert"]["value"] is True
