"""The shared random-graph generator (tests/strategies.py) is what the property tests rely on:
it draws every built-in operation of the live table, stays inside each domain, and keeps the
smooth graphs away from kinks and poles."""
import math

import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from tinygrad_scalar.engine import OPS, Value

from strategies import BUILTIN_OPS, Const, graphs, float_lift, torch_lift


def drawn_operations(n: int = 300, **kw) -> set:
    """The operations that n derandomized graphs use."""
    seen: set = set()

    @settings(max_examples=n, database=None, derandomize=True)
    @given(graphs(**kw))
    def collect(g):
        seen.update(g.ops())
    collect()
    return seen


def test_every_builtin_operation_is_drawn():
    assert drawn_operations() == set(BUILTIN_OPS)
    assert drawn_operations(smooth=False) == set(BUILTIN_OPS)


def test_the_builtin_operations_are_the_live_table_without_test_defined_ones():
    assert set(BUILTIN_OPS) <= set(OPS)
    assert {"add", "mul", "pow", "log", "sum"} <= set(BUILTIN_OPS)


def test_an_operation_a_test_defines_is_never_drawn_unless_named():
    from tinygrad_scalar.custom import define_op
    define_op("strategies_twice", lambda x: 2.0 * x, lambda x, out: 2.0, replace=True)
    try:
        assert "strategies_twice" not in drawn_operations(100)
        assert drawn_operations(50, ops=["strategies_twice", "add"]) <= {"strategies_twice",
                                                                          "add", "mul"}
        assert "strategies_twice" in drawn_operations(50, ops=["strategies_twice", "add"])
    finally:
        del OPS["strategies_twice"]


def test_named_operations_must_be_in_the_table():
    with pytest.raises(ValueError, match="not in engine.OPS"):
        find(graphs(ops=["tanh", "no_such_op"]), lambda g: True)


@pytest.mark.torch
def test_every_builtin_operation_has_a_torch_oracle():
    import torch
    lift = torch_lift(torch)
    for name in BUILTIN_OPS:
        op = OPS[name]
        args = [torch.tensor(0.7, dtype=torch.float64)] * (op.arity if op.arity > 0 else 3)
        want = op.f(*[0.7] * len(args))
        assert lift(name, args).item() == pytest.approx(want, rel=1e-12), name
    with pytest.raises(KeyError, match="no PyTorch oracle for the operation 'nope'"):
        lift("nope", [])


@settings(max_examples=300, database=None)
@given(graphs())
def test_smooth_graphs_stay_away_from_kinks_poles_and_large_values(g):
    nodes = g.nodes(list(g.xs), float_lift)
    for s in g.steps:
        vals = [a.value if isinstance(a, Const) else nodes[a] for a in s.args]
        if s.op in ("abs", "relu"):
            assert abs(vals[0]) >= 0.95e-2  # the margin, to the central difference's tolerance
        if s.op in ("log", "sqrt"):
            assert vals[0] >= 0.95e-2
        if s.op == "div" and not isinstance(s.args[1], Const) and vals[0] != 0.0:
            assert abs(vals[1]) >= 0.95e-2  # (0 / b is 0 on both sides of b = 0: no pole)
    assert all(abs(v) <= 50 for v in nodes[g.n_leaves:])


@settings(max_examples=200, database=None)
@given(graphs(outputs=2, any_outputs=True, smooth=False, finite_slopes=False), st.data())
def test_build_gives_what_nodes_gives_and_builds_only_what_is_needed(g, data):
    leaves = [Value(x) for x in g.xs]
    every = g.nodes(leaves)
    outs = g.build([Value(x) for x in g.xs])
    assert [o.data for o in outs] == [every[i].data for i in g.outputs]
    f = g.function()
    got = f(*[Value(x) for x in g.xs])
    got = got if isinstance(got, list) else [got]
    assert [o.data for o in got] == [o.data for o in outs]
    assert all(math.isfinite(o.data) for o in outs)
    assert "RandomGraph<" in repr(g)
