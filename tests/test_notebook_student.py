"""Student notebooks: every check fails, saying the answer is missing, until it is answered.

For each notebook the code cells run in order in one namespace, in this process (no kernel;
IPython magics are skipped). At each answer cell the student's blank version runs first, in a
copy of the namespace, and every check after it must fail with WrongAnswer ("not answered
yet"); then the real answer runs and its checks must pass. So a check that passes on a blank,
or fails with a bare TypeError, is caught. The committed student notebooks must be what the
generator makes of the committed notebooks.
"""
from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("nbformat", reason="nbformat is needed to read the notebooks")
pytest.importorskip("nbclient", reason="nbclient is needed by the notebook generator")
pytest.importorskip("IPython", reason="the notebooks import IPython.display")

from notebook_generator import NOTEBOOKS, load_generator  # noqa: E402

from tinygrad_scalar.teach import WrongAnswer  # noqa: E402

GEN = load_generator()
SOURCES = GEN.sources()


def _code(text: str) -> str:
    return "\n".join("pass" if line.startswith("%") else line
                     for line in text.split("\n"))


def _run(src: str, ns: dict, where: str) -> None:
    exec(compile(src, where, "exec"), ns)


@pytest.mark.parametrize("key", sorted(SOURCES))
def test_student_checks_fail_until_answered(key, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(NOTEBOOKS)
    mod = GEN.load(SOURCES[key])
    exercises = dict(GEN.exercises(mod))
    assert len(exercises) >= 2, f"notebook {key}: fewer than two answer cells (# answer)"
    checks_of = {j: i for i, js in exercises.items() for j in js}
    ns: dict = {"__name__": f"nb{key}"}
    student: dict = {}
    for i, (kind, text) in enumerate(mod.CELLS):
        if kind != "code":
            continue
        where = f"notebook {key}, cell {i}"
        if i in exercises:
            assert exercises[i], f"{where}: an answer cell without a check cell after it"
            student = dict(ns)
            _run(_code(GEN.student_source(text)), student, where + " (student)")
        if i in checks_of:
            with pytest.raises(WrongAnswer, match="not answered yet"):
                _run(_code(text), dict(student), where + " (check on the blank answer)")
        _run(_code(text), ns, where)


@pytest.mark.parametrize("key", sorted(SOURCES))
def test_committed_student_notebook_is_generated(key):
    mod = GEN.load(SOURCES[key])
    full = NOTEBOOKS / mod.FILE
    path = NOTEBOOKS / "student" / mod.FILE
    hint = f"run: .venv/bin/python notebooks/make_notebooks.py --students {key}"
    assert path.exists(), f"student/{mod.FILE} is missing; {hint}"
    want = GEN.student(mod, GEN.nbformat.reads(full.read_text(encoding="utf-8"), as_version=4))
    got = json.loads(path.read_text(encoding="utf-8"))
    assert [(c["id"], "".join(c["source"])) for c in got["cells"]] == \
        [(c.id, c.source) for c in want.cells], f"student/{mod.FILE} is stale; {hint}"
    for i, checks in GEN.exercises(mod):
        cells = {c["id"]: c for c in got["cells"]}
        for j in [i] + checks:
            cell = cells[f"nb{key}-{j:03d}"]
            assert cell["outputs"] == [], f"student/{mod.FILE}: cell {j} keeps its outputs"
        assert "..." in "".join(cells[f"nb{key}-{i:03d}"]["source"])


def test_blanks():
    assert GEN.blank("a, b = 1, 2\nc = a + b  # why\nd += 1") == "a, b = ..., ...\nc = ...\nd = ..."
    assert GEN.blank("def f(x, y=2):\n    return x * y") == "def f(x, y=2):\n    return ..."
    with pytest.raises(ValueError, match="assigns nothing"):
        GEN.blank("print(1)")
    assert GEN.split_answer("x = 1\n# answer: because\ny = 2") == \
        ("x = 1", "# answer: because\ny = 2")
    assert GEN.split_answer("y = 2  # answer") is None
    assert os.path.isdir(NOTEBOOKS / "src")
