"""New scalar operations, defined once and used everywhere.

An operation is its value `f(*xs)` and its local derivatives `df(*xs, out)` (one per input;
`out` is the result, handy for exp, tanh, sigmoid; a df without the `out` parameter is accepted
too). `define_op` builds an `engine.Op` from them and registers it in `engine.OPS`, the table the
built-in operations live in, so the new operation gets the same treatment as `tanh`: backward,
forward mode and the functional transforms read its stored local derivatives, `create_graph`
and `grad(grad(...))` apply its df to Values, drawings show its symbol, narration and pickling
find it by name.

For higher derivatives, write df with operators and the dispatching functions of
`tinygrad_scalar.engine` (`exp`, `log`, `sin`, `cos`, `tanh`, `sigmoid`, `sqrt`) or other
operations defined here, not `math.*`: those work on floats and on Values alike.

Definitions are checked. At definition: the name (not taken by a built-in), the arity (from
f's signature or given) against f's and df's signatures. At every use: f returns a real number
and df a number or tuple of the right length made of real numbers (or Values). At the first
uses (verify=True): df against central differences of f, and, the first time df is applied to
Values, the derivative of df against central differences of df, so a wrong rule or a `math.exp`
that silently cuts the graph raises a clear error instead of giving wrong numbers.
"""
from __future__ import annotations

import inspect
import math
import numbers
import threading
from typing import Any, Callable, Optional, Sequence, Union

from . import engine
from .engine import OPS, Op, Value, apply

__all__ = ["define_op", "custom_op", "OpFunction", "DefinitionError"]

_CUSTOM: set = set()  # names of operations defined here (only these may be replaced)
_REGISTRY_LOCK = threading.Lock()  # define_op's "is the name free?" and "register" are one step
_ATTEMPTS = 10  # inconclusive checks (kinks, domain edges) tried again on the next uses
_CHECKED = 6  # inputs verified per check (keeps the one-off cost small for wide n-ary ops)


class DefinitionError(ValueError):
    """An operation's derivative rule disagrees with finite differences of its value rule."""


class OpFunction:
    """An operation as a function: Values in, Value out (recorded in the graph); numbers in,
    float out (so it can itself be used inside other derivative rules). Works for any Op of
    the table: `OpFunction(engine.OPS["tanh"])` behaves like `engine.tanh`."""

    def __init__(self, op: Op):
        if not isinstance(op, Op):
            raise TypeError(f"OpFunction needs an engine.Op, got {type(op).__name__}: {op!r}")
        self.op = op
        self.__name__ = self.__qualname__ = op.name
        self.__doc__ = op.doc or f"The {op.name!r} operation."

    def __call__(self, *args: Any) -> Union[Value, float]:
        if any(isinstance(a, Value) for a in args):
            return apply(self.op, *args)
        with engine.no_grad():  # numbers: the same checks and errors, no node kept
            return apply(self.op, *args).data

    def __repr__(self) -> str:
        arity = "n-ary" if self.op.arity < 0 else f"arity={self.op.arity}"
        return f"<operation {self.op.name!r} ({arity}, symbol {self.op.symbol!r})>"


# ---------------------------------------------------------------------------------------------
# Signatures.


def _signature(fn: Callable) -> Optional[inspect.Signature]:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):  # some C functions have none
        return None


def _accepts(sig: Optional[inspect.Signature], n: int) -> Optional[bool]:
    """Whether fn can be called with n positional arguments (None: cannot tell)."""
    if sig is None:
        return None
    try:
        sig.bind(*range(n))
        return True
    except TypeError:
        return False


def _infer_arity(name: str, f: Callable, sig: Optional[inspect.Signature]) -> int:
    if sig is None:
        raise TypeError(f"operation {name!r}: cannot read the signature of f ({f!r}); "
                        "pass arity=... explicitly")
    params = list(sig.parameters.values())
    required = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                and p.default is p.empty]
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        if required:
            raise TypeError(f"operation {name!r}: f{sig} has both fixed and *args parameters; "
                            "pass arity=... (an int, or -1 for any number of inputs)")
        return -1
    if not required:
        raise TypeError(f"operation {name!r}: f{sig} takes no required positional argument; an "
                        "operation needs at least one input")
    return len(required)


def _check_arity(name: str, arity: Any) -> int:
    if not isinstance(arity, numbers.Integral) or isinstance(arity, bool) or \
            (arity < 1 and arity != -1):
        raise ValueError(f"operation {name!r}: arity must be a positive int, or -1 for any "
                         f"number of inputs, got {arity!r}")
    return int(arity)


def _takes_out(name: str, df: Callable, arity: int) -> bool:
    """Whether df takes (*xs, out) (True) or just (*xs) (False)."""
    sig = _signature(df)
    if arity < 0:
        if sig is not None and not any(p.kind == p.VAR_POSITIONAL
                                       for p in sig.parameters.values()):
            raise TypeError(f"operation {name!r} takes any number of inputs, so df must take "
                            f"(*xs_and_out) with the output last; its signature is df{sig}")
        return True
    if _accepts(sig, arity + 1) is not False:
        return True
    if _accepts(sig, arity):
        return False
    raise TypeError(f"operation {name!r} takes {arity} input(s), so df must take the inputs "
                    f"and the output ({arity + 1} arguments) or just the inputs ({arity}); its "
                    f"signature is df{sig}")


# ---------------------------------------------------------------------------------------------
# Checked rules.


def _real(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, Value))


def _call_text(name: str, xs: Sequence) -> str:
    return f"{name}({', '.join(repr(float(x)) for x in xs)})"


class _Rules:
    """The value and derivative rules of one operation, wrapped with their checks."""

    def __init__(self, name: str, f: Callable, df: Callable, takes_out: bool, verify: bool):
        self.name, self.raw_f, self.raw_df, self.takes_out = name, f, df, takes_out
        self.float_tries = self.value_tries = _ATTEMPTS if verify else 0
        self.failed: Optional[str] = None  # a failed verification: the rule stays rejected

    # the value ---------------------------------------------------------------------------
    def f(self, *xs: float) -> float:
        r = self.raw_f(*xs)
        if type(r) is float:
            return r
        if _real(r):
            return float(r)
        kind = "a complex number" if isinstance(r, complex) else type(r).__name__
        raise TypeError(f"operation {self.name!r}: f must return a real number, but "
                        f"{_call_text(self.name, xs)} returned {kind}: {r!r}")

    # the derivatives ---------------------------------------------------------------------
    def _rule(self, args: tuple) -> tuple:
        """df at (*xs, out), normalised to a tuple with one entry per input and checked."""
        n = len(args) - 1
        try:
            r = self.raw_df(*args) if self.takes_out else self.raw_df(*args[:-1])
        except TypeError as e:
            if not any(isinstance(a, Value) for a in args):
                raise
            # math.cos(x) and the like on a Value: the engine refuses the conversion
            raise DefinitionError(
                f"operation {self.name!r}: df fails on Values, as create_graph=True and "
                f"grad(grad(...)) apply it (write it with tinygrad_scalar.engine's exp, log, "
                f"cos, ... instead of math.*): {e}") from e
        if isinstance(r, (tuple, list)):
            if len(r) != n:
                raise ValueError(f"operation {self.name!r}: df must return one derivative per "
                                 f"input ({n}), but returned {len(r)}: {r!r}")
        elif n == 1 and (_real(r) or isinstance(r, Value)):
            r = (r,)
        else:
            raise TypeError(f"operation {self.name!r}: df must return a tuple of {n} number(s) "
                            f"(one derivative per input), got {type(r).__name__}: {r!r}")
        graph = any(isinstance(a, Value) for a in args)
        out = []
        for k, d in enumerate(r):
            if type(d) is float:
                out.append(d)
            elif _real(d):
                out.append(float(d))
            elif isinstance(d, Value) and graph:
                out.append(d)
            else:
                kind = "a complex number" if isinstance(d, complex) else type(d).__name__
                raise TypeError(f"operation {self.name!r}: derivative {k} from df must be a real "
                                f"number{' or a Value' if graph else ''}, got {kind}: {d!r}")
        return tuple(out)

    def df(self, *args: Any) -> tuple:
        if self.failed is not None:
            raise DefinitionError(self.failed)
        r = self._rule(args)
        if self.float_tries and not isinstance(args[-1], Value):
            self._verify_first_order(args[:-1], r)
        elif self.value_tries and isinstance(args[-1], Value):
            self._verify_second_order(args, r)
        return r

    # verification against central differences -------------------------------------------
    def _slope(self, g: Callable, xs: Sequence[float], j: int) -> Optional[float]:
        """d g / d x_j by Richardson-extrapolated central differences, or None when g is not
        smooth there (a kink or jump within the step, a domain edge, noise)."""
        x = xs[j]
        h = 1e-4 * max(1.0, abs(x))

        def at(dx):
            ys = list(xs)
            ys[j] = x + dx
            return g(ys)
        try:
            with engine.no_grad():
                g0, p1, m1, p2, m2 = at(0.0), at(h), at(-h), at(h / 2), at(-h / 2)
        except (ArithmeticError, ValueError, TypeError):
            return None
        vals = (g0, p1, m1, p2, m2)
        if not all(math.isfinite(v) for v in vals):
            return None
        d1, d2 = (p1 - m1) / (2 * h), (p2 - m2) / h
        fwd, bwd = (p2 - g0) / (h / 2), (g0 - m2) / (h / 2)
        scale = 1.0 + abs(d2)
        if abs(d1 - d2) > 1e-5 * scale or abs(fwd - bwd) > 1e-2 * scale:
            return None
        return d2 + (d2 - d1) / 3.0

    def _compare(self, what: str, got: Any, want: float, xs: Sequence[float]) -> None:
        got = float(got)
        if math.isfinite(got) and abs(got - want) <= 1e-4 * (1.0 + abs(want)):
            return
        self.failed = (
            f"operation {self.name!r}: {what} at {_call_text(self.name, xs)} is {got!r}, but "
            f"central differences give {want!r}. " + (
                "Fix df and redefine the operation with replace=True (or pass verify=False to "
                "skip this check)."
                if "second" not in what else
                "Write df with operators and tinygrad_scalar.engine's exp, log, sin, cos, tanh, "
                "sigmoid, sqrt (or other defined operations) rather than math.*, so it works on "
                "Values and higher derivatives are right (or pass verify=False)."))
        raise DefinitionError(self.failed)

    def _verify_first_order(self, xs: tuple, r: tuple) -> None:
        m = min(len(xs), _CHECKED)
        slopes = [self._slope(lambda ys: self.f(*ys), xs, j) for j in range(m)]
        if any(s is None for s in slopes):
            self.float_tries -= 1  # inconclusive here: try again at the next inputs
            return
        for j, (d, s) in enumerate(zip(r, slopes)):
            self._compare(f"the derivative d out/d x{j} from df", d, s, xs)
        self.float_tries = 0

    def _verify_second_order(self, args: tuple, r: tuple) -> None:
        from .functional import reverse  # the functional module reads ops; no cycle at import
        xs = args[:-1]
        if len(set(map(id, xs))) != len(xs) or not all(isinstance(x, Value) for x in xs):
            self.value_tries -= 1  # the same node twice (x * x): slots cannot be told apart
            return
        fx = [x.data for x in xs]
        m = min(len(xs), _CHECKED)
        expected = []
        for k in range(m):
            def dk(ys, k=k):
                return float(self._rule(tuple(ys) + (self.f(*ys),))[k])
            row = [self._slope(dk, fx, j) for j in range(m)]
            if any(s is None for s in row):
                self.value_tries -= 1
                return
            expected.append(row)
        for k, d in enumerate(r[:m]):
            got = reverse([(d, 1.0)], list(xs)) if isinstance(d, Value) else [0.0] * len(xs)
            for j in range(m):
                if xs[j].is_constant:  # no derivative is ever taken toward a constant
                    continue
                self._compare(f"the second derivative d(df[{k}])/d x{j} through the graph df "
                              "builds on Values", got[j], expected[k][j], fx)
        self.value_tries = 0


# ---------------------------------------------------------------------------------------------
# Defining.


def define_op(name: str, f: Callable[..., float], df: Callable[..., Any],
              arity: Optional[int] = None, symbol: Optional[str] = None,
              check: Optional[Callable[..., None]] = None, *, doc: str = "",
              verify: bool = True, replace: bool = False) -> OpFunction:
    """Define and register a scalar operation; returns it as a function.

    name: the key in engine.OPS (an identifier not used by a built-in). f(*xs) -> float: the
    value on floats. df(*xs, out) -> tuple of d out/d x_i (a single number is fine for one
    input; `out` may be left out of the signature). arity: number of inputs, inferred from f's
    signature when None (`*xs` means any number, -1). symbol: shown in drawings (default name).
    check(*xs): optional, raises ValueError for inputs outside the domain. verify: compare df
    with finite differences at the first uses. replace: allow redefining an operation defined
    with define_op (never a built-in).
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"an operation name must be a Python identifier such as 'softplus', got "
                         f"{name!r}")
    _check_free(name, replace)
    for what, fn in (("f", f), ("df", df)):
        if not callable(fn):
            raise TypeError(f"operation {name!r}: {what} must be a function, got "
                            f"{type(fn).__name__}: {fn!r}")
    if check is not None and not callable(check):
        raise TypeError(f"operation {name!r}: check must be a function or None, got "
                        f"{type(check).__name__}: {check!r}")
    if symbol is None:
        symbol = name
    if not isinstance(symbol, str) or not symbol:
        raise TypeError(f"operation {name!r}: symbol must be a non-empty string, got {symbol!r}")
    fsig = _signature(f)
    if arity is None:
        arity = _infer_arity(name, f, fsig)
    else:
        arity = _check_arity(name, arity)
        if arity > 0 and _accepts(fsig, arity) is False:
            raise TypeError(f"operation {name!r} has arity {arity}, but f{fsig} cannot take "
                            f"{arity} argument(s)")
        if arity < 0 and fsig is not None and not any(
                p.kind == p.VAR_POSITIONAL for p in fsig.parameters.values()):
            raise TypeError(f"operation {name!r} takes any number of inputs (arity=-1), so f must "
                            f"take *xs; its signature is f{fsig}")
    rules = _Rules(name, f, df, _takes_out(name, df, arity), verify)
    op = Op(name, symbol, arity, rules.f, rules.df, check,
            doc or (getattr(f, "__doc__", None) or "").strip())
    with _REGISTRY_LOCK:  # check and register as one step: two threads cannot both succeed
        _check_free(name, replace)
        OPS[name] = op
        _CUSTOM.add(name)
    return OpFunction(op)


def _check_free(name: str, replace: bool) -> None:
    if name in OPS or name == engine.CONST.name:
        if name not in _CUSTOM:
            raise ValueError(f"an operation named {name!r} already exists (built in); choose "
                             "another name")
        if not replace:
            raise ValueError(f"an operation named {name!r} is already defined; choose another "
                             "name or pass replace=True to redefine it")


def custom_op(df: Callable[..., Any], *, name: Optional[str] = None, arity: Optional[int] = None,
              symbol: Optional[str] = None, check: Optional[Callable[..., None]] = None,
              verify: bool = True, replace: bool = False) -> Callable[[Callable], OpFunction]:
    """define_op as a decorator on the value rule: the function's name names the operation.

        @custom_op(df=lambda x, out: sigmoid(x))
        def softplus(x):
            return math.log1p(math.exp(-abs(x))) + max(x, 0.0)
    """
    if not callable(df):
        raise TypeError(f"custom_op needs the derivative rule df first, got "
                        f"{type(df).__name__}: {df!r}")

    def decorate(f: Callable) -> OpFunction:
        return define_op(name or getattr(f, "__name__", ""), f, df, arity, symbol, check,
                         doc=(getattr(f, "__doc__", None) or "").strip(), verify=verify,
                         replace=replace)
    return decorate
