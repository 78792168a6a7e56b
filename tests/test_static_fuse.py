"""The fusion pass (static.fuse): layers of neurons replayed as matrix products.

Oracles: the engine itself (per example, Value.backward) and the unfused plan of the same graph
(fuse=False), both to 1e-12 relative; every test also checks that the layers it expects were
really fused (or, for graphs that must not fuse, that they were not).
"""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinygrad_scalar.engine import Value
from tinygrad_scalar.nn import MLP
from tinygrad_scalar.static import Program, trace
from tinygrad_scalar.static.fuse import find_layers

RTOL = 1e-12


def close(got, want, what=""):
    got, want = np.asarray(got, float), np.asarray(want, float)
    scale = float(np.max(np.abs(want))) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * max(scale, 1e-300),
                               err_msg=what)


def jiggled(model, seed=0):
    """The model with every parameter (biases too: they start at 0) drawn at random."""
    rng = random.Random(seed)
    for p in model.parameters():
        p.data = rng.uniform(-1, 1)
    return model


def engine_run(outputs_fn, params, x_row):
    """Per example through the engine: (output values, parameter gradients of their sum)."""
    xs = [Value(float(v)) for v in x_row]
    outs = outputs_fn(xs)
    outs = outs if isinstance(outs, list) else [outs]
    for p in params:
        p.grad = 0.0
    Value.sum(outs).backward() if len(outs) > 1 else outs[0].backward()
    return [o.data for o in outs], [p.grad for p in params], [x.grad for x in xs]


def both(outputs_fn, nin, params, frozen=()):
    """The same graph compiled fused and unfused (fast mode)."""
    xs = [Value(0.0, f"x{i}") for i in range(nin)]
    outs = outputs_fn(xs)
    fused = Program.from_graph(outs, [xs], params, frozen=frozen, exact=False)
    plain = Program.from_graph(outs, [xs], params, frozen=frozen, exact=False, fuse=False)
    return fused, plain


def seeds_for(prog):
    n = len(prog.plan.tape.out_slots)
    return None if n == 1 else [1.0] * n


def compare(fused, plain, X, outputs_fn=None, params=(), per_example=True):
    """Fused against unfused on the batch X, and (outputs_fn given) against the engine."""
    before = getattr(fused._runner, "fallbacks", 0)
    a = fused(X)
    ga = fused.backward(seeds_for(fused), write=False, inputs=True, per_example=per_example)
    b = plain(X)
    gb = plain.backward(seeds_for(plain), write=False, inputs=True, per_example=per_example)
    assert getattr(fused._runner, "fallbacks", 0) == before  # really run fused
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    for u, v in zip(a, b):
        close(u, v, "outputs")
    close(ga.params, gb.params, "parameter gradients")
    close(ga.inputs[0], gb.inputs[0], "input gradients")
    if per_example:
        close(ga.per_example, gb.per_example, "per-example gradients")
    if outputs_fn is not None:
        for r in range(min(3, len(X))):
            want_v, want_g, want_x = engine_run(outputs_fn, params, X[r])
            fa = fused(X[r])
            fa = np.atleast_1d(np.concatenate([np.atleast_1d(t) for t in
                                               (fa if isinstance(fa, tuple) else (fa,))]))
            g = fused.backward(seeds_for(fused), write=False, inputs=True)
            close(fa, want_v, "outputs vs engine")
            close(g.params, want_g, "gradients vs engine")
            close(g.inputs[0], want_x, "input gradients vs engine")


@pytest.mark.parametrize("act", ["tanh", "relu", "sigmoid", "linear"])
def test_mlp_layers_fuse_and_match(act):
    model = jiggled(MLP(3, [5, 4, 2], activation=act, seed=3))
    fused, plain = both(model, 3, model.parameters())
    assert fused.fused is not None and [L.shape for L in fused.fused.layers] == \
        [(5, 3), (4, 5), (2, 4)]
    assert plain.fused is None
    X = np.random.default_rng(1).normal(size=(7, 3))
    compare(fused, plain, X, model, model.parameters())


def test_hand_written_sums_fuse():
    rng = random.Random(0)
    W = [[Value(rng.uniform(-1, 1), f"w{j}{i}") for i in range(4)] for j in range(3)]
    b = [Value(rng.uniform(-1, 1), f"b{j}") for j in range(3)]
    V2 = [Value(rng.uniform(-1, 1), f"v{j}") for j in range(3)]
    params = [w for row in W for w in row] + b + V2

    def f(x):
        h = [(sum(w * xi for w, xi in zip(W[0], x)) + b[0]).tanh(),      # chain of +
             Value.sum([xi * w for w, xi in zip(W[1], x)] + [b[1]]).relu(),  # one sum, x * w
             (Value.sum(w * xi for w, xi in zip(W[2], x)) + b[2]).sigmoid()]
        return Value.sum(v * hj for v, hj in zip(V2, h))

    fused, plain = both(f, 4, params)
    shapes = sorted(L.shape for L in fused.fused.layers)
    assert shapes == [(1, 3), (3, 4)]
    X = np.random.default_rng(2).normal(size=(6, 4))
    compare(fused, plain, X, f, params)


def test_shared_weights():
    rng = random.Random(1)
    w = [Value(rng.uniform(-1, 1), f"w{i}") for i in range(3)]
    s = Value(0.7, "s")  # shared by every neuron, and twice in the last one

    def f(x):
        z0 = Value.sum([w[0] * x[0], w[1] * x[1], s * x[2]])
        z1 = Value.sum([w[1] * x[0], w[0] * x[1], s * x[2]])
        z2 = Value.sum([s * x[0], s * x[1], w[2] * x[2]])
        return [z0.tanh(), z1.relu(), z2]

    fused, plain = both(f, 3, w + [s])
    assert [L.shape for L in fused.fused.layers] == [(3, 3)]
    X = np.random.default_rng(3).normal(size=(5, 3))
    compare(fused, plain, X, f, w + [s])


def test_neuron_reading_two_layers_is_its_own_layer():
    model = jiggled(MLP(2, [3, 3], activation="tanh", seed=5))
    rng = random.Random(2)
    u = [Value(rng.uniform(-1, 1)) for _ in range(6)]

    def f(x):
        h1 = model.layers[0](x)
        h2 = model.layers[1](h1)
        skip = Value.sum([ui * hi for ui, hi in zip(u, h1 + h2)])  # reads both layers
        return [skip] + h2

    params = model.parameters() + u
    fused, plain = both(f, 2, params)
    shapes = [L.shape for L in fused.fused.layers]
    assert sorted(shapes) == [(1, 6), (3, 2), (3, 3)]
    skip_layer = next(L for L in fused.fused.layers if L.shape == (1, 6))
    assert len(set(skip_layer.inputs)) == 6
    X = np.random.default_rng(4).normal(size=(5, 2))
    compare(fused, plain, X, f, params)


def test_graphs_that_do_not_match_are_not_fused():
    w = Value(0.5, "w")
    c = Value(1.5, "c")

    def f(x):
        a = x[0] * x[1] + x[1] * x[2]        # products of two values: no weight
        t = w * x[0]
        b = t + t * x[1]                     # a product used twice, and a value term
        d = 2.0 * x[0] + 3.0 * x[2]          # constant weights
        e = c * w * x[2] + w * x[1]          # a product of two parameters
        return [a, b, d, e]

    fused, plain = both(f, 3, [w, c])
    assert fused.fused is None and "none" in fused.summary()
    X = np.random.default_rng(5).normal(size=(4, 3))
    compare(fused, plain, X, f, [w, c])


def test_sum_of_65_terms_is_one_product():
    model = jiggled(MLP(64, [3], activation="tanh", seed=7))
    fused, plain = both(model, 64, model.parameters())
    assert [L.shape for L in fused.fused.layers] == [(3, 64)]
    X = np.random.default_rng(6).normal(size=(8, 64))
    compare(fused, plain, X, model, model.parameters())


def test_exact_mode_is_never_fused_and_bit_identical():
    model = jiggled(MLP(2, [4, 1], activation="tanh", seed=9))
    prog = trace(lambda x: model(x), [0.0, 0.0], params=model.parameters())
    assert prog.exact and prog.fused is None
    x = [0.3, -0.8]
    got = prog(x)
    g = prog.backward(write=False).params
    want_v, want_g, _ = engine_run(model, model.parameters(), x)
    assert got == want_v[0] and g.tolist() == want_g


def test_frozen_weights_and_constant_terms():
    rng = random.Random(4)
    W = [[Value(rng.uniform(-1, 1)) for _ in range(3)] for _ in range(2)]
    b = [Value(0.1), Value(-0.2)]

    def f(x):  # the first layer frozen; constants inside the sums
        h = [(sum(w * xi for w, xi in zip(W[0], x)) + 1.5).tanh(),
             (Value.sum([w * xi for w, xi in zip(W[1], x)] + [b[0], -0.5])).relu()]
        return h[0] * b[1] + h[1]

    xs = [Value(0.0) for _ in range(3)]
    outs = f(xs)
    frozen = W[0]
    params = W[1] + b
    fused = Program.from_graph(outs, [xs], params, frozen=frozen, exact=False)
    plain = Program.from_graph(outs, [xs], params, frozen=frozen, exact=False, fuse=False)
    assert len(fused.fused.layers) == 2
    X = np.random.default_rng(7).normal(size=(5, 3))
    compare(fused, plain, X)


def test_unseeded_outputs_and_single_examples():
    model = jiggled(MLP(3, [4, 2], activation="relu", seed=11))
    fused, plain = both(model, 3, model.parameters())
    X = np.random.default_rng(8).normal(size=(6, 3))
    for prog in (fused, plain):
        prog(X)
    ga = fused.backward([None, 1.0], write=False, inputs=True, per_example=True)
    gb = plain.backward([None, 1.0], write=False, inputs=True, per_example=True)
    close(ga.params, gb.params)
    close(ga.inputs[0], gb.inputs[0])
    close(ga.per_example, gb.per_example)
    a, b = fused(X[0]), plain(X[0])
    close(a, b)
    close(fused.backward([1.0, 1.0], write=False).params,
          plain.backward([1.0, 1.0], write=False).params)


def test_errors_and_overflow_are_the_engines():
    model = MLP(2, [3, 1], activation="linear", seed=13)

    def f(x):
        return model(x).exp().log()

    fused, plain = both(f, 2, model.parameters())
    assert fused.fused is not None
    big = np.array([[1e300, 1e300]])
    with pytest.raises((OverflowError, ValueError)) as a:
        fused(big)
    with pytest.raises((OverflowError, ValueError)) as b:
        plain(big)
    assert type(a.value) is type(b.value) and str(a.value) == str(b.value)
    assert "tape node" in str(a.value)
    with pytest.raises(type(a.value)):  # what the engine says on that example
        f([Value(1e300), Value(1e300)])
    assert fused._runner.fallbacks == 1
    # inf fed in propagates as in the engine (no error), through the plain replay
    out = fused(np.array([[math.inf, 0.0], [0.5, 0.5]]))
    want = plain(np.array([[math.inf, 0.0], [0.5, 0.5]]))
    np.testing.assert_array_equal(np.isnan(out), np.isnan(want))
    fused.backward(write=False)
    # and the next ordinary batch is fused again
    compare(fused, plain, np.random.default_rng(9).normal(size=(4, 2)))


def test_summary_shows_the_layers():
    model = MLP(2, [16, 16, 1], seed=1337)
    prog = trace(lambda x, y: (1.0 - y * model(x)).relu(), [0.0, 0.0], 1.0,
                 params=model.parameters(), exact=False)
    text = prog.summary()
    assert "fused layers: 3" in text and text.count("matmul") == 3
    assert "(16, 16) @ (16, B)" in text and "NumPy calls per step" in text
    plain = trace(lambda x, y: (1.0 - y * model(x)).relu(), [0.0, 0.0], 1.0,
                  params=model.parameters())
    assert "fused layers: none (exact=True" in plain.summary()


def test_fuse_must_be_a_bool():
    x = Value(0.0)
    with pytest.raises(TypeError, match="fuse must be True or False"):
        Program.from_graph(x * 2.0, [x], [], fuse="yes")


# -- random layered graphs -------------------------------------------------------------------

@st.composite
def layered(draw):
    """A random layered graph: widths, per neuron a random subset of the values of earlier
    layers (mostly the previous one), weights drawn from a pool (so some are shared), a bias or
    not, a summation style and an activation."""
    nin = draw(st.integers(1, 4))
    depth = draw(st.integers(1, 3))
    widths = [draw(st.integers(1, 4)) for _ in range(depth)]
    seed = draw(st.integers(0, 2**16))
    share = draw(st.booleans())
    styles = draw(st.lists(st.sampled_from(["chain", "sum", "sum+b"]), min_size=1, max_size=3))
    acts = draw(st.lists(st.sampled_from(["tanh", "relu", "sigmoid", "linear"]), min_size=1,
                         max_size=3))
    skip = draw(st.booleans())
    return nin, widths, seed, share, styles, acts, skip


def build(spec):
    nin, widths, seed, share, styles, acts, skip = spec
    rng = random.Random(seed)
    pool = [Value(rng.uniform(-1, 1), f"p{i}") for i in range(6 if share else 200)]
    used: list = []

    def weight():
        if share:
            p = rng.choice(pool)
        else:
            p = pool[len(used) % len(pool)]
        used.append(p)
        return p

    plan = []  # per layer, per neuron: (source layer indices, weights, bias, style, act)
    for li, w in enumerate(widths):
        neurons = []
        for j in range(w):
            src = [li] if not (skip and li > 0 and rng.random() < 0.5) else [li, 0]
            style = styles[(li + j) % len(styles)]
            act = acts[(li * 7 + j) % len(acts)]
            neurons.append((src, style, act, rng.random() < 0.7))
        plan.append(neurons)
    weights: dict = {}

    def f(x):
        layers = [list(x)]
        for li, neurons in enumerate(plan):
            out = []
            for j, (src, style, act, with_bias) in enumerate(neurons):
                ins = [v for s in src for v in layers[s]]
                key = (li, j)
                if key not in weights:
                    weights[key] = ([weight() for _ in ins], weight() if with_bias else None)
                ws, b = weights[key]
                terms = [w * v for w, v in zip(ws, ins)]
                if style == "chain":
                    z = sum(terms)
                    z = z + b if b is not None else z
                elif style == "sum":
                    z = Value.sum(terms + ([b] if b is not None else []))
                else:
                    z = Value.sum(terms)
                    z = z + b if b is not None else z
                out.append(z if act == "linear" else getattr(z, act)())
            layers.append(out)
        return layers[-1]

    return f, nin, used


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layered(), st.integers(1, 5))
def test_random_layered_graphs_fused_equal_unfused(spec, B):
    f, nin, _ = build(spec)
    xs = [Value(0.0) for _ in range(nin)]
    outs = f(xs)  # builds (and fixes) the weights
    params = sorted({id(p): p for p in build_params(outs)}.values(), key=id)
    fused = Program.from_graph(outs, [xs], params, exact=False)
    plain = Program.from_graph(outs, [xs], params, exact=False, fuse=False)
    layers = find_layers(plain.plan.tape, min_terms=2)
    assert (fused.fused is None) == (not layers)
    X = np.random.default_rng(spec[2]).normal(size=(B, nin))
    compare(fused, plain, X, f, params)


def build_params(outs):
    """Every non-constant leaf below the outputs except the fed ones (found by the tape)."""
    from tinygrad_scalar.engine import topological_order
    seen = []
    for o in outs:
        for v in topological_order(o):
            if v.is_leaf and not v.is_constant and v.label.startswith("p"):
                seen.append(v)
    return seen


# -- compiled training: plain SGD stepped on the parameter array ------------------------------


@pytest.mark.parametrize("fuse, wd, lr", [(True, 0.0, 0.1), (False, 0.01, 0.1),
                                          (True, 0.0, lambda k: 0.2 / (1 + k))])
def test_sgd_on_the_array_equals_the_optimizers_loop(fuse, wd, lr):
    from tinygrad_scalar import optim
    from tinygrad_scalar.data import make_moons, signed_labels
    from tinygrad_scalar.static_train import CompiledStep

    class LoopSGD(optim.SGD):  # its own step(): CompiledStep runs it, over the Values
        def step(self):
            super().step()

    X, y01 = make_moons(30, noise=0.1, seed=3)
    y = signed_labels(y01)
    m1, m2 = jiggled(MLP(2, [6, 1], seed=2)), jiggled(MLP(2, [6, 1], seed=2))
    o1 = optim.SGD(m1.parameters(), lr=lr, weight_decay=wd)
    o2 = LoopSGD(m2.parameters(), lr=lr, weight_decay=wd)
    s1 = CompiledStep(m1, "hinge", o1, alpha=1e-3, exact=False, fuse=fuse)
    s2 = CompiledStep(m2, "hinge", o2, alpha=1e-3, exact=False, fuse=fuse)
    for _ in range(3):
        assert s1(X, y) == s2(X, y)
        assert [p.data for p in m1.parameters()] == [p.data for p in m2.parameters()]
        assert [p.grad for p in m1.parameters()] == [p.grad for p in m2.parameters()]
    assert o1.steps == o2.steps == 3


def test_threads_share_a_fused_program():
    import threading
    model = jiggled(MLP(3, [8, 4, 1], activation="tanh", seed=21))
    fused, plain = both(model, 3, model.parameters())
    batches = [np.random.default_rng(k).normal(size=(5 + k, 3)) for k in range(4)]
    want = []
    for X in batches:
        plain(X)
        want.append(plain.backward(write=False, inputs=True))
    got: dict = {}

    def work(k):
        for _ in range(20):
            fused(batches[k])
            got[k] = fused.backward(write=False, inputs=True)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, w in enumerate(want):
        close(got[k].params, w.params)
        close(got[k].inputs[0], w.inputs[0])


def test_relu_in_the_fused_runner_is_the_engines_relu():
    w = [Value(1.0), Value(-1.0)]

    def f(x):  # relu of -0.0 (from neg), negative, positive and zero values, beside a layer
        return [(w[0] * x[0] + w[1] * x[1]).relu(), (-x[0]).relu() * 2.0]

    fused, plain = both(f, 2, w)
    assert fused.fused is not None
    X = np.array([[0.0, 0.0], [-2.0, 0.5], [2.0, 0.5], [0.5, 2.0], [-0.0, 1.0]])
    a, b = fused(X), plain(X)
    assert fused._runner.fallbacks == 0  # finite: ran fused
    np.testing.assert_array_equal(a, b)
    assert not np.signbit(a).any()
    want = [[o.data for o in f([Value(float(p)), Value(float(q))])] for p, q in X]
    np.testing.assert_array_equal(np.array(a).T, want)
    seeds = [1.0, 1.0]
    close(fused.backward(seeds, write=False, inputs=True).inputs[0],
          plain.backward(seeds, write=False, inputs=True).inputs[0])
    odd = np.array([[math.nan, 1.0], [math.inf, 1.0], [-math.inf, 1.0]])
    np.testing.assert_array_equal(fused(odd), plain(odd))  # through the plain replay


def test_verify_a_fused_program_allows_for_summation_order():
    # seed 3, example 28: a fused gradient entry differs by 1.16e-12 relative (the engine sums
    # 65 terms with math.fsum, the product in its own order), beyond verify's exact-mode 1e-12
    from tinygrad_scalar.static_train import CompiledStep
    from tinygrad_scalar.optim import SGD
    from tinygrad_scalar.static import TraceError
    X = np.random.default_rng(0).uniform(0.0, 1.0, size=(64, 64))
    y = np.random.default_rng(0).integers(0, 10, size=64)
    model = MLP(64, [64, 32, 10], seed=3)
    step = CompiledStep(model, "cross_entropy", SGD(model.parameters(), lr=0.01), exact=False)
    T = step._targets(y)
    report = step.program.verify(X[28:29], T[28:29], samples=1)
    assert report["max_rel_err"] < 1e-9
    if report["max_rel_err"] > 1e-12:  # so on this machine's BLAS (AVX-512 OpenBLAS)
        with pytest.raises(TraceError, match="relative error"):
            step.program.verify(X[28:29], T[28:29], samples=1, rtol=1e-12)
    assert step.program.verify(X, T, samples=30)["max_rel_err"] < 1e-9
