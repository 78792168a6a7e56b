"""Losses: values against closed forms, gradients against central differences and PyTorch
(float64), stability at huge logits, and clear errors for bad targets."""
import math
import random

import numpy as np
import pytest

from tinygrad_scalar import losses
from tinygrad_scalar.engine import Value


def grads(f, xs):
    """Value of f and its gradient w.r.t. each x, from our backward."""
    vs = [Value(x) for x in xs]
    out = f(vs)
    out.backward()
    return out.data, [v.grad for v in vs]


def fd(f, xs, h=1e-6):
    """Central finite differences of f on plain floats (wrapped as Values)."""
    out = []
    for i in range(len(xs)):
        up, dn = list(xs), list(xs)
        up[i] += h
        dn[i] -= h
        out.append((f([Value(x) for x in up]).data - f([Value(x) for x in dn]).data) / (2 * h))
    return out


def check_fd(f, xs, rel=1e-6, abs_=1e-8):
    _, g = grads(f, xs)
    assert g == pytest.approx(fd(f, xs), rel=rel, abs=abs_)


rng = random.Random(0)
PRED = [rng.uniform(-2, 2) for _ in range(6)]
TARGET = [rng.uniform(-2, 2) for _ in range(6)]
SIGNS = [1, -1, 1, 1, -1, -1]
BITS = [1, 0, 0, 1, 1, 0]
LOGITS = [[rng.uniform(-3, 3) for _ in range(4)] for _ in range(5)]
CLASSES = [0, 3, 2, 2, 1]
# scores away from the hinge's kink (1 - y*s = 0), where finite differences are exact
SCORES = [0.3, -1.7, 2.5, -0.4, 0.2, 0.9]


def test_mse_value_and_gradient():
    val, g = grads(lambda v: losses.mse(v, TARGET), PRED)
    assert val == pytest.approx(sum((p - t) ** 2 for p, t in zip(PRED, TARGET)) / 6, rel=1e-14)
    assert g == pytest.approx([2 * (p - t) / 6 for p, t in zip(PRED, TARGET)], rel=1e-13)
    check_fd(lambda v: losses.mse(v, TARGET), PRED)
    assert losses.mse(3.0, 1.0).data == 4.0
    assert losses.mse(PRED, TARGET, reduction="sum").data == pytest.approx(6 * val, rel=1e-14)
    per = losses.mse(PRED, TARGET, reduction="none")
    assert [t.data for t in per] == pytest.approx([(p - t) ** 2 for p, t in zip(PRED, TARGET)])


def test_mse_gradient_reaches_value_targets():
    t = Value(1.5)
    loss = losses.mse([Value(0.5)], [t])
    loss.backward()
    assert t.grad == pytest.approx(2.0)


def test_hinge_value_and_gradient():
    val, g = grads(lambda v: losses.hinge(v, SIGNS), SCORES)
    terms = [max(0.0, 1 - y * s) for y, s in zip(SIGNS, SCORES)]
    assert val == pytest.approx(sum(terms) / 6, rel=1e-14)
    assert g == pytest.approx([(-y / 6 if 1 - y * s > 0 else 0.0)
                               for y, s in zip(SIGNS, SCORES)], rel=1e-14)
    check_fd(lambda v: losses.hinge(v, SIGNS), SCORES)


def test_binary_cross_entropy_value_and_gradient():
    z = [-3.0, -0.5, 0.0, 0.7, 2.0, 4.0]
    val, g = grads(lambda v: losses.binary_cross_entropy(v, BITS), z)
    sig = [1 / (1 + math.exp(-x)) for x in z]
    ref = -sum(y * math.log(s) + (1 - y) * math.log(1 - s) for y, s in zip(BITS, sig)) / 6
    assert val == pytest.approx(ref, rel=1e-13)
    assert g == pytest.approx([(s - y) / 6 for s, y in zip(sig, BITS)], rel=1e-12, abs=1e-15)
    check_fd(lambda v: losses.binary_cross_entropy(v, BITS), z)
    # soft targets in [0, 1] too
    check_fd(lambda v: losses.binary_cross_entropy(v, [0.25, 0.5, 0.9, 0.0, 1.0, 0.3]), z)


def test_binary_cross_entropy_gradient_at_zero_logit_is_exact():
    # sigma(0) - y: a relu/abs formulation would give -y here
    for y in (0.0, 1.0, 0.3):
        _, g = grads(lambda v: losses.binary_cross_entropy(v, [y]), [0.0])
        assert g[0] == pytest.approx(0.5 - y, rel=1e-15)


def test_binary_cross_entropy_is_stable_for_huge_logits():
    for z, y, loss, grad in ((1000.0, 0, 1000.0, 1.0), (-1000.0, 1, 1000.0, -1.0),
                             (1000.0, 1, 0.0, 0.0), (-1000.0, 0, 0.0, 0.0)):
        val, g = grads(lambda v: losses.binary_cross_entropy(v, [y]), [z])
        assert val == pytest.approx(loss, abs=1e-12) and g[0] == pytest.approx(grad, abs=1e-12)


def test_softmax_and_log_softmax():
    z = LOGITS[0]
    e = [math.exp(x) for x in z]
    ref = [x / sum(e) for x in e]
    assert [p.data for p in losses.softmax(z)] == pytest.approx(ref, rel=1e-14)
    assert [p.data for p in losses.log_softmax(z)] == pytest.approx([math.log(r) for r in ref],
                                                                     rel=1e-13)
    for i in range(4):
        check_fd(lambda v: losses.softmax(v)[i], z)
        check_fd(lambda v: losses.log_softmax(v)[i], z)
    big = [p.data for p in losses.softmax([1000.0, 999.0, -1000.0])]
    assert big == pytest.approx([1 / (1 + math.exp(-1)), 1 / (1 + math.e), 0.0], rel=1e-12)


def test_cross_entropy_value_and_gradient():
    flat = [x for row in LOGITS for x in row]

    def f(v):
        rows = [v[i * 4:(i + 1) * 4] for i in range(5)]
        return losses.cross_entropy(rows, CLASSES)

    val, g = grads(f, flat)
    ref = 0.0
    ref_g = []
    for row, t in zip(LOGITS, CLASSES):
        lse = math.log(sum(math.exp(x) for x in row))
        ref += (lse - row[t]) / 5
        ref_g += [(math.exp(x - lse) - (j == t)) / 5 for j, x in enumerate(row)]
    assert val == pytest.approx(ref, rel=1e-13)
    assert g == pytest.approx(ref_g, rel=1e-12, abs=1e-15)
    check_fd(f, flat)
    one = losses.cross_entropy(LOGITS[1], 3)
    assert one.data == pytest.approx(math.log(sum(math.exp(x) for x in LOGITS[1]))
                                     - LOGITS[1][3], rel=1e-13)
    per = losses.cross_entropy(LOGITS, CLASSES, reduction="none")
    assert sum(p.data for p in per) / 5 == pytest.approx(val, rel=1e-13)


def test_cross_entropy_does_not_overflow_at_logits_of_1000():
    val, g = grads(lambda v: losses.cross_entropy(v, 0), [1000.0, 0.0, -1000.0])
    assert val == pytest.approx(0.0, abs=1e-300) and g == pytest.approx([0.0, 0.0, 0.0], abs=1e-300)
    val, g = grads(lambda v: losses.cross_entropy(v, 1), [1000.0, 0.0, -1000.0])
    assert val == pytest.approx(1000.0, rel=1e-15)
    assert g == pytest.approx([1.0, -1.0, 0.0], abs=1e-300)
    val, g = grads(lambda v: losses.cross_entropy(v, 2), [1000.0, 1000.0, 1000.0])
    assert val == pytest.approx(math.log(3), rel=1e-15)
    assert g == pytest.approx([1 / 3, 1 / 3, -2 / 3], rel=1e-14)


def test_l2():
    ps = [Value(x) for x in (1.0, -2.0, 0.5)]
    r = losses.l2(ps, 1e-4)
    assert r.data == pytest.approx(1e-4 * 5.25, rel=1e-14)
    r.backward()
    assert [p.grad for p in ps] == pytest.approx([2e-4, -4e-4, 1e-4], rel=1e-14)
    assert losses.l2(ps).data == pytest.approx(5.25)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="labels must be -1 or \\+1, got 0"):
        losses.hinge([Value(0.1), Value(0.2)], [1, 0])
    with pytest.raises(ValueError, match="2 predictions but 3 targets"):
        losses.mse([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="empty"):
        losses.mse([], [])
    with pytest.raises(ValueError, match="reduction"):
        losses.mse([1.0], [1.0], reduction="avg")
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        losses.binary_cross_entropy([0.3], [-1])
    with pytest.raises(ValueError, match="class index in 0..2"):
        losses.cross_entropy([1.0, 2.0, 3.0], 3)
    with pytest.raises(TypeError, match="class index"):
        losses.cross_entropy([1.0, 2.0, 3.0], 1.0)
    with pytest.raises(TypeError, match="class index"):
        losses.cross_entropy([1.0, 2.0, 3.0], True)
    with pytest.raises(ValueError, match="2 rows of logits but 1 targets"):
        losses.cross_entropy([[1.0, 2.0], [0.0, 1.0]], [1])
    with pytest.raises(TypeError, match="must be a Value or a real number"):
        losses.mse(["a"], [1.0])
    with pytest.raises(TypeError, match="real number"):
        losses.hinge([1.0], ["1"])
    with pytest.raises(ValueError, match="at least one"):
        losses.softmax([])
    with pytest.raises(ValueError, match="at least one"):
        losses.l2([])
    with pytest.raises(TypeError, match="parameter 0 must be a Value"):
        losses.l2([1.0])


# ---------------------------------------------------------------------------------------------
# PyTorch (float64) as an independent oracle for values and gradients


def _torch():
    return pytest.importorskip("torch", reason="PyTorch is the oracle for these tests")


def _compare(ours_fn, torch_fn, xs, torch):
    val, g = grads(ours_fn, xs)
    t = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    tv = torch_fn(t)
    tv.backward()
    assert val == pytest.approx(tv.item(), rel=1e-12, abs=1e-14)
    assert g == pytest.approx(t.grad.tolist(), rel=1e-10, abs=1e-14)


def test_losses_match_pytorch():
    torch = _torch()
    F = torch.nn.functional
    T = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
    _compare(lambda v: losses.mse(v, TARGET), lambda t: F.mse_loss(t, T(TARGET)), PRED, torch)
    _compare(lambda v: losses.hinge(v, SIGNS),
             lambda t: torch.relu(1 - T(SIGNS) * t).mean(), SCORES, torch)
    z = [-40.0, -3.0, -0.5, 0.0, 0.7, 35.0]
    _compare(lambda v: losses.binary_cross_entropy(v, BITS),
             lambda t: F.binary_cross_entropy_with_logits(t, T(BITS)), z, torch)
    flat = [x for row in LOGITS for x in row]
    _compare(lambda v: losses.cross_entropy([v[i * 4:(i + 1) * 4] for i in range(5)], CLASSES),
             lambda t: F.cross_entropy(t.view(5, 4), torch.tensor(CLASSES)), flat, torch)
    big = [1000.0, -20.0, 999.5, 3.0]
    _compare(lambda v: losses.cross_entropy(v, 2),
             lambda t: F.cross_entropy(t.view(1, 4), torch.tensor([2])), big, torch)
    for i in range(4):
        _compare(lambda v: losses.softmax(v)[i], lambda t: F.softmax(t, 0)[i], LOGITS[2], torch)
        _compare(lambda v: losses.log_softmax(v)[i], lambda t: F.log_softmax(t, 0)[i],
                 LOGITS[3], torch)
    _compare(lambda v: losses.l2(v, 1e-4), lambda t: 1e-4 * (t * t).sum(), PRED, torch)


def test_cross_entropy_names_the_position_and_explains_a_one_output_model():
    with pytest.raises(ValueError, match=r"target 3 at position 1 is not a class index in 0..2"):
        losses.cross_entropy([[1.0, 2.0, 3.0], [0.0, 1.0, 2.0]], [0, 3])
    with pytest.raises(TypeError, match=r"target at position 0 must be a class index"):
        losses.cross_entropy([[1.0, 2.0, 3.0]], [1.5])
    # a model with ONE output gives a flat list of scores: that is one sample's logits, and a
    # list of labels next to it means the model has the wrong number of outputs
    scores = [Value(0.1), Value(-0.4), Value(2.0), Value(0.3)]
    with pytest.raises(TypeError, match=r"one flat list of 4 numbers \(one sample\) but the "
                                        r"target is a sequence of 4.*one output per class"):
        losses.cross_entropy(scores, [0, 1, 2, 1])
    assert losses.cross_entropy([0.0, 0.0], 1).data == pytest.approx(math.log(2))


@pytest.mark.parametrize("alpha", [math.inf, -math.inf, math.nan, -1.0])
def test_l2_refuses_a_non_finite_or_negative_alpha(alpha):
    with pytest.raises(ValueError, match="l2: alpha must be a finite number >= 0"):
        losses.l2([Value(1.0)], alpha)


def test_l2_refuses_a_non_real_alpha():
    for bad in (1j, "1", np.array(1.0)):
        with pytest.raises(TypeError, match="l2: alpha must be a real number"):
            losses.l2([Value(1.0)], bad)
