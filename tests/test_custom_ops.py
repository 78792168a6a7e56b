"""Custom operations: defined once (value and local derivatives), then checked with gradcheck and
through every feature: backward, forward mode, higher order, drawing, narration, pickling."""
import copy
import math
import pickle

import pytest

from tinygrad_scalar import custom, engine
from tinygrad_scalar.custom import DefinitionError, OpFunction, custom_op, define_op
from tinygrad_scalar.engine import OPS, Value, exp, sigmoid
from tinygrad_scalar.functional import grad, hessian, jacobian, jvp, vjp
from tinygrad_scalar.gradcheck import gradcheck


@pytest.fixture(autouse=True)
def _restore_op_table():
    """Each test defines its operations afresh; the shared table is left as it was found."""
    ops, mine = dict(OPS), set(custom._CUSTOM)
    yield
    OPS.clear()
    OPS.update(ops)
    custom._CUSTOM.clear()
    custom._CUSTOM.update(mine)


def _softplus(x):
    return math.log1p(math.exp(-abs(x))) + max(x, 0.0)


@pytest.fixture
def softplus():
    # the whole definition: value and derivative (sigmoid dispatches on floats and Values)
    return define_op("softplus", _softplus, lambda x, out: sigmoid(x))


def _huber_f(r, delta):
    return 0.5 * r * r if abs(r) <= delta else delta * (abs(r) - 0.5 * delta)


def _huber_df(r, delta, out):
    if abs(r) <= delta:
        return r, 0.0
    return (delta if r > 0 else -delta), abs(r) - delta


@pytest.fixture
def huber():
    return define_op("huber", _huber_f, _huber_df, symbol="H")


@pytest.fixture
def logsumexp():
    def lse(*xs):
        m = max(xs)
        return m + math.log(sum(math.exp(x - m) for x in xs))
    return define_op("logsumexp", lse, lambda *a: tuple(exp(x - a[-1]) for x in a[:-1]))


def _s(x):
    return 1 / (1 + math.exp(-x))


# --- the operations are entries of the engine's own table -------------------------------------

def test_define_op_registers_an_engine_op(softplus):
    op = OPS["softplus"]
    assert isinstance(op, engine.Op) and softplus.op is op
    assert op.arity == 1 and op.symbol == "softplus"
    y = softplus(Value(0.3))
    assert y.op is op and y._op == "softplus" and len(y._prev) == 1
    assert y._local == pytest.approx((_s(0.3),))
    assert engine.apply(op, 0.3).data == y.data == Value(0.3).apply(op).data
    assert softplus(0.3) == pytest.approx(math.log(1 + math.exp(0.3)))  # floats in, float out
    assert type(softplus(2)) is float
    assert "softplus" in repr(softplus)


@pytest.mark.parametrize("name", sorted(n for n in OPS if n not in custom._CUSTOM))
def test_every_builtin_redefined_through_the_api_behaves_identically(name):
    op = OPS[name]
    if op.arity not in (1, 2, -1):
        pytest.skip(f"no sample points for arity {op.arity}")
    again = define_op(name + "_again", op.f, op.df, op.arity, op.symbol, op.check)
    builtin = OpFunction(op)
    points = {1: [(0.7,), (-1.2,)], 2: [(1.7, 0.6), (2.0, -1.3)], -1: [(0.5, -1.0, 2.0)]}
    for xs in points[op.arity]:
        if name in ("log", "sqrt") and xs[0] < 0:
            continue
        for fn in (builtin, again):
            assert fn(*xs) == builtin(*xs)
        first = [grad(lambda *v, fn=fn: fn(*v), argnums=tuple(range(len(xs))))(*xs)
                 for fn in (builtin, again)]
        assert first[0] == first[1]
        second = [grad(grad(lambda *v, fn=fn: fn(*v)))(*xs) for fn in (builtin, again)]
        assert second[0] == pytest.approx(second[1], rel=1e-14, abs=1e-300)


# --- softplus through every feature --------------------------------------------------------

def test_softplus_backward_and_gradcheck(softplus):
    for x0 in (-3.0, -0.2, 0.0, 0.9, 30.0):
        x = Value(x0)
        y = softplus(x)
        y.backward()
        assert y.data == pytest.approx(math.log1p(math.exp(x0)), rel=1e-14)
        assert x.grad == pytest.approx(_s(x0), rel=1e-14)
    assert gradcheck(lambda x, w: softplus(x * w) + softplus(-x), [0.4, -1.7])


def test_softplus_higher_order_both_ways(softplus):
    for x0 in (-1.1, 0.0, 0.6):
        s = _s(x0)
        want = [s, s * (1 - s), s * (1 - s) * (1 - 2 * s)]
        g = softplus
        for k in range(3):
            g = grad(g)
            assert g(x0) == pytest.approx(want[k], rel=1e-12, abs=1e-15)
        X = Value(x0)
        y = softplus(X)
        for k in range(3):  # the engine's own backward(create_graph=True)
            X.zero_grad()
            y.backward(create_graph=True)
            assert X.grad == pytest.approx(want[k], rel=1e-12, abs=1e-15)
            y = X.grad_value


def test_softplus_forward_mode_and_vjp(softplus):
    f = lambda x, y: softplus(x * y) * y  # noqa: E731
    x, y = 0.5, -0.8
    _, t = jvp(f, (x, y), (1.0, 0.0))
    assert t == pytest.approx(_s(x * y) * y * y, rel=1e-12)
    _, pb = vjp(f, x, y)
    assert pb(1.0)[0] == pytest.approx(t, rel=1e-12)
    teach = pytest.importorskip("tinygrad_scalar.teach", reason="teaching tools not present")
    X, Y = Value(x, "x"), Value(y, "y")
    table = teach.forward_mode(f(X, Y), X)
    assert "softplus" in str(table)


def test_softplus_drawing_and_narration(softplus):
    x = Value(0.3, label="x")
    y = softplus(x * 2.0)
    y.label = "y"
    viz = pytest.importorskip("tinygrad_scalar.viz", reason="drawing module not present")
    src = viz.draw_dot(y).source
    assert "softplus" in src
    teach = pytest.importorskip("tinygrad_scalar.teach", reason="teaching tools not present")
    text = str(teach.narrate(y))
    assert "softplus" in text
    assert f"{_s(0.6):.6f}"[:7] in text  # the local derivative sigmoid(0.6) is narrated


def test_graphs_with_custom_ops_pickle_and_copy(softplus):
    x = Value(0.3)
    y = softplus(x) * x
    y2 = pickle.loads(pickle.dumps(y))
    assert y2.data == y.data and y2.op is OPS["mul"] and y2._prev[0].op is OPS["softplus"]
    y3 = copy.deepcopy(y)
    y3.backward()
    y.backward()
    assert y3._prev[1].grad == x.grad


# --- huber loss: two inputs, a kink, derivatives on both sides -------------------------------

def test_huber_values_and_derivatives_on_both_sides(huber):
    for r, d in ((0.3, 1.0), (-2.5, 1.0), (1.7, 0.5), (-0.2, 0.5)):
        inside = abs(r) <= d
        assert huber(r, d) == pytest.approx(0.5 * r * r if inside else d * (abs(r) - d / 2))
        gr, gd = grad(lambda a, b: huber(a, b), argnums=(0, 1))(r, d)
        assert gr == pytest.approx(r if inside else math.copysign(d, r))
        assert gd == pytest.approx(0.0 if inside else abs(r) - d)
        H = hessian(lambda a, b: huber(a, b))(r, d)
        want = [[1.0, 0.0], [0.0, 0.0]] if inside else [[0.0, math.copysign(1, r)],
                                                      [math.copysign(1, r), -1.0]]
        assert H[0] == pytest.approx(want[0]) and H[1] == pytest.approx(want[1])
        assert gradcheck(lambda a, b: huber(a * 1.5, b), [r / 1.5, d])


def test_huber_symbol_in_graph_and_used_in_a_loss(huber):
    preds = [Value(p) for p in (0.2, 3.0, -1.0)]
    targets = [0.0, 0.5, -0.7]
    loss = Value.sum([huber(p - t, 1.0) for p, t in zip(preds, targets)])
    loss.backward()
    assert [p.grad for p in preds] == pytest.approx([0.2, 1.0, -0.3])
    assert loss._prev[1]._op == "H"


# --- an n-ary operation ------------------------------------------------------------------------

def test_nary_logsumexp_gradient_and_hessian(logsumexp):
    xs = [0.3, -1.2, 2.0, 0.1]
    assert OPS["logsumexp"].arity == -1
    p = [math.exp(x) / sum(math.exp(z) for z in xs) for x in xs]
    f = lambda *v: logsumexp(*v)  # noqa: E731
    assert grad(f, argnums=(0, 1, 2, 3))(*xs) == pytest.approx(p, rel=1e-12)
    H = hessian(f)(*xs)
    for i in range(4):
        assert H[i] == pytest.approx([(p[i] if i == j else 0.0) - p[i] * p[j]
                                      for j in range(4)], rel=1e-10, abs=1e-14)
    assert gradcheck(f, xs)
    assert logsumexp(Value(1.0)).data == pytest.approx(1.0)
    J = jacobian(lambda a, b: [logsumexp(a, b, a), logsumexp(b)])(0.5, 0.2)
    assert J[1] == [0.0, 1.0]


# --- the decorator ---------------------------------------------------------------------------

def test_decorator_names_the_op_after_the_function():
    @custom_op(df=lambda x, out: 1.0 / (1.0 + x * x))
    def my_atan(x):
        """The arctangent."""
        return math.atan(x)

    assert isinstance(my_atan, OpFunction) and "my_atan" in OPS
    assert OPS["my_atan"].doc == "The arctangent."
    assert grad(grad(my_atan))(0.5) == pytest.approx(-2 * 0.5 / (1 + 0.25) ** 2)
    assert gradcheck(lambda x: my_atan(x * x), [0.7])


def test_df_without_out_parameter_and_scalar_return():
    cube = define_op("cube", lambda x: x ** 3, lambda x: 3 * x * x)
    assert grad(grad(grad(cube)))(0.4) == pytest.approx(6.0)


def test_check_rejects_inputs_outside_the_domain():
    def check(x):
        if x <= -1:
            raise ValueError(f"log1p({x!r}) needs x > -1")
    log1p = define_op("log1p", math.log1p, lambda x, out: 1.0 / (1.0 + x), check=check)
    assert log1p(Value(0.5)).data == pytest.approx(math.log(1.5))
    with pytest.raises(ValueError, match="needs x > -1"):
        log1p(Value(-2.0))
    with pytest.raises(ValueError, match="needs x > -1"):
        log1p(-2.0)


# --- checks of the definition ------------------------------------------------------------------

def test_wrong_derivative_is_caught_at_first_use():
    bad = define_op("bad_softplus", _softplus, lambda x, out: exp(x))
    with pytest.raises(DefinitionError, match=r"bad_softplus.*d out/d x0.*central differences"):
        bad(Value(0.3))
    ok = define_op("unchecked", _softplus, lambda x, out: exp(x), verify=False)
    assert ok(Value(0.3))._local == (pytest.approx(math.exp(0.3)),)


def test_wrong_second_partial_is_caught():
    bad = define_op("bad_mul", lambda a, b: a * b, lambda a, b, out: (b, b))
    with pytest.raises(DefinitionError, match=r"bad_mul.*d out/d x1 .* is -2\.0"):
        bad(Value(3.0), Value(-2.0))


def test_math_functions_in_df_are_caught_when_differentiated_again():
    # math.cos turns a Value into a float: the derivative graph would be cut silently
    sin2 = define_op("sin2", math.sin, lambda x, out: math.cos(x))
    assert grad(sin2)(0.4) == pytest.approx(math.cos(0.4))  # first order is fine
    with pytest.raises(DefinitionError, match=r"sin2.*second derivative.*instead|math"):
        grad(grad(sin2))(0.4)
    x = Value(0.4)
    with pytest.raises(DefinitionError, match="sin2"):
        sin2(x).backward(create_graph=True)


def test_kinks_are_inconclusive_not_errors_and_checked_later():
    calls = []

    def f(x):
        calls.append(x)
        return x if x > 0 else 0.0
    myrelu = define_op("myrelu", f, lambda x, out: 1.0 if x > 0 else 0.0)
    assert myrelu(Value(0.0)).data == 0.0  # at the kink: no verdict, no error
    myrelu(Value(1.5))  # verified here
    calls.clear()
    myrelu(Value(2.5))
    assert calls == [2.5]  # once verified, f runs once per use
    wrong = define_op("wrong_at_one", f, lambda x, out: 0.0)
    wrong(Value(0.0))
    with pytest.raises(DefinitionError, match="wrong_at_one"):
        wrong(Value(1.0))


@pytest.mark.parametrize("df, err, msg", [
    (lambda x, out: "1", TypeError, r"df must return a tuple of 1 number.*str"),
    (lambda x, out: None, TypeError, r"df must return a tuple of 1 number.*NoneType"),
    (lambda x, out: (1.0, 2.0), ValueError, r"one derivative per input \(1\), but returned 2"),
    (lambda x, out: (1j,), TypeError, r"derivative 0 .* real number.*complex"),
    (lambda x, out: (True,), TypeError, r"derivative 0 .* real number.*bool"),
])
def test_derivative_rules_returning_non_numbers_fail_at_first_use(df, err, msg):
    op = define_op("broken", math.sin, df)
    with pytest.raises(err, match=msg):
        op(Value(0.2))


def test_value_rules_returning_non_numbers_fail_with_the_op_name():
    op = define_op("csqrt", lambda x: x ** 0.5, lambda x, out: 0.5 / out)
    with pytest.raises(TypeError, match=r"csqrt.*csqrt\(-4\.0\) returned a complex number"):
        op(Value(-4.0))
    op2 = define_op("strop", lambda x: "x", lambda x, out: 1.0)
    with pytest.raises(TypeError, match="strop.*must return a real number.*str"):
        op2(1.0)


def test_definition_errors():
    with pytest.raises(ValueError, match=r"'tanh' already exists \(built in\)"):
        define_op("tanh", math.tanh, lambda x, out: 1 - out * out)
    define_op("twice", lambda x: 2 * x, lambda x, out: 2.0)
    with pytest.raises(ValueError, match="replace=True"):
        define_op("twice", lambda x: 2 * x, lambda x, out: 2.0)
    thrice = define_op("twice", lambda x: 3 * x, lambda x, out: 3.0, replace=True)
    assert thrice(Value(1.0)).data == 3.0 and OPS["twice"] is thrice.op
    with pytest.raises(ValueError, match="identifier"):
        define_op("my op", math.sin, math.cos)
    with pytest.raises(ValueError, match="identifier"):
        define_op(3, math.sin, math.cos)
    with pytest.raises(TypeError, match="df must be a function"):
        define_op("nodf", math.sin, 1.0)
    with pytest.raises(TypeError, match="f must be a function"):
        define_op("nof", "sin", math.cos)
    with pytest.raises(TypeError, match="check must be a function"):
        define_op("nocheck", math.sin, lambda x, out: math.cos(x), check=1)
    with pytest.raises(TypeError, match="symbol must be"):
        define_op("nosym", math.sin, lambda x, out: math.cos(x), symbol="")
    assert "nodf" not in OPS and "my op" not in OPS


def test_arity_inference_and_errors():
    assert define_op("binop", lambda a, b: a - b, lambda a, b, out: (1.0, -1.0)).op.arity == 2
    assert define_op("tern", lambda a, b, c: a * b * c,
                     lambda a, b, c, out: (b * c, a * c, a * b)).op.arity == 3
    t = define_op("tern2", lambda a, b, c: a + b + c, lambda a, b, c: (1.0, 1.0, 1.0))
    assert t(Value(1.0), 2.0, 3.0).data == 6.0
    with pytest.raises(TypeError, match="takes 3 input"):
        t(Value(1.0), 2.0)
    assert define_op("scaled", lambda x, k=2.0: k * x, lambda x, out: 2.0).op.arity == 1
    with pytest.raises(TypeError, match="no required positional"):
        define_op("noargs", lambda: 1.0, lambda out: ())
    with pytest.raises(TypeError, match=r"fixed and \*args"):
        define_op("mixed", lambda a, *r: a, lambda *a: (1.0,) * (len(a) - 1))
    with pytest.raises(TypeError, match="cannot read the signature"):
        define_op("nosig", math.log, lambda x, out: 1 / x)
    assert define_op("withsig", math.log, lambda x, out: 1 / x, arity=1).op.arity == 1
    with pytest.raises(TypeError, match="arity 2, but f"):
        define_op("wrongarity", lambda x: x, lambda x, y, out: (1.0, 0.0), arity=2)
    with pytest.raises(ValueError, match="positive int, or -1"):
        define_op("zeroarity", lambda x: x, lambda x, out: 1.0, arity=0)
    with pytest.raises(TypeError, match=r"must take the inputs and the output \(2 arguments\)"):
        define_op("baddf", lambda x: x, lambda a, b, c: 1.0)
    with pytest.raises(TypeError, match=r"any number of inputs.*\*xs_and_out"):
        define_op("naryf", lambda *xs: sum(xs), lambda x, out: 1.0)
    with pytest.raises(TypeError, match=r"arity=-1.*\*xs"):
        define_op("naryfixed", lambda x: x, lambda *a: (1.0,), arity=-1)


def test_op_function_wraps_builtins_too():
    tanh = OpFunction(OPS["tanh"])
    assert tanh(0.5) == math.tanh(0.5) and tanh(Value(0.5)).op is OPS["tanh"]
    with pytest.raises(TypeError, match="engine.Op"):
        OpFunction("tanh")
    with pytest.raises(TypeError, match="tanh needs Values or real numbers"):
        tanh("x")


def test_define_op_is_atomic_across_threads(monkeypatch):
    import threading
    import time
    slow = custom._signature

    def slow_signature(f):  # widens the window between "is the name free?" and "register"
        time.sleep(0.01)
        return slow(f)
    monkeypatch.setattr(custom, "_signature", slow_signature)
    for attempt in range(5):
        name = f"raced_op_{attempt}"
        barrier = threading.Barrier(8)
        results: list = []

        def define(k):
            barrier.wait()
            try:
                define_op(name, lambda x, k=k: x * k, lambda x, out, k=k: float(k), verify=False)
                results.append(("ok", k))
            except ValueError as e:
                results.append(("refused", str(e)))
        threads = [threading.Thread(target=define, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [k for kind, k in results if kind == "ok"]
        assert len(winners) == 1, results            # exactly one definition wins
        assert all("already defined" in m for kind, m in results if kind == "refused")
        assert OPS[name].f(2.0) == 2.0 * winners[0]  # and it is the one registered
