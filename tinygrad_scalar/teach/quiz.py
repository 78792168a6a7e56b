"""Predict, then reveal: gradient quizzes and exercise checks that say what was wrong.

`quiz(root, nodes)` draws the graph with the chosen gradients hidden ("grad ?"); the student
writes answers (`q.check(a=2, b=5)`) and gets, per node, right, or wrong with the hint the
chain rule gives: each use's upstream gradient times its local derivative. The right answers
come from a private reverse sweep, the same numbers `backward()` gives: no `.grad` changes.

`check_answer(what, yours, engine)` is the assert of the notebooks' exercise cells: it raises
`WrongAnswer` (an AssertionError) saying "your de/db is 4, the engine says 5", or that the
answer is still `...` in a student notebook.
"""
from __future__ import annotations

import html
import math
import numbers
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional

from ..engine import Value, passes_nothing, topological_order
from .graph import check_value, fmt, html_table, node_names, resolve, reverse_sweep, text_table


class WrongAnswer(AssertionError):
    """An exercise answer that differs from the engine's (or is not given yet)."""


def _is_number(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _close(x: float, y: float, rel_tol: float, abs_tol: float) -> bool:
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return math.isclose(x, y, rel_tol=rel_tol, abs_tol=abs_tol)


def _show(x: object) -> str:
    return fmt(x) if _is_number(x) else repr(x)


def check_answer(what: str, yours: object, engine: object, *, rel_tol: float = 1e-9,
                 abs_tol: float = 1e-12) -> None:
    """Raise WrongAnswer unless `yours` equals `engine` (numbers up to rel_tol / abs_tol,
    sequences element by element, anything else by ==).

    The message names the answer: "your de/db is 4, the engine says 5"; for a sequence, which
    entry differs; for `...` (a student notebook's blank), that it is still to be answered.
    `Value`s are compared by their data. Returns None when right.
    """
    if not isinstance(what, str):
        raise TypeError(f"check_answer(what, ...) needs a str naming the answer, got {what!r}")
    if yours is Ellipsis or (isinstance(yours, (tuple, list)) and Ellipsis in yours):
        raise WrongAnswer(f"{what} is not answered yet: replace the ... in the answer cell "
                          "above and run it, then run this check again")
    if isinstance(yours, Value):
        yours = yours.data
    if isinstance(engine, Value):
        engine = engine.data
    if isinstance(engine, (tuple, list)) and not isinstance(yours, str):
        if not isinstance(yours, (tuple, list)) or len(yours) != len(engine):
            raise WrongAnswer(f"your {what} is {yours!r}, the engine has {len(engine)} "
                              f"entries: {engine!r}")
        for i, (y, e) in enumerate(zip(yours, engine)):
            check_answer(f"{what}[{i}]", y, e, rel_tol=rel_tol, abs_tol=abs_tol)
        return
    if _is_number(engine):
        if not _is_number(yours):
            raise WrongAnswer(f"your {what} is {yours!r}, a {type(yours).__name__}; the "
                              f"engine says {fmt(engine)} (a number)")
        if not _close(float(yours), float(engine), rel_tol, abs_tol):  # type: ignore[arg-type]
            raise WrongAnswer(f"your {what} is {_show(yours)}, the engine says {_show(engine)}")
        return
    if yours != engine:
        raise WrongAnswer(f"your {what} is {yours!r}, the engine says {engine!r}")


def answered(**answers: object) -> None:
    """Raise WrongAnswer naming every answer that is still `...` (a student notebook's blank).

    For checks that must use an answer before comparing it (call it, index it, build a graph
    from it): `answered(my_order=my_order)` first, then the comparisons.
    """
    blank = [k for k, v in answers.items()
             if v is Ellipsis or (isinstance(v, (tuple, list)) and Ellipsis in v)]
    if blank:
        raise WrongAnswer(f"{', '.join(blank)} {'is' if len(blank) == 1 else 'are'} not "
                          "answered yet: replace the ... in the answer cell above and run it, "
                          "then run this check again")


@dataclass(frozen=True)
class QuizRow:
    """One answered node: the answer, the engine's gradient, and the hint when wrong."""
    node: Value = field(repr=False)
    name: str
    yours: object
    engine: float
    right: bool
    hint: str

    def to_dict(self) -> dict:
        return {"node": self.name, "yours": self.yours, "engine": self.engine,
                "right": self.right, "hint": self.hint}


class QuizResult:
    """The verdict per answered node (`rows`), `all_right`, `missing` (hidden nodes not yet
    answered); prints as text, an HTML table in Jupyter."""

    def __init__(self, root_name: str, rows: list, missing: list):
        self.root_name, self.rows, self.missing = root_name, rows, missing

    @property
    def all_right(self) -> bool:
        return not self.missing and all(r.right for r in self.rows)

    def __bool__(self) -> bool:
        return self.all_right

    def records(self) -> list:
        return [r.to_dict() for r in self.rows]

    def assert_right(self) -> "QuizResult":
        """Raise WrongAnswer listing each wrong answer with its hint (and the unanswered
        ones); return self when every hidden gradient is answered right."""
        if self.all_right:
            return self
        lines = [f"{r.name}: {r.hint}" for r in self.rows if not r.right]
        if self.missing:
            lines.append(f"not answered: {', '.join(self.missing)}")
        raise WrongAnswer("; ".join(lines))

    def _table(self) -> tuple:
        head = ["node", f"your d{self.root_name}/d node", "verdict"]
        rows = [[r.name, _show(r.yours), "right" if r.right else "wrong: " + r.hint]
                for r in self.rows]
        return head, rows

    def _note(self) -> str:
        n = sum(r.right for r in self.rows)
        s = f"{n} of {len(self.rows)} right"
        if self.missing:
            s += f"; still hidden, not answered: {', '.join(self.missing)}"
        return s

    def to_text(self) -> str:
        head, rows = self._table()
        return "\n".join([text_table(head, rows), self._note()])

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return f"<QuizResult: {self._note()}>"

    def _repr_html_(self) -> str:
        head, rows = self._table()
        return html_table(head, rows, note=self._note(),
                          row_styles=["" if r.right else "background:#fde2e2"
                                      for r in self.rows])


class Quiz:
    """A graph with some gradients hidden. Show it (in Jupyter, or `picture()`), then
    `check(...)` the answers. `hidden` the nodes asked for, `names` every node's name."""

    def __init__(self, root: Value, hidden: list, names: dict, grads: dict, order: list,
                 draw_options: dict):
        self.root, self.hidden, self.names = root, hidden, names
        self._grads, self._order, self._draw_options = grads, order, draw_options
        self._users: dict = {v: [] for v in order}
        for w in order:
            for p, d in zip(w._prev, w._local):
                self._users[p].append((w, d))

    def question(self) -> str:
        r = self.names[self.root]
        asked = ", ".join(f"d{r}/d{self.names[v]}" for v in self.hidden)
        answers = ", ".join(self.names[v] + "=..." for v in self.hidden)
        return f"find {asked}; then q.check({answers})"

    def __repr__(self) -> str:
        return f"<Quiz: {self.question()}>"

    def hint(self, node: object) -> str:
        """The chain rule at one node: 'd e / d c is 3: upstream 1 x local 3' (a sum over the
        node's uses when it has several)."""
        v = resolve(node, self.names, "hint")
        r, n = self.names[self.root], self.names[v]
        g = self._grads[v]
        if v is self.root:
            return f"d {r} / d {r} is 1: the seed of backward"
        terms = [(w, d) for w, d in self._users[v]]
        if len(terms) == 1:
            w, d = terms[0]
            how = f"upstream {fmt(self._grads[w])} x local {fmt(d)}{self._masks(w, d)}"
        else:
            how = " + ".join(f"(from {self.names[w]}: upstream {fmt(self._grads[w])} x local "
                             f"{fmt(d)}{self._masks(w, d)})" for w, d in terms)
            how += f", one term per use: {n} is used {len(terms)} times"
        return f"d {r} / d {n} is {fmt(g)}: {how}"

    def _term(self, w: Value, d: float) -> float:
        """What the edge into w with local d passes down, as backward: upstream x local, or 0
        where the edge passes nothing."""
        return 0.0 if passes_nothing(w, d) else self._grads[w] * d

    def _masks(self, w: Value, d: float) -> str:
        """', passes nothing: 0' when the edge is backward's mask and what it masks is not
        finite (the hint would read inf x 0 otherwise, which is nan)."""
        g = self._grads[w]
        return ", passes nothing: 0" if passes_nothing(w, d) and not math.isfinite(g) else ""

    def _diagnose(self, v: Value, yours: float) -> str:
        """A likely slip, when the answer matches one: one use only, or the local dropped."""
        terms = [(w, d) for w, d in self._users[v]]
        if len(terms) > 1:
            for w, d in terms:
                if _close(yours, self._term(w, d), 1e-9, 1e-12):
                    return f" (yours is the term through {self.names[w]} alone: add every use)"
        if len(terms) == 1:
            w, d = terms[0]
            if d != 1 and _close(yours, self._grads[w], 1e-9, 1e-12):
                return " (yours is the upstream gradient alone: multiply by the local derivative)"
        return ""

    def check(self, answers: Optional[Mapping] = None, /, **by_name: object) -> QuizResult:
        """Compare answers (by name, `check(a=2, b=5)`, or a dict keyed by Value or name) with
        the engine's gradients. Every graph node may be answered; hidden nodes left out are
        listed as missing. Never changes `.grad`."""
        given: list = []
        if answers is not None:
            if not isinstance(answers, Mapping):
                raise TypeError(f"check takes answers by name (check(a=2)) or one dict, got "
                                f"{type(answers).__name__}: {answers!r}")
            given += list(answers.items())
        given += list(by_name.items())
        blank = [str(k if isinstance(k, str) else self.names.get(k, k)) for k, y in given
                 if y is Ellipsis]
        if blank:
            raise WrongAnswer(f"{', '.join(blank)} not answered yet: replace the ... in the "
                              "answer cell above and run it, then run this check again")
        rows, seen = [], set()
        for key, yours in given:
            v = resolve(key, self.names, "quiz.check")
            if v in seen:
                raise ValueError(f"quiz.check: {self.names[v]} is answered twice")
            seen.add(v)
            if isinstance(yours, Value):
                yours = yours.data
            if not _is_number(yours):
                raise TypeError(f"quiz.check: the answer for {self.names[v]} must be a number, "
                                f"got {type(yours).__name__}: {yours!r}")
            g = self._grads[v]
            right = _close(float(yours), g, 1e-9, 1e-12)
            hint = "" if right else (f"your d{self.names[self.root]}/d{self.names[v]} is "
                                     f"{fmt(yours)}{self._diagnose(v, float(yours))}; "
                                     + self.hint(v))
            rows.append(QuizRow(v, self.names[v], yours, g, right, hint))
        missing = [self.names[v] for v in self.hidden if v not in seen]
        return QuizResult(self.names[self.root], rows, missing)

    def drawing(self):
        """The graph (a viz Drawing) with the hidden gradients shown as '?' and highlighted."""
        from ..viz import draw_dot  # drawing is optional at import time
        shown = {v: (math.nan if v in self.hidden else g) for v, g in self._grads.items()}
        opts = dict(self._draw_options)
        opts.setdefault("title", self.question().split(";")[0])
        g = draw_dot(self.root, grads=shown, highlight_nodes=self.hidden, **opts)
        visible_nan = any(x is not None and math.isnan(x) for v, x in self._grads.items()
                          if v not in self.hidden)
        body = [line.replace("grad nan", "grad ?") for line in g.body]
        if not visible_nan and sum("grad ?" in b for b in body) == len(
                [v for v in self.hidden if not v.is_constant]):
            g.body[:] = body  # else a real nan is on show: leave 'nan', never a wrong '?'
        return g

    def picture(self):
        """The quiz picture rendered (a viz.Picture, shown inline in Jupyter)."""
        from ..viz import show
        return show(self.drawing())

    def _repr_html_(self) -> str:
        try:
            svg = self.picture().inline_svg()
        except Exception as e:
            svg = f"<div>picture not drawn: {html.escape(str(e))}</div>"
        return (f"<div><div style=\"margin:4px 0\">{html.escape(self.question())}</div>"
                f"<div style=\"max-width:100%;overflow-x:auto\">{svg}</div></div>")


def quiz(root: Value, nodes: Optional[Iterable] = None, **draw_options) -> Quiz:
    """A quiz on root's graph: the gradients of `nodes` (Values or names; default every input
    leaf) are hidden in the picture, to be predicted and then checked with `q.check(...)`.

    Options go to `viz.draw_dot` (`edge_labels` defaults to True: the local derivatives are
    the clue). The answers are d root / d node, as one fresh `backward()` gives them.
    """
    check_value(root, "quiz")
    order = topological_order(root)
    names = node_names(order)
    if nodes is None:
        hidden = [v for v in order if v._a is None and not v.is_constant]
    else:
        if isinstance(nodes, (str, Value)):
            nodes = [nodes]
        hidden = []
        for ref in nodes:
            v = resolve(ref, names, "quiz(nodes=...)")
            if v not in names:
                raise ValueError(f"quiz(nodes=...): {v!r} is not in the graph of "
                                 f"{names[root]}")
            if v.is_constant:
                raise ValueError(f"quiz(nodes=...): {names[v]} is a constant; its gradient is "
                                 "never shown or used, so it cannot be asked")
            if v not in hidden:
                hidden.append(v)
    if not hidden:
        raise ValueError("quiz: no gradient to hide (pass nodes=[...] with nodes of the graph)")
    draw_options.setdefault("edge_labels", True)
    for k in ("grads", "highlight_nodes"):
        if k in draw_options:
            raise ValueError(f"quiz sets {k!r} itself; leave it out")
    return Quiz(root, hidden, names, reverse_sweep(order, root), order, draw_options)
