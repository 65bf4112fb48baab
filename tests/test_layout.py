"""The layout of seg/ stays a map: no import circles, imports pointing one way between the phase
packages, small modules and functions, lazy imports only where they keep TensorFlow or MLflow
out of start-up (and saying so), and each fact in one home.

The graph is read with ``ast`` from the source (every import, at module level or inside a
function), so the test needs nothing installed but the package's own files.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

SEG = Path(__file__).resolve().parents[1] / "seg"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60
# Phase packages from the top of the import graph down: a module may import its own package
# and packages of its layer or below, never above (seg/__init__.py says what each holds).
LAYERS = [
    {"seg.cli", "seg.composition", "seg.commands"},
    {"seg.runner"},
    {"seg.tracking", "seg.training", "seg.evaluation", "seg.inference", "seg.planning"},
    {"seg.data", "seg.models", "seg.losses"},
    {"seg.config"},
    {"seg.project"},
    {"seg.errors", "seg.machine", "seg.files"},
]
# The only modules that may import these libraries (the rest reach them through these).
ONLY_IN = {
    "mlflow": ("seg.tracking",),
    "hydra": ("seg.cli", "seg.composition", "seg.config.registration", "seg.runner.sweep"),
}
# What a lazy import (inside a function) may load: only these justify one.
HEAVY = (
    "tensorflow",
    "keras",
    "mlflow",
    "seg.runner.stages",
    "seg.tracking",
    "seg.training",
    "seg.data.pipeline",
    # optional extras (seg[export]): imported where used, so that seg runs without them
    "onnxruntime",
    "tf2onnx",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SEG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(SEG.rglob("*.py"))}


def _imports(tree: ast.AST) -> list[tuple[ast.stmt, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node, node.module)]
            found += [(node, f"{node.module}.{a.name}") for a in node.names]
    return found


def _resolve(target: str) -> str | None:
    """The seg module an import names (``seg.x.y.Name`` -> ``seg.x.y``), if any."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for _, target in _imports(ast.parse(path.read_text())):
            found = _resolve(target)
            # a package's __init__ is not an edge of its own submodules
            if found and found != name and not name.startswith(f"{found}."):
                graph[name].add(found)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def _package(module: str) -> str:
    """The phase package of a module: seg.<first part> (seg.cli, seg.errors: themselves)."""
    return ".".join(module.split(".")[:2])


def _layer(module: str) -> int:
    package = _package(module)
    return next(i for i, layer in enumerate(LAYERS) if package in layer)


def test_the_checker_finds_a_circle_and_an_upward_import() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _layer("seg.data.io") > _layer("seg.runner.run")


def test_no_module_imports_itself_in_a_circle() -> None:
    assert _cycles(_graph()) == []


def test_the_phase_packages_form_no_circle_either() -> None:
    packages: dict[str, set[str]] = {}
    for name, targets in _graph().items():
        packages.setdefault(_package(name), set()).update(
            _package(t) for t in targets if _package(t) != _package(name)
        )
    assert _cycles(packages) == []


def test_every_package_is_in_a_layer() -> None:
    assert {_package(m) for m in MODULES} - {"seg"} <= set().union(*LAYERS)


def test_imports_point_down_the_layers() -> None:
    upward = [
        f"{name} imports {target}"
        for name, targets in _graph().items()
        for target in targets
        if _package(name) != "seg" and _layer(target) < _layer(name)
    ]
    assert upward == []


@pytest.mark.parametrize(("library", "allowed"), sorted(ONLY_IN.items()))
def test_libraries_are_imported_only_where_they_belong(library: str, allowed: tuple) -> None:
    found = sorted(
        {
            name
            for name, path in MODULES.items()
            for _, target in _imports(ast.parse(path.read_text()))
            if target == library or target.startswith(f"{library}.")
        }
    )
    assert [n for n in found if not n.startswith(allowed)] == []


def test_no_module_is_over_500_lines_and_no_function_over_60() -> None:
    long_modules, long_functions = [], []
    for name, path in MODULES.items():
        source = path.read_text()
        if len(source.splitlines()) > MAX_MODULE_LINES:
            long_modules.append(name)
        for node in ast.walk(ast.parse(source)):
            is_function = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            if is_function and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                long_functions.append(f"{name}.{node.name}")
    assert long_modules == [] and long_functions == []


def test_a_lazy_import_keeps_something_heavy_out_of_start_up_and_says_so() -> None:
    """An import inside a function only for TensorFlow, MLflow or what imports them, with a
    comment on its line or above its group of imports saying why it waits."""
    bad = []
    for name, path in MODULES.items():
        source = path.read_text()
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for inner in ast.walk(node):
                if not isinstance(inner, ast.Import | ast.ImportFrom):
                    continue
                targets = [t for _, t in _imports(inner)]
                heavy = any(t.startswith(HEAVY) for t in targets)
                first = inner.lineno - 1  # the first of the consecutive imports it belongs to
                while first > 0 and lines[first - 1].strip().startswith(("import ", "from ")):
                    first -= 1
                group = lines[first : inner.lineno]
                said = any("#" in line for line in group) or lines[first - 1].strip().startswith(
                    "#"
                )
                if not (heavy and said):
                    bad.append(f"{name}:{inner.lineno}: {group[-1].strip()}")
    assert bad == []


def test_every_stage_the_schema_names_has_its_function() -> None:
    from seg.config.run import Stage
    from seg.runner.stages import STAGES

    assert set(STAGES) == set(Stage)


def test_every_optimizer_the_schema_names_is_a_keras_optimizer() -> None:
    import keras

    from seg.config.trainer import Optimizer
    from seg.training.factory import optimizer_class

    for name in Optimizer:
        assert issubclass(optimizer_class(name), keras.optimizers.Optimizer)


def test_every_loss_term_of_the_config_has_its_function_with_its_parameters() -> None:
    from seg.config.loss import TERMS
    from seg.losses.terms import TERM_FUNCTIONS

    assert set(TERM_FUNCTIONS) == set(TERMS)
    for name, function in TERM_FUNCTIONS.items():
        parameters = list(inspect.signature(function).parameters)[2:]  # after y_true, y_pred
        assert sorted(parameters) == sorted(TERMS[name]), name
