"""Symbolic gradients next to the numbers, and why backprop is not symbolic differentiation.

`symbolic(root)` rebuilds the graph in SymPy: every node's value as an expression in the
leaves' labels, and d root / d node by the same reverse sweep `backward()` runs, with each
edge's local derivative taken symbolically. Substituting the leaves' numbers gives backward's
gradients (up to rounding). `expression_swell()` measures what writing the derivative out as
one formula costs, against the graph's size: reverse mode works on the graph, where every shared
sub-expression is computed once, while a written-out derivative repeats it.

SymPy is optional: `pip install "tinygrad_scalar[symbolic]"` (or `pip install sympy`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Sequence

from ..engine import Value, topological_order
from .graph import check_value, fmt, html_table, node_names, reverse_sweep, text_table

_INSTALL = ('teach.symbolic needs SymPy, which is not installed: pip install '
            '"tinygrad_scalar[symbolic]" (or pip install sympy)')


def _sympy():
    try:
        import sympy
    except ImportError:
        raise ImportError(_INSTALL) from None
    return sympy


def _constant(sp, x: float):
    """A constant as an exact SymPy number when it is a short fraction, else a Float."""
    if math.isfinite(x):
        if x == int(x):
            return sp.Integer(int(x))
        r = sp.Rational(x).limit_denominator(1000)
        if float(r) == x:
            return r
    return sp.Float(x)


def _op_rules(sp) -> dict:
    """op name -> function building the SymPy expression from the inputs' expressions."""
    return {
        "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
        "div": lambda a, b: a / b, "pow": lambda a, b: a ** b, "neg": lambda a: -a,
        "abs": sp.Abs, "relu": lambda a: sp.Max(0, a), "tanh": sp.tanh,
        "sigmoid": lambda a: 1 / (1 + sp.exp(-a)), "exp": sp.exp, "log": sp.log,
        "sqrt": sp.sqrt, "sin": sp.sin, "cos": sp.cos, "sum": lambda *xs: sp.Add(*xs),
        "max": lambda *xs: sp.Max(*xs),
    }


def _kink_rules(sp) -> dict:
    """For the ops with a kink: per input edge, the condition under which it passes the
    gradient on (its local derivative is then 1); otherwise it passes nothing, as backward()
    masks it (engine.passes_nothing), so an inf from above gives 0 below, not 0 * inf.

    sympy.diff would give Heaviside(x), which is 1/2 at 0: the number at a tie would be
    neither one-sided slope and not what backward() passes, and a product with an inf from
    above would be nan. The engine's rules: relu passes where its input is > 0; max passes to
    the first of equal inputs, so input i is picked when it is larger than every input before
    it and at least every input after it."""
    def max_conditions(*ts):
        return tuple(sp.And(*[ti > tj if j < i else ti >= tj for j, tj in enumerate(ts)
                              if j != i]) for i, ti in enumerate(ts))

    return {"relu": lambda t: (t > 0,), "max": max_conditions}


class _Builder:
    """The graph in SymPy: expressions per node, symbolic local derivatives per edge."""

    def __init__(self, root: Value):
        self.sp = sp = _sympy()
        self.root = root
        self.order = topological_order(root)
        self.names = node_names(self.order)
        self.rules = _op_rules(sp)
        kinks = _kink_rules(sp)
        self.symbols: dict = {}  # leaf -> Symbol
        self.expr: dict = {}
        self.local: dict = {}  # node -> tuple of symbolic local derivatives, one per edge
        self.mask: dict = {}  # kink node -> per edge, the condition under which it passes
        for v in self.order:
            if v._a is None:
                if v.is_constant:
                    self.expr[v] = _constant(sp, v.data)
                else:
                    s = sp.Symbol(self.names[v], real=True)
                    self.symbols[v] = s
                    self.expr[v] = s
                continue
            op = v.op
            rule = self.rules.get(op.name) if op is not None else None
            if rule is None:
                raise NotImplementedError(
                    f"teach.symbolic: no SymPy rule for the operation {op.name if op else '?'!r} "
                    f"(node {self.names[v]}); it knows {', '.join(sorted(self.rules))}")
            args = [self.expr[p] for p in v._prev]
            self.expr[v] = rule(*args)
            ts = sp.symbols(f"t0:{len(args)}", real=True)
            at = dict(zip(ts, args))
            kink = kinks.get(op.name)
            if kink is not None:  # a mask per edge: 1 where it passes, else nothing passes
                self.mask[v] = tuple(sp.sympify(c).subs(at, simultaneous=True)
                                     for c in kink(*ts))
                self.local[v] = tuple(sp.Piecewise((1, c), (0, True)) for c in self.mask[v])
            else:
                self.local[v] = tuple(sp.diff(rule(*ts), t).subs(at, simultaneous=True)
                                      for t in ts)

    def adjoints(self) -> dict:
        """d root / d node for every node, by the backward loop on expressions."""
        sp = self.sp
        g = dict.fromkeys(self.order, sp.Integer(0))
        g[self.root] = sp.Integer(1)
        for w in reversed(self.order):
            mask = self.mask.get(w)
            for k, (p, d) in enumerate(zip(w._prev, self.local.get(w, ()))):
                if mask is None:
                    g[p] = g[p] + d * g[w]
                else:  # a mask, not a product: 0 where it passes nothing, even under an inf
                    g[p] = g[p] + sp.Piecewise((g[w], mask[k]), (0, True))
        return g


@dataclass(frozen=True)
class SymbolicRow:
    """One node: value and d root / d node as simplified SymPy expressions, and as numbers
    (the expressions at the leaves' values) next to the engine's."""
    node: Value = field(repr=False)
    name: str
    value: object
    grad: object
    value_number: float
    grad_number: float
    backward: float

    def to_dict(self) -> dict:
        return {"node": self.name, "value": str(self.value), "grad": str(self.grad),
                "value_number": self.value_number, "grad_number": self.grad_number,
                "backward": self.backward}


class SymbolicTable:
    """Every node's value and gradient as formulas in the leaves (`rows`, or `row(name)`).

    Shown as a Markdown table with LaTeX in Jupyter (`_repr_markdown_`, `_repr_latex_`),
    `to_text()`, `to_latex()`, `records()`. `symbols` maps each leaf's name to its Symbol,
    `values` the numbers substituted.
    """

    def __init__(self, root_name: str, rows: list, symbols: dict, values: dict):
        self.root_name, self.rows, self.symbols, self.values = root_name, rows, symbols, values

    def row(self, name: str) -> SymbolicRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"no node named {name!r}; names: {', '.join(r.name for r in self.rows)}")

    def records(self) -> list:
        return [r.to_dict() for r in self.rows]

    def _at(self) -> str:
        return ", ".join(f"{k} = {fmt(v)}" for k, v in self.values.items())

    def to_text(self, digits: int = 6) -> str:
        r = self.root_name
        head = ["node", "value", f"d{r}/d node", "value at leaves", "grad at leaves",
                "backward"]
        rows = [[x.name, str(x.value), str(x.grad), fmt(x.value_number, digits),
                 fmt(x.grad_number, digits), fmt(x.backward, digits)] for x in self.rows]
        return "\n".join([f"{r} and its gradients as formulas (at {self._at()})",
                          text_table(head, rows)])

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return f"<SymbolicTable of {self.root_name}: {len(self.rows)} nodes>"

    def to_latex(self) -> str:
        """A LaTeX array: node, value, d root / d node."""
        sp = _sympy()
        r = self.root_name
        lines = [r"\begin{array}{lll}", rf"\text{{node}} & \text{{value}} & "
                 rf"\partial {_tex_name(r)} / \partial\,\text{{node}} \\ \hline"]
        for x in self.rows:
            lines.append(rf"{_tex_name(x.name)} & {sp.latex(x.value)} & {sp.latex(x.grad)} \\")
        lines.append(r"\end{array}")
        return "\n".join(lines)

    def _repr_latex_(self) -> str:
        return "$$" + self.to_latex() + "$$"

    def _repr_markdown_(self) -> str:
        sp = _sympy()
        r = self.root_name
        out = [f"**{r} and its gradients as formulas** (numbers at {self._at()})", "",
               f"| node | value | $\\partial {_tex_name(r)}/\\partial$ node | value, at the leaves "
               "| gradient, at the leaves | backward's gradient |", "|---|---|---|---|---|---|"]
        for x in self.rows:
            out.append(f"| `{x.name}` | ${sp.latex(x.value)}$ | ${sp.latex(x.grad)}$ | "
                       f"{fmt(x.value_number)} | {fmt(x.grad_number)} | {fmt(x.backward)} |")
        return "\n".join(out)


def _tex_name(name: str) -> str:
    return name if name.isalpha() and len(name) == 1 else r"\mathrm{" + name.replace(
        "_", r"\_").replace("@", "@") + "}"


def symbolic(root: Value, simplify: bool = True) -> SymbolicTable:
    """Each node's value and d root / d node as SymPy expressions in the leaves' labels.

    The gradients come from the backward loop run on expressions (each edge's local derivative
    differentiated symbolically), then `sympy.simplify` (unless simplify=False). Constants
    are not listed. Unlabelled leaves are named as everywhere in teach (`n<i>`). Needs SymPy.
    """
    check_value(root, "symbolic")
    B = _Builder(root)
    sp = B.sp
    adj = B.adjoints()
    numbers = reverse_sweep(B.order, root)
    subs = {s: v.data for v, s in B.symbols.items()}
    tidy: Callable = sp.simplify if simplify else (lambda e: e)
    rows = []
    for v in B.order:
        if v.is_constant:
            continue
        val, grad = tidy(B.expr[v]), tidy(adj[v])
        rows.append(SymbolicRow(v, B.names[v], val, grad, _number(sp, val, subs),
                                _number(sp, grad, subs), numbers[v]))
    symbols = {B.names[v]: s for v, s in B.symbols.items()}
    values = {B.names[v]: v.data for v in B.symbols}
    return SymbolicTable(B.names[root], rows, symbols, values)


def _number(sp, expr, subs: dict) -> float:
    try:
        return float(sp.N(expr.subs(subs), 17))
    except (TypeError, ValueError):  # complex or undefined at these numbers
        return math.nan


# -- expression swell -----------------------------------------------------------------------------

def expression_size(expr) -> int:
    """Nodes in the expression tree, a shared sub-expression counted every time it occurs: what
    writing the formula out costs (a graph stores it once)."""
    sp = _sympy()
    return sum(1 for _ in sp.preorder_traversal(expr))


def diamond_chain(n: int, x: float = 0.5) -> Value:
    """x, then n times v = sin(v) * cos(v): each step uses the previous node twice (a diamond)."""
    v = Value(x, "x")
    for _ in range(n):
        v = v.sin() * v.cos()
    return v


def neuron(n: int) -> Value:
    """tanh(w1 x1 + ... + wn xn + b): one neuron with n inputs, parameters and inputs as leaves."""
    s = Value(0.1, "b")
    for i in range(1, n + 1):
        s = s + Value(0.3 * i, f"w{i}") * Value(0.2 - 0.1 * i, f"x{i}")
    return s.tanh()


@dataclass(frozen=True)
class SwellRow:
    graph: str
    nodes: int
    edges: int
    leaves: int
    value_size: int
    derivative_size: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class SwellTable:
    """Graph size against the size of the written-out derivative (`rows`, `records()`)."""

    HEADER = ["graph", "graph nodes", "edges = backward's multiply-adds", "leaves",
              "value formula size", "derivative formulas size (unsimplified, all leaves)"]

    def __init__(self, rows: list):
        self.rows = rows

    def records(self) -> list:
        return [r.to_dict() for r in self.rows]

    def _rows(self) -> list:
        return [[r.graph, f"{r.nodes:,}", f"{r.edges:,}", str(r.leaves), f"{r.value_size:,}",
                 f"{r.derivative_size:,}"] for r in self.rows]

    _NOTE = ("Reverse mode computes every derivative in one sweep over the graph, one "
             "multiply-add per edge. Writing the derivatives out as formulas repeats every "
             "shared node once per use, and the product rule doubles it again.")

    def to_text(self) -> str:
        return "\n".join([text_table(self.HEADER, self._rows()), self._NOTE])

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return f"<SwellTable: {len(self.rows)} graphs>"

    def _repr_html_(self) -> str:
        return html_table(self.HEADER, self._rows(), title="expression swell", note=self._NOTE)


def expression_swell(graphs: Optional[Iterable] = None) -> SwellTable:
    """For each (name, root): graph nodes and edges next to the size of root's formula and of
    sympy.diff(root, leaf) for every leaf, before simplification. Default: chains of 1 to 6
    diamonds and neurons with 2 to 16 inputs. Needs SymPy."""
    sp = _sympy()
    if graphs is None:
        graphs = ([(f"{k} diamond(s)", diamond_chain(k)) for k in (1, 2, 3, 4, 5, 6)]
                  + [(f"neuron, {n} inputs", neuron(n)) for n in (2, 4, 8, 16)])
    rows = []
    for name, root in graphs:
        check_value(root, "expression_swell")
        B = _Builder(root)
        e = B.expr[root]
        dsize = sum(expression_size(sp.diff(e, s)) for s in B.symbols.values())
        edges = sum(len(v._prev) for v in B.order)
        rows.append(SwellRow(str(name), len(B.order), edges, len(B.symbols),
                             expression_size(e), dsize))
    return SwellTable(rows)


__all__: Sequence[str] = ["symbolic", "SymbolicTable", "SymbolicRow", "expression_swell",
                          "SwellTable", "SwellRow", "expression_size", "diamond_chain", "neuron"]
