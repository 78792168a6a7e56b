"""The misconception lab: every wrong variant's numbers against a hand computation.

The closed forms below are worked out by hand from each variant's rule (not by running the
module's code): for L = c * c with c = a - b, and for the diamond b = a + a, c = b + b.
"""
from __future__ import annotations

import math
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from masked import GRAPHS, build, torch_grads
from strategies import graphs
from tinygrad_scalar import Value
from tinygrad_scalar.engine import topological_order
from tinygrad_scalar.teach import misconceptions
from tinygrad_scalar.teach.misconceptions import MAX_RECURSION_STEPS, diamond, example


def square_of_difference(a0: float, b0: float):
    a, b = Value(a0, "a"), Value(b0, "b")
    c = a - b
    c.label = "c"
    L = c * c
    L.label = "L"
    return a, b, c, L


def leaf_grads(m, key):
    v = m.variant(key)
    return tuple(v.grads[x] for x in m.leaves)


@pytest.mark.parametrize("a0,b0", [(3.0, 1.0), (5.0, 2.0), (-1.5, 0.25)])
def test_square_of_difference_closed_forms(a0, b0):
    a, b, c, L = square_of_difference(a0, b0)
    k = a0 - b0
    m = misconceptions(L)
    # by hand, with k = a - b:
    #   right:      dL/da = 2k, dL/db = -2k
    #   recursion:  L passes k to c along its first edge (c passes k on), then 2k along the
    #               second (c passes 2k on): a = k + 2k = 3k, b = -3k
    #   =:          c keeps the last contribution k: a = k, b = -k
    #   twice:      first call a = 2k, c = 2k; second call c = 2k + 2k = 4k: a = 2k + 4k = 6k
    #               (a correct engine: 4k, leaves twice)
    #   leaves only: leaves 0, c = 2k + 2k: a = 4k (correct: 2k)
    #   no local:   c gets 1 + 1 = 2, passes 2 unchanged to a and to b: (2, 2)
    #   sub sign:   a = 2k, b = +2k
    want = {"right": (2 * k, -2 * k), "recursion": (3 * k, -3 * k), "assign": (k, -k),
            "twice": (6 * k, -6 * k), "leaves_only": (4 * k, -4 * k), "no_local": (2.0, 2.0),
            "sub_sign": (2 * k, 2 * k)}
    assert [x.label for x in m.leaves] == ["a", "b"]
    for key, pair in want.items():
        got = leaf_grads(m, key)
        assert all(math.isclose(g, w, rel_tol=1e-12) for g, w in zip(got, pair)), (key, got)
    # the expected numbers: a correct engine, also twice (leaves accumulate to 2x)
    assert tuple(m.variant("twice").expected[x] for x in m.leaves) == (4 * k, -4 * k)
    assert m.variant("right").right
    assert all(not v.right for v in m.variants if v.key != "right")
    # the user's gradients are untouched, also when they hold something
    assert (a.grad, b.grad, c.grad, L.grad) == (0.0, 0.0, 0.0, 0.0)
    L.backward()
    before = (a.grad, b.grad, c.grad, L.grad)
    misconceptions(L)
    assert (a.grad, b.grad, c.grad, L.grad) == before == (2 * k, -2 * k, 2 * k, 1.0)


def test_diamond_breaks_the_first_two_and_not_the_local_or_sign_ones():
    c = diamond()
    m = misconceptions(c)
    # b = a + a, c = b + b: dc/da = 4. recursion: c passes 1 to b, b passes 1 + 1 to a; then
    # 2 to b, which passes 2 + 2: a = 6. =: b = 1, a = 1. twice: first a = 4, b = 2; second
    # b = 2 + 2 = 4, a = 4 + 8 = 12 (want 8). leaves only: a = 8 (want 4).
    want = {"right": 4.0, "recursion": 6.0, "assign": 1.0, "twice": 12.0, "leaves_only": 8.0,
            "no_local": 4.0, "sub_sign": 4.0}
    assert {k: leaf_grads(m, k)[0] for k in want} == want
    verdict = {v.key: v.right for v in m.variants}
    assert verdict == {"right": True, "recursion": False, "assign": False, "twice": False,
                       "leaves_only": False, "no_local": True, "sub_sign": True}
    assert "every local derivative that matters is 1" in m.variant("no_local").reason
    # interior nodes are compared too: with = , b holds 1 instead of 2
    b = c._prev[0]
    assert m.variant("assign").grads[b] == 1.0 and b in m.variant("assign").wrong


def test_reasons_name_the_node_and_numbers():
    m = misconceptions()  # the default graph, L = (a - b)^2 at a = 3, b = 1
    assert m.variant("recursion").reason.startswith(
        "c passed its gradient on at 2, before all of its uses had added theirs (final 4)")
    assert "a gets 6, not 4" in m.variant("recursion").reason
    assert "c is used 2 times" in m.variant("assign").reason
    assert "local derivative 2" in m.variant("no_local").reason
    assert "b enters c = a - b" in m.variant("sub_sign").reason
    text = m.to_text()
    assert "6 (want 4)" in text and "12 (want 8)" in text
    assert [r["variant"] for r in m.records()][0] == "right"


def test_no_reuse_chain_recursion_and_assign_are_right():
    # y = 3 * (x - 1): every node used once, so recursion and = are right here
    x = Value(2.0, "x")
    y = (x - 1) * 3
    m = misconceptions(y)
    assert m.variant("recursion").right and m.variant("assign").right
    assert leaf_grads(m, "no_local") == (1.0,)          # the 3 is dropped
    assert leaf_grads(m, "right") == (3.0,)


def test_recursion_past_the_limit_is_reported_not_run():
    v = Value(0.5, "x")
    y = v
    for _ in range(20):  # 2^20 paths: the recursion would visit millions of edges
        y = y + y
    m = misconceptions(y)
    r = m.variant("recursion")
    assert not r.ran and not r.right and f"{MAX_RECURSION_STEPS:,}" in r.reason
    assert leaf_grads(m, "right") == (2.0 ** 20,)


def test_bad_input():
    with pytest.raises(TypeError, match="needs a Value"):
        misconceptions(3.0)
    with pytest.raises(KeyError, match="no variant"):
        misconceptions().variant("nope")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot is not installed")
def test_pictures_highlight_wrong_nodes():
    m = misconceptions(example())
    pics = m.pictures()
    assert len(pics) == len(m.variants)
    assert pics[0].title == m.variants[0].title and pics[1].title.endswith("wrong at a, b")
    assert "wrong at b" in pics[-1].title           # the sign variant: only b is wrong
    html = m._repr_html_()
    assert html.count("<svg") == len(m.variants) and "b enters c = a - b" in html


# -- edges that pass nothing: relu's flat part, the inputs max did not pick ---------------------

@pytest.mark.parametrize("name", ["max_sqrt", "relu_sqrt"])
def test_an_edge_that_passes_nothing_passes_nothing_in_every_variant(name):
    # y = sqrt(max(a, b)) or sqrt(relu(b) + a) at a = 0, b = -1: sqrt'(0) = inf reaches an edge
    # that passes nothing, so backward (and torch) give b 0, not 0 * inf = nan. Each graph is a
    # tree with no subtraction, and the gradient an interior node carries over is inf (inf + inf
    # is inf), so only the variant that drops the local derivative goes wrong.
    leaves, y = build(name)
    y.backward()
    assert (leaves["a"].grad, leaves["b"].grad) == (math.inf, 0.0)
    m = misconceptions(y)
    assert {v.key for v in m.variants if not v.right} == {"no_local"}
    for key in ("right", "recursion", "assign", "twice", "leaves_only", "sub_sign"):
        assert m.variant(key).grads["b"] == 0.0, key
    assert "nan" not in m.to_text()
    assert "no interior node below the root has a gradient" not in m.variant("twice").reason
    # dropping the local derivative passes the gradient through the flat edge too: b gets 1
    assert m.variant("no_local").grads["b"] == 1.0 and "b" in m.variant("no_local").reason


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_the_right_variant_is_backward_and_torch_on_masked_graphs(name):
    import torch
    leaves, y = build(name)
    y.backward()
    want = torch_grads(name, torch)
    right = misconceptions(y).variant("right")
    for k, x in leaves.items():
        assert right.grads[k] == pytest.approx(x.grad, nan_ok=True)
        assert x.grad == pytest.approx(want[k], nan_ok=True)


def _uses(root) -> dict:
    uses: dict = {}
    for v in topological_order(root):
        for p in v.parents:
            uses[p] = uses.get(p, 0) + 1
    return uses


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(leaves=(1, 3), steps=(1, 8), smooth=False, finite_slopes=False,
              ops=("relu", "max", "sqrt", "add", "mul", "neg", "abs", "sum"),
              leaf_values=st.sampled_from([-1.0, 0.0, 1.0])))
def test_variants_that_cannot_go_wrong_on_a_graph_agree_with_backward(g):
    # with kinks and infinite slopes (sqrt at 0): the sign variant has no subtraction to get
    # wrong here, and where no node is used twice neither recursion nor = can go wrong
    leaves = [Value(x, f"x{i}") for i, x in enumerate(g.xs)]
    (root,) = g.build(leaves)
    m = misconceptions(root)
    assert m.variant("sub_sign").right, m.variant("sub_sign").reason
    uses = _uses(root)
    if all(n == 1 for n in uses.values()):
        assert m.variant("recursion").right and m.variant("assign").right
