"""The package's layers, checked on its source: a module imports only its own layer and those below,
and reads no other module's private (_underscore) names.

    3  cli, demo, __main__, the package facade (tinygrad_scalar/__init__.py)
    2  nn, losses, optim, data, train, plot, static_train        (neural networks, training)
    1  custom, functional, gradcheck, expr, viz, teach, static, static_torch   (on the engine)
    0  engine, files, checks                                     (the engine and its helpers)

Imports are read with `ast` from every .py file under tinygrad_scalar/ (subpackages included:
`teach/`, and `static` as a module or a package), imports inside functions too: a lazy import
is still a dependency. A private name is `from m import _x`, or `m._x` where `m` is an imported
module of the package; private helper modules (`teach/_graph.py`) may be used by their own
package. The violations that exist today are listed in ALLOWED below, each with why: the test
fails on a new one, and on a listed one that is gone (delete its line: the lists only shrink).
"""
from __future__ import annotations

import ast
import pathlib
import sys
from typing import Iterator, NamedTuple, Optional

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PKG = "tinygrad_scalar"

LAYERS = {
    0: {"engine", "files", "checks"},
    1: {"custom", "functional", "gradcheck", "expr", "viz", "teach", "static", "static_torch"},
    2: {"nn", "losses", "optim", "data", "train", "plot", "static_train"},
    3: {"cli", "cli_text", "demo", "__main__", "__init__"},
}
LAYER = {name: level for level, names in LAYERS.items() for name in names}

# Known upward imports: (importer, imported) -> why it is tolerated for now.
ALLOWED_UPWARD = {
    ("engine", "viz"): "Value.draw() imports viz lazily, a convenience (issue 14 section 3)",
}

# Known private reads: (importer, module read, name) -> who removes it; modules by their top-level
# name (teach/narration.py is "teach", static/plan.py "static"). Issue 14 section 3 gives
# the engine a public surface for what extensions need; then these lines go.
ALLOWED_PRIVATE: dict = {}


class Use(NamedTuple):
    importer: str  # dotted, relative to the package: "teach.narration"
    module: str    # the module used: "engine", "static.plan", "" for the package itself
    name: str      # the name taken from it ("" for the module itself)
    line: int


def module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT / PKG).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()  # teach/__init__.py is the module "teach"
    return ".".join(parts)


def modules() -> dict:
    return {module_name(p): p for p in sorted((ROOT / PKG).rglob("*.py"))}


def is_package(name: str) -> bool:
    return (ROOT / PKG / name.replace(".", "/") / "__init__.py").exists()


def resolve(importer: str, level: int, module: Optional[str]) -> Optional[str]:
    """The module a `from ... import` names, relative to the package ("" is the package);
    None when it is outside the package."""
    if level == 0:
        if module == PKG:
            return ""
        if module and module.startswith(PKG + "."):
            return module[len(PKG) + 1:]
        return None
    base = [] if importer == "__init__" else importer.split(".")
    if not is_package(importer) and base:
        base = base[:-1]  # a plain module's imports are relative to its package
    if level > 1:
        base = base[:len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def uses(importer: str, path: pathlib.Path, known: dict) -> Iterator[Use]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    aliases = {}  # local name -> package module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                target = resolve(importer, 0, a.name)
                if target is not None:
                    yield Use(importer, target, "", node.lineno)
                    if a.asname:
                        aliases[a.asname] = target
        elif isinstance(node, ast.ImportFrom):
            target = resolve(importer, node.level, node.module)
            if target is None:
                continue
            for a in node.names:
                sub = f"{target}.{a.name}" if target else a.name
                if sub in known:  # `from . import engine`: the module engine itself
                    yield Use(importer, sub, "", node.lineno)
                    aliases[a.asname or a.name] = sub
                else:
                    yield Use(importer, target, a.name, node.lineno)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and node.attr.startswith("_")
                and not node.attr.startswith("__")):
            yield Use(importer, aliases[node.value.id], node.attr, node.lineno)


def layer_of(name: str) -> int:
    top = name.split(".")[0] if name else "__init__"
    if top not in LAYER:
        raise AssertionError(f"tinygrad_scalar.{name or '__init__'} has no layer: add "
                             f"{top!r} to LAYERS in tests/test_layers.py")
    return LAYER[top]


def all_uses() -> list:
    known = modules()
    return [u for name, path in known.items() for u in uses(name, path, known)]


def top(name: str) -> str:
    return name.split(".")[0] if name else "__init__"


def upward(found: list) -> dict:
    out = {}
    for u in found:
        if layer_of(u.module) > layer_of(u.importer):
            out.setdefault((top(u.importer), top(u.module)), []).append(u)
    return out


def private(found: list) -> dict:
    out = {}
    for u in found:
        if not u.name.startswith("_") or u.name.startswith("__"):
            continue
        if u.module == u.importer:
            continue
        # keyed by top-level module, so moving code inside a package keeps its entry
        out.setdefault((top(u.importer), top(u.module), u.name), []).append(u)
    return out


def private_module_misuse(found: list) -> list:
    """A private module (`_graph`) used from outside its own package."""
    bad = []
    for u in found:
        parts = u.module.split(".") if u.module else []
        if parts and parts[-1].startswith("_") and not parts[-1].startswith("__"):
            owner = ".".join(parts[:-1])
            if not (u.importer == owner or u.importer.startswith(owner + ".")):
                bad.append(u)
    return bad


def where(us: list) -> str:
    return ", ".join(f"{u.importer.replace('.', '/') or '__init__'}.py:{u.line}"
                     for u in sorted(us, key=lambda u: (u.importer, u.line)))


# --- the rules, on the package ------------------------------------------------------------------

def test_every_module_has_a_layer():
    for name in modules():
        layer_of(name)


def test_no_module_imports_a_higher_layer():
    found = upward(all_uses())
    new = {k: v for k, v in found.items() if k not in ALLOWED_UPWARD}
    assert not new, "imports from a higher layer:\n" + "\n".join(
        f"  {a} (layer {LAYER[a]}) imports {b} (layer {LAYER[b]}) at {where(us)}"
        for (a, b), us in sorted(new.items()))
    stale = sorted(set(ALLOWED_UPWARD) - set(found))
    assert not stale, f"fixed, so delete from ALLOWED_UPWARD in tests/test_layers.py: {stale}"


def test_no_module_reads_another_modules_private_names():
    found = private(all_uses())
    new = {k: v for k, v in found.items() if k not in ALLOWED_PRIVATE}
    assert not new, "private names read from another module:\n" + "\n".join(
        f"  {a} reads {b}.{n} at {where(us)}" for (a, b, n), us in sorted(new.items()))
    stale = sorted(set(ALLOWED_PRIVATE) - set(found))
    assert not stale, f"fixed, so delete from ALLOWED_PRIVATE in tests/test_layers.py: {stale}"


def test_private_modules_are_used_only_by_their_own_package():
    bad = private_module_misuse(all_uses())
    assert not bad, "private modules used from outside their package: " + where(bad)


# --- the checker itself, on small made-up packages ----------------------------------------------

@pytest.fixture
def fake(tmp_path, monkeypatch):
    """Write files of a made-up tinygrad_scalar under tmp_path and point the checker there."""
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)

    def write(files: dict) -> list:
        for rel, text in files.items():
            p = tmp_path / PKG / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text, encoding="utf-8")
        return all_uses()
    return write


def test_the_checker_sees_an_upward_import_even_inside_a_function(fake):
    found = fake({"__init__.py": "", "engine.py": "def f():\n    from .nn import MLP\n",
                  "nn.py": "from .engine import Value\n"})
    assert set(upward(found)) == {("engine", "nn")}
    assert upward(found)[("engine", "nn")][0].line == 2


def test_the_checker_resolves_absolute_relative_and_subpackage_imports(fake):
    found = fake({
        "__init__.py": "from .engine import Value\n",
        "engine.py": "import tinygrad_scalar.files\n",
        "files.py": "",
        "static/__init__.py": "from .plan import Plan\nfrom ..cli import main\n",
        "static/plan.py": ("from ..engine import Value\nfrom . import tape\n"
                           "from .tape import _row\n"),
        "static/tape.py": "import tinygrad_scalar.demo as d\n",
        "cli.py": "", "demo.py": "",
        "teach/__init__.py": "from ._graph import fmt\n", "teach/_graph.py": "",
        "viz.py": "from .teach._graph import fmt\n",
    })
    got = {(u.importer, u.module, u.name) for u in found}
    assert ("engine", "files", "") in got
    assert ("static", "static.plan", "Plan") in got
    assert ("static.plan", "engine", "Value") in got
    assert ("static.plan", "static.tape", "") in got
    assert set(upward(found)) == {("static", "cli"), ("static", "demo")}
    assert set(private(found)) == {("static", "static", "_row")}  # static/plan.py reads tape
    assert [u.importer for u in private_module_misuse(found)] == ["viz"]


def test_the_checker_sees_a_private_name_read_through_a_module_alias(fake):
    found = fake({"__init__.py": "", "engine.py": "_x = 1\n",
                  "nn.py": "from . import engine as E\nimport tinygrad_scalar.engine\n"
                           "y = E._x + E.__name__.count('e')\n"})
    assert set(private(found)) == {("nn", "engine", "_x")}


def test_a_module_without_a_layer_is_named(fake):
    fake({"__init__.py": "", "newthing.py": "from .engine import Value\n", "engine.py": ""})
    with pytest.raises(AssertionError, match="newthing has no layer: add 'newthing' to LAYERS"):
        test_every_module_has_a_layer()


# --- the project's other single sources ---------------------------------------------------------

def test_the_version_is_written_once_in_the_package():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == f"{PKG}.__version__"
    # a plain string literal, so setuptools reads it without importing the package
    tree = ast.parse((ROOT / PKG / "__init__.py").read_text(encoding="utf-8"))
    literal = [n.value.value for n in tree.body if isinstance(n, ast.Assign)
               and [getattr(t, "id", None) for t in n.targets] == ["__version__"]
               and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)]
    assert len(literal) == 1 and literal[0].count(".") >= 1


def test_ruff_is_clean():
    import shutil
    import subprocess
    ruff = shutil.which("ruff", path=str(pathlib.Path(sys.executable).parent)) or shutil.which(
        "ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it is in the dev extra: pip install -e '.[dev]')")
    r = subprocess.run([ruff, "check", "--no-cache", "."], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr
