"""Build the teaching notebooks from their sources, run them, and write them with their outputs.

Each notebook has one source file, `notebooks/src/nbNN_<name>.py`, in jupytext's percent format
(plain Python that linters, formatters and editors read; Jupyter opens it as a notebook through
jupytext). A YAML header names the notebook written next to this script, then come the cells:

    # ---
    # jupyter:
    #   make_notebooks:
    #     file: 01_computation_graphs.ipynb
    # ---

    # %% [markdown]
    # # Title              <- Markdown, every line behind '# ' (LaTeX between $...$ works)

    # %%
    x = 1 + 1            <- code, run in order by a python3 kernel
    # %matplotlib inline <- a magic is written as a comment, as jupytext writes it

Blank lines around a cell are not part of it. A marker carries nothing else (no title, no
tags): what the generator needs of a cell (an answer, a timing cell, see below) is in the cell's
own text, so it survives any editor. To add a notebook, add a source file; its key is the two
digits after `nb`.

    .venv/bin/python notebooks/make_notebooks.py            # build and run every notebook
    .venv/bin/python notebooks/make_notebooks.py 01 03      # only these
    .venv/bin/python notebooks/make_notebooks.py --check    # run and compare; write nothing
    .venv/bin/python notebooks/make_notebooks.py --list
    .venv/bin/python notebooks/make_notebooks.py --students # student versions only, no run

Exercises: a code cell with a line `# answer` (or `# answer: why ...`) is an answer cell; the
lines from that one on are the answer, the lines before it setup. The code cells after it, up
to the next Markdown cell, are its checks (they call `teach.check_answer`, which says what is
wrong). Every notebook also gets a student version, `notebooks/student/<file>`: the same
notebook with each answer replaced by blanks (`name = ...`, `def f(x): return ...`) and the
outputs of answer and check cells removed; its checks fail with "not answered yet" until the
student fills the blanks in.

Notebooks run with the kernel `python3` and the notebooks folder as the working directory (as
nbmake runs them in `make test`). Whatever would change between two runs is made fixed: cell ids
come from the position, execution timings are not recorded, reprs that only name a memory
address (`<Drawing at 0x7f...>`, next to the picture itself) are dropped, and the language
metadata keeps no version numbers. So a re-run writes the same bytes, and `--check` tells
whether a committed notebook is what its source gives. The one exception is a cell that measures
time (notebook 7): it starts with the comment in TIMED, and its outputs are ignored when
comparing, so a re-run that changes nothing but timings leaves the file alone.
"""
from __future__ import annotations

import argparse
import ast
import copy
import re
import sys
import time
from pathlib import Path
from typing import Iterable, NamedTuple, Optional

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
STUDENT = HERE / "student"
ANSWER = re.compile(r"^#\s*answer\b")  # the line that starts the answer in an answer cell
STUDENT_HEAD = "# answer: replace each ... below with your answer, then run the check"
STUDENT_NOTE = (
    "> **Student version.** The answer cells are blank: replace each `...` with your answer "
    "and run the check cell after it, which says what is still wrong. The full notebook, with "
    "the answers and every output, is [../{file}](../{file}).")
KERNEL = "python3"
CELL_TIMEOUT = 300  # seconds per cell; every notebook is meant to run in well under a minute
_ADDRESS_ONLY = re.compile(r"\A<[^<>\n]* at 0x[0-9a-fA-F]+>\Z")
_ADDRESS = re.compile(r"\bat 0x[0-9a-fA-F]{4,}\b")
# A code cell whose text starts with this comment prints timings: its outputs differ on every
# run, so they are left out when deciding whether a notebook changed (writing and --check).
TIMED = "# timings: this cell's output changes from run to run"
_MARKER = re.compile(r"^# %%(?: (\[markdown\]))?$")
_FILE = re.compile(r"^#\s+file:\s*(\S+)\s*$")
# a commented magic in a code cell ('# %matplotlib inline'), uncommented as jupytext does
_MAGIC = re.compile(r"^(\s*)# (%{1,3}[A-Za-z])")


def sources() -> dict[str, Path]:
    """Every notebook source, by key ('01', '02', ...), in order."""
    found = {}
    for p in sorted(SRC.glob("nb[0-9][0-9]_*.py")):
        found[p.name[2:4]] = p
    return found


class Source(NamedTuple):
    """A notebook source as the generator sees it: the file to write and the cells, in order."""
    FILE: str
    CELLS: list  # [("md" or "code", text)], text exactly as it goes into the notebook
    path: Path


def _cell(path: Path, kind: str, lines: list, start: int) -> tuple:
    """One cell's text from the lines between its marker and the next one."""
    while lines and not lines[-1].strip():
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    if kind == "code":
        return kind, "\n".join(_MAGIC.sub(r"\1\2", line) for line in lines)
    text = []
    for n, line in enumerate(lines):
        if line != "#" and not line.startswith("# "):
            raise ValueError(f"{path}:{start + n + 1}: a Markdown cell's lines start with '# ' "
                             f"(or are a lone '#'), got {line[:60]!r}")
        text.append(line[2:])
    return kind, "\n".join(text)


def load(path: Path) -> Source:
    """A percent-format source file as (FILE, CELLS). It is read as text, never run, and
    anything that is not a header, a cell marker, or a cell's line is an error, not dropped."""
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines[:1] != ["# ---"] or "# ---" not in lines[1:]:
        raise ValueError(f"{path}: a notebook source starts with a jupytext header between two "
                         f"'# ---' lines naming the notebook ('#     file: NN_name.ipynb')")
    end = lines.index("# ---", 1)
    files = [m.group(1) for m in map(_FILE.match, lines[1:end]) if m]
    if len(files) != 1:
        raise ValueError(f"{path}: the header must name the notebook once, as "
                         f"'#     file: NN_name.ipynb' under 'make_notebooks:', found {files}")
    file = files[0]
    if not (file.endswith(".ipynb") and "/" not in file):
        raise ValueError(f"{path}: file must be a file name ending in .ipynb, got {file!r}")
    cells: list = []
    kind, body, start = None, [], end + 1
    for n in range(end + 1, len(lines)):
        line = lines[n]
        marker = _MARKER.match(line)
        if line.startswith("# %%") and not marker:
            raise ValueError(f"{path}:{n + 1}: a cell marker is '# %%' or '# %% [markdown]', "
                             f"got {line!r}")
        if marker:
            if kind is not None:
                cells.append(_cell(path, kind, body, start))
            kind, body, start = ("md" if marker.group(1) else "code"), [], n + 1
        elif kind is None:
            if line.strip():
                raise ValueError(f"{path}:{n + 1}: text before the first cell marker '# %%'")
        else:
            body.append(line)
    if kind is not None:
        cells.append(_cell(path, kind, body, start))
    if not cells:
        raise ValueError(f"{path}: no cells (a cell starts with '# %%' or '# %% [markdown]')")
    return Source(file, cells, path)


def split_answer(text: str) -> Optional[tuple]:
    """(setup, answer) of an answer cell's text, or None when the cell is not one."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if ANSWER.match(line):
            return "\n".join(lines[:i]), "\n".join(lines[i:])
    return None


def exercises(mod: Source) -> list:
    """(answer cell index, [check cell indexes]) for every answer cell of a source."""
    out = []
    cells = mod.CELLS
    for i, (kind, text) in enumerate(cells):
        if kind == "code" and split_answer(text) is not None:
            checks = []
            for j in range(i + 1, len(cells)):
                if cells[j][0] != "code" or split_answer(cells[j][1]) is not None:
                    break
                checks.append(j)
            out.append((i, checks))
    return out


def blank(answer: str) -> str:
    """The student's blanks for an answer: every name it assigns or function it defines,
    with `...` in place of the value or body; comments (they explain the answer) dropped."""
    out = []
    for node in ast.parse(answer).body:
        if isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, (ast.Tuple, ast.List)):
                    names = ", ".join(ast.unparse(e) for e in t.elts)
                    out.append(f"{names} = {', '.join('...' for _ in t.elts)}")
                else:
                    out.append(f"{ast.unparse(t)} = ...")
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            out.append(f"{ast.unparse(node.target)} = ...")
        elif isinstance(node, ast.FunctionDef):
            out.append(f"def {node.name}({ast.unparse(node.args)}):\n    return ...")
    if not out:
        raise ValueError(f"an answer cell assigns nothing to blank out: {answer[:80]!r}")
    return "\n".join(out)


def student_source(text: str) -> str:
    """An answer cell's text for the student: its setup, then the blanks."""
    setup, answer = split_answer(text)  # type: ignore[misc]
    head = (setup + "\n\n") if setup.strip() else ""
    return head + STUDENT_HEAD + "\n" + blank(answer)


def student(mod: Source, nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The student version of a run notebook: answers blank, answer and check outputs gone."""
    nb = copy.deepcopy(nb)
    for i, checks in exercises(mod):
        cell = nb.cells[i]
        cell.source = student_source(mod.CELLS[i][1])
        for c in [cell] + [nb.cells[j] for j in checks]:
            c.outputs = []
            c.execution_count = None
    note = nbformat.v4.new_markdown_cell(STUDENT_NOTE.format(file=mod.FILE))
    note.id = "student-note"
    nb.cells.insert(1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0, note)
    return nb


def write_student(mod: Source, key: str, text: str, check: bool = False) -> bool:
    """Write (or compare) the student version of a run notebook's text. True when up to date."""
    nb = student(mod, nbformat.reads(text, as_version=4))
    nbformat.validate(nb)
    out = nbformat.writes(nb)
    out += "" if out.endswith("\n") else "\n"
    target = STUDENT / mod.FILE
    same = target.exists() and target.read_text(encoding="utf-8") == out
    if not same and not check:
        STUDENT.mkdir(exist_ok=True)
        target.write_text(out, encoding="utf-8")
    return same


def build(mod: Source, key: str) -> nbformat.NotebookNode:
    """The notebook of a source, not yet run: fixed cell ids and metadata."""
    nb = nbformat.v4.new_notebook()
    for i, (kind, text) in enumerate(mod.CELLS):
        make = nbformat.v4.new_markdown_cell if kind == "md" else nbformat.v4.new_code_cell
        cell = make(text)
        cell.id = f"nb{key}-{i:03d}"
        nb.cells.append(cell)
    nb.metadata = {
        "kernelspec": {"name": KERNEL, "display_name": "Python 3 (ipykernel)",
                       "language": "python"},
        "language_info": {"name": "python", "pygments_lexer": "ipython3"},
    }
    return nb


def execute(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Run every cell in a fresh python3 kernel, working directory notebooks/."""
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name=KERNEL, record_timing=False,
                            resources={"metadata": {"path": str(HERE)}})
    client.execute()
    return nb


def coalesce_streams(outputs: list) -> list:
    """Consecutive prints to the same stream as one output: how the kernel splits them into
    messages depends on timing."""
    merged: list = []
    for out in outputs:
        prev = merged[-1] if merged else None
        if (out.get("output_type") == "stream" and prev is not None
                and prev.get("output_type") == "stream" and prev.get("name") == out.get("name")):
            prev["text"] = prev["text"] + out["text"]
        else:
            merged.append(out)
    return merged


def normalise(nb: nbformat.NotebookNode, key: str) -> nbformat.NotebookNode:
    """Remove what differs between runs; fail loudly on what cannot be removed."""
    nb.metadata["language_info"] = {"name": "python", "pygments_lexer": "ipython3"}
    for i, cell in enumerate(nb.cells):
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        cell.outputs = coalesce_streams(cell.outputs)
        for out in cell.outputs:
            if out.get("output_type") == "error":
                raise RuntimeError(f"notebook {key}, cell {i}: {out.get('ename')}: "
                                   f"{out.get('evalue')}")
            data = out.get("data")
            if not data:
                text = out.get("text", "")
                if _ADDRESS.search(text):
                    raise RuntimeError(f"notebook {key}, cell {i} prints a memory address, which "
                                       f"changes on every run: {text.strip()[:120]!r}")
                continue
            plain = data.get("text/plain", "")
            if _ADDRESS_ONLY.match(plain.strip()) and len(data) > 1:
                del data["text/plain"]  # '<Drawing at 0x...>': the picture next to it is the output
            elif _ADDRESS.search(plain):
                raise RuntimeError(f"notebook {key}, cell {i} shows a memory address, which "
                                   f"changes on every run: {plain.strip()[:120]!r}")
    return nb


def without_timings(text: str) -> str:
    """A notebook's text with the outputs of its timing cells (see TIMED) removed."""
    nb = nbformat.reads(text, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.startswith(TIMED):
            cell.outputs = []
    return nbformat.writes(nb)


def make(key: str, path: Path, check: bool = False) -> bool:
    """Build, run and write (or, with check, compare) one notebook. True when up to date."""
    mod = load(path)
    t0 = time.perf_counter()
    nb = normalise(execute(build(mod, key)), key)
    seconds = time.perf_counter() - t0
    nbformat.validate(nb)
    text = nbformat.writes(nb)
    text += "" if text.endswith("\n") else "\n"
    target = HERE / mod.FILE
    same, old = False, ""
    if target.exists():
        old = target.read_text(encoding="utf-8")
        same = old == text or (TIMED in text and without_timings(old) == without_timings(text))
    # the student version follows the notebook as written (the old text when it is kept)
    same_student = write_student(mod, key, old if same else text, check=check)
    if check and not same_student:
        print(f"student/{mod.FILE}: DIFFERS or MISSING", file=sys.stderr)
    same = same and same_student
    if check:
        state = "up to date" if same else ("MISSING" if not target.exists() else "DIFFERS")
        print(f"{mod.FILE}: {state} (ran in {seconds:.1f} s)", file=sys.stderr)
    else:
        if not same:
            target.write_text(text, encoding="utf-8")
        print(f"{mod.FILE}: {'unchanged' if same else 'written'} (ran in {seconds:.1f} s)",
              file=sys.stderr)
    return same


def main(argv: Optional[Iterable[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("keys", nargs="*", help="notebooks to build, e.g. 01 03 (default: all)")
    parser.add_argument("--check", action="store_true",
                        help="run and compare with the committed notebooks; write nothing")
    parser.add_argument("--list", action="store_true", help="list the notebook sources")
    parser.add_argument("--students", action="store_true",
                        help="only write the student versions, from the committed notebooks "
                             "(runs nothing)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    found = sources()
    if args.list:
        for key, path in found.items():
            print(f"{key}  {load(path).FILE}  ({path.relative_to(HERE)})")
        return 0
    keys = [k.zfill(2) for k in args.keys] or list(found)
    unknown = [k for k in keys if k not in found]
    if unknown:
        parser.error(f"no notebook source for {', '.join(unknown)}; known: {', '.join(found)}")
    if args.students:
        stale = []
        for k in keys:
            mod = load(found[k])
            text = (HERE / mod.FILE).read_text(encoding="utf-8")
            same = write_student(mod, k, text, check=args.check)
            state = "up to date" if same else ("DIFFERS" if args.check else "written")
            print(f"student/{mod.FILE}: {state}", file=sys.stderr)
            stale += [] if same else [k]
        return 1 if args.check and stale else 0
    stale = [k for k in keys if not make(k, found[k], check=args.check)]
    if args.check and stale:
        print(f"out of date: {', '.join(stale)}; run notebooks/make_notebooks.py "
              f"{' '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
