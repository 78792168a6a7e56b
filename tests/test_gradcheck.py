"""gradcheck and its report: passes correct gradients, catches wrong ones with a full table."""
import math

import pytest

from tinygrad_scalar import custom, engine
from tinygrad_scalar.custom import define_op
from tinygrad_scalar.engine import Value, no_grad
from tinygrad_scalar.functional import grad
from tinygrad_scalar.gradcheck import (GradcheckError, GradcheckReport, GradcheckRow, gradcheck,
                                       gradcheck_report)


@pytest.fixture(autouse=True)
def _restore_op_table():
    ops, mine = dict(engine.OPS), set(custom._CUSTOM)
    yield
    engine.OPS.clear()
    engine.OPS.update(ops)
    custom._CUSTOM.clear()
    custom._CUSTOM.update(mine)


def neuron(x1, x2, w1, w2, b):
    return (x1 * w1 + x2 * w2 + b).tanh()


@pytest.mark.parametrize("f, xs", [
    (neuron, [2.0, 0.0, -3.0, 1.0, 6.8813735870195432]),
    (lambda x, y: x ** y + (x / y).log(), [1.3, 0.7]),
    (lambda x: Value.sum([x, x * x, x.sin(), x.sigmoid()]), [0.4]),
    (lambda *xs: Value.sum(x.exp() for x in xs).log(), [0.1, -0.5, 2.0]),
    (lambda x: 2.5, [1.0]),  # a constant: both derivatives are 0
])
def test_correct_gradients_pass(f, xs):
    assert gradcheck(f, xs) is True
    rep = gradcheck_report(f, xs)
    assert rep.ok and bool(rep) and len(rep) == len(xs)
    for row, x in zip(rep.rows, xs):
        assert row.input == x and row.abs_err <= 1e-5 + 1e-3 * abs(row.numeric)


def _wrong_square():
    # a deliberately wrong derivative (d x^2 = 3x), verification off so only gradcheck sees it
    return define_op("bad_square", lambda x: x * x, lambda x, out: 3 * x, verify=False)


def test_wrong_gradient_raises_with_every_input_listed():
    sq = _wrong_square()
    f = lambda x, y: sq(x) + y * y  # noqa: E731
    with pytest.raises(GradcheckError) as info:
        gradcheck(f, [1.5, -2.0])
    err = info.value
    assert isinstance(err, AssertionError)
    msg = str(err)
    assert "gradcheck failed for x" in msg
    for text in ("input", "analytic", "numeric", "abs err", "rel err", "FAIL", "ok", "4.5", "3"):
        assert text in msg
    rows = err.report.rows
    assert [r.name for r in rows] == ["x", "y"] and [r.ok for r in rows] == [False, True]
    x = rows[0]
    assert x.analytic == pytest.approx(4.5) and x.numeric == pytest.approx(3.0, rel=1e-8)
    assert x.abs_err == pytest.approx(1.5, rel=1e-8)
    assert x.rel_err == pytest.approx(1.5 / 4.5, rel=1e-8)
    assert rows[1].analytic == pytest.approx(-4.0) and rows[1].numeric == pytest.approx(-4.0)


def test_report_is_plain_data_text_and_html():
    rep = gradcheck_report(lambda x, y: x * y, [2.0, 3.0])
    assert isinstance(rep, GradcheckReport)
    row = rep.rows[0]
    assert isinstance(row, GradcheckRow) and isinstance(row, tuple)
    assert row._asdict().keys() == {"index", "name", "input", "analytic", "numeric", "abs_err",
                                    "rel_err", "ok"}
    assert (row.index, row.name, row.input, row.analytic) == (0, "x", 2.0, 3.0)
    assert rep.value == 6.0 and (rep.eps, rep.atol, rep.rtol) == (1e-6, 1e-5, 1e-3)
    text = str(rep)
    lines = text.splitlines()
    assert "passed" in lines[0] and "eps=1e-06" in lines[0]
    assert lines[1].split() == ["input", "value", "analytic", "numeric", "abs", "err", "rel", "err",
                                "ok"]
    assert lines[3].split()[:4] == ["x", "2", "3", "3"]
    html = rep._repr_html_()
    assert html.startswith("<table>") and html.count("<tr") == 3 and "&lt;lambda&gt;" in html
    assert "GradcheckReport" in repr(rep)


def test_failing_rows_are_highlighted_in_html():
    sq = _wrong_square()
    rep = gradcheck_report(lambda x: sq(x), [1.0])
    assert not rep.ok and "FAILED" in str(rep) and "#fdd" in rep._repr_html_()


def test_input_names():
    assert [r.name for r in gradcheck_report(lambda a, *rest: a * rest[0] * rest[1],
                                             [1.0, 2.0, 3.0]).rows] == ["a", "rest[0]", "rest[1]"]
    rows = gradcheck_report(_no_signature_callable(), [1.0, 2.0]).rows
    assert [r.name for r in rows] == ["x0", "x1"]


def _no_signature_callable():
    class NoSignature:  # a callable whose signature cannot be read
        __signature__ = property(lambda self: (_ for _ in ()).throw(ValueError("no")))

        def __call__(self, a, b):
            return a * b
    return NoSignature()


def test_kink_is_reported_honestly():
    # relu at 0: backward says 0, central differences say 1/2; gradcheck reports the disagreement
    rep = gradcheck_report(lambda x: x.relu(), [0.0])
    assert rep.rows[0].analytic == 0.0 and rep.rows[0].numeric == pytest.approx(0.5)
    assert not rep.ok


def test_tolerances_decide():
    f = lambda x: (1e3 * x).sin()  # noqa: E731  (large third derivative: noticeable FD error)
    rep = gradcheck_report(f, [0.3], eps=1e-3)
    assert not rep.ok
    assert gradcheck(f, [0.3], eps=1e-3, atol=1e3, rtol=0.0)


def test_closed_over_parameters_keep_their_gradients():
    w = Value(0.5)
    w.grad = 7.0
    assert gradcheck(lambda x: (w * x).tanh(), [1.2])
    assert w.grad == 7.0


def test_works_inside_no_grad_and_with_nested_grad():
    with no_grad():
        assert gradcheck(lambda x: x.exp() * x, [0.3])
    # f itself differentiates: f(x) = d/dy sin(x y) at y = 1 = x cos(x)
    f = lambda x: grad(lambda y: (x * y).sin())(1.0)  # noqa: E731
    rep = gradcheck_report(f, [0.8])
    assert rep.ok and rep.rows[0].analytic == pytest.approx(math.cos(0.8) - 0.8 * math.sin(0.8))


def test_non_finite_derivatives_fail():
    # sqrt(|x|) at 0: backward meets an infinite slope (inf * 0 = nan); never a pass
    rep = gradcheck_report(lambda x: abs(x).sqrt(), [0.0])
    assert not rep.ok and not math.isfinite(rep.rows[0].analytic)
    assert "FAIL" in str(rep)


def test_bad_arguments():
    f = lambda x: x * x  # noqa: E731
    with pytest.raises(TypeError, match="f must be a function"):
        gradcheck(3, [1.0])
    with pytest.raises(TypeError, match=r"input 1 must be a real number.*str"):
        gradcheck(f, [1.0, "2"])
    with pytest.raises(TypeError, match="sequence of real numbers"):
        gradcheck(f, "12")
    with pytest.raises(ValueError, match="inputs is empty"):
        gradcheck(f, [])
    with pytest.raises(ValueError, match="input 0 is nan"):
        gradcheck(f, [math.nan])
    with pytest.raises(ValueError, match="eps must be a positive"):
        gradcheck(f, [1.0], eps=0)
    with pytest.raises(ValueError, match="atol must be a non-negative"):
        gradcheck(f, [1.0], atol=-1)
    with pytest.raises(TypeError, match=r"must return a scalar.*list"):
        gradcheck(lambda x: [x], [1.0])
    with pytest.raises(ValueError, match=r"input x moved to -5e-07 \(by -eps\).*log"):
        gradcheck(lambda x: x.log(), [5e-7], eps=1e-6)
    assert gradcheck(f, 1.5)  # a single number is one input
    assert gradcheck(f, [Value(1.5)])  # Values as inputs: their data is used
