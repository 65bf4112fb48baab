"""``--help`` of each entry point: what the command does, its groups with their options (the
project's own in ./conf too), five examples, the docs; no internal schema/* groups, no
"powered by Hydra"."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.cli import BIN, cli_env


@pytest.mark.parametrize("command", ["seg-train", "seg-eval", "seg-infer", "seg-plan"])
def test_help_says_what_the_command_does_and_how(tmp_path: Path, command: str) -> None:
    (tmp_path / "conf" / "dataset").mkdir(parents=True)
    (tmp_path / "conf" / "dataset" / "mine.yaml").write_text("defaults: [folder]\n")
    done = subprocess.run(
        [str(BIN / command), "--help"],
        cwd=tmp_path,
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.startswith(f"{command}: ")
    assert "dataset         demo, folder, mine" in text  # the project's own option
    assert sum(line.startswith(f"  {command}") for line in text.splitlines()) == 5
    assert "docs/index.md" in text and f"{command} -sc install=bash" in text
    assert "schema/" not in text and "powered by Hydra" not in text
    assert max(len(line) for line in text.splitlines()) <= 100
