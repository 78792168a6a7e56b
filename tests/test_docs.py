"""Every Python example in the README and docs/ runs (in a scratch folder), in order per file.

A block that needs PyTorch (it imports torch, or what it calls does) is skipped where torch is not
installed, as the Makefile promises for the oracle tests: the file's other blocks still run, and
the test then reports the skip with its reason instead of passing silently or failing.
"""
from __future__ import annotations

import ast
import doctest
import pathlib
import re
import sys

import matplotlib
import pytest

matplotlib.use("Agg")

ROOT = pathlib.Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
OPTIONAL = ("torch",)  # modules an example may need that a machine may lack (the oracle)


def python_blocks(text: str) -> list:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def imported_modules(code: str) -> set:
    """Top-level module names a block imports (a REPL transcript is read without its prompts)."""
    if code.lstrip().startswith(">>>"):
        code = "\n".join(line[4:] for line in code.splitlines()
                         if line.startswith((">>> ", "... ")))
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()  # running it reports the error
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def missing(module: str) -> bool:
    """Whether `import module` fails here (a blocked sys.modules entry counts as missing)."""
    if module in sys.modules:
        return sys.modules[module] is None
    try:
        __import__(module)
    except ImportError:
        return True
    return False


def run_blocks(name: str, text: str) -> list:
    """Run the python blocks of one page in one namespace; returns [(block, reason)] skipped."""
    skipped = []
    namespace: dict = {"__name__": "__docs__"}
    for i, code in enumerate(python_blocks(text)):
        absent = [m for m in OPTIONAL if m in imported_modules(code) and missing(m)]
        if absent:
            skipped.append((i, f"needs {', '.join(absent)}, which is not installed"))
            continue
        if code.lstrip().startswith(">>>"):  # a REPL transcript: its outputs must match
            test = doctest.DocTestParser().get_doctest(code, namespace, name, name, 0)
            runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
            runner.run(test, out=lambda s: None)
            assert runner.failures == 0, f"{name} block {i}: the transcript differs\n{code}"
            continue
        try:
            exec(compile(code, f"{name}[block {i}]", "exec"), namespace)
        except ImportError as e:  # torch imported by the library on the block's behalf
            root = (e.name or "").split(".")[0]
            if root in OPTIONAL and missing(root):
                skipped.append((i, f"needs {root}, which is not installed"))
                continue
            raise AssertionError(f"{name} block {i} failed: {type(e).__name__}: {e}\n"
                                 f"{code}") from e
        except Exception as e:  # name the block so a failure is easy to find
            raise AssertionError(f"{name} block {i} failed: {type(e).__name__}: {e}\n"
                                 f"{code}") from e
    return skipped


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_examples_run(path, tmp_path, monkeypatch, capsys):
    text = path.read_text(encoding="utf-8")
    if path.name in ("README.md", "engine.md"):
        assert python_blocks(text), f"{path.name} should show runnable Python"
    monkeypatch.chdir(tmp_path)
    skipped = run_blocks(path.name, text)
    if skipped:
        pytest.skip(f"{path.name}: the other blocks ran; skipped "
                    + "; ".join(f"block {i} ({why})" for i, why in skipped))


# --- the skip itself, with torch made absent -----------------------------------------------------

PAGE = """Some text.

```python
x = 2 + 3
```

```python
import torch
t = torch.tensor([1.0])
```

```python
from tinygrad_scalar import Value
y = Value(x).exp()
```
"""


def test_a_block_importing_torch_is_skipped_when_torch_is_absent(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails as if not installed
    assert run_blocks("page.md", PAGE) == [(1, "needs torch, which is not installed")]


def test_a_block_whose_library_call_needs_torch_is_skipped_when_torch_is_absent(monkeypatch,
                                                                                 tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "torch", None)
    page = "```python\ndef f():\n    import torch\n\nf()\n```\n"  # the import is not top level
    assert run_blocks("page.md", page) == [(0, "needs torch, which is not installed")]


def test_the_static_page_skips_with_a_reason_without_torch(monkeypatch, tmp_path):
    static = ROOT / "docs" / "static.md"
    if "import torch" not in static.read_text(encoding="utf-8"):
        pytest.skip("docs/static.md has no PyTorch example")
    monkeypatch.setitem(sys.modules, "torch", None)
    for name in [m for m in sys.modules if m.startswith("torch.")]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(pytest.skip.Exception, match=r"static\.md: .*needs torch"):
        test_examples_run(static, tmp_path, monkeypatch, None)


def test_other_failures_are_not_mistaken_for_a_missing_torch(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AssertionError, match="block 0 failed: ModuleNotFoundError"):
        run_blocks("page.md", "```python\nimport no_such_module_here\n```\n")
    with pytest.raises(AssertionError, match="block 0 failed: ZeroDivisionError"):
        run_blocks("page.md", "```python\nimport math\n1 / 0\n```\n")
