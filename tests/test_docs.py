"""Every Python example in the README and docs/ runs (in a scratch folder), in order per file."""
import doctest
import pathlib
import re

import matplotlib
import pytest

matplotlib.use("Agg")

ROOT = pathlib.Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


def python_blocks(text: str) -> list:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_examples_run(path, tmp_path, monkeypatch, capsys):
    blocks = python_blocks(path.read_text(encoding="utf-8"))
    if path.name in ("README.md", "engine.md"):
        assert blocks, f"{path.name} should show runnable Python"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for i, code in enumerate(blocks):
        if code.lstrip().startswith(">>>"):  # a REPL transcript: its outputs must match
            test = doctest.DocTestParser().get_doctest(code, namespace, path.name, str(path), 0)
            runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
            runner.run(test, out=lambda s: None)
            assert runner.failures == 0, f"{path.name} block {i}: the transcript differs\n{code}"
            continue
        try:
            exec(compile(code, f"{path.name}[block {i}]", "exec"), namespace)
        except Exception as e:  # name the block so a failure is easy to find
            raise AssertionError(f"{path.name} block {i} failed: {type(e).__name__}: {e}\n"
                                 f"{code}") from e
