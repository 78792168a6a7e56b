"""What `tinygrad-scalar grad` prints: numbers, the narration, path and forward tables, notes.

The teaching objects (`teach.narrate`, `teach.paths`, `teach.forward_mode`) hold the numbers;
this module decides how the command line shows them, for three reasons of its own:

- one precision everywhere (`--digits`, 6 significant digits by default, as the tables use),
  so a terminal never shows 0.6400000000000001 next to 0.64;
- an edge toward a Python constant (the 2 of `x ** 2`) has no derivative that anyone needs:
  its row shows none (`-`, and null in JSON) instead of the nan that `x ** 2` at x < 0 gives;
- parallel edges (`a*a` uses a twice) are told apart as the first and second input, so the
  path table of `a*a*a` does not list two identical rows.

JSON keeps full precision; the text and the JSON are built from the same records.
"""
from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Optional, Sequence

from .engine import Value

if TYPE_CHECKING:  # the teaching objects, for the type hints only
    from .teach.modes import ForwardTable
    from .teach.narration import Narration
    from .teach.pathsum import Path, PathSum

NONE = "-"  # shown where there is no number (a derivative toward a constant)


def num(x: Optional[float], digits: int = 6) -> str:
    """A number for people: whole numbers without '.0', others to `digits` significant digits,
    inf/-inf/nan as such; None (no number) as '-'."""
    if x is None:
        return NONE
    x = float(x)
    if not math.isfinite(x):
        return "nan" if x != x else ("inf" if x > 0 else "-inf")
    if x == int(x) and abs(x) < 1e15:
        return str(int(x)) if x != 0 else "0"
    return format(x, f".{digits}g")


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart, a rule under the header."""
    widths = [len(h) for h in header]
    for r in rows:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
                     for r in [list(header), ["-" * w for w in widths], *rows])


def ordinal(k: int) -> str:
    """1 -> '1st', 2 -> '2nd', 3 -> '3rd' (inputs of one operation: at most a few)."""
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(k, f"{k}th")


# -- the narrated backward pass (--explain) --------------------------------------------------

def explain_records(narration: "Narration") -> list:
    """The narration's steps as dicts; an edge toward a constant has `constant: true` and null
    numbers (backward never needs a constant's gradient)."""
    out = []
    for s in narration:
        edges = []
        for e in s.edges:
            const = e.input.is_constant
            edges.append({"input": e.input_name, "constant": const,
                          "local": None if const else e.local,
                          "contribution": None if const else e.contribution,
                          "before": None if const else e.before,
                          "after": None if const else e.after})
        out.append({"step": s.index, "node": s.name, "op": s.op, "data": s.data,
                    "grad": s.grad, "edges": edges})
    return out


def explain_text(narration: "Narration", digits: int = 6) -> str:
    """The backward pass as a table, one row per input edge, constants' rows without numbers."""
    root = narration.names[narration.root]
    steps = explain_records(narration)
    if not steps:
        title = (f"backward from {root} (data {num(narration.root.data, digits)}): {root} is a "
                 "leaf, so backward takes no steps; it only adds the seed to its gradient")
        lines = [title]
    else:
        title = (f"backward from {root} (data {num(narration.root.data, digits)}): "
                 f"{len(steps)} step(s) in reverse topological order")
        lines = [title]
        rows = []
        for s in steps:
            head = [str(s["step"]), s["node"], s["op"], num(s["data"], digits),
                    num(s["grad"], digits)]
            for k, e in enumerate(s["edges"]):
                if e["constant"]:
                    cells = [e["input"], NONE, "(a constant: no gradient needed)", NONE]
                else:
                    product = (f"{num(s['grad'], digits)} x {num(e['local'], digits)} = "
                               f"{num(e['contribution'], digits)}")
                    cells = [e["input"], num(e["local"], digits), product,
                             f"{num(e['before'], digits)} -> {num(e['after'], digits)}"]
                rows.append((head if k == 0 else [""] * 5) + cells)
        lines.append(table(["step", "node", "op", "data", "grad (final)", "input", "local",
                            "upstream x local", "input grad before -> after"], rows))
    grads = narration.grads
    leaves = [f"{narration.names[v]}{' (const)' if v.is_constant else ''} = "
              f"{num(grads[v], digits)}" for v in narration.order
              if v.is_leaf and (not v.is_constant or v is narration.root)]
    lines.append("leaf gradients: " + (", ".join(leaves) if leaves else "(none)"))
    return "\n".join(lines)


# -- the sum over paths (--paths) ------------------------------------------------------------

def _slots(child: Value, parent: Value) -> list:
    """The 1-based input positions at which `parent` enters `child` (two for a*a)."""
    return [k + 1 for k, (p, _) in enumerate(child.edges()) if p is parent]


def path_inputs(path_sum: "PathSum") -> list:
    """For each listed path, the input position of every edge along it (x first).

    Paths through parallel edges have the same nodes; the enumeration visits the inputs of each
    node in order, from the output down, so identical node sequences come in the order of their
    input positions, the hop nearest the output varying slowest.
    """
    groups: dict = {}
    for i, p in enumerate(path_sum.paths):
        groups.setdefault(tuple(id(n) for n in p.nodes), []).append(i)
    out: list = [None] * len(path_sum.paths)
    for members in groups.values():
        nodes = path_sum.paths[members[0]].nodes
        hops = [_slots(nodes[j + 1], nodes[j]) for j in range(len(nodes) - 1)]
        combos = [tuple(reversed(c)) for c in itertools.product(*reversed(hops))]
        if len(combos) != len(members):  # pragma: no cover - the enumeration is exhaustive
            combos = [tuple(h[0] for h in hops)] * len(members)
        for i, c in zip(members, combos):
            out[i] = list(c)
    return out


def paths_dict(path_sum: "PathSum") -> dict:
    """PathSum.to_dict() with `inputs` (the input position of each edge) on every path."""
    doc = path_sum.to_dict()
    for d, inputs in zip(doc["paths"], path_inputs(path_sum)):
        d["inputs"] = inputs
    return doc


def _path_label(path: "Path", inputs: list) -> str:
    parts = [path.names[0]]
    for j, k in enumerate(inputs):
        child = path.nodes[j + 1]
        arrow = f" -[{ordinal(k)} input]-> " if len(_slots(child, path.nodes[j])) > 1 \
            else " -> "
        parts.append(arrow + path.names[j + 1])
    return "".join(parts)


def paths_text(path_sum: "PathSum", digits: int = 6) -> str:
    """The paths from x to the output with their products and sum, next to backward's number;
    a path through a parallel edge says which input it takes (a -[2nd input]-> a*a)."""
    if not (path_sum.count and path_sum.listed):
        return path_sum.to_text(digits)  # nothing listed: no row to tell apart
    d = path_sum.to_dict()
    y, x = d["root"], d["x"]
    rows = [[str(i + 1), _path_label(p, inputs), p.derivs_text(lambda v: num(v, digits)),
             num(p.product, digits)]
            for i, (p, inputs) in enumerate(zip(path_sum.paths, path_inputs(path_sum)))]
    n = path_sum.count
    summary = (f"sum of the products = {num(path_sum.total, digits)};  d{y}/d{x} from "
               f"backward = {num(path_sum.grad, digits)}")
    note = [path_sum.mask_note()] if path_sum.masked else []
    return "\n".join([f"paths from {x} to {y}: {n:,} path{'s' if n != 1 else ''}",
                      table(["#", "path", "local derivatives", "product"], rows), summary, *note])


# -- forward mode (--forward) ----------------------------------------------------------------

def forward_dict(ft: "ForwardTable") -> dict:
    """ForwardTable.to_dict(), with no adjoint (null) for constants: no one needs d f/d 2."""
    doc = ft.to_dict()
    for row, r in zip(doc["rows"], ft.rows):
        if r.node.is_constant and r.node is not ft.root:
            row["adjoint"] = None
    return doc


def forward_text(ft: "ForwardTable", digits: int = 6) -> str:
    """Tangents d node/d x (forward) next to adjoints d f/d node (reverse), one row per node."""
    d = forward_dict(ft)
    y, x = d["root"], d["x"]
    rows = [[r["node"], r["op"], num(r["data"], digits), num(r["tangent"], digits),
             num(r["adjoint"], digits)] for r in d["rows"]]
    title = (f"forward mode: one sweep from {x} gives d node/d {x} for every node; reverse "
             f"mode: one sweep from {y} gives d {y}/d node for every node")
    summary = (f"d{y}/d{x}: forward (tangent of {y}) = {num(d['forward'], digits)}, reverse "
               f"(adjoint of {x}) = {num(d['reverse'], digits)}")
    header = ["node", "op", "data", f"d node/d {x} (forward)", f"d {y}/d node (reverse)"]
    return "\n".join([title, table(header, rows), summary])


# -- why a gradient is not finite --------------------------------------------------------------

def non_finite_notes(narration: "Narration", out: str, leaves: dict, limit: int = 3) -> list:
    """One line per cause of a nan or infinite gradient of a variable: the edges whose local
    derivative is not finite (toward a Value, not a constant), the common one explained."""
    bad = [n for n, v in leaves.items() if not math.isfinite(v.grad)]
    if not bad:
        return []
    which = ", ".join(f"d{out}/d{n} = {num(leaves[n].grad)}" for n in bad)
    notes = []
    for s in narration:
        for k, e in enumerate(s.edges):
            if e.input.is_constant or math.isfinite(e.local):
                continue
            base_value = s.edges[0].input.data
            if s.op == "**" and k == 1 and base_value < 0:
                base = num(base_value)
                why = (f"the power {s.name} has a negative base ({base}): a negative base "
                       f"has no real derivative toward its exponent {e.input_name} "
                       "(d/dy x**y = x**y * log(x) needs the log of a negative number)")
            else:
                what = "nan" if e.local != e.local else "infinite"
                why = (f"the local derivative of {s.name} ({s.op}) toward {e.input_name} is "
                       f"{what} at these values")
            notes.append(f"note: {which}: {why}")
            if len(notes) >= limit:
                return notes
    return notes or [f"note: {which}"]
