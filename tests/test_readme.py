"""The README tour prints what its comments say it prints.

A `print(...)` line in the tour whose comment starts with a number promises that output: the
comment's text up to the first `:` or ` =` must be exactly the line the print writes.
"""
import contextlib
import io
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def tour_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)[0]


def promises(block: str) -> list:
    """(statement, promised output) for each single-line print whose comment starts with a digit."""
    out = []
    for line in block.splitlines():
        m = re.match(r"^(print\(.*\))\s+#\s*(-?\d.*)$", line)
        if m:
            out.append((m.group(1), re.split(r":| =", m.group(2))[0].strip()))
    return out


def test_the_tour_makes_promises():
    assert len(promises(tour_block())) >= 2


def test_every_promised_line_is_printed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    block = tour_block()
    namespace: dict = {}
    got = {}
    for line in block.splitlines():  # the tour is one statement per line
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(compile(line, "tour", "exec"), namespace)
        got[line.split("#")[0].strip()] = buf.getvalue().strip()
    for stmt, want in promises(block):
        assert got[stmt] == want, f"README says {stmt} prints {want!r}; it prints {got[stmt]!r}"


def test_the_tour_leaves_only_the_files_it_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(tour_block(), "tour", "exec"), {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.svg"]
