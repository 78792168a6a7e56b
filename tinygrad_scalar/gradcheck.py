"""Check backward against central finite differences, input by input.

`gradcheck_report(f, inputs)` builds a table (one row per input: analytic derivative from
`backward()`, numeric derivative from central differences, their absolute and relative error,
and whether they agree); `gradcheck(f, inputs)` returns True or raises `GradcheckError` with that
table in its message. Use them to test a hand-written model, loss or custom operation.
"""
from __future__ import annotations

import html
import inspect
import math
import numbers
from typing import Any, Callable, NamedTuple, Sequence

from . import engine
from .engine import Value, topological_order
from .functional import transforming

__all__ = ["gradcheck", "gradcheck_report", "GradcheckReport", "GradcheckRow", "GradcheckError"]


class GradcheckRow(NamedTuple):
    """One input: where it sits, its value, both derivatives, the errors and the verdict."""
    index: int
    name: str
    input: float
    analytic: float
    numeric: float
    abs_err: float
    rel_err: float
    ok: bool


class GradcheckError(AssertionError):
    """The analytic and numeric derivatives disagree. An AssertionError, so a failing check in
    a test reads as a failed assertion; `.report` holds the full GradcheckReport."""

    def __init__(self, report: "GradcheckReport"):
        self.report = report
        bad = [r.name for r in report.rows if not r.ok]
        super().__init__(f"gradcheck failed for {', '.join(bad)} "
                         f"(|analytic - numeric| > atol + rtol * |numeric|):\n{report}")


def _fmt(x: float) -> str:
    return f"{x:.6g}" if math.isfinite(x) else str(x)


class GradcheckReport:
    """The rows of a gradient check, with the settings and f's value; prints as a table."""

    HEADER = ("input", "value", "analytic", "numeric", "abs err", "rel err", "ok")

    def __init__(self, rows: Sequence[GradcheckRow], value: float, eps: float, atol: float,
                 rtol: float, name: str = "f"):
        self.rows: list[GradcheckRow] = list(rows)
        self.value, self.eps, self.atol, self.rtol, self.name = value, eps, atol, rtol, name

    @property
    def ok(self) -> bool:
        """True when every input passes."""
        return all(r.ok for r in self.rows)

    def __bool__(self) -> bool:
        return self.ok

    def __len__(self) -> int:
        return len(self.rows)

    def _cells(self) -> list[tuple[str, ...]]:
        return [(r.name, _fmt(r.input), _fmt(r.analytic), _fmt(r.numeric), f"{r.abs_err:.2e}",
                 f"{r.rel_err:.2e}", "ok" if r.ok else "FAIL") for r in self.rows]

    def _title(self) -> str:
        verdict = "passed" if self.ok else "FAILED"
        return (f"gradcheck of {self.name} = {_fmt(self.value)}: {verdict} "
                f"(eps={self.eps:g}, atol={self.atol:g}, rtol={self.rtol:g})")

    def __str__(self) -> str:
        cells = [self.HEADER] + self._cells()
        widths = [max(len(row[k]) for row in cells) for k in range(len(self.HEADER))]
        lines = [self._title()]
        for n, row in enumerate(cells):
            lines.append("  ".join(c.rjust(w) if k else c.ljust(w)
                                   for k, (c, w) in enumerate(zip(row, widths))).rstrip())
            if n == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<GradcheckReport {self.name}: {len(self.rows)} input(s), ok={self.ok}>"

    def _repr_html_(self) -> str:
        esc = html.escape
        head = "".join(f"<th>{esc(h)}</th>" for h in self.HEADER)
        body = []
        for r, cells in zip(self.rows, self._cells()):
            style = "" if r.ok else ' style="background:#fdd"'
            body.append(f"<tr{style}>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
        return (f"<table><caption>{esc(self._title())}</caption><thead><tr>{head}</tr></thead>"
                f"<tbody>{''.join(body)}</tbody></table>")


def _names(f: Callable, n: int) -> list[str]:
    """Input names from f's signature (x, y, args[0], ...), else x0, x1, ..."""
    try:
        params = list(inspect.signature(f).parameters.values())
    except (TypeError, ValueError):
        params = []
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    var = next((p.name for p in params if p.kind == p.VAR_POSITIONAL), None)
    names = []
    for i in range(n):
        if i < len(positional):
            names.append(positional[i])
        elif var is not None:
            names.append(f"{var}[{i - len(positional)}]")
        else:
            names.append(f"x{i}")
    return names


def _scalar_result(out: Any, f: Callable, where: str) -> float:
    if isinstance(out, Value):
        return out.data
    if isinstance(out, numbers.Real) and not isinstance(out, bool):
        return float(out)
    raise TypeError(f"gradcheck: f must return a scalar (a Value or a real number); "
                    f"{where} it returned {type(out).__name__}: {out!r}"[:300])


def _inputs(inputs: Any) -> list[float]:
    if isinstance(inputs, numbers.Real) and not isinstance(inputs, (bool, Value)):
        return [float(inputs)]
    if isinstance(inputs, (str, bytes)) or not hasattr(inputs, "__iter__"):
        raise TypeError(f"gradcheck: inputs must be a sequence of real numbers, got "
                        f"{type(inputs).__name__}: {inputs!r}")
    xs = []
    for k, x in enumerate(inputs):
        if isinstance(x, Value):
            x = x.data
        if not isinstance(x, numbers.Real) or isinstance(x, bool):
            raise TypeError(f"gradcheck: input {k} must be a real number, got "
                            f"{type(x).__name__}: {x!r}")
        if not math.isfinite(x):
            raise ValueError(f"gradcheck: input {k} is {x!r}; finite differences need finite "
                             "inputs")
        xs.append(float(x))
    if not xs:
        raise ValueError("gradcheck: inputs is empty; give at least one number")
    return xs


def _positive(name: str, x: Any, allow_zero: bool) -> float:
    if not isinstance(x, numbers.Real) or isinstance(x, bool) or not math.isfinite(x) or \
            x < 0 or (x == 0 and not allow_zero):
        need = "a non-negative" if allow_zero else "a positive"
        raise ValueError(f"gradcheck: {name} must be {need} finite number, got {x!r}")
    return float(x)


def _analytic(f: Callable, xs: list[float]) -> tuple[float, list[float]]:
    """f's value and gradient from backward(), leaving every other leaf's .grad as it was."""
    leaves = [Value(x) for x in xs]
    with transforming():
        out = f(*leaves)
    value = _scalar_result(out, f, "called with Values")
    if not isinstance(out, Value):
        return value, [0.0] * len(xs)
    mine = set(leaves)
    saved = [(v, v.grad, v._gv) for v in topological_order(out)
             if v.is_leaf and v not in mine]
    try:
        out.backward()
    finally:
        for v, g, gv in saved:  # leaves f closes over (model parameters) keep their gradients
            v.grad, v._gv = g, gv
    return value, [v.grad for v in leaves]


def _numeric(f: Callable, xs: list[float], eps: float, names: list[str]) -> list[float]:
    out = []
    for i in range(len(xs)):
        vals = []
        for step in (eps, -eps):
            ys = list(xs)
            ys[i] += step
            try:
                with engine.no_grad():  # Values (so f may call .tanh() etc.), no graph recorded
                    vals.append(_scalar_result(f(*map(Value, ys)), f, "with an input moved,"))
            except (ArithmeticError, ValueError) as e:
                raise type(e)(f"gradcheck: f failed with input {names[i]} moved to {ys[i]!r} "
                              f"(by {'+' if step > 0 else '-'}eps); choose a point at least eps "
                              f"inside the domain or a smaller eps: {e}") from e
        out.append((vals[0] - vals[1]) / (2.0 * eps))
    return out


def gradcheck_report(f: Callable[..., Any], inputs: Sequence[float], eps: float = 1e-6,
                     atol: float = 1e-5, rtol: float = 1e-3) -> GradcheckReport:
    """Compare backward() with central differences (f(x+eps) - f(x-eps)) / 2eps per input.

    f takes the inputs positionally as Values and returns a Value (or a number). The numeric
    pass runs under no_grad, so it records nothing. A row is ok when both derivatives are finite and
    |analytic - numeric| <= atol + rtol * |numeric|; rel_err is
    |analytic - numeric| / max(|analytic|, |numeric|) (0 when both are 0).
    """
    if not callable(f):
        raise TypeError(f"gradcheck: f must be a function, got {type(f).__name__}: {f!r}")
    xs = _inputs(inputs)
    eps = _positive("eps", eps, allow_zero=False)
    atol = _positive("atol", atol, allow_zero=True)
    rtol = _positive("rtol", rtol, allow_zero=True)
    names = _names(f, len(xs))
    value, analytic = _analytic(f, xs)
    numeric = _numeric(f, xs, eps, names)
    rows = []
    for i, (x, a, n) in enumerate(zip(xs, analytic, numeric)):
        err = abs(a - n)
        scale = max(abs(a), abs(n))
        rel = err / scale if scale > 0 else (0.0 if err == 0 else math.inf)
        if math.isnan(err):
            rel = math.nan
        ok = math.isfinite(a) and math.isfinite(n) and err <= atol + rtol * abs(n)
        rows.append(GradcheckRow(i, names[i], x, a, n, err, rel, ok))
    name = getattr(f, "__qualname__", None) or getattr(f, "__name__", None) or "f"
    return GradcheckReport(rows, value, eps, atol, rtol, name)


def gradcheck(f: Callable[..., Any], inputs: Sequence[float], eps: float = 1e-6,
              atol: float = 1e-5, rtol: float = 1e-3) -> bool:
    """True when backward() agrees with central differences for every input; otherwise raises
    GradcheckError listing each input with analytic, numeric, absolute and relative error."""
    report = gradcheck_report(f, inputs, eps=eps, atol=atol, rtol=rtol)
    if not report.ok:
        raise GradcheckError(report)
    return True
