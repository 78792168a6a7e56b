"""The chain rule as a sum over paths: d y / d x is the sum, over every directed path from x to
y, of the product of the local derivatives along the path.

The number of paths can grow exponentially (40 diamonds in a row make 2^40), so it is counted
first by dynamic programming, linear in the edges: paths(x -> v) is the sum over v's input
edges of paths(x -> input). Only when the count is at most `max_paths` are the paths listed.
Otherwise the same sum is shown factored, the way the chain rule computes it: for every node v
on the way, S(v) = sum over input edges of local x S(input) is the sum over all paths from x to
v of their products, so S(y) is the whole sum without listing a single path.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..engine import Value, topological_order
from .graph import (check_value, fmt, html_table, node_names, op_name, resolve, reverse_sweep,
                     text_table)


@dataclass(frozen=True)
class Path:
    """One directed path from x to y: the nodes (x first), the local derivative on each edge
    (d next / d previous) and their product."""
    nodes: tuple = field(repr=False)
    names: tuple
    derivs: tuple
    product: float

    def to_dict(self) -> dict:
        return {"nodes": list(self.names), "derivs": list(self.derivs), "product": self.product}


@dataclass(frozen=True)
class FactoredRow:
    """One node v on the way from x to y: how many paths reach it from x, the terms
    local x S(input) over its input edges from x's side, and S(v) = d v / d x."""
    node: Value = field(repr=False)
    name: str
    op: str
    count: int
    terms: tuple  # (input name, local, S(input))
    value: float

    def to_dict(self) -> dict:
        return {"node": self.name, "op": self.op, "count": self.count,
                "terms": [{"input": n, "local": d, "sum": s} for n, d, s in self.terms],
                "sum": self.value}


class PathSum:
    """Every path from x to root (or their count and the factored sum when there are too many)
    next to d root / d x from reverse mode."""

    def __init__(self, root: Value, x: Value, names: dict, count: int, max_paths: int,
                 paths: list, factored: list, total: float, grad: float):
        self.root, self.x, self.names = root, x, names
        self.count, self.max_paths, self.paths = count, max_paths, paths
        self.factored, self.total, self.grad = factored, total, grad

    @property
    def listed(self) -> bool:
        """True when every path is in `.paths` (count <= max_paths)."""
        return self.count <= self.max_paths

    def to_dict(self) -> dict:
        return {"root": self.names[self.root], "x": self._xname, "count": self.count,
                "max_paths": self.max_paths, "listed": self.listed,
                "paths": [p.to_dict() for p in self.paths],
                "factored": [r.to_dict() for r in self.factored],
                "total": self.total, "grad": self.grad}

    @property
    def _xname(self) -> str:
        return self.names.get(self.x) or self.x.label or "x"

    def _title(self) -> str:
        y, x = self.names[self.root], self._xname
        n = f"{self.count:,}"
        return f"paths from {x} to {y}: {n} path{'s' if self.count != 1 else ''}"

    def _path_rows(self, digits: int) -> list:
        return [[str(i + 1), " -> ".join(p.names),
                 " x ".join(fmt(d, digits) for d in p.derivs) or "(empty path)",
                 fmt(p.product, digits)] for i, p in enumerate(self.paths)]

    def _factored_rows(self, digits: int) -> list:
        rows = []
        for r in self.factored:
            terms = " + ".join(f"{fmt(d, digits)} x S({n})={fmt(s, digits)}"
                               for n, d, s in r.terms) or "start: S(x) = 1"
            rows.append([r.name, r.op, f"{r.count:,}", terms, fmt(r.value, digits)])
        return rows

    _PATH_HEADER = ["#", "path", "local derivatives", "product"]
    _FACT_HEADER = ["node v", "op", "paths x->v", "sum over inputs: local x S(input)", "S(v)"]

    def _summary(self, digits: int) -> str:
        y, x = self.names[self.root], self._xname
        if self.count == 0:
            return (f"no path from {x} to {y}: {y} does not depend on {x}, so d{y}/d{x} = 0 "
                    f"(backward: {fmt(self.grad, digits)})")
        how = "sum of the products" if self.listed else "factored sum S(" + y + ")"
        return (f"{how} = {fmt(self.total, digits)};  d{y}/d{x} from backward = "
                f"{fmt(self.grad, digits)}")

    def _too_many(self) -> str:
        return (f"{self.count:,} paths are more than max_paths={self.max_paths:,}, so they are "
                "not listed. The same sum, factored by the chain rule: S(v) = sum over v's "
                "inputs of local x S(input) is the sum over all paths x -> v of their products.")

    def to_text(self, digits: int = 6) -> str:
        """The paths with their products and sum (or the factored sum), next to backward's."""
        parts = [self._title()]
        if self.count and self.listed:
            parts.append(text_table(self._PATH_HEADER, self._path_rows(digits)))
        elif self.count:
            parts.append(self._too_many())
            parts.append(text_table(self._FACT_HEADER, self._factored_rows(digits)))
        parts.append(self._summary(digits))
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return (f"<PathSum {self._xname} -> {self.names[self.root]}: {self.count:,} paths, "
                f"total={self.total!r}, grad={self.grad!r}>")

    def _repr_html_(self, digits: int = 6) -> str:
        if self.count and self.listed:
            return html_table(self._PATH_HEADER, self._path_rows(digits), title=self._title(),
                              note=self._summary(digits))
        if self.count:
            return html_table(self._FACT_HEADER, self._factored_rows(digits),
                              title=self._title() + ". " + self._too_many(),
                              note=self._summary(digits))
        return html_table([], [], title=self._title(), note=self._summary(digits))


def count_paths(order: list, x: Value) -> dict:
    """For every node of `order` (a topological order), the number of paths from x to it:
    exact Python ints, one addition per edge. Parallel edges (a + a) are distinct paths."""
    count: dict = {}
    for v in order:
        if v is x:
            count[v] = 1
            continue
        n = 0
        for p in v._prev:
            n += count.get(p, 0)
        if n:
            count[v] = n
    return count


def _enumerate(root: Value, x: Value, count: dict, names: dict) -> list:
    """Every path from x to root, by depth-first search from root down through the inputs that
    x reaches (so no branch is a dead end); no recursion, so long chains work."""
    out: list = []
    nodes = [root]
    derivs: list = []
    stack = [iter(zip(root._prev, root._local))] if root is not x else []
    if root is x:
        out.append(Path((x,), (names[x],), (), 1.0))
    while stack:
        nxt = None
        for p, d in stack[-1]:
            if p in count:
                nxt = (p, d)
                break
        if nxt is None:
            stack.pop()
            nodes.pop()
            if derivs:
                derivs.pop()
            continue
        p, d = nxt
        nodes.append(p)
        derivs.append(d)
        if p is x:
            ns = tuple(reversed(nodes))
            ds = tuple(reversed(derivs))
            prod = 1.0
            for dd in derivs:  # from the y end, as backward multiplies upstream x local
                prod = dd * prod
            out.append(Path(ns, tuple(names[n] for n in ns), ds, prod))
            nodes.pop()
            derivs.pop()
        else:
            stack.append(iter(zip(p._prev, p._local)))
    return out


def paths(root: Value, x, max_paths: int = 1000) -> PathSum:
    """Every directed path from x to root with its local derivatives and their product, the sum
    of the products, and d root / d x from reverse mode (equal, up to rounding).

    The paths are counted first (exactly, linear in the edges); when there are more than
    `max_paths`, none is listed and the factored sum is given instead. x is a Value or the
    name/label of a node in root's graph; a Value root does not depend on has no path (sum 0).
    """
    check_value(root, "paths(root)")
    if isinstance(max_paths, bool) or not isinstance(max_paths, int) or max_paths < 0:
        raise ValueError(f"paths(max_paths=...) needs a non-negative int, got {max_paths!r}")
    order = topological_order(root)
    names = node_names(order)
    x = resolve(x, names, "paths(x)")
    count = count_paths(order, x)
    n = count.get(root, 0)
    grads = reverse_sweep(order, root)
    grad = grads[x] if x in grads else 0.0
    # the factored sum: S(v) over nodes x reaches (all of root's graph reaches root)
    s: dict = {}
    factored = []
    for v in order:
        if v not in count:
            continue
        if v is x:
            s[v] = 1.0
            terms: tuple = ()
        else:
            terms = tuple((names[p], d, s[p]) for p, d in zip(v._prev, v._local) if p in s)
            acc = None
            for _, d, sp in terms:
                acc = d * sp if acc is None else acc + d * sp
            s[v] = acc
        factored.append(FactoredRow(v, names[v], op_name(v), count[v], terms, s[v]))
    if n == 0:
        listed, total = [], 0.0
    elif n <= max_paths:
        listed = _enumerate(root, x, count, names)
        assert len(listed) == n, (len(listed), n)
        total = 0.0
        for p in listed:
            total += p.product
    else:
        listed, total = [], s[root]
    return PathSum(root, x, names, n, max_paths, listed, factored, total, grad)
