"""The misconception lab: the common wrong versions of backward, run on your own graph.

Students who write a backward pass of their own (and the questions in micrograd's issue
tracker) make the same few mistakes: recursing without a topological order, `=` instead of
`+=`, calling backward twice without resetting the interior nodes, zeroing only the leaves,
dropping the local derivative, a wrong sign on subtraction. Each looks right on simple graphs.
`misconceptions(root)` runs every one of them on private numbers next to the right loop and
says, per variant, which gradients come out wrong and why, in one line with the numbers of the
graph. No `.grad` changes.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Callable, Optional

from ..engine import Value, passes_nothing, topological_order
from .graph import NodeMap, check_value, fmt, html_table, node_names, reverse_sweep, text_table

#: The recursion without a topological order repeats work once per path; past this many edge
#: visits it is reported as not run (the count itself is the lesson: it grows exponentially).
MAX_RECURSION_STEPS = 100_000


@dataclass(frozen=True)
class Variant:
    """One version of backward run on the graph.

    `grads` what it leaves in every node (keyed by node or name), `expected` what a correct
    engine leaves after the same calls, `wrong` the nodes where they differ (constants are not
    compared: their gradient is never used), `reason` one line on why (or why it did not break
    on this graph).
    """
    key: str
    title: str
    code: str
    grads: NodeMap = field(repr=False)
    expected: NodeMap = field(repr=False)
    wrong: tuple = field(repr=False)
    reason: str
    ran: bool = True

    @property
    def right(self) -> bool:
        """True when every gradient equals the expected one."""
        return self.ran and not self.wrong

    def to_dict(self) -> dict:
        names = self.grads._names
        return {"variant": self.key, "title": self.title, "code": self.code, "ran": self.ran,
                "right": self.right, "grads": self.grads.by_name(),
                "expected": self.expected.by_name(), "wrong": [names[v] for v in self.wrong],
                "reason": self.reason}


def _same(x: Optional[float], y: Optional[float]) -> bool:
    if x is None or y is None:  # a constant: no gradient is ever owed to it
        return True
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)


class _Graph:
    """The graph once: order, names, users, the right gradients."""

    def __init__(self, root: Value):
        self.root = root
        self.order = topological_order(root)
        self.names = node_names(self.order)
        # d root / d node; a constant gets 0 here (the sweep owes it nothing: None)
        self.right = {v: (0.0 if g is None else g)
                      for v, g in reverse_sweep(self.order, root).items()}
        self.users: dict = {v: [] for v in self.order}  # v -> [(w, local)] per edge v -> w
        for w in self.order:
            for p, d in zip(w._prev, w._local):
                self.users[p].append((w, d))
        self.leaves = [v for v in self.order if v._a is None and not v.is_constant]

    def n(self, v: Value) -> str:
        return self.names[v]

    def zeros(self) -> dict:
        return dict.fromkeys(self.order, 0.0)

    def sweep(self, g: dict, edge: Callable, assign: bool = False) -> dict:
        """The backward loop on g (reverse topological order) with a changeable edge rule: the
        local it gives multiplies, except on an edge that passes nothing (the engine's mask,
        not 0 * inf), so a variant differs from backward only by its own mistake."""
        for w in reversed(self.order):
            gw = g[w]
            for k, (p, d) in enumerate(zip(w._prev, w._local)):
                c = _pass(w, edge(w, k, d), gw)
                if assign:
                    g[p] = c
                else:
                    g[p] += c
        return g


def _pass(w: Value, d: float, g: float) -> float:
    """What an edge into w with local d passes down from gradient g, as backward: d * g, or
    0 where the edge passes nothing (relu's flat part, a max input not picked)."""
    return 0.0 if passes_nothing(w, d) else d * g


# -- the variants: each returns (grads, expected, reason when wrong, reason when right) ------------

def _right(G: _Graph):
    return dict(G.right), dict(G.right), "", "the reference"


def _recursion(G: _Graph):
    g = G.zeros()
    g[G.root] = 1.0
    first = None  # (node, gradient it passed on, its final gradient)
    steps = 0
    stack = [(G.root, iter(zip(G.root._prev, G.root._local)))]
    while stack:  # def visit(v): for p, d in edges: p.grad += d * v.grad; visit(p)
        v, edges = stack[-1]
        nxt = next(edges, None)
        if nxt is None:
            stack.pop()
            continue
        steps += 1
        if steps > MAX_RECURSION_STEPS:
            return None, f"not run: more than {MAX_RECURSION_STEPS:,} edge visits (the " \
                         "recursion repeats a node's work once per path to it)"
        p, d = nxt
        if first is None and not _same(g[v], G.right[v]):
            first = (v, g[v], G.right[v])
        g[p] += _pass(v, d, g[v])
        stack.append((p, iter(zip(p._prev, p._local))))
    why = ""
    if first is not None:
        v, early, final = first
        why = (f"{G.n(v)} passed its gradient on at {fmt(early)}, before all of its uses had "
               f"added theirs (final {fmt(final)}), and passed it on again later")
    return (g, dict(G.right), why,
            "right on this graph: no node passed its gradient on before it was final")


def _assign(G: _Graph):
    g = G.zeros()
    g[G.root] = 1.0
    G.sweep(g, lambda w, k, d: d, assign=True)
    why = ""
    for v in reversed(G.order):
        if not _same(g[v], G.right[v]) and len(G.users[v]) > 1:
            why = (f"{G.n(v)} is used {len(G.users[v])} times; with = it keeps only the last "
                   f"contribution ({fmt(g[v])}) instead of their sum ({fmt(G.right[v])})")
            break
    return g, dict(G.right), why, "right on this graph: no node receives two contributions " \
                                  "that matter"


def _twice(G: _Graph):
    g = dict(G.right)  # after a first, correct call
    g[G.root] = 1.0 if G.root._a is not None else g[G.root] + 1.0
    G.sweep(g, lambda w, k, d: d)
    want = {v: (2 * G.right[v] if v._a is None else G.right[v]) for v in G.order}
    kept = [v for v in G.order if v._a is not None and v is not G.root and G.right[v] != 0]
    why = ""
    if kept:
        v = kept[-1]
        why = (f"the interior nodes kept the first call's gradients ({G.n(v)} = "
               f"{fmt(G.right[v])}) and the second call added on top (a correct engine "
               "resets them; only leaves accumulate, to exactly twice)")
    return g, want, why, _nothing_carried(G, kept)


def _nothing_carried(G: _Graph, kept: list) -> str:
    """Why a second call on top of kept interior gradients came out right: there were none, or
    (the only other way) they were inf or nan, which adding again does not change."""
    if not kept:
        return "right on this graph: no interior node below the root has a gradient to carry over"
    v = kept[-1]
    return (f"right on this graph: the gradients carried over are not finite ({G.n(v)} = "
            f"{fmt(G.right[v])}), and adding them again changes nothing")


def _leaves_only(G: _Graph):
    g = dict(G.right)  # after a first, correct call
    for v in G.order:
        if v._a is None:
            g[v] = 0.0
    g[G.root] = 1.0
    G.sweep(g, lambda w, k, d: d)
    kept = [v for v in G.order if v._a is not None and v is not G.root and G.right[v] != 0]
    why = ""
    if kept:
        v = kept[-1]
        why = (f"zero_grad reached only the leaves: {G.n(v)} started the second backward at "
               f"{fmt(G.right[v])} instead of 0 and passed that on too")
    return g, dict(G.right), why, _nothing_carried(G, kept)


def _no_local(G: _Graph):
    g = G.zeros()
    g[G.root] = 1.0
    G.sweep(g, lambda w, k, d: 1.0)
    why = ""
    for w in reversed(G.order):
        for p, d in zip(w._prev, w._local):
            if not _same(d, 1.0) and G.right[w] != 0:
                why = (f"the edge {G.n(p)} -> {G.n(w)} has local derivative {fmt(d)} "
                       f"(d {G.n(w)} / d {G.n(p)}), but the gradient went through unchanged")
                break
        if why:
            break
    return g, dict(G.right), why, "right on this graph: every local derivative that matters is 1"


def _sub_sign(G: _Graph):
    g = G.zeros()
    g[G.root] = 1.0
    G.sweep(g, lambda w, k, d: -d if (w._op == "-" and k == 1) else d)
    why = ""
    for w in reversed(G.order):
        if w._op == "-" and G.right[w] != 0:
            p = w._prev[1]
            why = (f"{G.n(p)} enters {G.n(w)} = {G.n(w._prev[0])} - {G.n(p)} with local "
                   "derivative -1, taken as +1")
            break
    return g, dict(G.right), why, "right on this graph: no subtraction whose result matters"


#: key, title, the line of code that is wrong, the function that runs it
VARIANTS = (
    ("right", "right: reverse topological order, +=",
     "for w in reversed(topo): p.grad += local * w.grad", _right),
    ("recursion", "recursion without a topological order",
     "def visit(v): p.grad += local * v.grad; visit(p)", _recursion),
    ("assign", "= instead of +=", "p.grad = local * w.grad", _assign),
    ("twice", "backward twice, interior nodes not zeroed",
     "loss.backward(); loss.backward()  # interior grads kept", _twice),
    ("leaves_only", "second backward after zeroing only the leaves",
     "for x in leaves: x.grad = 0; loss.backward()", _leaves_only),
    ("no_local", "local derivative dropped", "p.grad += w.grad", _no_local),
    ("sub_sign", "wrong sign on subtraction", "(a - b): b.grad += +1 * w.grad", _sub_sign),
)


def example() -> Value:
    """The default graph: L = c * c with c = a - b, at a = 3, b = 1 (four nodes).

    Small enough to follow by hand and every variant breaks on it: c is used twice (recursion,
    `=`), c is an interior node with a gradient (backward twice, zeroing only the leaves), the
    local derivative of c * c is 2c = 4, not 1, and there is a subtraction.
    """
    a, b = Value(3.0, "a"), Value(1.0, "b")
    c = a - b
    c.label = "c"
    L = c * c
    L.label = "L"
    return L


def diamond() -> Value:
    """b = a + a; c = b + b at a = 1: the smallest graph where recursion and `=` go wrong."""
    a = Value(1.0, "a")
    b = a + a
    b.label = "b"
    c = b + b
    c.label = "c"
    return c


class Misconceptions:
    """Every variant's gradients on one graph: a table, a picture per variant, plain data.

    `variants` (a list of `Variant`), `variant(key)`, `leaves`, `names`; `to_text()`,
    `records()`, `pictures()` (one `viz.Picture` per variant, wrong nodes highlighted); in
    Jupyter, the table followed by the pictures.
    """

    def __init__(self, G: _Graph, variants: list):
        self._G = G
        self.root, self.names, self.leaves = G.root, G.names, G.leaves
        self.variants = variants

    def variant(self, key: str) -> Variant:
        for v in self.variants:
            if v.key == key:
                return v
        raise KeyError(f"no variant {key!r}; the variants are: "
                       f"{', '.join(v.key for v in self.variants)}")

    def records(self) -> list:
        return [v.to_dict() for v in self.variants]

    def _rows(self, digits: int) -> list:
        rows = []
        for var in self.variants:
            cells = [var.title]
            for x in self.leaves:
                if not var.ran:
                    cells.append("-")
                    continue
                got, want = var.grads[x], var.expected[x]
                cells.append(fmt(got, digits) if _same(got, want)
                             else f"{fmt(got, digits)} (want {fmt(want, digits)})")
            if not var.ran:
                verdict = "not run"
            elif var.right:
                verdict = "right"
            else:
                verdict = "wrong: " + ", ".join(self.names[v] for v in var.wrong)
            rows.append(cells + [verdict, var.reason])
        return rows

    def _header(self) -> list:
        return ["variant"] + [self.names[x] for x in self.leaves] + ["verdict", "why"]

    def _title(self) -> str:
        r = self.names[self.root]
        return (f"wrong versions of backward on the graph of {r} ({len(self._G.order)} nodes); "
                f"leaf columns: d {r} / d leaf")

    def to_text(self, digits: int = 6) -> str:
        """The table (variant, each leaf's gradient, verdict), then one line per variant on why."""
        rows = [r[:-1] for r in self._rows(digits)]
        why = [f"- {v.key}: {v.reason}" for v in self.variants if v.key != "right"]
        return "\n".join([self._title(), text_table(self._header()[:-1], rows), "why:", *why])

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        bad = sum(not v.right for v in self.variants)
        return (f"<Misconceptions on {self.names[self.root]}: {bad} of {len(self.variants)} "
                "variants wrong>")

    def pictures(self, **draw_options) -> list:
        """One picture per variant: its gradients on the graph, wrong nodes highlighted, the
        title saying which variant and whether it went wrong. Options go to `viz.show`."""
        from ..viz import show  # drawing is optional at import time
        draw_options.setdefault("edge_labels", True)
        out = []
        for var in self.variants:
            if not var.ran:
                continue
            head = var.title + ("" if var.key == "right" else ": right" if var.right else
                                f": wrong at {', '.join(self.names[v] for v in var.wrong)}")
            out.append(show(self.root, grads=dict(var.grads), highlight_nodes=var.wrong,
                            title=head, **draw_options))
        return out

    def _repr_html_(self) -> str:
        table = html_table(self._header(), self._rows(6), title=self._title(),
                           row_styles=["" if v.right else "background:#fde2e2"
                                       for v in self.variants])
        try:
            pics = self.pictures()
        except Exception as e:  # no dot, or too big: the table still shows, with the reason
            return table + f"<div>pictures not drawn: {html.escape(str(e))}</div>"
        figs = []
        for p, var in zip(pics, [v for v in self.variants if v.ran]):
            figs.append('<figure style="margin:0;max-width:100%;overflow-x:auto">'
                        f"{p.inline_svg()}<figcaption>{html.escape(var.reason)}"
                        "</figcaption></figure>")
        return (table + '<div style="display:flex;flex-wrap:wrap;gap:1.5em;'
                'align-items:flex-start">' + "".join(figs) + "</div>")


def misconceptions(root: Optional[Value] = None) -> Misconceptions:
    """Run the common wrong versions of backward on root's graph next to the right one.

    With no root, the graph of `example()` (L = (a - b) * (a - b)), on which every variant goes
    wrong. Works on private numbers: no `.grad` changes. The "backward twice" variants compare
    with what a correct engine leaves after the same two calls (leaves twice the gradient,
    interior nodes this call's gradient).
    """
    if root is None:
        root = example()
    check_value(root, "misconceptions")
    G = _Graph(root)
    variants = []
    for key, title, code, run in VARIANTS:
        out = run(G)
        if out[0] is None:  # not run (too many steps)
            empty = NodeMap({}, G.names)
            variants.append(Variant(key, title, code, empty, empty, (), out[1], ran=False))
            continue
        grads, want, why_wrong, why_right = out
        wrong = tuple(v for v in G.order if not v.is_constant and not _same(grads[v], want[v]))
        reason = why_right if not wrong else (why_wrong or "gradients differ from the expected")
        if wrong and G.leaves:
            bad = [x for x in G.leaves if x in wrong]
            if bad:
                x = bad[0]
                reason += f": {G.n(x)} gets {fmt(grads[x])}, not {fmt(want[x])}"
        variants.append(Variant(key, title, code, NodeMap(grads, G.names),
                                NodeMap(want, G.names), wrong, reason))
    return Misconceptions(G, variants)
