"""Teaching tools: narrated backward, sum over paths, forward mode, forward vs reverse cost.

Oracles: the lecture examples worked by hand, closed forms, central finite differences (by
rebuilding the function with x nudged), backward() itself, and brute-force counts.
"""
import math
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinygrad_scalar import Value
from tinygrad_scalar.engine import topological_order

import masked
from strategies import graphs
from tinygrad_scalar.teach import (CostTable, ForwardTable, Narration, PathSum, forward_mode,
                                   mode_costs, narrate, paths)

# --- the lecture examples, each a function of floats or Values returning its named nodes --------


def lecture_e(a, b):
    """e = (a + b)(b + 1): at a=2, b=1, paths b->c->e and b->d->e with products 2 and 3."""
    c = a + b
    d = b + 1
    e = c * d
    return {"c": c, "d": d, "e": e}


def lecture_f(x, y, z):
    """f = (x + y) z (the CS231n circuit at x=-2, y=5, z=-4)."""
    q = x + y
    f = q * z
    return {"q": q, "f": f}


def lecture_y(x):
    """y = x / x**2: x reaches y directly and through x**2."""
    s = x ** 2
    y = x / s
    return {"s": s, "y": y}


def neuron(x1, x2, w1, w2, b):
    """o = tanh(x1 w1 + x2 w2 + b), micrograd's neuron."""
    n = x1 * w1 + x2 * w2 + b
    o = n.tanh() if isinstance(n, Value) else math.tanh(n)
    return {"n": n, "o": o}


def build(fn, **xs):
    """Leaves labelled by their keyword, the named nodes labelled too."""
    leaves = {k: Value(v, k) for k, v in xs.items()}
    nodes = fn(*leaves.values())
    for k, v in nodes.items():
        v.label = k
    return leaves, nodes


def fd_nodes(fn, xs: dict, wrt: str, eps: float = 1e-6) -> dict:
    """d node / d xs[wrt] for every named node by central differences on plain floats."""
    up = fn(*[v + eps if k == wrt else v for k, v in xs.items()])
    dn = fn(*[v - eps if k == wrt else v for k, v in xs.items()])
    return {k: (up[k] - dn[k]) / (2 * eps) for k in up}


# --- narrate -----------------------------------------------------------------------------------


def test_narrate_lecture_e_exact_records():
    (leaves, nodes) = build(lecture_e, a=2.0, b=1.0)
    n = narrate(nodes["e"])
    assert isinstance(n, Narration) and len(n) == 3
    assert n.records() == [
        {"step": 1, "node": "e", "op": "*", "data": 6.0, "grad": 1.0, "edges": [
            {"input": "c", "local": 2.0, "contribution": 2.0, "before": 0.0, "after": 2.0},
            {"input": "d", "local": 3.0, "contribution": 3.0, "before": 0.0, "after": 3.0}]},
        {"step": 2, "node": "d", "op": "+", "data": 2.0, "grad": 3.0, "edges": [
            {"input": "b", "local": 1.0, "contribution": 3.0, "before": 0.0, "after": 3.0},
            {"input": "n3", "local": None, "contribution": None, "before": None,
             "after": None}]},  # n3 is the constant 1: no derivative toward it
        {"step": 3, "node": "c", "op": "+", "data": 3.0, "grad": 2.0, "edges": [
            {"input": "a", "local": 1.0, "contribution": 2.0, "before": 0.0, "after": 2.0},
            {"input": "b", "local": 1.0, "contribution": 2.0, "before": 3.0, "after": 5.0}]},
    ]
    # the step objects carry the nodes themselves
    assert n[0].node is nodes["e"] and n[2].edges[1].input is leaves["b"]
    assert n.grads["a"] == 2.0 and n.grads[leaves["b"]] == 5.0
    assert n.leaves() == [("a", 2.0), ("b", 5.0)]  # the constant n3 gets no gradient


def test_narrate_lecture_f_exact_records():
    leaves, nodes = build(lecture_f, x=-2.0, y=5.0, z=-4.0)
    assert narrate(nodes["f"]).records() == [
        {"step": 1, "node": "f", "op": "*", "data": -12.0, "grad": 1.0, "edges": [
            {"input": "q", "local": -4.0, "contribution": -4.0, "before": 0.0, "after": -4.0},
            {"input": "z", "local": 3.0, "contribution": 3.0, "before": 0.0, "after": 3.0}]},
        {"step": 2, "node": "q", "op": "+", "data": 3.0, "grad": -4.0, "edges": [
            {"input": "x", "local": 1.0, "contribution": -4.0, "before": 0.0, "after": -4.0},
            {"input": "y", "local": 1.0, "contribution": -4.0, "before": 0.0, "after": -4.0}]},
    ]


def test_narrate_x_over_x_squared():
    leaves, nodes = build(lecture_y, x=3.0)
    recs = narrate(nodes["y"]).records()
    assert [r["node"] for r in recs] == ["y", "s"]
    y_edges, s_edges = recs[0]["edges"], recs[1]["edges"]
    assert [e["input"] for e in y_edges] == ["x", "s"]
    assert y_edges[0]["local"] == pytest.approx(1 / 9, rel=1e-15)        # d(x/s)/dx = 1/s
    assert y_edges[1]["local"] == pytest.approx(-3 / 81, rel=1e-15)      # d(x/s)/ds = -x/s^2
    assert [e["input"] for e in s_edges] == ["x", "n1"]                  # n1: the constant 2
    assert s_edges[0]["local"] == 6.0                                     # d(x^2)/dx = 2x
    assert s_edges[1]["local"] is None       # toward the constant 2: never computed, none shown
    assert s_edges[0]["before"] == y_edges[0]["after"]                    # x's two += in order
    assert s_edges[0]["after"] == pytest.approx(-1 / 9, rel=1e-14)        # d(1/x)/dx at 3


def test_narrate_parallel_edges_accumulate_in_order():
    a = Value(3.0, "a")
    y = a + a
    y.label = "y"
    (step,) = narrate(y)
    assert [(e.input_name, e.before, e.after) for e in step.edges] == [("a", 0.0, 1.0),
                                                                       ("a", 1.0, 2.0)]


def test_narrate_seed_and_leaf_root():
    leaves, nodes = build(lecture_f, x=-2.0, y=5.0, z=-4.0)
    n = narrate(nodes["f"], gradient=0.5)
    assert n[0].grad == 0.5 and n.grads["x"] == -2.0
    leaf = Value(1.0, "w")
    assert len(narrate(leaf)) == 0
    # a leaf root: a sentence, not an empty table with only its header
    text = narrate(leaf).to_text()
    assert text.splitlines() == ["backward from w (data 1): w is a leaf, so backward takes no "
                                 "steps; it only adds the seed to its gradient",
                                 "leaf gradients: w = 1"]
    assert "<table" not in narrate(leaf)._repr_html_()


def test_narrate_text_and_html():
    leaves, nodes = build(lecture_e, a=2.0, b=1.0)
    n = narrate(nodes["e"])
    text = str(n)
    lines = text.splitlines()
    assert lines[0] == "backward from e (data 6): 3 step(s) in reverse topological order"
    assert lines[3].split() == ["1", "e", "*", "6", "1", "c", "2", "1", "x", "2", "=", "2",
                                "0", "->", "2"]
    assert lines[-2].split() == ["b", "1", "2", "x", "1", "=", "2", "3", "->", "5"]
    assert lines[-1] == "leaf gradients: a = 2, b = 5"  # constants are left out
    page = n._repr_html_()
    assert page.count("<tr") == 1 + 6 and "leaf gradients" in page
    assert "<script" not in page
    # labels are escaped in HTML
    x = Value(1.0, "<b>")
    assert "&lt;b&gt;" in narrate(x * 2)._repr_html_()


def test_narrate_max_steps_text():
    x = Value(0.5, "x")
    y = x
    for _ in range(10):
        y = y.tanh()
    text = narrate(y).to_text(max_steps=3)
    assert "... 7 more step(s)" in text


def test_tools_never_touch_grad():
    leaves, nodes = build(lecture_e, a=2.0, b=1.0)
    every = topological_order(nodes["e"])
    for i, v in enumerate(every):
        v.grad = 100.0 + i
    narrate(nodes["e"]).to_text()
    paths(nodes["e"], "b").to_text()
    paths(nodes["e"], "b", max_paths=0).to_text()
    forward_mode(nodes["e"], "a").to_text()
    mode_costs(nodes["e"], [leaves["a"], leaves["b"]]).to_text()
    assert [v.grad for v in every] == [100.0 + i for i in range(len(every))]
    assert all(v.grad_value is None for v in every)


def test_bad_input_is_a_clear_error():
    leaves, nodes = build(lecture_e, a=2.0, b=1.0)
    with pytest.raises(TypeError, match="narrate.*needs a Value.*float"):
        narrate(3.0)
    with pytest.raises(TypeError, match="needs a real number"):
        narrate(nodes["e"], gradient="1")
    with pytest.raises(KeyError, match="no node named 'zz'"):
        paths(nodes["e"], "zz")
    with pytest.raises(TypeError, match="Value or a node name"):
        paths(nodes["e"], 1.0)
    with pytest.raises(ValueError, match="max_paths"):
        paths(nodes["e"], "b", max_paths=-1)
    twin = Value(1.0, "b") * nodes["e"]
    with pytest.raises(ValueError, match="2 nodes are labelled 'b'"):
        forward_mode(twin, "b")
    with pytest.raises(ValueError, match="empty list"):
        mode_costs([], [leaves["a"]])
    with pytest.raises(TypeError, match="mode_costs.*needs a Value"):
        mode_costs([1.0], [leaves["a"]])


def test_duplicate_labels_get_unique_names():
    w1, w2 = Value(1.0, "w"), Value(2.0, "w")
    y = w1 * w2
    n = narrate(y)
    assert [e.input_name for e in n[0].edges] == ["w@n0", "w@n1"]
    assert paths(y, "w@n1").paths[0].names == ("w@n1", "n2")


# --- paths -------------------------------------------------------------------------------------


def test_paths_lecture_e_exact():
    leaves, nodes = build(lecture_e, a=2.0, b=1.0)
    ps = paths(nodes["e"], leaves["b"])
    assert isinstance(ps, PathSum)
    assert ps.count == 2 and ps.listed
    assert [(p.names, p.derivs, p.product) for p in ps.paths] == [
        (("b", "c", "e"), (1.0, 2.0), 2.0),
        (("b", "d", "e"), (1.0, 3.0), 3.0)]
    assert ps.paths[0].nodes == (leaves["b"], nodes["c"], nodes["e"])
    assert ps.total == 5.0 and ps.grad == 5.0
    assert paths(nodes["e"], "a").to_dict()["paths"] == [
        {"nodes": ["a", "c", "e"], "derivs": [1.0, 2.0], "product": 2.0}]
    text = ps.to_text()
    assert "b -> c -> e  1 x 2" in text and "sum of the products = 5" in text
    assert "de/db from backward = 5" in text
    assert "b -&gt; c -&gt; e" in ps._repr_html_()


def test_paths_lecture_f_exact():
    leaves, nodes = build(lecture_f, x=-2.0, y=5.0, z=-4.0)
    ps = paths(nodes["f"], "x")
    assert [(p.names, p.derivs, p.product) for p in ps.paths] == [
        (("x", "q", "f"), (1.0, -4.0), -4.0)]
    pz = paths(nodes["f"], "z")
    assert [(p.names, p.product) for p in pz.paths] == [(("z", "f"), 3.0)]
    assert pz.total == pz.grad == 3.0


def test_paths_x_over_x_squared_two_paths_into_x():
    leaves, nodes = build(lecture_y, x=3.0)
    ps = paths(nodes["y"], "x")
    assert ps.count == 2
    (direct, through) = ps.paths
    assert direct.names == ("x", "y") and direct.product == pytest.approx(1 / 9, rel=1e-15)
    assert through.names == ("x", "s", "y")
    assert through.derivs[0] == 6.0
    assert through.product == pytest.approx(6 * (-3 / 81), rel=1e-15)   # -2/9
    assert ps.total == pytest.approx(-1 / 9, rel=1e-14)                  # d(1/x)/dx = -1/x^2
    assert ps.total == ps.grad                                            # same order of sums


def test_paths_parallel_edges_are_distinct():
    a = Value(3.0, "a")
    y = a * a
    ps = paths(y, a)
    assert ps.count == 2 and [p.product for p in ps.paths] == [3.0, 3.0] and ps.total == 6.0


def test_paths_root_is_x_and_unrelated_x():
    a = Value(3.0, "a")
    ps = paths(a, a)
    assert ps.count == 1 and ps.paths[0].names == ("a",) and ps.paths[0].derivs == ()
    assert ps.total == 1.0 and ps.grad == 1.0
    other = Value(1.0, "o")
    none = paths(a * 2, other)
    assert none.count == 0 and none.paths == [] and none.total == 0.0 and none.grad == 0.0
    assert "no path from o" in none.to_text()


def test_path_explosion_answers_at_once():
    x = Value(0.3, "x")
    v = x
    for _ in range(40):
        v = v + v
    ps = paths(v, x)
    assert ps.count == 2 ** 40 and not ps.listed and ps.paths == []
    assert ps.total == 2.0 ** 40 == ps.grad
    assert "1,099,511,627,776 paths are more than max_paths=1,000" in ps.to_text()
    assert len(ps.factored) == 41 and ps.factored[-1].count == 2 ** 40
    assert ps.to_dict()["count"] == 2 ** 40


def test_path_explosion_with_distinct_products():
    # 40 diamonds v -> (tanh v, sin v) -> sum: 2^40 paths whose products all differ
    x = Value(0.3, "x")
    v = x
    for _ in range(40):
        v = v.tanh() + v.sin()
        v = v * 0.5
    ps = paths(v, "x")
    assert ps.count == 2 ** 40
    assert ps.total == pytest.approx(ps.grad, rel=1e-12)
    h = 1e-6  # and the factored sum is the derivative (central differences)

    def f(t):
        for _ in range(40):
            t = (math.tanh(t) + math.sin(t)) * 0.5
        return t
    assert ps.total == pytest.approx((f(0.3 + h) - f(0.3 - h)) / (2 * h), rel=1e-6)


def test_paths_listing_limit_boundary():
    x = Value(0.3, "x")
    v = x
    for _ in range(3):
        v = v + v  # 8 paths
    assert paths(v, x, max_paths=8).listed and len(paths(v, x, max_paths=8).paths) == 8
    over = paths(v, x, max_paths=7)
    assert not over.listed and over.paths == [] and over.total == 8.0


def test_path_count_is_linear_in_edges_for_a_long_chain():
    x = Value(0.1, "x")
    v = x
    for _ in range(20000):
        v = v * 1.0
    ps = paths(v, x)
    assert ps.count == 1 and len(ps.paths[0].nodes) == 20001 and ps.total == 1.0


# an edge that passes nothing (relu's flat part, an input max did not pick) with an inf from above:
# backward gives 0 below it, not 0 * inf = nan; the path sum must give backward's number

@pytest.mark.parametrize("name", sorted(masked.GRAPHS))
@pytest.mark.parametrize("max_paths", [1000, 0])
def test_paths_through_an_edge_that_passes_nothing_sum_to_backward(name, max_paths):
    leaves, y = masked.build(name)
    y.backward()
    for x in leaves.values():
        ps = paths(y, x, max_paths=max_paths)
        assert ps.grad == pytest.approx(x.grad, nan_ok=True)
        assert ps.total == pytest.approx(x.grad, nan_ok=True), (name, x.label, ps.to_text())


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(masked.GRAPHS))
def test_masked_path_sums_are_torchs_numbers(name):
    import torch
    leaves, y = masked.build(name)
    want = masked.torch_grads(name, torch)
    for k, x in leaves.items():
        for max_paths in (1000, 0):
            assert paths(y, x, max_paths=max_paths).total == pytest.approx(want[k], nan_ok=True)


def test_a_path_through_an_edge_that_passes_nothing_has_product_0_and_says_why():
    leaves, y = masked.build("max_sqrt")        # y = sqrt(max(a, b)) at a = 0, b = -1
    ps = paths(y, "b")
    (p,) = ps.paths
    assert p.names == ("b", "n2", "y") and p.derivs == (0.0, math.inf)
    assert p.product == 0.0 and ps.total == 0.0 == ps.grad       # not 0 * inf = nan
    assert p.masked == (0,) and ps.masked
    text = ps.to_text()
    assert "0 (passes nothing) x inf  0" in text and "not 0 x inf = nan" in text
    assert ps.to_dict()["paths"][0]["masked"] == [0]
    factored = paths(y, "b", max_paths=0)
    assert factored.total == 0.0 and factored.masked
    rows = {r.name: r for r in factored.factored}
    assert rows["n2"].masked == (0,) and rows["n2"].nothing and rows["y"].nothing
    assert "0 x S(b)=1 (passes nothing)" in factored.to_text()
    # where nothing is masked, the table is as it was: no note
    assert "passes nothing" not in paths(y, "a").to_text()
    # two uses of b: 0 through max, 2 through 2 * b
    leaves, y = masked.build("max_twice")
    assert sorted(p.product for p in paths(y, "b").paths) == [0.0, 2.0]
    assert paths(y, "b").total == paths(y, "b", max_paths=0).total == 2.0


def test_an_inf_below_an_edge_that_passes_nothing_still_gives_nan():
    # y = relu(sqrt(a) - 1) + b at a = 0: the flat relu passes 0, and sqrt'(0) = inf times that
    # 0 is nan, as backward and torch give (only the flat edge itself passes nothing)
    leaves, y = masked.build("inf_below")
    y.backward()
    assert math.isnan(leaves["a"].grad)
    for max_paths in (1000, 0):
        ps = paths(y, "a", max_paths=max_paths)
        assert math.isnan(ps.total)
    assert math.isnan(paths(y, "a").paths[0].product)


CHAIN_STEPS = {  # one step of a chain, each with a kink, an edge that passes nothing, or both
    "relu": lambda v, c: v.relu(), "max": lambda v, c: Value.max([v, c]),
    "max_first": lambda v, c: Value.max([c, v]), "sqrt": lambda v, c: abs(v).sqrt(),
    "abs": lambda v, c: abs(v), "add": lambda v, c: v + c, "mul": lambda v, c: v * c,
    "neg": lambda v, c: -v}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([-1.0, 0.0, 1.0]),
       st.lists(st.tuples(st.sampled_from(sorted(CHAIN_STEPS)),
                          st.sampled_from([-1.0, 0.0, 1.0, 2.0])), min_size=1, max_size=8))
def test_one_path_with_kinks_infinite_slopes_and_masks_is_backwards_number(x0, steps):
    # one path from x to y, its edges in any order: 0 (a kink), inf (sqrt at 0) and edges that
    # pass nothing; the product and the factored sum must both be backward's number (and the
    # inf - inf of two paths, which no order of a sum over paths can avoid, does not arise)
    x = Value(x0, "x")
    y = x
    for name, c in steps:
        y = CHAIN_STEPS[name](y, c)
    y.backward()
    ps, factored = paths(y, x), paths(y, x, max_paths=0)
    assert ps.count == 1 and ps.grad == pytest.approx(x.grad, nan_ok=True)
    assert ps.paths[0].product == pytest.approx(x.grad, nan_ok=True), ps.to_text()
    assert factored.total == pytest.approx(x.grad, nan_ok=True), factored.to_text()


# --- forward mode ------------------------------------------------------------------------------


@pytest.mark.parametrize("fn, xs", [
    (lecture_e, {"a": 2.0, "b": 1.0}),
    (lecture_f, {"x": -2.0, "y": 5.0, "z": -4.0}),
    (lecture_y, {"x": 3.0}),
    (lambda x1, x2, w1, w2, b: neuron(x1, x2, w1, w2, b),
     {"x1": 2.0, "x2": 0.0, "w1": -3.0, "w2": 1.0, "b": 6.8813735870195432}),
])
def test_forward_mode_matches_finite_differences_for_every_node(fn, xs):
    leaves, nodes = build(fn, **xs)
    root = list(nodes.values())[-1]
    for wrt in xs:
        table = forward_mode(root, wrt)
        assert isinstance(table, ForwardTable)
        fd = fd_nodes(lambda *a: {k: float(v) for k, v in fn(*a).items()}, xs, wrt)
        for name, node in nodes.items():
            assert table.tangents[node] == pytest.approx(fd[name], rel=1e-7, abs=1e-8)
        for name, leaf in leaves.items():
            assert table.tangents[leaf] == (1.0 if name == wrt else 0.0)
        assert table.forward == pytest.approx(table.reverse, rel=1e-14)
        root.zero_grad()
        root.backward()
        assert table.reverse == leaves[wrt].grad       # reverse mode is backward's numbers
        for v in topological_order(root):
            assert table.adjoints[v] == (None if v.is_constant else v.grad)


def test_forward_table_text_html_dict():
    leaves, nodes = build(lecture_e, a=2.0, b=1.0)
    t = forward_mode(nodes["e"], "b")
    assert t.tangents.by_name() == {"a": 0.0, "b": 1.0, "c": 1.0, "n3": 0.0, "d": 1.0, "e": 5.0}
    assert t.adjoints.by_name() == {"a": 2.0, "b": 5.0, "c": 2.0, "n3": None, "d": 3.0, "e": 1.0}
    d = t.to_dict()
    assert d["forward"] == d["reverse"] == 5.0 and [r["node"] for r in d["rows"]] == [
        "a", "b", "c", "n3", "d", "e"]
    text = t.to_text()
    assert "de/db: forward (tangent of e) = 5, reverse (adjoint of b) = 5" in text
    assert [r.name for r in t.rows] == ["a", "b", "c", "n3", "d", "e"]
    assert "d node/d b (forward)" in t._repr_html_()


def test_forward_mode_unrelated_input_is_all_zero():
    a = Value(2.0, "a")
    y = a.tanh()
    other = Value(5.0, "o")
    t = forward_mode(y, other)
    assert t.forward == 0.0 and t.reverse == 0.0
    assert all(v == 0.0 for v in t.tangents.values())


def test_forward_mode_structural_zero_is_not_nan():
    # sqrt at 0 has an infinite slope; forward mode from x never crosses that edge
    x, z = Value(2.0, "x"), Value(0.0, "z")
    y = x * 3 + z.sqrt()
    t = forward_mode(y, x)
    assert t.tangents[y] == 3.0


# --- forward vs reverse cost -------------------------------------------------------------------


def test_mode_costs_lecture_e():
    leaves, nodes = build(lecture_e, a=2.0, b=1.0)
    t = mode_costs(nodes["e"], [leaves["a"], leaves["b"]])
    assert isinstance(t, CostTable)
    # edges: a->c, b->c, b->d, 1->d, c->e, d->e; the constant's edge carries nothing
    assert t.edges == 6 and t.relevant_edges == 5
    assert t.to_dict()["forward"] == {"a": 2, "b": 4}      # a->c->e; b->c, b->d, c->e, d->e
    assert t.to_dict()["reverse"] == {"e": 5}
    assert (t.forward_total, t.reverse_total, t.cheaper) == (6, 5, "reverse")
    text = t.to_text()
    assert "forward  2 (one per input)   a: 2, b: 4" in text
    assert "reverse mode is cheaper" in text and "<table" in t._repr_html_()


def test_mode_costs_many_inputs_one_output_and_the_reverse():
    n, k = 10, 5
    xs = [Value(0.1 * i, f"x{i}") for i in range(n)]
    s = Value.sum([x * x for x in xs])   # n mul nodes (2 edges each) and one n-ary sum
    y = s
    for _ in range(k):                   # a tail of k unary ops
        y = y.tanh()
    t = mode_costs(y, xs)
    # forward: each sweep crosses x->mul twice, mul->sum once, then the k tail edges
    assert [w.multiply_adds for w in t.forward] == [3 + k] * n
    # reverse: one sweep over every edge: 2n + n + k
    assert t.reverse_total == 3 * n + k and t.cheaper == "reverse"
    # one input, many outputs: forward is the cheap one
    x = Value(0.5, "x")
    h = x.tanh().tanh().tanh()
    outs = [h * float(i) for i in range(1, 9)]
    t2 = mode_costs(outs, [x])
    assert t2.forward_total == 3 + 8
    assert t2.reverse_total == 8 * (3 + 1) and t2.cheaper == "forward"


def test_mode_costs_multiple_outputs_and_names():
    a, b = Value(1.0, "a"), Value(2.0, "b")
    p, s = a * b, a + b
    p.label, s.label = "p", "s"
    t = mode_costs([p, s], ["a", "b"])
    assert t.to_dict()["forward"] == {"a": 2, "b": 2}
    assert t.to_dict()["reverse"] == {"p": 2, "s": 2}
    assert t.cheaper == "equal" and "both modes cost the same" in t.to_text()


def naive_costs(outputs, inputs):
    """Brute force: per sweep, walk the graph and count the edges crossed."""
    order = []
    for o in outputs:
        for v in topological_order(o):
            if v not in order:
                order.append(v)

    def depends(v, x):
        return v is x or any(depends(p, x) for p in v._prev)

    def reaches(v, y):
        return v is y or v in topological_order(y)

    fwd = []
    for x in inputs:
        fwd.append(sum(1 for v in order for p in v._prev
                       if depends(p, x) and any(reaches(v, y) for y in outputs)))
    rev = []
    for y in outputs:
        rev.append(sum(1 for v in order for p in v._prev
                       if reaches(v, y) and any(depends(p, x) for x in inputs)))
    return fwd, rev


# --- random graphs -----------------------------------------------------------------------------


def random_dags():
    """Small random graphs from tests/strategies.py (every built-in operation, reuse gives
    parallel edges, constants as operands), as (leaves labelled x0, x1, ..., root)."""
    def make(g):
        leaves = [Value(x, f"x{i}") for i, x in enumerate(g.xs)]
        return leaves, g.build(leaves)[0]
    return graphs(leaves=(1, 4), steps=(1, 12), leaf_values=st.floats(-1.5, 1.5)).map(make)


SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def replay(root, x, xval):
    """Every node's value with x's data replaced by xval, by each node's op on floats."""
    vals = {}
    for v in topological_order(root):
        if v is x:
            vals[v] = xval
        elif not v._prev:
            vals[v] = v.data
        else:
            vals[v] = v.op.f(*[vals[p] for p in v._prev])
    return vals


@SETTINGS
@given(random_dags(), st.data())
def test_random_dags_path_sum_equals_backward(dag, data):
    leaves, root = dag
    x = leaves[data.draw(st.integers(0, len(leaves) - 1))]
    ps = paths(root, x, max_paths=10 ** 6)
    root.zero_grad()
    root.backward()
    assert ps.grad == x.grad                                  # bit for bit
    assert ps.total == pytest.approx(x.grad, rel=1e-9, abs=1e-12)
    assert len(ps.paths) == ps.count
    for p in ps.paths:                                        # each path is a real path
        assert p.nodes[0] is x and p.nodes[-1] is root
        for (u, v), d in zip(zip(p.nodes, p.nodes[1:]), p.derivs):
            assert any(q is u and dd == d for q, dd in zip(v._prev, v._local))
    assert len(set(tuple(map(id, p.nodes)) for p in ps.paths)) <= ps.count
    factored = paths(root, x, max_paths=0)
    assert factored.count == ps.count and factored.paths == []
    assert factored.total == pytest.approx(x.grad, rel=1e-9, abs=1e-12)


@SETTINGS
@given(random_dags(), st.data())
def test_random_dags_forward_equals_reverse_and_differences(dag, data):
    leaves, root = dag
    x = leaves[data.draw(st.integers(0, len(leaves) - 1))]
    t = forward_mode(root, x)
    root.zero_grad()
    root.backward()
    assert t.forward == pytest.approx(x.grad, rel=1e-9, abs=1e-12)
    h = 1e-6
    up, dn = replay(root, x, x.data + h), replay(root, x, x.data - h)
    for v in topological_order(root):
        assert t.tangents[v] == pytest.approx((up[v] - dn[v]) / (2 * h), rel=1e-5, abs=1e-6)


@SETTINGS
@given(random_dags(), st.data())
def test_random_dags_costs_equal_brute_force(dag, data):
    leaves, root = dag
    inner = [v for v in topological_order(root) if v._prev]
    k = data.draw(st.integers(1, min(3, len(inner))))
    outs = data.draw(st.permutations(inner))[:k]
    ins = data.draw(st.lists(st.sampled_from(leaves), min_size=1, max_size=len(leaves),
                             unique_by=id))
    t = mode_costs(outs, ins)
    fwd, rev = naive_costs(outs, ins)
    assert [w.multiply_adds for w in t.forward] == fwd
    assert [w.multiply_adds for w in t.reverse] == rev


def test_narration_matches_backward_on_a_net():
    rng = random.Random(0)
    xs = [Value(rng.uniform(-1, 1), f"x{i}") for i in range(3)]
    hidden = [Value.sum([Value(rng.uniform(-1, 1)) * x for x in xs]).tanh() for _ in range(4)]
    out = Value.sum([Value(rng.uniform(-1, 1)) * h for h in hidden])
    n = narrate(out)
    out.backward()
    order = topological_order(out)
    assert len(n) == sum(1 for v in order if v._prev)
    for v in order:
        assert n.grads[v] == v.grad
    # each step's grad is final when it is processed: equal to the end result
    for s in n:
        assert s.grad == s.node.grad


# --- gradient check report (shared with the gradcheck module) ----------------------------------


def test_gradcheck_report_on_the_lecture_examples():
    from tinygrad_scalar.gradcheck import gradcheck_report as original
    from tinygrad_scalar.teach import gradcheck_report
    assert gradcheck_report is original                      # one implementation, re-exported
    rep = gradcheck_report(lambda a, b: lecture_e(a, b)["e"], [2.0, 1.0])
    assert rep.ok and [r.name for r in rep.rows] == ["a", "b"]
    assert [r.analytic for r in rep.rows] == [2.0, 5.0]    # the path sums above
    assert [r.numeric for r in rep.rows] == pytest.approx([2.0, 5.0], rel=1e-8)
    rep = gradcheck_report(lambda x: lecture_y(x)["y"], [3.0])
    assert rep.rows[0].analytic == pytest.approx(-1 / 9, rel=1e-14)
    assert rep.rows[0].abs_err < 1e-8 and "analytic" in str(rep)
