"""The narrated backward pass: every step `backward()` takes, with the numbers it moves.

Backward visits the nodes in reverse topological order. When it reaches a node, every node that
uses it has already pushed its contribution, so the node's gradient is final (the loop
invariant); it then adds `upstream x local` into each input's gradient. `narrate` records
exactly that, on a private dict of numbers: no `.grad` changes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Optional, Sequence, overload

from ..checks import real_number
from ..engine import Value, reverse_sweep, topological_order
from .graph import NodeMap, check_value, fmt, html_table, node_names, op_name, text_table


@dataclass(frozen=True)
class EdgeStep:
    """One `input.grad += local * upstream` of a step. Toward a constant (the 2 of `x ** 2`)
    backward passes nothing: local, contribution, before and after are None."""
    input: Value = field(repr=False)
    input_name: str
    local: Optional[float]
    contribution: Optional[float]
    before: Optional[float]
    after: Optional[float]

    def record(self) -> dict:
        return {"input": self.input_name, "local": self.local,
                "contribution": self.contribution, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class Step:
    """Backward processing one node: its final gradient and what it sends to each input."""
    index: int
    node: Value = field(repr=False)
    name: str
    op: str
    data: float
    grad: float
    edges: tuple

    def record(self) -> dict:
        return {"step": self.index, "node": self.name, "op": self.op, "data": self.data,
                "grad": self.grad, "edges": [e.record() for e in self.edges]}


class Narration(Sequence):
    """The steps of one backward pass (list-like), printable as text and as HTML.

    `steps[i]` is a `Step`; `.records()` gives plain dicts; `.grads` the final gradient of every
    node (keyed by node or by name); `.names` the name used for each node.
    """

    def __init__(self, root: Value, seed: float, steps: list, grads: NodeMap, names: dict,
                 order: list):
        self.root, self.seed, self.steps, self.grads = root, seed, steps, grads
        self.names, self.order = names, order

    def __len__(self) -> int:
        return len(self.steps)

    @overload
    def __getitem__(self, i: int) -> Step: ...

    @overload
    def __getitem__(self, i: slice) -> list: ...

    def __getitem__(self, i):
        return self.steps[i]

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def records(self) -> list:
        """Every step as a plain dict: step, node, op, data, grad, edges (input, local,
        contribution, before, after)."""
        return [s.record() for s in self.steps]

    def leaves(self) -> list:
        """(name, final gradient) for each leaf, inputs first in topological order; constants
        are left out (no gradient is computed toward them), unless the root is one."""
        return [(self.names[v], self.grads[v]) for v in self.order
                if v.is_leaf and (not v.is_constant or v is self.root)]

    def _title(self) -> str:
        root = self.names[self.root]
        seed = "" if self.seed == 1.0 else f", seed gradient {fmt(self.seed)}"
        if not self.steps:
            return (f"backward from {root} (data {fmt(self.root.data)}{seed}): {root} is a "
                    "leaf, so backward takes no steps; it only adds the seed to its gradient")
        return (f"backward from {root} (data {fmt(self.root.data)}{seed}): "
                f"{len(self.steps)} step(s) in reverse topological order")

    def _rows(self, digits: int, max_steps: Optional[int]) -> list:
        rows = []
        steps = self.steps if max_steps is None else self.steps[:max_steps]
        for s in steps:
            head = [str(s.index), s.name, s.op, fmt(s.data, digits), fmt(s.grad, digits)]
            for k, e in enumerate(s.edges):
                if e.local is None:  # a constant: no derivative is needed, none is shown
                    cells = [e.input_name, "-", "(constant: nothing passed)", "-"]
                else:
                    cells = [e.input_name, fmt(e.local, digits),
                             f"{fmt(s.grad, digits)} x {fmt(e.local, digits)} = "
                             f"{fmt(e.contribution, digits)}",
                             f"{fmt(e.before, digits)} -> {fmt(e.after, digits)}"]
                rows.append((head if k == 0 else [""] * 5) + cells)
        return rows

    _HEADER = ["step", "node", "op", "data", "grad (final)", "input", "local",
               "upstream x local", "input grad before -> after"]

    def _leaf_line(self, digits: int) -> str:
        # constants are left out (their gradient means nothing to a learner, as in pictures),
        # unless the whole expression is one
        leaves = [f"{self.names[v]}{' (const)' if v.is_constant else ''} = "
                  f"{fmt(self.grads[v], digits)}" for v in self.order
                  if v.is_leaf and (not v.is_constant or v is self.root)]
        return "leaf gradients: " + (", ".join(leaves) if leaves else "(none)")

    def to_text(self, digits: int = 6, max_steps: Optional[int] = None) -> str:
        """A plain-text table, one line per input edge (`max_steps` shows only the first ones)."""
        parts = [self._title()]
        if self.steps:
            parts.append(text_table(self._HEADER, self._rows(digits, max_steps)))
        if max_steps is not None and len(self.steps) > max_steps:
            parts.append(f"... {len(self.steps) - max_steps} more step(s)")
        parts.append(self._leaf_line(digits))
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return f"<Narration of {len(self.steps)} backward step(s) from {self.names[self.root]}>"

    def _repr_html_(self, digits: int = 6, max_steps: int = 300) -> str:
        rows = self._rows(digits, max_steps)
        # shade alternate steps so a step's edges read as one block
        styles: list = []
        for s in self.steps[:max_steps]:
            styles += ["background:#f4f4f8" if s.index % 2 else ""] * len(s.edges)
        note = self._leaf_line(digits)
        if len(self.steps) > max_steps:
            note = f"... {len(self.steps) - max_steps} more step(s) not shown. " + note
        return html_table(self._HEADER if rows else [], rows, title=self._title(), note=note,
                          row_styles=styles)


def narrate(root: Value, gradient: float = 1.0) -> Narration:
    """The steps backward() takes from `root`: for each interior node in reverse topological
    order, its gradient d root / d node and, per input edge, the local derivative, the
    contribution `grad x local` and the input's gradient before and after the `+=`.

    Computed on private numbers starting from zero, as a fresh backward() would (where leaves
    already hold a gradient, a real backward() adds to it); no `.grad` is read or written.
    `gradient` is the seed d root / d root, as in backward(gradient=...).
    """
    check_value(root, "narrate(root)")
    seed = real_number(gradient, "narrate(gradient=...)")
    order = topological_order(root)
    names = node_names(order)
    steps: list = []
    current: list = [None, 0.0, []]  # the node being narrated, its gradient, its edges

    def close() -> None:
        v, gv, edges = current
        if v is not None:
            steps.append(Step(len(steps) + 1, v, names[v], op_name(v), v.data, gv, tuple(edges)))

    def on_edge(v, gv, p, d, c, before) -> None:
        if v is not current[0]:
            close()
            current[:] = [v, gv, []]
        after = None if d is None else before + c
        current[2].append(EdgeStep(p, names[p], d, c, before, after))

    g = reverse_sweep(order, {root: seed}, on_edge=on_edge)
    close()
    grads = {v: (None if v.is_constant and v is not root else g.get(v, 0.0)) for v in order}
    return Narration(root, seed, steps, NodeMap(grads, names), names, order)
