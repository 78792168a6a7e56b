"""Proof that an operation is one table entry: `softplus` registered with define_op only (no
other file knows it) works with correct numbers everywhere a built-in does."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest

from tinygrad_scalar import engine, functional
from tinygrad_scalar.custom import define_op
from tinygrad_scalar.engine import Value
from tinygrad_scalar.static import trace
from tinygrad_scalar.teach import narrate, paths
from tinygrad_scalar.viz import draw_dot


def softplus_closed(x: float) -> float:
    return math.log1p(math.exp(-abs(x))) + max(x, 0.0)


def sigmoid_closed(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


NAME = f"softplus_{random.randrange(10 ** 9)}"  # unique: other tests may define their own
softplus = define_op(NAME, lambda x: math.log1p(math.exp(-abs(x))) + max(x, 0.0),
                     lambda x, out: (engine.sigmoid(x),), verify=False)


def f(x: Value) -> Value:
    return softplus(x * x) * x  # d/dx = sigmoid(x²) 2x² + softplus(x²)


def df_closed(x: float) -> float:
    return sigmoid_closed(x * x) * 2 * x * x + softplus_closed(x * x)


def d2f_closed(x: float) -> float:
    s = sigmoid_closed(x * x)
    return s * (1 - s) * 2 * x * 2 * x * x + s * 4 * x + s * 2 * x


def test_backward_create_graph_jvp_and_hessian():
    for x0 in (-1.3, 0.2, 0.9):
        x = Value(x0)
        y = f(x)
        assert y.data == pytest.approx(softplus_closed(x0 * x0) * x0, rel=1e-14)
        y.backward(create_graph=True)
        assert x.grad == pytest.approx(df_closed(x0), rel=1e-13)
        g = x.grad_value
        x.zero_grad()
        g.backward()
        assert x.grad == pytest.approx(d2f_closed(x0), rel=1e-12)
        _, tangent = functional.jvp(f, (x0,), (1.0,))
        assert tangent == pytest.approx(df_closed(x0), rel=1e-13)
        (h,), = functional.hessian(f)(x0)
        assert h == pytest.approx(d2f_closed(x0), rel=1e-12)


def test_pictures_narration_and_paths_show_its_local_derivative():
    x = Value(0.7, "x")
    y = softplus(x)
    y.backward()
    local = f"{sigmoid_closed(0.7):.4f}"
    dot = draw_dot(y, edge_labels=True).source
    assert NAME in dot and local in dot
    text = str(narrate(y))
    assert NAME in text and local[:5] in text
    ps = paths(y, x)
    assert ps.total == pytest.approx(sigmoid_closed(0.7), rel=1e-14) and ps.grad == x.grad


def test_static_replay_and_torch_export_give_the_engine_numbers():
    w = Value(0.4, "w")
    prog = trace(lambda x: softplus(x * w) * x, 1.0, params=[w])
    X = np.array([-2.0, -0.1, 0.0, 0.5, 3.0])
    out = prog(X)
    g = prog.backward(write=False, inputs=True, per_example=True)
    for b, x0 in enumerate(X):
        xv, wv = Value(float(x0)), Value(0.4)
        y = softplus(xv * wv) * xv
        y.backward()
        assert out[b] == y.data
        assert g.inputs[0][b] == xv.grad and g.per_example[b, 0] == wv.grad
        # and an independent oracle: the closed form
        assert wv.grad == pytest.approx(sigmoid_closed(x0 * 0.4) * x0 * x0, rel=1e-13, abs=1e-300)
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle for to_torch")
    tp = prog.to_torch()
    tx = torch.tensor(X, requires_grad=True)
    t_out = tp(tx)
    np.testing.assert_allclose(t_out.detach().numpy(), out, rtol=1e-15)
    t_out.sum().backward()
    np.testing.assert_allclose(tp.params.grad.numpy(), g.params, rtol=1e-13)
    np.testing.assert_allclose(tx.grad.numpy(), g.inputs[0], rtol=1e-13)
    # torch's own softplus is the second oracle
    ref = torch.nn.functional.softplus(torch.tensor(X) * 0.4) * torch.tensor(X)
    np.testing.assert_allclose(t_out.detach().numpy(), ref.numpy(), rtol=1e-14)


def test_the_rules_helpers_take_floats_values_arrays_and_tensors():
    xs = [-1.5, -0.0, 0.0, 0.25, 2.0]
    arr = np.array(xs)
    for name in ("exp", "sin", "cos", "tanh", "sigmoid", "sign"):
        fn = getattr(engine, name)
        want = [fn(x) for x in xs]  # the float forms
        assert [fn(Value(x)).data if name != "sign" else fn(Value(x)) for x in xs] == want
        assert fn(arr).tolist() == pytest.approx(want, rel=1e-15)
        with engine.exact_math():
            assert fn(arr).tolist() == want  # per element with math: the same bits
    pos = np.array([0.5, 1.0, 4.0])
    for name in ("log", "sqrt"):
        fn = getattr(engine, name)
        assert fn(pos).tolist() == pytest.approx([fn(float(x)) for x in pos], rel=1e-15)
    assert engine.where(arr > 0.0, 1.0, 0.0).tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    assert engine.where(True, 1.0, 2.0) == 1.0
    torch = pytest.importorskip("torch", reason="torch tensors")
    t = torch.tensor(xs, dtype=torch.float64)
    for name in ("exp", "sin", "cos", "tanh", "sigmoid", "sign"):
        fn = getattr(engine, name)
        np.testing.assert_allclose(fn(t).numpy(), fn(arr), rtol=1e-15)
    assert engine.where(t > 0.0, t, 0.0).tolist() == [0.0, 0.0, 0.0, 0.25, 2.0]


def test_domain_predicates_are_shared_by_the_scalar_check_and_the_arrays():
    inf, nan = math.inf, math.nan
    cases = {"pow": [(a, b) for a in (-2.0, -0.5, 0.0, 1.5) for b in (-1.0, 0.5, 2.0, inf,
                                                                        -inf, nan)],
             "div": [(1.0, 0.0), (1.0, -0.0), (0.0, 2.0)],
             "log": [(0.0,), (-1.0,), (2.0,), (nan,)], "sqrt": [(-0.0,), (-1.0,), (4.0,)],
             "sin": [(inf,), (nan,), (1.0,)], "cos": [(-inf,), (0.5,)]}
    for name, xs in cases.items():
        op = engine.OPS[name]
        cols = [np.array(c) for c in zip(*xs)]
        mask = op.bad(*cols)
        for k, x in enumerate(xs):
            try:
                op.check(*x)
                refused = False
            except (ValueError, ZeroDivisionError) as e:
                refused = True
                assert name in str(e) or "**" in str(e) or "/" in str(e)
            assert refused == bool(mask[k]), (name, x)
    # an inf or nan exponent of a negative base gives IEEE's number, as PyTorch does
    # ((-0.5) ** inf == 0.0, (-2) ** nan is nan), never "cannot convert float NaN to integer"
    assert (Value(-0.5) ** inf).data == 0.0
    assert math.isnan((Value(-2.0) ** nan).data)
    assert not bool(engine.POW.bad(np.array([-2.0, -0.5]), np.array([nan, inf])).any())


def test_the_command_line_can_call_it(capsys):
    from tinygrad_scalar import cli
    status = cli.main(["grad", f"{NAME}(x*x)*x", "x=0.7", "--json"])
    assert status == 0
    import json
    out = json.loads(capsys.readouterr().out)
    assert out["value"] == pytest.approx(softplus_closed(0.49) * 0.7, rel=1e-12)
    assert out["gradients"]["x"] == pytest.approx(df_closed(0.7), rel=1e-12)
