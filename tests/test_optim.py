"""Optimizers: the update rules, step by step, against hand computation and torch.optim."""
import math
import random

import pytest

from tinygrad_scalar.engine import Value
from tinygrad_scalar.optim import SGD, Adam

START = [0.5, -1.2, 2.0]


def quad(ps):
    """A fixed smooth objective with different curvature per coordinate."""
    a, b, c = ps
    return a * a * 3.0 + (b - 1.0) * (b - 1.0) + (a * c).tanh() + (c * 0.5).exp()


def run_ours(opt_factory, steps):
    ps = [Value(x) for x in START]
    opt = opt_factory(ps)
    traj = []
    for _ in range(steps):
        opt.zero_grad()
        quad(ps).backward()
        opt.step()
        traj.append([p.data for p in ps])
    return traj


def run_torch(torch, opt_factory, steps):
    p = torch.tensor(START, dtype=torch.float64, requires_grad=True)
    opt = opt_factory([p])
    traj = []
    for _ in range(steps):
        opt.zero_grad()
        a, b, c = p[0], p[1], p[2]
        (a * a * 3.0 + (b - 1.0) * (b - 1.0) + torch.tanh(a * c) + torch.exp(c * 0.5)).backward()
        opt.step()
        traj.append(p.detach().tolist())
    return traj


def test_plain_sgd_is_p_minus_lr_grad():
    ps = [Value(x) for x in START]
    opt = SGD(ps, lr=0.1)
    quad(ps).backward()
    g = [p.grad for p in ps]
    opt.step()
    assert [p.data for p in ps] == [x - 0.1 * gi for x, gi in zip(START, g)]
    assert opt.steps == 1


def test_learning_rate_schedule_gets_the_step_number():
    seen = []

    def lr(k):
        seen.append(k)
        return 1.0 - 0.9 * k / 100

    p = Value(1.0)
    opt = SGD([p], lr=lr)
    for _ in range(3):
        p.grad = 1.0
        opt.step()
    assert seen == [0, 1, 2]
    assert p.data == pytest.approx(1.0 - (1.0 + 0.991 + 0.982), rel=1e-15)
    assert opt.current_lr() == pytest.approx(0.973)
    bad = SGD([Value(1.0)], lr=lambda k: -1.0)
    with pytest.raises(ValueError, match=r"lr\(0\) \(the schedule.s value\) must be a finite"):
        bad.step()


def test_sgd_momentum_by_hand():
    p = Value(0.0)
    opt = SGD([p], lr=0.5, momentum=0.9, weight_decay=0.1)
    grads = [1.0, -2.0, 0.5]
    buf, x = None, 0.0
    for g in grads:
        p.grad = g
        opt.step()
        d = g + 0.1 * x
        buf = d if buf is None else 0.9 * buf + d
        x -= 0.5 * buf
        assert p.data == pytest.approx(x, rel=1e-15)


def test_adam_first_step_moves_by_lr():
    # after bias correction the first Adam step is lr * g / (|g| + eps) ~ lr * sign(g)
    ps = [Value(x) for x in START]
    opt = Adam(ps, lr=0.01)
    quad(ps).backward()
    signs = [math.copysign(1.0, p.grad) for p in ps]
    opt.step()
    assert [p.data for p in ps] == pytest.approx([x - 0.01 * s for x, s in zip(START, signs)],
                                                 rel=1e-9)


def test_zero_grad_and_validation():
    ps = [Value(1.0), Value(2.0)]
    for p in ps:
        p.grad = 3.0
    SGD(ps, lr=0.1).zero_grad()
    assert [p.grad for p in ps] == [0.0, 0.0]
    with pytest.raises(ValueError, match="empty"):
        SGD([], lr=0.1)
    with pytest.raises(TypeError, match="single Value"):
        SGD(Value(1.0), lr=0.1)
    with pytest.raises(TypeError, match="params\\[1\\] must be a Value"):
        SGD([Value(1.0), 2.0], lr=0.1)
    v = Value(1.0)
    with pytest.raises(ValueError, match="twice"):
        Adam([v, v])
    with pytest.raises(ValueError, match="lr must be a finite number >= 0"):
        SGD(ps, lr=-0.1)
    with pytest.raises(TypeError, match="lr must be a real number"):
        SGD(ps, lr="fast")
    with pytest.raises(ValueError, match="momentum"):
        SGD(ps, lr=0.1, momentum=1.0)
    with pytest.raises(ValueError, match="betas\\[1\\]"):
        Adam(ps, betas=(0.9, 1.5))
    with pytest.raises(TypeError, match="betas must be a pair"):
        Adam(ps, betas=0.9)
    gen = (p for p in ps)  # a generator is consumed once and kept as a list
    assert SGD(gen, lr=0.1).params == ps
    assert "SGD(2 parameters, lr=0.1, steps=0)" == repr(SGD(ps, lr=0.1))


@pytest.mark.parametrize("name,ours,theirs", [
    ("sgd", lambda ps: SGD(ps, lr=0.05), lambda t, ps: t.optim.SGD(ps, lr=0.05)),
    ("momentum", lambda ps: SGD(ps, lr=0.05, momentum=0.9),
     lambda t, ps: t.optim.SGD(ps, lr=0.05, momentum=0.9)),
    ("momentum+wd", lambda ps: SGD(ps, lr=0.02, momentum=0.5, weight_decay=0.1),
     lambda t, ps: t.optim.SGD(ps, lr=0.02, momentum=0.5, weight_decay=0.1)),
    ("adam", lambda ps: Adam(ps, lr=0.05), lambda t, ps: t.optim.Adam(ps, lr=0.05)),
    ("adam-betas", lambda ps: Adam(ps, lr=0.1, betas=(0.8, 0.99), eps=1e-6),
     lambda t, ps: t.optim.Adam(ps, lr=0.1, betas=(0.8, 0.99), eps=1e-6)),
    ("adam+wd", lambda ps: Adam(ps, lr=0.01, weight_decay=0.05),
     lambda t, ps: t.optim.Adam(ps, lr=0.01, weight_decay=0.05)),
])
def test_trajectories_match_torch_optim(name, ours, theirs):
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle for this test")
    a = run_ours(ours, 25)
    b = run_torch(torch, lambda ps: theirs(torch, ps), 25)
    for k, (x, y) in enumerate(zip(a, b)):
        assert x == pytest.approx(y, rel=1e-9, abs=1e-12), f"{name} diverges at step {k}"
    assert a[-1] != a[0]  # it moved


def test_schedule_matches_torch_lambda_lr():
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle for this test")
    sched = lambda k: 0.1 * (1.0 - 0.9 * k / 20)  # noqa: E731
    a = run_ours(lambda ps: SGD(ps, lr=sched), 20)
    p = torch.tensor(START, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    lam = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.0 - 0.9 * k / 20)
    for k in range(20):
        opt.zero_grad()
        x, y, z = p[0], p[1], p[2]
        (x * x * 3.0 + (y - 1.0) * (y - 1.0) + torch.tanh(x * z) + torch.exp(z * 0.5)).backward()
        opt.step()
        lam.step()
        assert a[k] == pytest.approx(p.detach().tolist(), rel=1e-9, abs=1e-12)


def test_adam_minimises_a_quadratic():
    rng = random.Random(0)
    ps = [Value(rng.uniform(-3, 3)) for _ in range(4)]
    opt = Adam(ps, lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        Value.sum([(p - i) * (p - i) for i, p in enumerate(ps)]).backward()
        opt.step()
    assert [p.data for p in ps] == pytest.approx([0, 1, 2, 3], abs=1e-3)


def test_only_leaves_can_be_optimised():
    w = Value(0.5, "w")
    y = w * 2.0
    with pytest.raises(ValueError, match=r"params\[1\] is computed by 'mul'.*not a leaf"):
        SGD([w, y], lr=0.1)
    with pytest.raises(ValueError, match=r"params\[0\] is a constant"):
        Adam([Value.constant(1.0)])
    SGD([w, Value(1.0)], lr=0.1)  # leaves are fine


# -- issue 13 §3: non-finite or non-real hyperparameters are refused everywhere ------------------

NON_FINITE = [math.inf, -math.inf, math.nan]


@pytest.mark.parametrize("bad", NON_FINITE)
@pytest.mark.parametrize("make", [
    lambda ps, b: SGD(ps, lr=b),
    lambda ps, b: SGD(ps, lr=0.1, weight_decay=b),
    lambda ps, b: SGD(ps, lr=0.1, momentum=b),
    lambda ps, b: Adam(ps, lr=b),
    lambda ps, b: Adam(ps, eps=b),
    lambda ps, b: Adam(ps, weight_decay=b),
    lambda ps, b: Adam(ps, betas=(b, 0.999)),
], ids=["sgd-lr", "sgd-wd", "sgd-momentum", "adam-lr", "adam-eps", "adam-wd", "adam-beta1"])
def test_non_finite_hyperparameters_are_refused(make, bad):
    with pytest.raises(ValueError, match="must be"):
        make([Value(1.0)], bad)


@pytest.mark.parametrize("bad", [1 + 2j, "0.1", None, True])
def test_non_real_lr_is_refused(bad):
    with pytest.raises(TypeError, match="lr must be a real number"):
        SGD([Value(1.0)], lr=bad)


def test_array_and_tensor_lr_are_refused():
    np = pytest.importorskip("numpy")
    for bad in (np.array(0.1), np.array([0.1, 0.2])):
        with pytest.raises(TypeError, match="lr must be a real number.*ndarray"):
            SGD([Value(1.0)], lr=bad)
    assert SGD([Value(1.0)], lr=np.float64(0.1)).lr == 0.1  # a NumPy scalar is a number
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="lr must be a real number.*Tensor"):
        Adam([Value(1.0)], lr=torch.tensor(0.1))


def test_schedule_returning_inf_or_complex_is_refused():
    for bad, err in ((math.inf, ValueError), (1j, TypeError)):
        opt = SGD([Value(1.0)], lr=lambda k, b=bad: b)
        with pytest.raises(err, match=r"lr\(0\)"):
            opt.step()


# -- a step that raises changes nothing ----------------------------------------------------------

def _snapshot(opt):
    return ([p.data for p in opt.params], opt.steps,
            {k: (list(v) if isinstance(v, list) else v) for k, v in vars(opt).items()
             if k.startswith("_")})


@pytest.mark.parametrize("make", [
    lambda ps: SGD(ps, lr=0.1),
    lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
    lambda ps: Adam(ps, lr=0.01, weight_decay=0.01),
], ids=["sgd", "sgd-momentum", "adam"])
@pytest.mark.parametrize("bad_grad", [None, "x", math.nan, math.inf],
                         ids=["none", "str", "nan", "inf"])
def test_a_failed_step_changes_nothing(make, bad_grad):
    ps = [Value(x) for x in START]
    opt = make(ps)
    for _ in range(2):  # some momentum / moments to keep
        opt.zero_grad()
        quad(ps).backward()
        opt.step()
    opt.zero_grad()
    quad(ps).backward()
    before = _snapshot(opt)
    ps[2].grad = bad_grad  # the last parameter: the others would be updated first
    with pytest.raises((TypeError, FloatingPointError), match=r"params\[2\]"):
        opt.step()
    assert _snapshot(opt) == before
    # and the next good step is the same as if the failed one never happened
    ref = [Value(x) for x in START]
    ref_opt = make(ref)
    for _ in range(3):
        ref_opt.zero_grad()
        quad(ref).backward()
        ref_opt.step()
    opt.zero_grad()
    quad(ps).backward()
    opt.step()
    assert [p.data for p in ps] == [p.data for p in ref]


def test_an_overflowing_step_changes_nothing():
    p, q = Value(1.0), Value(1e308)
    opt = SGD([p, q], lr=10.0, momentum=0.5)
    p.grad, q.grad = 1.0, -1e308
    with pytest.raises(FloatingPointError, match=r"params\[1\].*inf.*lower the learning rate"):
        opt.step()
    assert (p.data, q.data, opt.steps, opt._buf) == (1.0, 1e308, 0, None)


def test_an_overflowing_adam_moment_changes_nothing_and_says_which():
    p, q = Value(1.0), Value(2.0)
    opt = Adam([p, q], lr=0.1)
    p.grad, q.grad = 1.0, 1e200  # finite, but its square is not
    with pytest.raises(FloatingPointError, match=r"params\[1\]'s second moment"):
        opt.step()
    assert (p.data, q.data, opt.steps, opt._m, opt._v) == (1.0, 2.0, 0, [0.0, 0.0], [0.0, 0.0])


def test_hyperparameter_messages_name_the_argument_the_value_and_the_range():
    from tinygrad_scalar.checks import hyperparameter
    with pytest.raises(ValueError, match=r"^lr must be a finite number >= 0, got inf"):
        SGD([Value(1.0)], lr=math.inf)
    with pytest.raises(ValueError, match=r"^momentum must be a number in \[0, 1\), got 1.0$"):
        SGD([Value(1.0)], lr=0.1, momentum=1.0)
    with pytest.raises(TypeError, match=r"^weight_decay must be a real number \(a finite number "
                                        r">= 0\), got complex: 1j$"):
        SGD([Value(1.0)], lr=0.1, weight_decay=1j)
    with pytest.raises(ValueError, match=r"x must be a finite number > 0, got 0.0"):
        hyperparameter(0.0, "x", lo_open=True)
    with pytest.raises(TypeError, match=r"got list: \[0, 0, 0, .*\.\.\. \(300 characters\)$"):
        hyperparameter([0] * 100, "x")  # a long value is cut, not printed in full
    assert hyperparameter(-3, "x", -math.inf) == -3.0 and type(hyperparameter(2, "x")) is float


# -- found by a review: step_array broadcast wrong shapes into its state ------------------------

@pytest.mark.parametrize("make", [
    lambda ps: SGD(ps, lr=0.1, momentum=0.9),
    lambda ps: Adam(ps, lr=0.1),
], ids=["sgd-momentum", "adam"])
def test_step_array_refuses_anything_but_one_float_per_parameter(make):
    import numpy as np
    ps = [Value(1.0), Value(2.0), Value(3.0)]
    opt = make(ps)
    opt.step_array(np.array([1.0, 2.0, 3.0]), np.array([0.1, 0.2, 0.3]))  # state to keep
    before = _snapshot(opt)
    P, G = np.array([1.0, 2.0, 3.0]), np.array([0.1, 0.2, 0.3])
    for bad_p, bad_g, shapes in [(P, G.reshape(3, 1), r"P \(3,\) and G \(3, 1\)"),
                                 (P[:1], G, r"P \(1,\) and G \(3,\)"),
                                 (P.reshape(1, 3), G, r"P \(1, 3\) and G \(3,\)"),
                                 (P, np.array(0.1), r"P \(3,\) and G \(\)")]:
        with pytest.raises(ValueError, match=r"must both have shape \(3,\).*" + shapes):
            opt.step_array(bad_p, bad_g)
    for bad_p, bad_g, which in [(P.tolist(), G, "P .*got list"),
                                (P, np.array([1, 2, 3]), "G .*dtype int64"),
                                (P.astype(np.float32), G, "P .*dtype float32")]:
        with pytest.raises(TypeError, match=which):
            opt.step_array(bad_p, bad_g)
    assert repr(_snapshot(opt)) == repr(before)  # no state moved, no step counted
