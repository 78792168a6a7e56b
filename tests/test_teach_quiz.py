"""Quizzes and exercise checks: right or wrong per node, hints from the chain rule, no .grad
changes; check_answer says what was wrong."""
from __future__ import annotations

import math
import shutil

import pytest

from masked import build
from tinygrad_scalar import Value
from tinygrad_scalar.teach import WrongAnswer, check_answer, quiz


def graph():
    a, b = Value(2.0, "a"), Value(1.0, "b")
    c = a + b
    c.label = "c"
    d = b + 1
    d.label = "d"
    e = c * d
    e.label = "e"
    return a, b, c, d, e


def test_check_by_name_right_and_wrong_with_hint():
    a, b, c, d, e = graph()
    q = quiz(e, nodes=["a", "b", c])
    # by hand: e = (a + b)(b + 1); de/da = b + 1 = 2, de/db = (b + 1) + (a + b) = 5, de/dc = d = 2
    r = q.check(a=2, b=5, c=2)
    assert r.all_right and [x.right for x in r.rows] == [True, True, True]
    r = q.check(a=2, b=3, c=3)
    assert not r.all_right
    rows = {x.name: x for x in r.rows}
    assert rows["a"].right and not rows["b"].right and rows["b"].engine == 5.0
    assert "d e / d b is 5" in rows["b"].hint and "upstream 2 x local 1" in rows["b"].hint
    assert "upstream 3 x local 1" in rows["b"].hint
    assert "through d alone" in rows["b"].hint  # 3 is the term through d only
    assert rows["c"].hint.endswith("d e / d c is 2: upstream 1 x local 2")
    # the user's gradients are untouched, also after a backward of their own
    assert [v.grad for v in (a, b, c, d, e)] == [0.0] * 5
    e.backward()
    e.backward()  # leaves now hold twice the gradient; the quiz still checks d e / d node
    assert quiz(e).check(a=2, b=5).all_right
    assert (a.grad, b.grad, c.grad) == (4.0, 10.0, 2.0)


def test_a_term_through_an_edge_that_passes_nothing_is_0_in_the_diagnosis():
    # y = sqrt(max(a, b)) + 2 * b at a = 0, b = -1: max did not pick b, so the term through it
    # is 0 (not inf x 0 = nan) and dy/db is 2. An answer of nan is not "the term through max".
    leaves, y = build("max_twice")
    q = quiz(y, ["b"])
    r = q.check(b=math.nan)
    assert not r.all_right and r.rows[0].engine == 2.0
    assert "alone" not in r.rows[0].hint
    assert "alone" in q.check(b=0.0).rows[0].hint        # 0 is the term through max alone
    assert "d y / d b is 2" in q.hint("b") and "passes nothing" in q.hint("b")


def test_dropped_local_is_diagnosed_and_missing_answers_listed():
    x = Value(3.0, "x")
    y = x * 4
    y.label = "y"
    q = quiz(y)
    assert [q.names[v] for v in q.hidden] == ["x"]
    r = q.check(x=1)
    assert "multiply by the local derivative" in r.rows[0].hint
    assert "d y / d x is 4: upstream 1 x local 4" in r.rows[0].hint
    r = q.check({})
    assert r.missing == ["x"] and not r.all_right
    assert q.check({x: 4.0}).all_right
    assert q.check(x=4).assert_right().all_right
    with pytest.raises(WrongAnswer, match="x: your dy/dx is 1"):
        q.check(x=1).assert_right()
    with pytest.raises(WrongAnswer, match="not answered: x"):
        q.check({}).assert_right()
    with pytest.raises(WrongAnswer, match="x not answered yet"):
        q.check(x=...)


def test_bad_answers_and_nodes_are_refused():
    a, b, c, d, e = graph()
    q = quiz(e)
    with pytest.raises(KeyError, match="no node named 'z'"):
        q.check(z=1)
    with pytest.raises(TypeError, match="must be a number"):
        q.check(a="2")
    with pytest.raises(ValueError, match="constant"):
        quiz(e, nodes=[d._prev[1]])
    with pytest.raises(ValueError, match="answered twice"):
        q.check({a: 2}, a=2)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot is not installed")
def test_picture_hides_exactly_the_asked_gradients():
    a, b, c, d, e = graph()
    src = quiz(e, nodes=["b", "c"]).drawing().source
    assert src.count("grad ?") == 2
    assert "{ b | data 1 | grad ? }" in src and "{ c | data 3 | grad ? }" in src
    assert "{ a | data 2 | grad 2 }" in src and "{ d | data 2 | grad 3 }" in src
    assert "<svg" in quiz(e)._repr_html_()


def test_check_answer_messages():
    check_answer("de/db", 5.0, 5)
    with pytest.raises(WrongAnswer, match="your de/db is 4, the engine says 5"):
        check_answer("de/db", 4, 5.0)
    with pytest.raises(AssertionError, match=r"your grads\[1\] is 2, the engine says 3"):
        check_answer("grads", (1, 2), [1.0, 3.0])
    with pytest.raises(WrongAnswer, match="not answered yet"):
        check_answer("df/dx", ..., 1.0)
    with pytest.raises(WrongAnswer, match="not answered yet"):
        check_answer("(a, b)", (..., ...), (1.0, 2.0))
    with pytest.raises(WrongAnswer, match="a str"):
        check_answer("x", "1", 1.0)
    check_answer("order", ["c", "b"], ["c", "b"])
    with pytest.raises(WrongAnswer, match="engine says"):
        check_answer("order", ["b", "c"], ["c", "b"])
    check_answer("near", 0.1 + 0.2, 0.3)
    check_answer("value", Value(2.0), 2.0)
