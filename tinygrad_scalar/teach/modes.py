"""Forward mode next to reverse mode on the same graph, and what each costs for a Jacobian.

Forward mode pushes a tangent d node / d x from one input x up through every edge (inputs
first): one sweep tells how one input moves every node. Reverse mode pulls an adjoint
d y / d node from one output y down through the same edges: one sweep tells how every node
moves one output. Both multiply by the same stored local derivatives.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

from ..engine import Value, topological_order
from .graph import (NodeMap, check_value, fmt, forward_sweep, html_table, node_names, op_name,
                     resolve, reverse_sweep, text_table, union_order)


@dataclass(frozen=True)
class ForwardRow:
    """One node: its tangent d node / d x (forward) and adjoint d root / d node (reverse)."""
    node: Value = field(repr=False)
    name: str
    op: str
    data: float
    tangent: float
    adjoint: Optional[float]  # None for a constant: a derivative toward it is never needed

    def to_dict(self) -> dict:
        return {"node": self.name, "op": self.op, "data": self.data, "tangent": self.tangent,
                "adjoint": self.adjoint}


class ForwardTable:
    """Forward-mode tangents from one input next to reverse-mode adjoints into one output."""

    def __init__(self, root: Value, x: Value, names: dict, rows: list, tangents: NodeMap,
                 adjoints: NodeMap):
        self.root, self.x, self.names, self.rows = root, x, names, rows
        self.tangents, self.adjoints = tangents, adjoints

    @property
    def _xname(self) -> str:
        return self.names.get(self.x) or self.x.label or "x"

    @property
    def forward(self) -> float:
        """d root / d x by forward mode: the root's tangent."""
        return self.tangents[self.root]

    @property
    def reverse(self) -> float:
        """d root / d x by reverse mode: x's adjoint (0 when root does not depend on x)."""
        return self.adjoints.get(self.x, 0.0)

    def to_dict(self) -> dict:
        return {"root": self.names[self.root], "x": self._xname,
                "rows": [r.to_dict() for r in self.rows],
                "forward": self.forward, "reverse": self.reverse}

    def _header(self) -> list:
        y, x = self.names[self.root], self._xname
        return ["node", "op", "data", f"d node/d {x} (forward)", f"d {y}/d node (reverse)"]

    def _rows(self, digits: int) -> list:
        return [[r.name, r.op, fmt(r.data, digits), fmt(r.tangent, digits),
                 "" if r.adjoint is None else fmt(r.adjoint, digits)] for r in self.rows]

    def _title(self) -> str:
        y, x = self.names[self.root], self._xname
        return (f"forward mode: one sweep from {x} gives d node/d {x} for every node; "
                f"reverse mode: one sweep from {y} gives d {y}/d node for every node")

    def _summary(self, digits: int) -> str:
        y, x = self.names[self.root], self._xname
        return (f"d{y}/d{x}: forward (tangent of {y}) = {fmt(self.forward, digits)}, "
                f"reverse (adjoint of {x}) = {fmt(self.reverse, digits)}")

    def to_text(self, digits: int = 6) -> str:
        """A plain-text table in topological order (inputs first)."""
        return "\n".join([self._title(), text_table(self._header(), self._rows(digits)),
                          self._summary(digits)])

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return (f"<ForwardTable d{self.names[self.root]}/d{self._xname}: forward="
                f"{self.forward!r}, reverse={self.reverse!r}>")

    def _repr_html_(self, digits: int = 6) -> str:
        styles = ["background:#eef6ee" if r.node is self.x or r.node is self.root else ""
                  for r in self.rows]
        return html_table(self._header(), self._rows(digits), title=self._title(),
                          note=self._summary(digits), row_styles=styles)


def forward_mode(root: Value, x) -> ForwardTable:
    """Tangents d node / d x for every node of root's graph by forward mode (one sweep from x,
    inputs first, through the stored local derivatives), next to the adjoints d root / d node
    of reverse mode (none for constants: never needed). `tangents[root]` equals `adjoints[x]` up
    to rounding. No `.grad` changes.
    x is a Value or the name/label of a node in root's graph."""
    check_value(root, "forward_mode(root)")
    order = topological_order(root)
    names = node_names(order)
    x = resolve(x, names, "forward_mode(x)")
    t = forward_sweep(order, x)
    a = reverse_sweep(order, root)
    # the table shows no d root / d constant: it is never needed (for x ** 2 at x < 0 it is nan)
    rows = [ForwardRow(v, names[v], op_name(v), v.data, t[v],
                       None if v.is_constant and v is not root else a[v]) for v in order]
    if x not in t:  # x is not in root's graph: root does not depend on it
        names = {**names, x: x.label or "x"}
    return ForwardTable(root, x, names, rows, NodeMap(t, names), NodeMap(a, names))


# -- the cost of a full Jacobian ----------------------------------------------------------------

@dataclass(frozen=True)
class Sweep:
    """One sweep: from which input (forward) or output (reverse), and its multiply-adds."""
    mode: str
    seed: str
    multiply_adds: int


class CostTable:
    """Multiply-adds for the full Jacobian by forward mode (one sweep per input) and reverse
    mode (one sweep per output), counted edge by edge on the actual graph."""

    def __init__(self, n_inputs: int, n_outputs: int, edges: int, relevant_edges: int,
                 forward: list, reverse: list):
        self.n_inputs, self.n_outputs = n_inputs, n_outputs
        self.edges, self.relevant_edges = edges, relevant_edges
        self.forward, self.reverse = forward, reverse

    @property
    def forward_total(self) -> int:
        return sum(s.multiply_adds for s in self.forward)

    @property
    def reverse_total(self) -> int:
        return sum(s.multiply_adds for s in self.reverse)

    @property
    def cheaper(self) -> str:
        """'forward', 'reverse' or 'equal'."""
        f, r = self.forward_total, self.reverse_total
        return "equal" if f == r else ("forward" if f < r else "reverse")

    def to_dict(self) -> dict:
        return {"n_inputs": self.n_inputs, "n_outputs": self.n_outputs, "edges": self.edges,
                "relevant_edges": self.relevant_edges,
                "forward": {s.seed: s.multiply_adds for s in self.forward},
                "reverse": {s.seed: s.multiply_adds for s in self.reverse},
                "forward_total": self.forward_total, "reverse_total": self.reverse_total,
                "cheaper": self.cheaper}

    _HEADER = ["mode", "sweeps", "multiply-adds per sweep", "total multiply-adds"]

    @staticmethod
    def _per_sweep(sweeps: list, limit: int = 8) -> str:
        s = ", ".join(f"{w.seed}: {w.multiply_adds}" for w in sweeps[:limit])
        return s + (f", ... ({len(sweeps) - limit} more)" if len(sweeps) > limit else "")

    def _rows(self) -> list:
        return [["forward", f"{self.n_inputs} (one per input)", self._per_sweep(self.forward),
                 f"{self.forward_total:,}"],
                ["reverse", f"{self.n_outputs} (one per output)", self._per_sweep(self.reverse),
                 f"{self.reverse_total:,}"]]

    def _title(self) -> str:
        return (f"full Jacobian of {self.n_outputs} output(s) with respect to {self.n_inputs} "
                f"input(s); graph: {self.edges:,} edges, {self.relevant_edges:,} on a path "
                "from an input to an output")

    def _note(self) -> str:
        f, r = self.forward_total, self.reverse_total
        if f == r:
            verdict = "both modes cost the same here"
        else:
            cheap, dear = (("forward", "reverse") if f < r else ("reverse", "forward"))
            ratio = max(f, r) / max(1, min(f, r))
            verdict = f"{cheap} mode is cheaper: {dear} needs {ratio:.3g}x as many"
        return (verdict + ". One multiply-add per edge a sweep crosses (local derivative x "
                "incoming tangent or adjoint, added into the next one); a forward sweep crosses "
                "the edges leaving nodes its input reaches, a reverse sweep the edges entering "
                "nodes that reach its output, both only between inputs and outputs.")

    def to_text(self) -> str:
        return "\n".join([self._title(), text_table(self._HEADER, self._rows()), self._note()])

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return (f"<CostTable n={self.n_inputs} m={self.n_outputs}: forward "
                f"{self.forward_total}, reverse {self.reverse_total}>")

    def _repr_html_(self) -> str:
        return html_table(self._HEADER, self._rows(), title=self._title(), note=self._note())


def _as_list(xs, what: str) -> list:
    if isinstance(xs, (Value, str)):
        return [xs]
    try:
        out = list(xs)
    except TypeError:
        raise TypeError(f"{what} needs a Value or a list of Values, got "
                        f"{type(xs).__name__}: {xs!r}") from None
    if not out:
        raise ValueError(f"{what} needs at least one Value, got an empty list")
    return out


def mode_costs(outputs: Union[Value, Sequence[Value]], inputs) -> CostTable:
    """How many multiply-adds forward and reverse mode need for the full m x n Jacobian of
    `outputs` (m Values) with respect to `inputs` (n Values or names), counted on the graph.

    What is counted: each time a sweep propagates along an edge p -> v it does one multiply and
    one add (`tangent[v] += local * tangent[p]` forward, `adjoint[p] += local * adjoint[v]`
    reverse). Only edges on some path from an input to an output count (an edge into a
    constant's subtree carries nothing). Forward mode makes one sweep per input x, crossing every
    such edge whose p depends on x (or is x); reverse mode makes one sweep per output y,
    crossing every such edge whose v reaches y (or is y). Plain `backward()` would also cross
    the remaining edges (`.edges` counts all of them).
    """
    outs = [check_value(o, "mode_costs(outputs)") for o in _as_list(outputs, "mode_costs(outputs)")]
    order = union_order(outs)
    names = node_names(order)
    ins = [resolve(x, names, "mode_costs(inputs)") for x in _as_list(inputs, "mode_costs(inputs)")]
    # Which nodes depend on some input, and which reach some output: one flag per node.
    deps_in = _reached(order, ins)
    reach_out = _reached(order[::-1], outs, backwards=True)
    edges = relevant = 0
    for v in order:
        if reach_out.get(v):
            relevant += sum(1 for p in v._prev if deps_in.get(p))
        edges += len(v._prev)
    # An edge p -> v counts for input j's forward sweep when p depends on j (and v reaches an
    # output); for output i's reverse sweep when v reaches i (and p depends on an input).
    fwd = _counts(order, ins, lambda p, v: bool(reach_out.get(v)))
    rev = _counts(order[::-1], outs, lambda v, p: bool(deps_in.get(p)), backwards=True)
    out_names = [names[y] for y in outs]
    in_names = [names.get(x) or x.label or f"input{j}" for j, x in enumerate(ins)]
    return CostTable(len(ins), len(outs), edges, relevant,
                     [Sweep("forward", n, c) for n, c in zip(in_names, fwd)],
                     [Sweep("reverse", n, c) for n, c in zip(out_names, rev)])


# Bits of reachability kept at once, about 8 MB: inputs are taken in blocks of this many bits
# divided by the number of nodes, so memory stays linear in nodes plus inputs while one pass
# over the edges still serves many inputs (one bit each in an int per node).
_BIT_BUDGET = 1 << 26


def _block_size(n_nodes: int) -> int:
    return max(64, _BIT_BUDGET // max(1, n_nodes))


def _reached(order: list, seeds: list, backwards: bool = False) -> dict:
    """node -> True for every node that depends on a seed (forward, `order` inputs first) or
    that a seed depends on (backwards, `order` reversed): one flag per node."""
    flag: dict = {s: True for s in seeds}
    for v in order:
        if backwards:
            if flag.get(v):
                for p in v._prev:
                    flag[p] = True
        elif not flag.get(v) and any(flag.get(p) for p in v._prev):
            flag[v] = True
    return flag


def _counts(order: list, seeds: list, counts_edge, backwards: bool = False) -> list:
    """For each seed, the edges its sweep crosses: forward, the edges p -> v with p depending on
    the seed; backwards, the edges p -> v with v reaching the seed; an edge counts only when
    `counts_edge(p, v)` (forward) or `counts_edge(v, p)` (backwards) holds. Seeds are taken in
    blocks of bits, so memory is O(nodes x block) and not O(nodes x seeds)."""
    out = [0] * len(seeds)
    size = _block_size(len(order))
    for lo in range(0, len(seeds), size):
        block = seeds[lo:lo + size]
        start: dict = {}
        for j, x in enumerate(block):
            start[x] = start.get(x, 0) | (1 << j)
        mask: dict = {}
        tally: dict = {}  # mask -> edges with that mask: few distinct masks in practice
        for v in order:
            if backwards:
                m = mask.get(v, 0) | start.get(v, 0)
                if not m:
                    continue
                for p in v._prev:
                    if counts_edge(v, p):
                        tally[m] = tally.get(m, 0) + 1
                    mask[p] = mask.get(p, 0) | m
                mask.pop(v, None)  # every user of v came before it: its mask is done
            else:
                m = start.get(v, 0)
                for p in v._prev:
                    mp = mask.get(p, 0)
                    if mp:
                        m |= mp
                        if counts_edge(p, v):
                            tally[mp] = tally.get(mp, 0) + 1
                if m:
                    mask[v] = m
        for j, c in enumerate(_bit_sums(tally, len(block))):
            out[lo + j] += c
    return out


def _bit_sums(tally: dict, width: int) -> list:
    """For each bit position j < width, the sum of the counts of the masks that have bit j."""
    import numpy as np  # a dependency; imported here so that importing teach stays light
    nbytes = (width + 7) // 8
    acc = np.zeros(nbytes * 8, dtype=np.int64)
    for m, c in tally.items():
        bits = np.unpackbits(np.frombuffer(m.to_bytes(nbytes, "little"), dtype=np.uint8),
                             bitorder="little")
        acc += bits.astype(np.int64) * c
    return [int(x) for x in acc[:width]]
