"""No code runs from data: an AST scan of seg/, datasets_prep/ and bench/ for eval/exec, pickle,
unsafe YAML, shell commands, model loads around seg.training.model_files and dynamic imports around
seg.training.factory's allow-list. The scanner itself is tested on snippets, so it can fail."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("seg", "datasets_prep", "bench")

# Calls (canonical dotted names, import aliases expanded) that run code or unpickle data.
FORBIDDEN = {
    "eval",
    "exec",
    "compile",
    "__import__",
    "builtins.eval",
    "builtins.exec",
    "builtins.compile",
    "builtins.__import__",
    "pickle.load",
    "pickle.loads",
    "pickle.Unpickler",
    "marshal.load",
    "marshal.loads",
    "shelve.open",
    "dill.load",
    "dill.loads",
    "cloudpickle.load",
    "cloudpickle.loads",
    "joblib.load",
    "torch.load",
    "yaml.unsafe_load",
    "yaml.unsafe_load_all",
    "yaml.full_load",
    "yaml.full_load_all",
    "os.system",
    "os.popen",
    "keras.config.enable_unsafe_deserialization",
    "hydra.utils.instantiate",
    "hydra.utils.call",
    "hydra.utils.get_object",
}
# Names that must not even be referenced (e.g. passed to OmegaConf.register_new_resolver).
FORBIDDEN_NAMES = {"eval", "exec", "compile", "__import__"}
# Allowed in one file only, with the reason.
RESTRICTED = {
    "importlib.import_module": {
        "seg/config/targets.py": "locate() imports a module only once it is on the allow-list",
    },
    "keras.saving.load_model": {
        "seg/training/model_files.py": "the one loader: safe_mode on unless trust_checkpoint",
    },
    "keras.models.load_model": {},
    "tensorflow.keras.models.load_model": {},
    "mlflow.keras.load_model": {},
    "mlflow.pyfunc.load_model": {},
    "mlflow.tensorflow.load_model": {},
    "tensorflow.saved_model.load": {
        "seg/runner/export.py": "reads back the SavedModel it just wrote, to check it",
    },
}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "yaml.SafeLoader", "yaml.CSafeLoader"}


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> what it imports: `import numpy as np` -> {"np": "numpy"}."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:  # `import a.b` binds a; `import a.b as c` binds c = a.b
                top = a.name.split(".")[0]
                names[a.asname or top] = a.name if a.asname else top
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def _is_false(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


def _is_true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def problems(source: str, path: str) -> Iterator[str]:
    """Every forbidden construct in ``source`` as 'path:line: what'."""
    tree = ast.parse(source, path)
    aliases = _aliases(tree)
    for node in ast.walk(tree):
        where = f"{path}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.ImportFrom) and node.module in ("pickle", "marshal", "shelve"):
            yield f"{where}: imports from {node.module}"
        if (
            isinstance(node, ast.Name)
            and isinstance(node.ctx, ast.Load)
            and node.id in FORBIDDEN_NAMES
            and node.id not in aliases
        ):
            yield f"{where}: uses {node.id}"
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func, aliases)
        keywords = {k.arg: k.value for k in node.keywords}
        if name in FORBIDDEN and name not in FORBIDDEN_NAMES:
            yield f"{where}: calls {name}"
        if name in RESTRICTED and path not in RESTRICTED[name]:
            yield f"{where}: calls {name} (allowed only in {', '.join(RESTRICTED[name])})"
        if name in ("yaml.load", "yaml.load_all"):
            loader = keywords.get("Loader", node.args[1] if len(node.args) > 1 else None)
            if loader is None or _dotted(loader, aliases) not in SAFE_YAML_LOADERS:
                yield f"{where}: {name} without a SafeLoader"
        if name in ("numpy.load",) and _is_true(keywords.get("allow_pickle")):
            yield f"{where}: numpy.load with allow_pickle=True"
        if _is_false(keywords.get("safe_mode")):
            yield f"{where}: safe_mode=False"
        if name and name.startswith("subprocess.") and _is_true(keywords.get("shell")):
            yield f"{where}: {name} with shell=True"


def _project_files() -> Iterator[Path]:
    for folder in SCANNED:
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_the_project_runs_no_code_from_data() -> None:
    files = list(_project_files())
    assert len(files) > 50 and any(f.name == "factory.py" for f in files)
    found = [
        p
        for f in files
        for p in problems(f.read_text(encoding="utf-8"), f.relative_to(ROOT).as_posix())
    ]
    assert found == []


def test_the_restricted_calls_are_where_the_exceptions_say() -> None:
    """Each allowed exception is still used (else it is stale and must go)."""
    for name, files in RESTRICTED.items():
        for path in files:
            source = (ROOT / path).read_text(encoding="utf-8")
            tree = ast.parse(source)
            aliases = _aliases(tree)
            calls = {_dotted(n.func, aliases) for n in ast.walk(tree) if isinstance(n, ast.Call)}
            assert name in calls, f"{path} no longer calls {name}: drop the exception"


@pytest.mark.parametrize(
    "snippet, what",
    [
        ("eval('1+1')", "uses eval"),
        ("exec(code)", "uses exec"),
        ("f = compile(src, 'x', 'exec')", "uses compile"),
        ("m = __import__('os')", "uses __import__"),
        ("OmegaConf.register_new_resolver('eval', eval)", "uses eval"),
        ("import builtins\nbuiltins.eval('1')", "calls builtins.eval"),
        ("import pickle\npickle.loads(b'')", "calls pickle.loads"),
        ("import pickle as p\np.load(f)", "calls pickle.load"),
        ("from pickle import loads\nloads(b'')", "imports from pickle"),
        ("import yaml\nyaml.load(text)", "yaml.load without a SafeLoader"),
        ("import yaml\nyaml.load(text, Loader=yaml.FullLoader)", "yaml.load without a SafeLoader"),
        ("import yaml\nyaml.unsafe_load(text)", "calls yaml.unsafe_load"),
        ("import numpy as np\nnp.load(p, allow_pickle=True)", "numpy.load with allow_pickle=True"),
        ("import keras\nkeras.saving.load_model(p)", "calls keras.saving.load_model (allowed only"),
        ("from keras import saving\nsaving.load_model(p)", "calls keras.saving.load_model"),
        ("import keras\nkeras.config.enable_unsafe_deserialization()", "enable_unsafe_deserial"),
        ("import mlflow\nmlflow.keras.load_model(uri)", "calls mlflow.keras.load_model"),
        ("x.load(p, safe_mode=False)", "safe_mode=False"),
        ("import importlib\nimportlib.import_module(name)", "calls importlib.import_module"),
        ("import subprocess\nsubprocess.run(cmd, shell=True)", "subprocess.run with shell=True"),
        ("import os\nos.system('ls')", "calls os.system"),
        ("from hydra.utils import instantiate\ninstantiate(cfg)", "calls hydra.utils.instantiate"),
    ],
)
def test_the_scanner_finds_each_forbidden_construct(snippet: str, what: str) -> None:
    found = list(problems(snippet, "seg/example.py"))
    assert found and what in found[0], found


def test_the_scanner_lets_safe_code_pass() -> None:
    safe = """
import re, yaml, numpy as np, subprocess
pattern = re.compile("x")
model.compile(optimizer="adam")
keras_model = load(path, compile=False)
yaml.load(text, Loader=yaml.SafeLoader)
yaml.safe_load(text)
np.load(path)
subprocess.run(["git", "rev-parse", "HEAD"], check=True)
"""
    assert list(problems(safe, "seg/example.py")) == []
    loader = "import keras\nkeras.saving.load_model(p, safe_mode=True)"
    assert list(problems(loader, "seg/training/model_files.py")) == []
