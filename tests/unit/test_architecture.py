"""The house rules, checked on the source (no imports, no models):

* no import circles between ctxcomp's modules (imports anywhere in a module count, also
  those inside functions; ``if TYPE_CHECKING:`` blocks do not);
* no private access across modules: a ``_name`` defined in one ctxcomp module is used only
  there (``from m import _x``, ``obj._x``), and a private module (``_hf``) only inside its
  own package; benchmarks, evals, integrations and scripts use no ctxcomp private at all;
* no module over ~400 lines;
* ``import ctxcomp`` (and the core, the config builder, the text compressors' modules)
  loads no torch, transformers, onnxruntime or faiss.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "ctxcomp"
OUTSIDE = ("benchmarks", "evals", "integrations", "scripts")
MAX_LINES = 400
# names that look private but are public protocol of the language or of other libraries
NOT_PRIVATE = {"_replace", "_asdict", "_fields", "_make", "_field_defaults", "_name_or_path"}


def _modname(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    return {_modname(p): p for p in sorted(PKG.rglob("*.py"))}


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def _is_package(name: str) -> bool:
    return _modules()[name].name == "__init__.py"


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            t = node.test
            name = (
                t.id if isinstance(t, ast.Name) else t.attr if isinstance(t, ast.Attribute) else ""
            )
            if name == "TYPE_CHECKING":
                for sub in node.body:
                    out.update(id(n) for n in ast.walk(sub))
    return out


def _imports(name: str) -> Iterator[tuple[str, list[str], int]]:
    """(imported module, names imported from it, line) for every import in module ``name``
    (relative imports resolved; type-checking-only imports skipped)."""
    path = _modules().get(name)
    tree = _tree(path) if path else ast.parse("")
    skip = _type_checking_nodes(tree)
    base = name if path is not None and path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base.split(".")
                parts = parts[: len(parts) - node.level + 1]
                mod = ".".join([*parts, node.module] if node.module else parts)
            else:
                mod = node.module or ""
            yield mod, [a.name for a in node.names], node.lineno


def _edges(name: str) -> set[str]:
    """ctxcomp modules that module ``name`` imports (``from pkg import submodule`` is an
    edge to the submodule; a package's ``__init__`` is a module of its own)."""
    mods = _modules()
    out: set[str] = set()
    for mod, names, _ in _imports(name):
        if not mod.startswith("ctxcomp"):
            continue
        for n in names:
            if f"{mod}.{n}" in mods:
                out.add(f"{mod}.{n}")
            elif mod in mods:
                out.add(mod)
        if not names:
            # `import a.b.c` imports a, a.b and a.b.c
            parts = mod.split(".")
            out.update(
                ".".join(parts[: i + 1])
                for i in range(len(parts))
                if ".".join(parts[: i + 1]) in mods
            )
    out.discard(name)
    return out


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    graph = {m: _edges(m) for m in _modules()}
    # a package's __init__ importing its own submodules (re-exports) and a submodule
    # importing a sibling through the package are the same module set: only real
    # circles between modules count, so edges into a package __init__ from inside that
    # package are kept (they are circles too: the __init__ imports its submodules).
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for m in sorted(graph):
        if m not in index:
            visit(m)
    return out


def test_no_import_circles() -> None:
    cycles = _cycles()
    assert not cycles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


@cache
def _defined_private(path: Path) -> frozenset[str]:
    """Private names a module defines: functions, classes, assignments, attributes set on
    ``self``/``cls``/objects, keyword arguments of dataclass fields."""
    out: set[str] = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            out.add(node.attr)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out.add(node.target.id)
        elif isinstance(node, ast.arg):
            out.add(node.arg)
        elif isinstance(node, ast.alias):
            out.add(node.asname or node.name.rpartition(".")[2])
    return frozenset(n for n in out if _private(n))


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and name not in NOT_PRIVATE


@cache
def _ctxcomp_privates() -> dict[str, set[str]]:
    """private name -> modules of ctxcomp that define it"""
    out: dict[str, set[str]] = {}
    for m, p in _modules().items():
        for n in _defined_private(p):
            out.setdefault(n, set()).add(m)
    return out


def _private_module(mod: str) -> str | None:
    """The package a private module belongs to (``ctxcomp.compressors`` for
    ``ctxcomp.compressors._hf``), or None for a public module."""
    parts = mod.split(".")
    for i, part in enumerate(parts):
        if _private(part):
            return ".".join(parts[:i])
    return None


def _violations(path: Path, name: str | None) -> Iterator[str]:
    """Private access in the file at ``path`` (module ``name`` when inside ctxcomp)."""
    privates = _ctxcomp_privates()
    own = _defined_private(path)
    where = path.relative_to(REPO)
    tree = _tree(path)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Attribute) and _private(node.attr):
            recv = node.value
            if isinstance(recv, ast.Name) and recv.id in ("self", "cls"):
                continue  # a class's own (or inherited, protected) members
            if node.attr in privates and node.attr not in own:
                yield f"{where}:{node.lineno}: .{node.attr} (defined in {sorted(privates[node.attr])[0]})"
    for mod, names, line in _imports(name) if name else _outside_imports(path):
        if not mod.startswith("ctxcomp"):
            continue
        pkg = _private_module(mod)
        if pkg is not None and not _inside(name, pkg):
            yield f"{where}:{line}: imports private module {mod}"
        for n in names:
            full = f"{mod}.{n}"
            if full in _modules():  # a submodule
                sub = _private_module(full)
                if sub is not None and not _inside(name, sub):
                    yield f"{where}:{line}: imports private module {full}"
            elif _private(n) and mod != name and pkg is None:
                yield f"{where}:{line}: imports {full}"


def _inside(name: str | None, pkg: str) -> bool:
    """Whether module ``name`` is package ``pkg`` or lies inside it."""
    return name is not None and (name == pkg or name.startswith(pkg + "."))


def _outside_imports(path: Path) -> Iterator[tuple[str, list[str], int]]:
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom) and not node.level:
            yield node.module or "", [a.name for a in node.names], node.lineno


def test_no_private_access_across_modules() -> None:
    bad = [v for m, p in _modules().items() for v in _violations(p, m)]
    assert not bad, "private names used outside their module:\n" + "\n".join(bad)


def test_tools_use_the_public_api() -> None:
    files = [p for d in OUTSIDE for p in sorted((REPO / d).rglob("*.py"))]
    bad = [v for p in files for v in _violations(p, None)]
    assert not bad, "ctxcomp privates used by tools:\n" + "\n".join(bad)


def test_modules_are_small() -> None:
    big = {
        str(p.relative_to(REPO)): n
        for p in _modules().values()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not big, f"modules over {MAX_LINES} lines: {big}"


HEAVY = ("torch", "transformers", "onnxruntime", "faiss", "sentence_transformers")


def test_import_is_light() -> None:
    mods = [
        "ctxcomp",
        "ctxcomp.core",
        "ctxcomp.config",
        "ctxcomp.coarse",
        "ctxcomp.compressors.token_classifier",
        "ctxcomp.backends",
        "ctxcomp.backends.base",
        "ctxcomp.backends.eager",
        "ctxcomp.backends.hf",
        "ctxcomp.backends.onnx",
        "ctxcomp.backends.onednn",
    ]
    code = (
        "import importlib, sys\n"
        f"for m in {mods!r}: importlib.import_module(m)\n"
        f"print(' '.join(h for h in {HEAVY!r} if h in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "", f"importing ctxcomp loaded: {out.stdout.strip()}"
