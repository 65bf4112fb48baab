"""``seg init``: a project folder of one's own whose configs compose with seg's (Hydra's
search path: conf/ where the command runs), trained with the real CLIs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from seg import __version__
from tests.support.cli import BIN, cli_env, run_cli, tracking_uri
from tests.support.data import circle_mask, image_from_mask, write_image


def _seg(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "seg"), *args], cwd=cwd, env=cli_env(cwd), capture_output=True, text=True
    )


def test_seg_says_its_version_and_a_bad_project_name_is_one_line(tmp_path: Path) -> None:
    done = _seg("--version", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == f"seg {__version__}"
    bad = _seg("init", "two words", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "give one with --dataset NAME" in bad.stderr and not (tmp_path / "two words").exists()


@pytest.mark.slow
def test_a_new_project_trains_its_example_and_plans_its_own_data(tmp_path: Path) -> None:
    project = tmp_path / "cervix"
    done = _seg("init", str(project), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (project / "conf/dataset/cervix.yaml").is_file()
    assert "mlflow.db" in (project / ".gitignore").read_text()
    assert _seg("init", str(project), cwd=tmp_path).stdout.count("kept") == 4  # nothing lost

    run_cli("seg-train", "experiment=example", "debug=fast", cwd=project)  # seg's demo data
    client = MlflowClient(tracking_uri(project))
    (run,) = client.search_runs([client.get_experiment_by_name("example").experiment_id])
    assert run.info.status == "FINISHED"

    rng = np.random.default_rng(0)  # the project's own data, where its dataset config says
    for split in ("train", "valid", "test"):
        for i in range(4):
            mask = circle_mask(32, 32, (12 + i, 16), 6)
            write_image(
                project / f"data/cervix/{split}/images/c{i}.png", image_from_mask(mask, rng)
            )
            write_image(project / f"data/cervix/{split}/masks/c{i}.png", mask)
    run_cli("seg-plan", "dataset=cervix", cwd=project)
    assert (project / "conf/experiment/cervix.yaml").is_file()
    run_cli("seg-train", "experiment=cervix", "debug=fast", cwd=project)
    (run,) = client.search_runs([client.get_experiment_by_name("cervix").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["seg.plan"] == "cervix"
