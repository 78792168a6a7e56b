"""The chain rule as a sum over paths: d y / d x is the sum, over every directed path from x to
y, of the product of the local derivatives along the path.

The number of paths can grow exponentially (40 diamonds in a row make 2^40), so it is counted
first by dynamic programming, linear in the edges: paths(x -> v) is the sum over v's input
edges of paths(x -> input). Only when the count is at most `max_paths` are the paths listed.
Otherwise the same sum is shown factored, the way the chain rule computes it: for every node v
on the way, S(v) = sum over input edges of local x S(input) is the sum over all paths from x to
v of their products, so S(y) is the whole sum without listing a single path.

An edge that passes nothing (relu's flat part, an input max did not pick) is a mask in backward,
not a factor: an inf or nan gradient from above gives 0 below it, not 0 x inf = nan. So a path's
product is taken as backward takes it, from y's end, and becomes 0 at such an edge; the factored
sum gets the same numbers by adding nothing along such an edge (unless what reaches it from x is
already inf or nan: 0 x inf is nan there, as in backward), and nothing further on from a node
that only such edges reach (an exact zero that no inf turns into nan).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

from ..engine import Value, passes_nothing, topological_order
from .graph import (check_value, fmt, html_table, node_names, op_name, resolve, reverse_sweep,
                     text_table)


_MASK_NOTE = ("an edge marked 'passes nothing' (relu's flat part, an input max did not pick) "
             "gets an inf or nan from above, and backward passes 0 down it, not 0 x inf = nan")


@dataclass(frozen=True)
class Path:
    """One directed path from x to y: the nodes (x first), the local derivative on each edge
    (d next / d previous) and their product, taken from y's end as backward multiplies.
    `masked`: the positions in `derivs` of the edges that pass nothing where an inf or nan
    arrives from above (backward's 0 there, where multiplying would give nan)."""
    nodes: tuple = field(repr=False)
    names: tuple
    derivs: tuple
    product: float
    masked: tuple = ()

    def to_dict(self) -> dict:
        """nodes, derivs, product; masked too when an edge of the path masks an inf or nan."""
        d = {"nodes": list(self.names), "derivs": list(self.derivs), "product": self.product}
        if self.masked:
            d["masked"] = list(self.masked)
        return d

    def derivs_text(self, number: Optional[Callable[[float], str]] = None) -> str:
        """The local derivatives as 'a x b x c' (each by `number`, default `fmt`), an edge in
        `masked` marked 'passes nothing': the tables and the command line show paths so."""
        number = number or fmt
        return " x ".join(number(d) + (" (passes nothing)" if k in self.masked else "")
                          for k, d in enumerate(self.derivs)) or "(empty path)"


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
    nothing: bool = False  # every path from x to v passes nothing on the way: S(v) is that 0
    masked: tuple = ()     # positions in terms of edges that pass nothing where an inf or
    #                        nan arrives from above (their term is left out of S(v))

    def to_dict(self) -> dict:
        """node, op, count, terms, sum; nothing and masked too when an edge passes nothing."""
        out = {"node": self.name, "op": self.op, "count": self.count,
               "terms": [{"input": n, "local": d, "sum": s} for n, d, s in self.terms],
               "sum": self.value}
        if self.masked or self.nothing:
            out.update(nothing=self.nothing, masked=list(self.masked))
        return out


class PathSum:
    """Every path from x to root (or their count and the factored sum when there are too many)
    next to d root / d x from reverse mode."""

    def __init__(self, root: Value, x: Value, names: dict, count: int, max_paths: int,
                 paths: list, factored: list, total: float, grad: float, masked: bool = False):
        self.root, self.x, self.names = root, x, names
        self.count, self.max_paths, self.paths = count, max_paths, paths
        self.factored, self.total, self.grad = factored, total, grad
        #: True when an edge on the way passes nothing where an inf or nan arrives from above:
        #: there backward gives 0 and plain products would give nan (the tables say so)
        self.masked = masked

    @property
    def listed(self) -> bool:
        """True when every path is in `.paths` (count <= max_paths)."""
        return self.count <= self.max_paths

    def to_dict(self) -> dict:
        return {"root": self.names[self.root], "x": self._xname, "count": self.count,
                "max_paths": self.max_paths, "listed": self.listed,
                "paths": [p.to_dict() for p in self.paths],
                "factored": [r.to_dict() for r in self.factored],
                "total": self.total, "grad": self.grad, **({"masked": True} if self.masked else {})}

    @property
    def _xname(self) -> str:
        return self.names.get(self.x) or self.x.label or "x"

    def _title(self) -> str:
        y, x = self.names[self.root], self._xname
        n = f"{self.count:,}"
        return f"paths from {x} to {y}: {n} path{'s' if self.count != 1 else ''}"

    def _path_rows(self, digits: int) -> list:
        return [[str(i + 1), " -> ".join(p.names),
                 p.derivs_text(lambda d: fmt(d, digits)), fmt(p.product, digits)]
                for i, p in enumerate(self.paths)]

    def _factored_rows(self, digits: int) -> list:
        rows = []
        nothing = {r.name for r in self.factored if r.nothing} if self.masked else set()
        for r in self.factored:
            terms = " + ".join(f"{fmt(d, digits)} x S({n})="
                               f"{'nothing' if n in nothing else fmt(s, digits)}"
                               f"{' (passes nothing)' if k in r.masked else ''}"
                               for k, (n, d, s) in enumerate(r.terms)) or "start: S(x) = 1"
            value = "nothing (0)" if r.name in nothing else fmt(r.value, digits)
            rows.append([r.name, r.op, f"{r.count:,}", terms, value])
        return rows

    _PATH_HEADER = ["#", "path", "local derivatives", "product"]
    _FACT_HEADER = ["node v", "op", "paths x->v", "sum over inputs: local x S(input)", "S(v)"]

    def _summary(self, digits: int) -> str:
        y, x = self.names[self.root], self._xname
        if self.count == 0:
            return (f"no path from {x} to {y}: {y} does not depend on {x}, so d{y}/d{x} = 0 "
                    f"(backward: {fmt(self.grad, digits)})")
        how = "sum of the products" if self.listed else "factored sum S(" + y + ")"
        line = (f"{how} = {fmt(self.total, digits)};  d{y}/d{x} from backward = "
                f"{fmt(self.grad, digits)}")
        note = self.mask_note()
        return f"{line}\n{note}" if note else line

    def mask_note(self) -> str:
        """When `masked`, one line on why a product through an edge that passes nothing is 0,
        not 0 x inf = nan (the tables mark such edges); otherwise ''."""
        if not self.masked:
            return ""
        if self.listed:
            return f"{_MASK_NOTE}: the path's product is 0 there"
        return (f"{_MASK_NOTE}: it adds nothing to S, and a node that only such edges reach gets "
                "nothing, which no inf further on turns into nan")

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
    nodes = [root]  # y first: the path so far, from y down
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
            prod, masked = 1.0, []
            for k, (child, dd) in enumerate(zip(nodes, derivs)):  # from the y end, as backward
                if passes_nothing(child, dd):                    # multiplies upstream x local
                    if not math.isfinite(prod):
                        masked.append(len(ds) - 1 - k)
                    prod = 0.0
                else:
                    prod = dd * prod
            out.append(Path(ns, tuple(names[n] for n in ns), ds, prod, tuple(sorted(masked))))
            nodes.pop()
            derivs.pop()
        else:
            stack.append(iter(zip(p._prev, p._local)))
    return out


def paths(root: Value, x, max_paths: int = 1000) -> PathSum:
    """Every directed path from x to root with its local derivatives and their product, the sum
    of the products, and d root / d x from reverse mode (equal, up to rounding; with an infinite
    local derivative below a node used more than once, backward adds the uses first: s + s - s
    with s = sqrt(x) at x = 0 is inf x 1 = inf there, and inf + inf - inf = nan over paths).

    The paths are counted first (exactly, linear in the edges); when there are more than
    `max_paths`, none is listed and the factored sum is given instead. x is a Value or the
    name/label of a node in root's graph; a Value root does not depend on has no path (sum 0).
    An edge that passes nothing (relu's flat part, an input max did not pick) is backward's
    mask: a product is 0 there even when an inf arrives from above (not 0 x inf = nan), and
    the tables mark the edges where that happens (`masked`).
    """
    check_value(root, "paths(root)")
    if isinstance(max_paths, bool) or not isinstance(max_paths, int) or max_paths < 0:
        raise ValueError(f"paths(max_paths=...) needs a non-negative int, got {max_paths!r}")
    order = topological_order(root)
    names = node_names(order)
    x = resolve(x, names, "paths(x)")
    count = count_paths(order, x)
    n = count.get(root, 0)
    dropped: set = set()  # (node, input): edges on x's paths that mask an inf or nan from above

    def on_edge(v, g, p, d, c, before) -> None:
        if p in count and d is not None and passes_nothing(v, d) and not math.isfinite(g):
            dropped.add((v, p))

    grads = reverse_sweep(order, root, on_edge=on_edge)
    grad = grads[x] if x in grads else 0.0
    # the factored sum: S(v) over nodes x reaches (all of root's graph reaches root); a node
    # that gets nothing (every path to it passes nothing on the way) has no entry in s
    s: dict = {}
    factored = []
    for v in order:
        if v not in count:
            continue
        masked: list = []
        if v is x:
            s[v] = 1.0
            terms: tuple = ()
        else:
            edges = [(p, d) for p, d in zip(v._prev, v._local) if p in count]
            terms = tuple((names[p], d, s.get(p, 0.0)) for p, d in edges)
            acc = None
            for k, (p, d) in enumerate(edges):
                sp = s.get(p)
                if sp is None:
                    continue  # nothing reaches p, so nothing goes on from it
                if passes_nothing(v, d) and math.isfinite(sp):
                    if (v, p) in dropped:
                        masked.append(k)
                    continue  # the edge passes nothing (an inf or nan below it: 0 x inf, nan)
                acc = d * sp if acc is None else acc + d * sp
            if acc is not None:
                s[v] = acc
        factored.append(FactoredRow(v, names[v], op_name(v), count[v], terms, s.get(v, 0.0),
                                    v not in s, tuple(masked)))
    if n == 0:
        listed, total = [], 0.0
    elif n <= max_paths:
        listed = _enumerate(root, x, count, names)
        assert len(listed) == n, (len(listed), n)
        total = 0.0
        for p in listed:
            total += p.product
    else:
        listed, total = [], s.get(root, 0.0)
    return PathSum(root, x, names, n, max_paths, listed, factored, total, grad, bool(dropped))
