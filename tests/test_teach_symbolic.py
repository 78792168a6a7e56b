"""Symbolic gradients: formulas in the leaves whose numbers equal backward's, an independent
sympy.diff of the root's formula, the missing-SymPy error, and the expression-swell table."""
from __future__ import annotations

import math
import sys

import pytest

from tinygrad_scalar import Value

sp = pytest.importorskip("sympy", reason="SymPy (the symbolic extra) is not installed")

from tinygrad_scalar.teach import expression_swell, symbolic  # noqa: E402
from tinygrad_scalar.teach.symbolic import diamond_chain, expression_size, neuron  # noqa: E402


def graphs():
    a, b = Value(2.0, "a"), Value(1.0, "b")
    c = a + b
    c.label = "c"
    d = b + 1
    d.label = "d"
    e = c * d
    e.label = "e"
    yield e, {"a": 2.0, "b": 5.0, "c": 2.0, "d": 3.0}
    x, y = Value(3.0, "x"), Value(4.0, "y")
    r = (x ** 2 + y ** 2).sqrt()
    r.label = "r"
    yield r, {"x": 0.6, "y": 0.8}
    u, w = Value(0.7, "u"), Value(-1.3, "w")
    f = (u * w).tanh() + (u / w).exp() - w.sigmoid() * u.sin() + (u ** 2 + 1).log() * w.cos()
    f.label = "f"
    yield f, {}
    t = Value(1.5, "t")
    g = abs(t - t.relu() * 3) + t * t
    g.label = "g"
    yield g, {"t": 5.0}  # |t - 3t| + t^2 = 2t + t^2 at t > 0: 2 + 2t = 5


@pytest.mark.parametrize("case", range(4))
def test_numbers_equal_backward_and_an_independent_diff(case):
    root, known = list(graphs())[case]  # fresh graphs each time
    table = symbolic(root)
    root.backward()
    values = {s: table.values[n] for n, s in table.symbols.items()}
    whole = table.row(table.root_name).value
    for row in table.rows:
        assert math.isclose(row.value_number, row.node.data, rel_tol=1e-12, abs_tol=1e-12)
        assert math.isclose(row.grad_number, row.node.grad, rel_tol=1e-9, abs_tol=1e-12), row
        assert row.backward == row.node.grad
    for name, s in table.symbols.items():
        # the leaf's row against sympy.diff of the root's formula, done here independently
        oracle = float(sp.diff(whole, s).subs(values))
        assert math.isclose(table.row(name).grad_number, oracle, rel_tol=1e-9, abs_tol=1e-12)
        # and as functions, at other points too (simplify cannot always prove them equal)
        for shift in (0.25, 0.5):
            pt = {k: v + shift for k, v in values.items()}
            mine = complex(sp.N(table.row(name).grad.subs(pt)))
            ref = complex(sp.N(sp.diff(whole, s).subs(pt)))
            assert abs(mine - ref) <= 1e-9 * max(1.0, abs(ref)), (name, pt)
    for name, g in known.items():  # hand values
        assert math.isclose(table.row(name).grad_number, g, rel_tol=1e-12)


def test_formulas_and_display():
    root, _ = next(graphs())
    t = symbolic(root)
    a, b = t.symbols["a"], t.symbols["b"]
    assert sp.simplify(t.row("b").grad - (a + 2 * b + 1)) == 0
    assert sp.simplify(t.row("e").value - (a + b) * (b + 1)) == 0
    assert "$a + 2 b + 1$" in t._repr_markdown_()
    assert t._repr_latex_().startswith("$$\\begin{array}")
    assert "a + 2*b + 1" in t.to_text()
    assert root.grad == 0.0  # symbolic never runs backward on the user's graph


def test_without_sympy_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sympy", None)  # import sympy now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "tinygrad_scalar\[symbolic\]"'):
        symbolic(Value(1.0, "x") * 2)


def test_expression_size_counts_repeats():
    x = sp.Symbol("x")
    assert expression_size(x) == 1
    assert expression_size(sp.sin(x) * sp.cos(x)) == 5   # Mul, sin, x, cos, x


def test_swell_grows_exponentially_with_diamonds_while_the_graph_grows_linearly():
    table = expression_swell([(k, diamond_chain(k)) for k in (1, 2, 3, 4, 5)]
                             + [(n, neuron(n)) for n in (2, 4, 8)])
    rows = table.rows
    dia = rows[:5]
    # each diamond adds 3 nodes and 4 edges; the written-out derivative more than doubles
    assert [r.nodes for r in dia] == [4, 7, 10, 13, 16]
    assert [r.edges for r in dia] == [4, 8, 12, 16, 20]
    for p, q in zip(dia, dia[1:]):
        assert q.derivative_size > 2 * p.derivative_size
    # a neuron: n+1 derivatives, each repeating the whole pre-activation: quadratic in n
    neu = rows[5:]
    assert [r.leaves for r in neu] == [5, 9, 17]
    sizes = [r.derivative_size for r in neu]
    assert sizes[2] > 2.5 * sizes[1] > 2.5 * sizes[0]
    assert "graph nodes" in table.to_text() and "<table" in table._repr_html_()


def test_an_operation_without_a_sympy_rule_is_named():
    from tinygrad_scalar.custom import define_op
    cube = define_op("lab_cube_test", lambda x: x ** 3, lambda x, out: 3 * x * x, replace=True)
    y = cube(Value(2.0, "x")) + 1
    with pytest.raises(NotImplementedError, match="'lab_cube_test'"):
        symbolic(y)


def test_kinks_at_a_tie_give_backwards_numbers_and_sympys_formula_away_from_it():
    # SymPy's Heaviside(0) is 1/2: relu'(0) and a tied max gave 1/2-weighted numbers that were
    # neither one-sided slope nor backward's (a tie of two inputs both got the whole gradient)
    a, b, c, z = Value(1.0, "a"), Value(1.0, "b"), Value(0.5, "c"), Value(0.0, "z")
    root = Value.max([a, b, c]) * 2 + (z.relu() * 3 + Value.max([c, c + 0.5]))
    root.label = "r"
    table = symbolic(root)
    root.backward()
    assert (a.grad, b.grad, z.grad) == (2.0, 0.0, 0.0)  # the first tied input; relu flat at 0
    for row in table.rows:
        assert row.grad_number == row.node.grad, row
    whole = table.row("r").value
    s = table.symbols
    for pt in ({"a": 1.25, "b": 0.75, "c": 0.5, "z": 0.5},
               {"a": 0.5, "b": 1.5, "c": 2.0, "z": -0.5}):
        at = {s[k]: v for k, v in pt.items()}
        for name in pt:
            mine = float(table.row(name).grad.subs(at))
            assert mine == float(sp.diff(whole, s[name]).subs(at)), (name, pt)


def test_a_kink_masks_an_infinite_gradient_from_above_as_backward_does():
    # relu's flat part passes nothing (engine.passes_nothing): Heaviside(x, 0) times the
    # 1/(2 sqrt(0)) from above was 0 * zoo = nan where backward gives 0; max's unpicked edge too
    x, a, b = Value(-1.0, "x"), Value(0.0, "a"), Value(-1.0, "b")
    root = x.relu().sqrt() + Value.max([a, b]).sqrt()
    root.label = "r"
    table = symbolic(root)
    root.backward()
    assert (x.grad, b.grad) == (0.0, 0.0)
    assert table.row("x").grad_number == 0.0 and table.row("b").grad_number == 0.0
