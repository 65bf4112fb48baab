"""Generate ``docs/reference/config.md`` from seg's config schemas, so that it cannot drift.

Every key of every config group, with its type (the dataclass schemas in ``seg/config/``), its
default (the group's default YAML in ``seg/conf/``, composed by Hydra as ``seg-train`` composes
it, else the schema's default), what values it takes (enums, the ``Bound`` tables and the
``require``/``require_in`` checks of ``seg/config/``, read from their syntax trees) and what it
means (the comment beside the field in the schema, else beside the key in the YAML).

    python docs/gen_reference.py           # (re)write docs/reference/config.md
    python docs/gen_reference.py --check   # exit 1 if the page on disk is out of date

MkDocs runs it before every build (``hooks:`` in mkdocs.yml calls :func:`on_pre_build`), so the
published page is always the current one. Imports only ``seg.config`` (Hydra, OmegaConf; no
TensorFlow): it runs in seconds.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import enum
import functools
import importlib
import inspect
import io
import operator
import pkgutil
import re
import sys
import tokenize
import types
import typing
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from hydra import compose, initialize_config_dir
from omegaconf import MISSING, OmegaConf

import seg.config
from seg.config import CONF_DIR
from seg.config.bounds import Bound, range_text
from seg.config.loss import TERMS
from seg.config.registration import register
from seg.config.run import ExportConfig, PlanConfig, RunConfig

PAGE = Path(__file__).resolve().parent / "reference" / "config.md"
CONF = Path(CONF_DIR)

# The config groups with a typed schema, in the order of the page; their defaults are what
# seg-train composes (seg/conf/train.yaml's defaults list picks each group's default option).
SCHEMA_GROUPS = (
    "dataset",
    "model",
    "loss",
    "augmentation",
    "callbacks",
    "trainer",
    "inference",
    "mlflow",
    "paths",
)
# Groups without a schema of their own: files that set keys of the groups above.
PLAIN_GROUPS = ("experiment", "hparams_search", "debug", "hydra/launcher")
ENTRY_POINTS = ("train", "eval", "infer")  # seg-train, seg-eval, seg-infer: their primary configs
# seg's primary configs add ./conf (a project's own configs) to Hydra's search path; composing
# here from a directory without one is the usual case, as in seg.cli.
warnings.filterwarnings("ignore", message=r"provider=hydra\.searchpath in main, path=conf is not")


# --------------------------------------------------------------------------- comments


def _comment_text(lines: list[str]) -> str:
    """Comment lines (without '#') as one sentence; separators like '# ---' dropped."""
    kept = [line.strip() for line in lines if line.strip() and not line.strip().startswith("---")]
    return " ".join(kept)


def _python_comments(module: types.ModuleType) -> dict[tuple[str, str], str]:
    """(class name, field or member name) -> the comment above and beside it in the source."""
    source = inspect.getsource(module)
    comments: dict[int, str] = {}
    code_lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            code_lines.update(range(tok.start[0], tok.end[0] + 1))
    found: dict[tuple[str, str], str] = {}
    for cls in ast.walk(ast.parse(source)):
        if not isinstance(cls, ast.ClassDef):
            continue
        for stmt in cls.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                name = stmt.target.id
            elif (
                isinstance(stmt, ast.Assign)
                and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)
            ):
                name = stmt.targets[0].id
            else:
                continue
            above = []
            line = stmt.lineno - 1
            while line in comments and line not in code_lines:
                above.insert(0, comments[line])
                line -= 1
            beside = [comments[n] for n in range(stmt.lineno, stmt.end_lineno + 1) if n in comments]
            if name == "p" and above:
                # above an augmentation op's first field (its probability): about the op
                found[(cls.name, "")] = _comment_text(above)
                above = []
            text = _comment_text(above + beside)
            if text:
                found[(cls.name, name)] = text
    return found


_PY_COMMENTS: dict[str, dict[tuple[str, str], str]] = {}


def python_comment(cls: type, name: str) -> str:
    """The comment of field (or enum member) ``name`` of ``cls`` or of the class it inherits
    the field from."""
    for klass in getattr(cls, "__mro__", (cls,)):
        module = sys.modules.get(klass.__module__)
        if module is None or not module.__name__.startswith("seg."):
            continue
        if module.__name__ not in _PY_COMMENTS:
            _PY_COMMENTS[module.__name__] = _python_comments(module)
        text = _PY_COMMENTS[module.__name__].get((klass.__name__, name))
        if text:
            return text
    return ""


_YAML_KEY = re.compile(r"^(\s*)(-\s+)?([A-Za-z_][\w.]*|'[^']*'|\"[^\"]*\"):(\s|$)(.*)$")


def _split_comment(rest: str) -> tuple[str, str]:
    """(value, comment) of what follows a key's colon (a '#' outside quotes and brackets)."""
    depth, quote = 0, ""
    for i, ch in enumerate(rest):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "#" and (i == 0 or rest[i - 1].isspace()):
            return rest[:i].strip(), rest[i + 1 :].strip()
    return rest.strip(), ""


def yaml_file_comments(path: Path) -> tuple[str, dict[str, str]]:
    """The file's header comment, and dotted key -> the comment above and beside it."""
    header: list[str] = []
    found: dict[str, str] = {}
    stack: list[tuple[int, str]] = []  # (indent, key) of the open mappings
    pending: list[str] = []  # comment lines above the next key
    last_key, last_indent = None, -1
    seen_key = False
    for raw in path.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not stripped:
            if not seen_key and pending:
                header += pending
                pending = []
            pending = [] if seen_key else pending
            last_key = None
            continue
        if stripped.startswith("#"):
            text = stripped.lstrip("#").strip()
            indent = len(raw) - len(raw.lstrip())
            if last_key is not None and indent > last_indent and found.get(last_key):
                found[last_key] += " " + text  # a trailing comment going on
            else:
                pending.append(text)
            continue
        match = _YAML_KEY.match(raw)
        if not match or match.group(2):
            last_key = None
            continue
        indent, key = len(match.group(1)), match.group(3).strip("'\"")
        if not seen_key:
            header += [line for line in pending if not line.startswith("@package")]
            pending = []
            seen_key = True
        while stack and stack[-1][0] >= indent:
            stack.pop()
        dotted = ".".join([k for _, k in stack] + [key])
        _, beside = _split_comment(match.group(5))
        text = _comment_text([*pending, beside] if beside else pending)
        pending = []
        found[dotted] = text
        value, _ = _split_comment(match.group(5))
        if not value:
            stack.append((indent, key))
        last_key, last_indent = dotted, indent
    header_text = "\n".join(line for line in header if not line.startswith("@package"))
    return header_text.strip(), found


# --------------------------------------------------------------------------- checks

UNKNOWN = object()


class _Unknown(Exception):
    """An expression whose value the reader of the checks cannot tell."""


_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_PLAIN = (str, int, float, bool, tuple, list, dict, frozenset, type(None), Bound)
_CALLS = {"Bound": Bound, "tuple": tuple, "list": list, "range_text": range_text}
_METHODS = ("items", "get", "keys", "values", "join")


class Checks:
    """What seg.config checks, by key: read from the syntax tree of each of its modules.

    The functions are walked with their parameters' defaults (and, for a call to a function of
    the same module, the arguments given); loops over constant tables are unrolled, so
    ``for op in OP_NAMES: require_in(c.p, f"{key}.{op}.p", 0, 1)`` gives one check per op.
    Recorded: ``require(ok, key, message)``, ``require_in(value, key, low, high, ...)`` and
    ``check_bounds(node, prefix, table)`` whose key the walk can spell out.
    """

    def __init__(self) -> None:
        self.by_key: dict[str, list[str]] = {}
        self.used_tables: set[int] = set()
        for info in pkgutil.iter_modules(seg.config.__path__):
            module = importlib.import_module(f"seg.config.{info.name}")
            self.module = module
            tree = ast.parse(inspect.getsource(module))
            self.funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
            for func in self.funcs.values():
                self._function(func, None, 0)
        self._all_tables_used()

    # -- values

    def const(self, node: ast.AST, env: dict[str, Any]) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in env:
                if env[node.id] is UNKNOWN:
                    raise _Unknown
                return env[node.id]
            if node.id in _CALLS:
                return _CALLS[node.id]
            value = getattr(self.module, node.id, UNKNOWN)
            if isinstance(value, _PLAIN):
                return value
            raise _Unknown
        if isinstance(node, ast.JoinedStr):
            return "".join(
                str(self.const(v.value, env)) if isinstance(v, ast.FormattedValue) else v.value
                for v in node.values
            )
        if isinstance(node, (ast.Tuple, ast.List)):
            out: list[Any] = []
            for elt in node.elts:
                if isinstance(elt, ast.Starred):
                    out.extend(self.const(elt.value, env))
                else:
                    out.append(self.const(elt, env))
            return tuple(out) if isinstance(node, ast.Tuple) else out
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -self.const(node.operand, env)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](self.const(node.left, env), self.const(node.right, env))
        if isinstance(node, ast.Subscript):
            try:
                return self.const(node.value, env)[self.const(node.slice, env)]
            except (KeyError, IndexError, TypeError) as err:
                raise _Unknown from err
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            left, right = self.const(node.left, env), self.const(node.comparators[0], env)
            op = node.ops[0]
            if isinstance(op, ast.In):
                return left in right
            if isinstance(op, ast.NotIn):
                return left not in right
            if isinstance(op, ast.Eq):
                return left == right
        if isinstance(node, (ast.GeneratorExp, ast.ListComp)) and len(node.generators) == 1:
            gen = node.generators[0]
            if gen.ifs or not isinstance(gen.target, ast.Name):
                raise _Unknown
            return [
                self.const(node.elt, {**env, gen.target.id: item})
                for item in self.const(gen.iter, env)
            ]
        if isinstance(node, ast.Call):
            args = [self.const(a, env) for a in node.args]
            kwargs = {k.arg: self.const(k.value, env) for k in node.keywords if k.arg}
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in _METHODS:
                return getattr(self.const(func.value, env), func.attr)(*args, **kwargs)
            if isinstance(func, ast.Name) and func.id in _CALLS:
                return _CALLS[func.id](*args, **kwargs)
        raise _Unknown

    def value(self, node: ast.AST, env: dict[str, Any]) -> Any:
        try:
            return self.const(node, env)
        except (_Unknown, TypeError, ValueError, AttributeError):
            return UNKNOWN

    def text(self, node: ast.AST, env: dict[str, Any], unknown: str) -> str | None:
        """A string expression with what cannot be told written as ``unknown``."""
        if isinstance(node, ast.JoinedStr):
            parts = []
            for v in node.values:
                if isinstance(v, ast.FormattedValue):
                    got = self.value(v.value, env)
                    parts.append(unknown if got is UNKNOWN else str(got))
                else:
                    parts.append(v.value)
            return "".join(parts)
        got = self.value(node, env)
        return got if isinstance(got, str) else None

    # -- statements

    def _bind(self, target: ast.AST, value: Any, env: dict[str, Any]) -> None:
        if isinstance(target, ast.Name):
            env[target.id] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            values = (
                list(value)
                if value is not UNKNOWN and isinstance(value, (tuple, list))
                else [UNKNOWN] * len(target.elts)
            )
            if len(values) != len(target.elts):
                values = [UNKNOWN] * len(target.elts)
            for t, v in zip(target.elts, values, strict=True):
                self._bind(t, v, env)

    def _assign(self, target: ast.AST, node: ast.AST, env: dict[str, Any]) -> None:
        if isinstance(target, ast.Tuple) and isinstance(node, ast.Tuple):
            for t, v in zip(target.elts, node.elts, strict=False):
                self._assign(t, v, env)
        else:
            self._bind(target, self.value(node, env), env)

    def _function(self, func: ast.FunctionDef, args: dict[str, Any] | None, depth: int) -> None:
        env: dict[str, Any] = {}
        params = func.args.posonlyargs + func.args.args
        defaults = [None] * (len(params) - len(func.args.defaults)) + func.args.defaults
        for param, default in zip(params, defaults, strict=True):
            env[param.arg] = UNKNOWN if default is None else self.value(default, {})
        for param, default in zip(func.args.kwonlyargs, func.args.kw_defaults, strict=True):
            env[param.arg] = UNKNOWN if default is None else self.value(default, {})
        if args is not None:
            env.update(args)
        self._block(func.body, env, depth, func.name)

    def _block(self, body: list[ast.stmt], env: dict[str, Any], depth: int, within: str) -> None:
        for stmt in body:
            if isinstance(stmt, (ast.FunctionDef, ast.ClassDef)):
                continue
            if isinstance(stmt, ast.For):
                items = self.value(stmt.iter, env)
                if isinstance(items, (tuple, list, dict, type({}.items()))) and len(items) <= 64:
                    for item in items:
                        inner = dict(env)
                        self._bind(stmt.target, item, inner)
                        self._block(stmt.body, inner, depth, within)
                else:
                    self._calls(stmt.iter, env, depth, within)
                    inner = dict(env)
                    self._bind(stmt.target, UNKNOWN, inner)
                    self._block(stmt.body, inner, depth, within)
            elif isinstance(stmt, ast.If):
                self._calls(stmt.test, env, depth, within)
                for node in ast.walk(stmt.test):
                    if isinstance(node, ast.NamedExpr):
                        env[node.target.id] = UNKNOWN
                test = self.value(stmt.test, env)
                if test is UNKNOWN or test:
                    self._block(stmt.body, env, depth, within)
                if test is UNKNOWN or not test:
                    self._block(stmt.orelse, env, depth, within)
            elif isinstance(stmt, (ast.With, ast.While, ast.Try)):
                for field in ("body", "orelse", "finalbody"):
                    self._block(getattr(stmt, field, []) or [], env, depth, within)
                for handler in getattr(stmt, "handlers", []):
                    self._block(handler.body, env, depth, within)
            else:
                self._calls(stmt, env, depth, within)
                if isinstance(stmt, ast.Assign):
                    for target in stmt.targets:
                        self._assign(target, stmt.value, env)
                elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                    self._assign(stmt.target, stmt.value, env)

    def _calls(self, node: ast.AST, env: dict[str, Any], depth: int, within: str) -> None:
        for call in ast.walk(node):
            if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
                continue
            name = call.func.id
            if name == "require" and len(call.args) >= 3:
                self._require(call, env)
            elif name == "require_in" and len(call.args) >= 2:
                self._require_in(call, env)
            elif name == "check_bounds" and len(call.args) >= 3:
                self._check_bounds(call, env)
            elif name in self.funcs and name != within and depth < 4:
                func = self.funcs[name]
                params = [p.arg for p in func.args.posonlyargs + func.args.args]
                given = {p: self.value(a, env) for p, a in zip(params, call.args, strict=False)}
                given.update({k.arg: self.value(k.value, env) for k in call.keywords if k.arg})
                self._function(func, given, depth + 1)

    # -- records

    def _key(self, node: ast.AST, env: dict[str, Any]) -> str | None:
        key = self.text(node, env, "*")
        if not key:
            return None
        key = re.sub(r"\[[^\]]*\]", "", key)  # centres[*] -> centres
        if "*" in key or not re.fullmatch(r"[A-Za-z_][\w.]*", key):
            return None
        return key

    def _add(self, key: str, text: str) -> None:
        texts = self.by_key.setdefault(key, [])
        if text not in texts:
            texts.append(text)

    def _require(self, call: ast.Call, env: dict[str, Any]) -> None:
        key = self._key(call.args[1], env)
        message = self.text(call.args[2], env, "…")
        if key is None or not message:
            return
        message = re.sub(r"[,;]?\s*\bgot\b[^;]*$", "", message).strip().rstrip(",;:")
        message = message.replace(" in in ", " in ")
        self._add(key, message)

    def _require_in(self, call: ast.Call, env: dict[str, Any]) -> None:
        key = self._key(call.args[1], env)
        if key is None:
            return
        names = ("low", "high")
        given = {n: self.value(a, env) for n, a in zip(names, call.args[2:], strict=False)}
        given.update({k.arg: self.value(k.value, env) for k in call.keywords if k.arg})
        if any(v is UNKNOWN for v in given.values()):
            return
        self._add(key, bound_text(Bound("", **given)))

    def _check_bounds(self, call: ast.Call, env: dict[str, Any]) -> None:
        prefix = self._key(call.args[1], env)
        table = self.value(call.args[2], env)
        if prefix is None or table is UNKNOWN:
            return
        self.used_tables.add(id(table))
        for bound in table:
            self._add(f"{prefix}.{bound.field}", bound_text(bound))

    def _all_tables_used(self) -> None:
        """Fail when a module-level table of bounds is applied somewhere this reader cannot
        follow: its keys would be missing from the page."""
        for info in pkgutil.iter_modules(seg.config.__path__):
            module = importlib.import_module(f"seg.config.{info.name}")
            for name, value in vars(module).items():
                tables = []
                if isinstance(value, tuple) and value and all(isinstance(b, Bound) for b in value):
                    tables = [value]
                elif (
                    isinstance(value, dict)
                    and value
                    and all(
                        isinstance(t, tuple) and all(isinstance(b, Bound) for b in t)
                        for t in value.values()
                    )
                ):
                    tables = list(value.values())
                if any(id(t) not in self.used_tables for t in tables):
                    sys.exit(
                        f"docs/gen_reference.py: cannot tell which keys {module.__name__}.{name} "
                        "bounds (no check_bounds(node, '<key>', table) call it can follow); "
                        "teach Checks in docs/gen_reference.py to read it"
                    )

    def for_key(self, key: str) -> list[str]:
        return self.by_key.get(key, [])


def bound_text(bound: Bound) -> str:
    text = range_text(bound.low, bound.high, bound.low_open, bound.high_open)
    if bound.low is None and bound.high is None:
        text = "a number"
    text = ("null or " if bound.nullable else "") + text
    return text + (f" ({bound.note})" if bound.note else "")


# --------------------------------------------------------------------------- types, values


def _hints(cls: type) -> dict[str, Any]:
    module = sys.modules[cls.__module__]
    return typing.get_type_hints(cls, vars(module))


def unwrap(tp: Any) -> tuple[Any, bool]:
    """(the type without None, whether None is allowed)."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(tp))
        return functools.reduce(operator.or_, args), nullable
    return tp, False


def type_text(tp: Any) -> str:
    tp, nullable = unwrap(tp)
    origin = typing.get_origin(tp)
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        text = f"list of {type_text(item)}"
    elif origin is dict:
        key, value = typing.get_args(tp) or (Any, Any)
        text = f"mapping {type_text(key)} → {type_text(value)}"
    elif isinstance(tp, type) and issubclass(tp, enum.Enum):
        text = "choice"
    elif dataclasses.is_dataclass(tp):
        text = "section"
    elif tp is Any:
        text = "any"
    elif isinstance(tp, type):
        text = tp.__name__
    else:
        text = str(tp).replace("typing.", "")
    return f"{text} or null" if nullable else text


def enum_of(tp: Any) -> type[enum.Enum] | None:
    tp, _ = unwrap(tp)
    if typing.get_origin(tp) is list:
        (tp,) = typing.get_args(tp)
        tp, _ = unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, enum.Enum) else None


def item_dataclass(tp: Any) -> type | None:
    """The dataclass of a field, or of the items of a list field."""
    tp, _ = unwrap(tp)
    if typing.get_origin(tp) is list:
        (tp,) = typing.get_args(tp)
        tp, _ = unwrap(tp)
    return tp if dataclasses.is_dataclass(tp) else None


def plain(value: Any) -> Any:
    """A config node or value as plain Python (enums as their values, nulls inside list items
    dropped: they are 'not set')."""
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=False, enum_to_str=True)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [
            {k: plain(v) for k, v in item.items() if v is not None}
            if isinstance(item, dict)
            else plain(item)
            for item in value
        ]
    return value


def value_text(value: Any) -> str:
    value = plain(value)
    if value == MISSING:
        return "*required*"
    if isinstance(value, str):
        return code(value) if value else code("''")
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    text = text.removesuffix("...").strip()
    return code(text)


def code(text: str) -> str:
    """A code span (a table cell's pipes inside it need no escape: Markdown's tables leave
    code spans whole)."""
    text = str(text)
    fence = "``" if "`" in text else "`"
    return f"{fence}{text}{fence}"


def esc(text: str) -> str:
    """Plain text for a table cell or a paragraph: Markdown's special characters escaped."""
    text = text.replace("\\", "\\\\")
    for ch in "`*_[]|":
        text = text.replace(ch, "\\" + ch)
    return text.replace("<", "&lt;").replace(">", "&gt;")


# --------------------------------------------------------------------------- rows


@dataclasses.dataclass
class Row:
    key: str
    type: str
    default: str
    allowed: list[str]
    meaning: str


def _lookup(cls: type, node: Any, name: str) -> Any:
    """The value of field ``name`` in ``node`` (a composed config node, plain or not, never
    resolved: interpolations stay as written), else the schema's default; MISSING when
    neither has one."""
    if OmegaConf.is_config(node):
        node = plain(node)
    if node is not None and name in node:
        return node[name]
    defaults = OmegaConf.structured(cls)
    if OmegaConf.is_missing(defaults, name):
        return MISSING
    return plain(defaults)[name]


class Page:
    def __init__(self) -> None:
        register()
        self.checks = Checks()
        self.yaml: dict[Path, tuple[str, dict[str, str]]] = {}
        self.used_checks: set[str] = set()

    def comments(self, path: Path) -> tuple[str, dict[str, str]]:
        if path not in self.yaml:
            self.yaml[path] = yaml_file_comments(path)
        return self.yaml[path]

    def yaml_comment(self, files: list[Path], key: str) -> str:
        for path in files:
            text = self.comments(path)[1].get(key)
            if text:
                return text
        return ""

    def rows(
        self, cls: type, node: Any, prefix: str, files: list[Path], rel: str = ""
    ) -> Iterator[Row]:
        """A row per key of ``cls`` (nested sections flattened), the defaults from ``node``
        (a composed config node; None: the schema's defaults)."""
        for f in dataclasses.fields(cls):
            if f.name.startswith("_") and f.name != "_target_":
                continue
            yield from self.field_rows(cls, f.name, _lookup(cls, node, f.name), prefix, files, rel)

    def field_rows(
        self, cls: type, name: str, value: Any, prefix: str, files: list[Path], rel: str = ""
    ) -> Iterator[Row]:
        """The row of field ``name`` of ``cls`` holding ``value``, and those of its keys."""
        tp = _hints(cls)[name]
        key = f"{prefix}.{name}" if prefix else name
        local = f"{rel}.{name}" if rel else name
        meaning = python_comment(cls, name)
        sub = item_dataclass(tp)
        is_list = typing.get_origin(unwrap(tp)[0]) is list
        if sub is not None:  # a section: what its schema says of itself, then the field
            meaning = " ".join(t for t in (_doc(sub), meaning) if t)
        meaning = meaning or self.yaml_comment(files, local)
        if sub is not None and not meaning:
            meaning = python_comment(sub, "")
        if not meaning and name == "_target_":
            meaning = (
                "what this node builds: a class or function by its import path, only from "
                "the allow-list of seg/config/targets.py"
            )
        meaning = esc(meaning)
        allowed = []
        choices = enum_of(tp)
        if choices is not None:
            allowed.append("one of " + ", ".join(code(m.value) for m in choices))
            described = [
                f"{code(m.value)}: {esc(t)}"
                for m in choices
                if (t := python_comment(choices, m.name))
            ]
            if described:
                meaning += ("<br>" if meaning else "") + "; ".join(described)
        allowed += [esc(t) for t in self.checks.for_key(key)]
        self.used_checks.add(key)
        if sub is not None and not is_list:
            shown = code("null") if value is None else "*(section)*"
            yield Row(key, type_text(tp), shown, allowed, meaning)
            yield from self.rows(sub, value, key, files, local)
        elif sub is not None:
            yield Row(key, type_text(tp), value_text(value), allowed, meaning)
            yield from self.rows(sub, None, f"{key}[]", files, f"{local}[]")
        else:
            yield Row(key, type_text(tp), value_text(value), allowed, meaning)

    @staticmethod
    def table(rows: list[Row], default_title: str = "default") -> list[str]:
        out = [
            f"| key | type | {default_title} | allowed | meaning |",
            "|---|---|---|---|---|",
        ]
        for r in rows:
            out.append(
                f"| {code(r.key)} | {esc(r.type)} | {r.default} | {'<br>'.join(r.allowed)} "
                f"| {r.meaning} |"
            )
        return out


def _doc(cls: type) -> str:
    doc = inspect.getdoc(cls) or ""
    if doc.startswith(f"{cls.__name__}("):  # the dataclass' generated signature
        return ""
    return " ".join(doc.split("\n\n")[0].split())


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _default_option(primary: str, group: str) -> str | None:
    for item in OmegaConf.load(CONF / f"{primary}.yaml").get("defaults", []):
        if isinstance(item, dict) or OmegaConf.is_config(item):
            for k, v in dict(item).items():
                if k == group:
                    return None if v is None else str(v)
    return None


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """``key=value`` for every leaf of ``a`` that differs from ``b`` (plain values)."""
    out = []
    if isinstance(a, dict):
        for k, v in a.items():
            other = b.get(k) if isinstance(b, dict) else None
            out += _differences(v, other, f"{prefix}.{k}" if prefix else str(k))
    elif a != b:
        out.append(f"{prefix}={'??? (required)' if a == MISSING else plain_text(a)}")
    return out


def plain_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return (
        yaml.safe_dump(value, default_flow_style=True, width=10**6)
        .strip()
        .removesuffix("...")
        .strip()
    )


# --------------------------------------------------------------------------- the page


INTRO = """\
# Configuration reference

!!! note "Generated"
    This page is written by `docs/gen_reference.py` from the typed schemas in `seg/config/`
    and the YAML files in `seg/conf/` each time the docs are built; edit those, not this page.

Every run composes one config from the groups below (`seg-train --cfg job` prints it). Any key
can be set on the command line (`seg-train trainer.epochs=50 model.base_filters=32`), a group's
option picked by its name (`loss=bce_iou`), a key a schema does not have added with `+`
(only where the type is a free mapping, e.g. `+callbacks.extra.tb._target_=...`).

- **type**: from the schema; a wrong type fails at composition, naming the key.
- **default**: what `seg-train` composes (the group's default option; for other options, the
  table of that option). *required*: no default, the option or the command line must set it.
- **allowed**: enum choices, the ranges and checks that `seg/config/` applies before any work
  (a value outside fails with one line naming the key). Architectures also check their own
  arguments when they are built, before training (e.g. the image size a model can take).
- **meaning**: the comment beside the field in the schema, else beside the key in the YAML.
"""


def render() -> str:
    page = Page()
    lines = [INTRO]
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        primary = {name: compose(name) for name in ENTRY_POINTS}
        lines += _top_level(page, primary)
        lines += _plan_section(page)
        lines += _export_section(page)
        for group in SCHEMA_GROUPS:
            lines += _group_section(page, group)
    lines += _plain_groups()
    lines += _left_over_checks(page)
    return "\n".join(lines).rstrip() + "\n"


def _top_level(page: Page, primary: dict[str, Any]) -> list[str]:
    files = [CONF / f"{name}.yaml" for name in ENTRY_POINTS]
    out = [
        "## Top-level keys",
        "",
        "The primary config of `seg-train` (`seg/conf/train.yaml`), `seg-eval` (`eval.yaml`) "
        "and `seg-infer` (`infer.yaml`); schema `RunConfig`. " + esc(_doc(RunConfig)),
        "",
    ]
    rows = []
    hints = _hints(RunConfig)
    for f in dataclasses.fields(RunConfig):
        if item_dataclass(hints[f.name]) is not None or f.name in ("model", "loss", "plan"):
            continue  # the groups, below
        per_entry = {
            ep: next(
                iter(page.field_rows(RunConfig, f.name, _lookup(RunConfig, cfg, f.name), "", files))
            )
            for ep, cfg in primary.items()
        }
        row = per_entry["train"]
        if len({r.default for r in per_entry.values()}) > 1:
            row.default = " · ".join(f"{ep}: {r.default}" for ep, r in per_entry.items())
        rows.append(row)
    out += Page.table(rows, "default (train · eval · infer)")
    groups = ", ".join(f"[`{g}`](#{g})" for g in SCHEMA_GROUPS)
    out += [
        "",
        f"The groups: {groups}. `plan` holds what `seg-plan` read and chose for an experiment "
        "it wrote; it is logged with the run as `plan.yaml`, not as params.",
        "",
    ]
    return out


def _plan_section(page: Page) -> list[str]:
    path = CONF / "plan.yaml"
    with_cfg = compose("plan")
    rows = [
        r
        for r in page.rows(PlanConfig, with_cfg, "", [path])
        if r.key.split(".")[0] not in ("paths", "dataset")
    ]
    return [
        "## seg-plan",
        "",
        "The primary config of `seg-plan` (`seg/conf/plan.yaml`, schema `PlanConfig`): "
        + esc(_doc(PlanConfig))
        + " Its `dataset` is the [`folder`](#dataset) option (set `dataset.root`), its "
        "`paths` the [`paths`](#paths) group.",
        "",
        *Page.table(rows),
        "",
    ]


def _export_section(page: Page) -> list[str]:
    path = CONF / "export.yaml"
    with_cfg = compose("export")
    rows = [
        r
        for r in page.rows(ExportConfig, with_cfg, "", [path])
        if r.key.split(".")[0] not in ("paths", "dataset", "mlflow")
    ]
    for r in rows:
        if not r.meaning:  # a key seg-export shares with the other entry points: its comment there
            r.meaning = esc(python_comment(RunConfig, r.key))
        if r.key == "checkpoint":  # RunConfig's check (a model when no stage trains one)
            r.allowed = []
    return [
        "## seg-export",
        "",
        "The primary config of `seg-export` (`seg/conf/export.yaml`, schema `ExportConfig`): "
        + esc(_doc(ExportConfig))
        + " Its `dataset` (the preprocessing assumed for a bare `.keras` file without its "
        "`preprocessing.json`), `mlflow` (the store a run id or `models:/` URI is read from) and "
        "`paths` are the groups below ([how-to](../how-to/export.md)).",
        "",
        *Page.table(rows),
        "",
    ]


def _group_section(page: Page, group: str) -> list[str]:
    options = _options(group)
    default = _default_option("train", group)
    out = [f"## {group}", ""]
    composed = {}
    for option in options:
        cfg = compose("train", overrides=[f"{group}={option}"])
        composed[option] = cfg[group]
    by_schema: dict[type, list[str]] = {}
    for option in options:
        by_schema.setdefault(OmegaConf.get_type(composed[option]), []).append(option)
    out.append(
        f"Options (`{group}=<option>`, files `seg/conf/{group}/<option>.yaml`): "
        + ", ".join(f"`{o}`" + (" (default)" if o == default else "") for o in options)
        + "."
    )
    out.append("")
    multi = len(by_schema) > 1
    schemas = sorted(by_schema, key=lambda s: default not in by_schema[s])
    for schema in schemas:
        members = by_schema[schema]
        rep = default if default in members else (members[0] if len(members) == 1 else None)
        files = [CONF / group / f"{o}.yaml" for o in ([rep] if rep else []) + members]
        if multi:
            heading = (
                f"### {group}={rep}"
                if len(members) == 1
                else (f"### {schema.__name__}: " + ", ".join(f"`{m}`" for m in members))
            )
            out += [heading, ""]
        description = _doc(schema)
        header = page.comments(CONF / group / f"{rep}.yaml")[0] if rep else ""
        text = " ".join(t for t in (esc(description), esc(" ".join(header.split()))) if t)
        if text:
            out += [text, ""]
        node = composed[rep] if rep else None
        title = f"default (`{group}={rep}`)" if rep and (multi or len(members) > 1) else "default"
        if rep is None:
            title = "schema default"
        rows = list(page.rows(schema, node, group, files))
        out += Page.table(rows, title)
        out.append("")
        others = [m for m in members if m != rep] if len(members) > 1 else []
        if others:
            base = plain(node) if node is not None else plain(OmegaConf.structured(schema))
            out += [
                "| option | what it is | sets (where it differs from the table) |",
                "|---|---|---|",
            ]
            for option in others if rep else members:
                header = page.comments(CONF / group / f"{option}.yaml")[0]
                diffs = _differences(plain(composed[option]), base)
                diffs = [d for d in diffs if not d.startswith(("name=", "_target_="))]
                out.append(
                    f"| `{option}` | {esc(' '.join(header.split()))} | "
                    + ("<br>".join(code(d) for d in diffs) or "—")
                    + " |"
                )
            out.append("")
    if group == "loss":
        out += _loss_terms()
    return out


def _loss_terms() -> list[str]:
    from seg.config import loss

    doc = inspect.getdoc(loss) or ""
    table = doc[doc.index("=====") : doc.rindex("=====") + 5] if "=====" in doc else ""
    out = [
        "### Loss terms (`loss.terms` of `combo` and the other compound losses)",
        "",
        "Each term of `loss.terms` is `{name, weight, <its parameters>}`; a parameter left out "
        "takes the term's default, one the term does not take fails naming "
        "`loss.terms[i].<param>` (`seg.config.loss.TERMS`):",
        "",
        "| term | parameters (default) |",
        "|---|---|",
    ]
    for name, params in TERMS.items():
        shown = ", ".join(
            f"`{k}` ({plain_text(v) if v is not None else 'null'})" for k, v in params.items()
        )
        out.append(f"| `{name}` | {shown or '—'} |")
    out += [
        "",
        "`normalize_terms` and `_check_param` in `seg/config/loss.py` check them: `window` an odd "
        "size ≥ 3, `sigma` > 0, `alpha` in [0, 1] (or null for `focal`), every other parameter "
        "and `weight` ≥ 0, not all weights 0. What each term computes per image (the table of "
        "that module's docstring):",
        "",
        "```text",
        table,
        "```",
        "",
    ]
    return out


def _plain_groups() -> list[str]:
    out = [
        "## Groups without a schema",
        "",
        "These options set keys of the groups above (`# @package _global_`) or of Hydra; each "
        "file is shown as it is.",
        "",
    ]
    for group in PLAIN_GROUPS:
        options = _options(group)
        if not options:
            continue
        out += [f"### {group}", ""]
        for option in options:
            path = CONF / group / f"{option}.yaml"
            text = path.read_text(encoding="utf-8").rstrip()
            out += [
                f'??? example "{group}={option}  (`seg/conf/{group}/{option}.yaml`)"',
                "",
                "    ```yaml",
                *[f"    {line}" if line else "" for line in text.splitlines()],
                "    ```",
                "",
            ]
        if group == "debug":
            fast = sorted(p.stem for p in (CONF / "debug" / "model").glob("*.yaml"))
            out += [
                "With `debug=<name>`, `seg/conf/debug/model/<name>_<model>.yaml` (if any) shrinks "
                "the chosen architecture: " + ", ".join(f"`{f}`" for f in fast) + ".",
                "",
            ]
    return out


def _left_over_checks(page: Page) -> list[str]:
    rest = {k: v for k, v in page.checks.by_key.items() if k not in page.used_checks}
    if not rest:
        return []
    out = [
        "## Checks across keys",
        "",
        "Checks of `seg/config/` whose key is a whole group, or that hold between groups:",
        "",
        "| key | check |",
        "|---|---|",
    ]
    for key in sorted(rest):
        out.append(f"| `{key}` | {'<br>'.join(esc(t) for t in rest[key])} |")
    return [*out, ""]


# --------------------------------------------------------------------------- entry points


def write(check: bool = False) -> bool:
    """Write the page (only when it changed: a rewrite would restart `mkdocs serve`); with
    ``check``, write nothing and say whether it is up to date."""
    text = render()
    current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else None
    if check:
        return current == text
    if current != text:
        PAGE.parent.mkdir(parents=True, exist_ok=True)
        PAGE.write_text(text, encoding="utf-8")
    return True


def on_pre_build(config: Any, **kwargs: Any) -> None:
    """MkDocs hook (mkdocs.yml: hooks): regenerate the page before every build."""
    write()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is stale")
    args = parser.parse_args()
    if args.check:
        if not write(check=True):
            sys.exit(f"{PAGE} is out of date: run python docs/gen_reference.py")
        print(f"{PAGE}: up to date")
        return
    write()
    print(f"written: {PAGE}")


if __name__ == "__main__":
    main()
