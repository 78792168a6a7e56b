"""The committed teaching notebooks are what their sources give, and were run to the end.

`make test` executes every notebook with nbmake; these checks are the cheap complement that
needs no kernel: a notebook edited by hand (and not its source in notebooks/src/), or committed
without running it, fails here with the command that regenerates it.
"""
from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("nbformat", reason="nbformat is needed to read the notebooks")
pytest.importorskip("nbclient", reason="nbclient is needed by the notebook generator")

from notebook_generator import NOTEBOOKS, load_generator  # noqa: E402

GEN = load_generator()
SOURCES = GEN.sources()


def test_there_are_sources():
    assert {"01", "02", "03", "06"} <= set(SOURCES)


@pytest.mark.parametrize("key", sorted(SOURCES))
def test_jupytext_reads_the_source_as_the_generator_does(key):
    # the sources are jupytext percent files, so that Jupyter and editors open them as
    # notebooks: jupytext must see the same cells, in the same order, as make_notebooks.py
    jupytext = pytest.importorskip("jupytext")
    mod = GEN.load(SOURCES[key])
    nb = jupytext.read(SOURCES[key], fmt="py:percent")
    kinds = {"markdown": "md", "code": "code"}
    assert [(kinds[c.cell_type], c.source) for c in nb.cells] == mod.CELLS
    assert nb.metadata["make_notebooks"]["file"] == mod.FILE


HEAD = "# ---\n# jupyter:\n#   make_notebooks:\n#     file: 99_x.ipynb\n# ---\n"


def test_a_source_is_read_cell_by_cell(tmp_path):
    path = tmp_path / "nb99_x.py"
    path.write_text(HEAD + "\n# %% [markdown]\n# # Title\n#\n# text\n\n# %%\n"
                    "# %matplotlib inline\nx = 1  # a comment\n\n\n# %%\ndef f():\n"
                    "    return 2\n", encoding="utf-8")
    mod = GEN.load(path)
    assert mod.FILE == "99_x.ipynb"
    assert mod.CELLS == [("md", "# Title\n\ntext"),
                         ("code", "%matplotlib inline\nx = 1  # a comment"),
                         ("code", "def f():\n    return 2")]


@pytest.mark.parametrize("text, message", [
    ("FILE = 'x.ipynb'\n", "jupytext header"),
    (HEAD.replace("file: 99_x.ipynb", "name: 99_x.ipynb"), "name the notebook once"),
    (HEAD.replace("99_x.ipynb", "sub/99_x.ipynb"), "ending in .ipynb"),
    (HEAD + "x = 1\n# %%\ny = 2\n", "before the first cell marker"),
    (HEAD + "# %% [markdown]\n# text\nnot a comment\n", "Markdown cell's lines"),
    (HEAD + "# %% tags=['x']\nx = 1\n", "cell marker is"),
    (HEAD, "no cells"),
])
def test_a_malformed_source_is_an_error_not_a_lost_cell(tmp_path, text, message):
    path = tmp_path / "nb99_x.py"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        GEN.load(path)


@pytest.mark.parametrize("key", sorted(SOURCES))
def test_notebook_matches_its_source_and_was_run(key):
    mod = GEN.load(SOURCES[key])
    path = NOTEBOOKS / mod.FILE
    hint = f"run: .venv/bin/python notebooks/make_notebooks.py {key}"
    assert path.exists(), f"{mod.FILE} is missing; {hint}"
    nb = json.loads(path.read_text(encoding="utf-8"))
    want = GEN.build(mod, key)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    got_cells = [(c["cell_type"], c["id"], "".join(c["source"])) for c in nb["cells"]]
    want_cells = [(c.cell_type, c.id, c.source) for c in want.cells]
    assert got_cells == want_cells, f"{mod.FILE} differs from {SOURCES[key].name}; {hint}"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1)), \
        f"{mod.FILE} was not run top to bottom; {hint}"
    for c in code:
        assert not any(o.get("output_type") == "error" for o in c["outputs"]), c["source"]
        assert "execution" not in c.get("metadata", {}), "timings recorded; " + hint


EXERCISE = re.compile(r"(?m)^(#+\s*|\*\*)Exercise \d")


@pytest.mark.parametrize("key", sorted(SOURCES))
def test_every_notebook_has_checked_exercises(key):
    # at least two exercises ("**Exercise 1.**" or "### Exercise 1: ..."), and after each one,
    # before the next, a code cell that checks the answer (check_answer, or assert)
    cells = GEN.load(SOURCES[key]).CELLS
    starts = [i for i, (kind, text) in enumerate(cells)
              if kind == "md" and EXERCISE.search(text)]
    assert len(starts) >= 2, f"notebook {key}: fewer than two exercises"
    for a, b in zip(starts, starts[1:] + [len(cells)]):
        assert any(kind == "code" and ("check_answer(" in text or "assert" in text)
                   for kind, text in cells[a + 1:b]), \
            f"notebook {key}: no assert checks the exercise in cell {a}"


def test_cells_are_normalised_deterministically():
    # the two things that made re-runs differ: split prints and address-only reprs
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="[[1 2]\n [3 4]]"),
        nbformat.v4.new_output("stream", name="stdout", text="\n"),
        nbformat.v4.new_output("display_data", data={
            "image/svg+xml": "<svg/>", "text/plain": "<tinygrad_scalar.viz.Drawing at 0x7f3a>"}),
    ]
    cell.metadata["execution"] = {"iopub.status.idle": "2024-01-01T00:00:00Z"}
    nb.cells = [cell]
    GEN.normalise(nb, "xx")
    outs = nb.cells[0].outputs
    assert outs[0]["text"] == "[[1 2]\n [3 4]]\n" and len(outs) == 2
    assert outs[1]["data"] == {"image/svg+xml": "<svg/>"}
    assert "execution" not in nb.cells[0].metadata
    # a memory address that is the only output cannot be dropped: an error, not a silent diff
    cell.outputs = [nbformat.v4.new_output("execute_result", execution_count=1,
                                           data={"text/plain": "<object at 0xdeadbeef>"})]
    with pytest.raises(RuntimeError, match="memory address"):
        GEN.normalise(nb, "xx")
