"""What every teaching tool shares: node names, looking nodes up, one private reverse sweep,
number formatting and small HTML tables.

Public within the project: the pictures (`viz`) name nodes with `node_names` too, so that every
name a caption, narration or table uses is the one drawn on the node.

Everything here reads the engine's public surface (`parents`, `edges()`, `topological_order`
and its reverse and forward sweeps: the same per-edge local derivatives `backward()` uses) and
never writes to a node. A number that does not exist (the derivative toward a constant) is None
and prints as "-".
"""
from __future__ import annotations

import html
import math
from typing import Callable, Iterable, Optional, Sequence, Union

from .. import checks
from ..engine import Value, topological_order
from ..engine import forward_sweep as engine_forward_sweep
from ..engine import reverse_sweep as engine_reverse_sweep

NodeRef = Union[Value, str]


def check_value(v: object, what: str) -> Value:
    """v itself when it is a Value, else a TypeError naming what was passed."""
    return checks.value(v, what)


def node_names(order: Sequence[Value]) -> dict:
    """A name for each node: its label when set, else `n<i>` with i its position in `order`
    (a topological order, inputs first; the numbering the graph drawings use).

    Names are made unique: when two nodes would share a name (two nodes labelled `w`), each of
    them gets its position appended, `w@n3` and `w@n7`.
    """
    base = [v.label if v.label else f"n{i}" for i, v in enumerate(order)]
    seen: dict = {}
    for b in base:
        seen[b] = seen.get(b, 0) + 1
    return {v: (b if seen[b] == 1 else f"{b}@n{i}")
            for i, (v, b) in enumerate(zip(order, base))}


def union_order(roots: Iterable[Value]) -> list:
    """One topological order of everything below any of the roots (inputs first)."""
    order: list = []
    seen: set = set()
    for r in roots:
        for v in topological_order(r, stop=lambda n: n in seen):
            if v not in seen:
                seen.add(v)
                order.append(v)
    return order


def resolve(ref: object, names: dict, what: str) -> Value:
    """A node given as a Value, or as its name or label in the graph (exactly one match)."""
    if isinstance(ref, Value):
        return ref
    if not isinstance(ref, str):
        raise TypeError(f"{what} needs a Value or a node name (str), got "
                        f"{type(ref).__name__}: {ref!r}")
    hits = [v for v, n in names.items() if n == ref]
    if not hits:
        hits = [v for v in names if v.label == ref]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        known = ", ".join(sorted(names.values(), key=_natural)[:30])
        raise KeyError(f"{what}: no node named {ref!r} in the graph; names: {known}")
    raise ValueError(f"{what}: {len(hits)} nodes are labelled {ref!r} "
                     f"({', '.join(names[v] for v in hits)}); pass the Value or a unique name")


def _natural(name: str):
    return (len(name), name)


def op_name(v: Value) -> str:
    """The op symbol for an interior node, 'const' for a constant, '' for an input leaf."""
    if v.is_constant:
        return "const"
    op = v.op
    return "" if op is None else op.symbol


def reverse_sweep(order: Sequence[Value], root: Value, seed: float = 1.0,
                  on_edge: Optional[Callable] = None) -> dict:
    """d root / d node for every node of `order`, by the engine's reverse sweep (the numbers
    backward would store on fresh leaves, bit for bit). A constant gets None: no derivative is
    ever computed toward a constant (unless the root is itself that constant). on_edge: as for
    the engine's sweep, called for every edge it passes."""
    g = engine_reverse_sweep(list(order), {root: seed}, on_edge=on_edge)
    return {v: (None if v.is_constant and v is not root else g.get(v, 0.0)) for v in order}


def forward_sweep(order: Sequence[Value], x: Value) -> dict:
    """d node / d x for every node of `order`, by the engine's forward sweep from x. Only edges
    from nodes that depend on x are used (structural zeros stay exact zeros, so an infinite
    local derivative next to an unrelated input does not turn into nan); nodes that do not
    depend on x get 0."""
    t = engine_forward_sweep(list(order), {x: 1.0})
    return {v: t.get(v, 0.0) for v in order}


class NodeMap(dict):
    """A dict keyed by node that also accepts a node's name: `tangents[c]` or `tangents['c']`."""

    def __init__(self, values: dict, names: dict):
        super().__init__(values)
        self._names = names

    def _key(self, key):
        if isinstance(key, str):
            return resolve(key, self._names, "lookup")
        return key

    def __getitem__(self, key):
        return super().__getitem__(self._key(key))

    def __contains__(self, key) -> bool:
        try:
            return super().__contains__(self._key(key))
        except (KeyError, ValueError):
            return False

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def by_name(self) -> dict:
        """The same numbers keyed by node name (plain data)."""
        return {self._names[v]: x for v, x in self.items()}


# -- formatting ---------------------------------------------------------------------------------

def fmt(x: object, digits: int = 6) -> str:
    """A number for people: whole numbers without '.0', others to `digits` significant digits;
    None (no number: the derivative toward a constant) as '-'."""
    if x is None:
        return "-"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return str(x)
    x = float(x)  # type: ignore[arg-type]
    if math.isnan(x) or math.isinf(x):
        return str(x)
    if x == int(x) and abs(x) < 1e15:
        return str(int(x)) if x != 0 else "0"
    return format(x, f".{digits}g")


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart."""
    widths = [len(h) for h in header]
    for r in rows:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
             for r in [list(header), ["-" * w for w in widths], *rows]]
    return "\n".join(lines)


_TABLE = ('<table style="border-collapse:collapse;font-family:monospace;font-size:12px">')
_CELL = 'style="border:1px solid #ccc;padding:2px 6px;text-align:{align}"'


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]],
               title: Optional[str] = None, note: Optional[str] = None,
               row_styles: Optional[Sequence[str]] = None) -> str:
    """A small self-contained HTML table; cells are escaped here, so pass plain text."""
    esc = html.escape
    out = ["<div>"]
    if title:
        out.append(f"<div style=\"font-weight:bold;margin:4px 0\">{esc(title)}</div>")
    if header:
        out.append(_TABLE)
        out.append("<tr>" + "".join(f"<th {_CELL.format(align='left')}>{esc(h)}</th>"
                                    for h in header) + "</tr>")
        for k, r in enumerate(rows):
            style = f' style="{row_styles[k]}"' if row_styles and row_styles[k] else ""
            cells = "".join(f"<td {_CELL.format(align='left')}>{esc(c)}</td>" for c in r)
            out.append(f"<tr{style}>{cells}</tr>")
        out.append("</table>")
    if note:
        out.append(f"<div style=\"margin:4px 0\">{esc(note)}</div>")
    out.append("</div>")
    return "\n".join(out)
