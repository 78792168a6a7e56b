"""Timing cells (notebook 7): their outputs may change between runs, nothing else may.

The generator leaves the outputs of cells that start with `make_notebooks.TIMED` out of its
comparison, so a re-run that changes only timings neither rewrites a notebook nor fails
`--check`. These checks need no kernel.
"""
from __future__ import annotations

import json
import re

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat is needed to read the notebooks")
pytest.importorskip("nbclient", reason="nbclient is needed by the notebook generator")

from notebook_generator import NOTEBOOKS, load_generator  # noqa: E402

GEN = load_generator()


def _notebook(cells) -> str:
    nb = nbformat.v4.new_notebook()
    for i, (source, printed) in enumerate(cells):
        cell = nbformat.v4.new_code_cell(source)
        cell.id = f"c{i}"
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
        nb.cells.append(cell)
    return nbformat.writes(nb)


def test_only_timing_cells_outputs_are_ignored():
    timed = GEN.TIMED + "\nprint(t)"
    a = _notebook([("print(1)", "1\n"), (timed, "3.1 ms\n")])
    b = _notebook([("print(1)", "1\n"), (timed, "2.7 ms\n")])
    assert a != b and GEN.without_timings(a) == GEN.without_timings(b)
    # an ordinary cell whose output changed is a real difference
    c = _notebook([("print(1)", "2\n"), (timed, "3.1 ms\n")])
    assert GEN.without_timings(a) != GEN.without_timings(c)
    # so is a changed source, even of a timing cell
    d = _notebook([("print(1)", "1\n"), (timed + "  # edited", "3.1 ms\n")])
    assert GEN.without_timings(a) != GEN.without_timings(d)


TIME_UNITS = re.compile(r"\d\s*(ms|µs|us|ns|seconds|s)\b")


@pytest.mark.parametrize("key", sorted(GEN.sources()))
def test_timings_are_printed_only_in_timing_cells(key):
    path = NOTEBOOKS / GEN.load(GEN.sources()[key]).FILE
    if not path.exists():
        pytest.skip(f"{path.name} is not generated yet")
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] != "code" or "".join(cell["source"]).startswith(GEN.TIMED):
            continue
        for out in cell["outputs"]:
            text = "".join(out.get("text", "")) + "".join(out.get("data", {}).get("text/plain", ""))
            assert not TIME_UNITS.search(text), (
                f"{path.name}: a cell prints what looks like a timing but does not start with "
                f"{GEN.TIMED!r}: {text.strip()[:120]!r}")
