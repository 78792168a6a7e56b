"""The scalar autograd engine: an operation table and the Value that records it.

Every operation is one `Op`: a value rule `f` and a derivative rule `df` side by side. When an
operation runs, its node keeps its parents and the local partial derivative along each edge
(stored flat in slots for speed and memory; read them as `parents` and `edges()`). Backward is
then one generic loop, `parent.grad += local * node.grad`, and every other feature (forward mode,
edge labels, path sums, narration, the transforms) reads the same edges through `edges()` and the
engine's two sweeps, `reverse_sweep` and `forward_sweep`. No derivative is ever computed toward a
constant (a Python number in an expression): `edges()` gives None there.

Derivative rules are written with operators and the dispatching functions below (`exp`, `log`,
...), so the same rule works on floats (the fast path) and on Values (`create_graph=True`, where
the derivative itself becomes a differentiable graph).
"""
from __future__ import annotations

import contextvars
import copy
import math
import numbers
import operator
import sys
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Optional, Union

INF = math.inf
Number = Union[int, float]

# ---------------------------------------------------------------------------------------------
# Operations: each defined once, value and derivative side by side.


class Op:
    """One scalar operation, every rule of it in one place.

    f(*xs) -> float: the value. df(*xs, out) -> tuple: d out / d x_i for each input, where `out`
    is the output (the float result, or the output node itself when building graphs of
    gradients). check(*xs), optional, raises a clear error for inputs outside the domain; it
    sees floats only. The rest is what array backends (the static replay on NumPy, its torch
    export) need, written with the dispatching helpers below so that one rule serves floats,
    NumPy arrays and torch tensors:
    vf(*xs): the value on arrays; None means no vector form (a custom operation): backends then
    run f and df per element. It may return None for inputs it has no vector form for.
    vdf(*xs, out): the derivative on arrays, only where df itself is written for floats (a
    branch on the number, for speed); None: df works on arrays as it stands.
    bad(*xs): the domain as a predicate, True (or a mask) where the inputs are outside it; check
    is built on it, and array backends use it to find the failing element.
    exact_vector: False when the vector forms cannot round as f/df do per element even with
    the helpers in exact mode (pow: Python's float ** has its own special cases); exact replays
    then run the operation per element.
    """

    __slots__ = ("name", "symbol", "arity", "f", "df", "check", "doc", "vf", "vdf", "bad",
                 "exact_vector")

    def __init__(self, name: str, symbol: str, arity: int, f: Callable, df: Callable,
                 check: Optional[Callable] = None, doc: str = "", *, vf: Optional[Callable] = None,
                 vdf: Optional[Callable] = None, bad: Optional[Callable] = None,
                 exact_vector: bool = True):
        self.name, self.symbol, self.arity = name, symbol, arity
        self.f, self.df, self.check, self.doc = f, df, check, doc
        self.vf, self.vdf, self.bad, self.exact_vector = vf, vdf, bad, exact_vector

    def __repr__(self) -> str:
        return f"Op({self.name!r}, arity={self.arity})"

    def __reduce__(self):  # ops pickle by name, so graphs pickle without their functions
        return (op_by_name, (self.name,))

    def failure(self, *xs) -> Optional[Exception]:
        """The exception the engine raises for this operation on these numbers (with recording
        on, so the derivative rule runs too), or None when it accepts them. Array backends call
        it for a failing element, so their errors are the engine's own."""
        token = _recording.set(True)
        try:
            apply(self, *[Value(x) for x in xs])
        except Exception as e:  # whatever the rules raise: that is the engine's answer
            return e
        finally:
            _recording.reset(token)
        return None


OPS: dict[str, Op] = {}


def op_by_name(name: str) -> Op:
    try:
        return OPS[name]
    except KeyError:
        raise KeyError(f"no operation named {name!r}; known: {sorted(OPS)}") from None


def _register(op: Op) -> Op:
    OPS[op.name] = op
    return op


# ---------------------------------------------------------------------------------------------
# Functions that work on floats, Values, NumPy arrays and torch tensors alike: the rules are
# written with them. Floats come first (the engine's hot path); Values build graph nodes
# (create_graph=True); arrays go to NumPy or torch, found by the type's module, so neither is
# imported here. Inside exact_math(), NumPy arrays get Python's math per element instead of
# NumPy's ufuncs (which may round the last bit differently), so a replay keeps the engine's bits.

_exact = contextvars.ContextVar("tinygrad_scalar_exact_math", default=False)


class exact_math:
    """Inside (on=True), the helpers below evaluate NumPy arrays per element with `math`.
    (A class, not a generator: replays enter it twice per step.)"""
    __slots__ = ("on", "token")

    def __init__(self, on: bool = True):
        self.on, self.token = on, None

    def __enter__(self) -> None:
        self.token = _exact.set(self.on)

    def __exit__(self, *exc) -> None:
        _exact.reset(self.token)


_ARRAY_MODULES: dict = {}  # type -> numpy, torch or None, learnt on first sight


def _array_module(x):
    t = type(x)
    m = _ARRAY_MODULES.get(t, _ARRAY_MODULES)
    if m is _ARRAY_MODULES:
        mod = t.__module__.partition(".")[0]
        m = _ARRAY_MODULES[t] = sys.modules.get(mod) if mod in ("numpy", "torch") else None
    return m


def _per_element(fn: Callable, x):
    np = sys.modules["numpy"]
    x = np.asarray(x, dtype=float)
    return np.fromiter(map(fn, x.ravel().tolist()), dtype=float, count=x.size).reshape(x.shape)


def _elementwise(name: str, scalar: Callable, x):
    m = _array_module(x)
    if m is None:
        return scalar(x)
    if m.__name__ == "numpy" and _exact.get():
        return _per_element(scalar, x)
    return getattr(m, name)(x)


def exp(x):
    if type(x) is float:
        return math.exp(x)
    return x.exp() if isinstance(x, Value) else _elementwise("exp", math.exp, x)


def log(x):
    if type(x) is float:
        return math.log(x)
    return x.log() if isinstance(x, Value) else _elementwise("log", math.log, x)


def sin(x):
    if type(x) is float:
        return math.sin(x)
    return x.sin() if isinstance(x, Value) else _elementwise("sin", math.sin, x)


def cos(x):
    if type(x) is float:
        return math.cos(x)
    return x.cos() if isinstance(x, Value) else _elementwise("cos", math.cos, x)


def tanh(x):
    if type(x) is float:
        return math.tanh(x)
    return x.tanh() if isinstance(x, Value) else _elementwise("tanh", math.tanh, x)


def sqrt(x):
    if type(x) is float:
        return math.sqrt(x)
    return x.sqrt() if isinstance(x, Value) else _elementwise("sqrt", math.sqrt, x)


def where(cond, a, b):
    """a where cond holds, else b: `a if cond else b` for a bool, elementwise for arrays."""
    m = _ARRAY_MODULES.get(type(cond)) or _array_module(cond)
    if m is None or not cond.shape:
        return a if cond else b
    return m.where(cond, a, b)


def isfinite(x):
    m = _array_module(x)
    return math.isfinite(x) if m is None else m.isfinite(x)


def _not(mask):
    return not mask if type(mask) is bool else ~mask


def sign(x):
    """1, -1 or 0 (also for nan, as abs'(nan) in the engine's convention), elementwise."""
    if type(x) is float:  # the engine's hot path (abs')
        return 1.0 if x > 0 else (-1.0 if x < 0 else 0.0)
    if isinstance(x, Value):
        x = x.data  # the derivative of sign is 0: a number, also in a gradient graph
    if _array_module(x) is None:
        return 1.0 if x > 0 else (-1.0 if x < 0 else 0.0)
    return where(x > 0.0, 1.0, where(x < 0.0, -1.0, 0.0))


def _sigmoid(x: float) -> float:
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)  # never overflows for x < 0
    return e / (1.0 + e)


def sigmoid(x):
    if type(x) is float:
        return _sigmoid(x)
    if isinstance(x, Value):
        return x.sigmoid()
    m = _array_module(x)
    if m is None:
        return _sigmoid(x)
    if m.__name__ == "torch":
        return m.sigmoid(x)
    e = exp(-abs(x))  # exp(-x) for x >= 0 and exp(x) for x < 0, as _sigmoid
    return where(x >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))


def _fractional(x):
    """A finite exponent that is not an integer: a negative base has no real power of it. An
    inf or nan exponent is not one (IEEE 754 and PyTorch give a number: (-0.5)**inf is 0,
    (-2)**nan is nan)."""
    if type(x) is float or _array_module(x) is None:
        return -INF < x < INF and x != int(x)
    m = _array_module(x)
    return m.isfinite(x) & _not(m.floor(x) == x)


def _num(x) -> float:
    """The number in x (a float, or a Value's data): for choosing a branch of a rule."""
    return x.data if isinstance(x, Value) else x


# -- domains: one predicate each, used by the engine's check and by the array backends ------

def _div_bad(a, b):
    return b == 0.0


def _check_div(a, b):
    if _div_bad(a, b):
        raise ZeroDivisionError(f"division by zero in {a!r} / {b!r}: the divisor must be non-zero")


def _pow_bad(a, b):
    return ((a == 0.0) & (b < 0.0)) | ((a < 0.0) & _fractional(b))


def _check_pow(a, b):
    if _pow_bad(a, b):
        if a == 0.0:
            raise ZeroDivisionError(f"0 ** {b!r}: zero cannot be raised to a negative power")
        raise ValueError(f"{a!r} ** {b!r}: a negative base needs an integer exponent "
                         "(the result would be complex)")


def _log_bad(x):
    return x <= 0.0


def _check_log(x):
    if _log_bad(x):
        raise ValueError(f"log({x!r}): log needs a positive number")


def _sqrt_bad(x):
    return x < 0.0


def _check_sqrt(x):
    if _sqrt_bad(x):
        raise ValueError(f"sqrt({x!r}): sqrt needs a non-negative number")


def _not_finite(x):
    return _not(isfinite(x))


def _check_finite(name):
    def check(x):
        if _not_finite(x):
            raise ValueError(f"{name}({x!r}): {name} needs a finite number")
    return check


# -- rules that branch on the number: the float form, and the array form next to it ----------

def _pow_dbase(a, b, out):
    # b * a**(b-1); at a == 0 with b < 1 the slope is infinite (0 for b == 0)
    fa, fb = _num(a), _num(b)
    if fb == 0.0 and type(b) is float:  # a ** 0 == 1 for every a: flat, even where 1/a overflows
        return 0.0
    if fa == 0.0 and fb < 1.0:
        if fb == 0.0:
            return 0.0
        if isinstance(a, Value) and isinstance(b, Value) and b.is_constant:
            # a gradient graph: b * a ** (b - 1) with a ** (b - 1) at its pole, differentiable
            # (its slope (b - 1) * a ** (b - 2) is -inf there, for 0 < b < 1)
            return b * _at_pole(POW, a, Value.constant(fb - 1.0), INF, -INF, 0.0)
        return INF
    try:
        return b * a ** (b - 1)
    except OverflowError:  # a ** (b-1) is too large for a float, b * a ** (b-1) may not be
        return _pow_dbase_wide(fa, fb, _num(out))


def _pow_dbase_wide(a: float, b: float, out: float) -> float:
    """b * a**(b-1) where a**(b-1) overflows: as (b / a) * a**b, or through logarithms."""
    if b == 0.0:
        return 0.0
    d = (b / a) * out
    if d != 0.0 and -INF < d < INF:
        return d
    sign = math.copysign(1.0, b * math.copysign(1.0, a) ** (b - 1))
    try:
        return sign * math.exp(math.log(abs(b)) + (b - 1.0) * math.log(abs(a)))
    except OverflowError:  # truly too steep for a float
        return sign * INF


def _pow_dexp(a, b, out):
    # out * ln(a); as in PyTorch: 0 where a == 0 (b >= 0 there), nan where a < 0 (not real)
    fa = _num(a)
    if fa > 0.0:
        return out * log(a)
    return 0.0 if fa == 0.0 else math.nan


def _pow_vdf(a, b, out):
    """_pow_dbase and _pow_dexp on arrays (errors off: the masked-out lanes may be inf)."""
    zero_small = (a == 0.0) & (b < 1.0)
    dbase = where(zero_small, where(b == 0.0, 0.0, INF),
                  b * where(zero_small, 1.0, a) ** (b - 1.0))
    pos = a > 0.0
    dexp = where(pos, out * log(where(pos, a, 1.0)), where(a == 0.0, 0.0, math.nan))
    return dbase, dexp


_ONE, _MINUS_ONE = (1.0,), (-1.0,)
_ONES2, _ADD_SUB = (1.0, 1.0), (1.0, -1.0)
_ONES: dict[int, tuple] = {}


def _ones(n: int) -> tuple:
    t = _ONES.get(n)
    if t is None:
        t = _ONES[n] = (1.0,) * n
    return t


_FSUM_ABOVE = 64  # more inputs than this: math.fsum (exact), else Python's own sum


def _sum_f(*xs):
    if len(xs) <= _FSUM_ABOVE:
        return sum(xs, 0.0)
    try:
        return math.fsum(xs)  # exactly rounded: long sums (a mean of many losses) stay accurate
    except ValueError:  # inf + -inf: nan, as IEEE addition (and so every shorter sum) gives
        return sum(xs, 0.0)


def _sum_seq(*xs):
    """((0.0 + x0) + x1) + ...: Python's sum(xs, 0.0) before 3.12, elementwise."""
    out = xs[0] + 0.0
    for x in xs[1:]:
        try:
            out += x  # in place for arrays (out is a fresh one), a new number for floats
        except (ValueError, RuntimeError):  # NumPy's, torch's: x broadcasts out to a batch
            out = out + x
    return out


def _sum_neumaier(*xs):
    """sum(xs, 0.0) as Python 3.12+ computes it: Neumaier's compensated summation."""
    f = c = 0.0
    for x in xs:
        t = f + x
        c = c + where(abs(f) >= abs(x), (f - t) + x, (x - t) + f)
        f = t
    return where((c != 0.0) & isfinite(c), f + c, f)


def _same(x: float, y: float) -> bool:
    return (x == y and math.copysign(1.0, x) == math.copysign(1.0, y)) or (x != x and y != y)


def _probe_sum() -> Optional[Callable]:
    """The elementwise form that gives Python's own sum on tricky inputs (probed on floats:
    the same operations as on arrays), or None (sums then run per element)."""
    probes = [[0.1] * 10, [1.0, 1e100, 1.0, -1e100], [1e308, 1e308, -1e308], [-0.0, -0.0],
              [1e16, 1.0, 1.0, 1.0, -1e16], [INF, 1.0], [math.nan, 2.0], [3.0],
              [1.0, -1.0, 1e-20], [0.7, 0.1, 0.2, 1e-17, -1.0], [-INF, INF]]
    for fn in (_sum_seq, _sum_neumaier):
        try:
            if all(_same(fn(*p), sum(p, 0.0)) for p in probes):
                return fn
        except (ArithmeticError, ValueError):
            pass
    return None


_SUM_ELEMENTWISE = _probe_sum()


def _sum_v(*xs):
    if len(xs) > _FSUM_ABOVE or _SUM_ELEMENTWISE is None:
        return None  # math.fsum has no elementwise form: per element
    return _SUM_ELEMENTWISE(*xs)


def _max_f(*xs):
    """The largest input, the first of equal ones; the first nan when any input is nan (as
    torch.max: the value is nan and the pick is the first nan)."""
    m = xs[0]
    if m != m:
        return m
    for x in xs[1:]:
        if x > m:
            m = x
        elif x != x:
            return x
    return m


def _max_df(*xs):
    """1 along the edge of the input max picked, 0 along the others: the first input equal to
    the result, or the first nan when the result is nan (torch.max's gradient, also there)."""
    out = _num(xs[-1])
    nan = out != out
    locs, hit = [], False
    for a in xs[:-1]:
        a = _num(a)
        if not hit and (a == out or (nan and a != a)):
            locs.append(1.0)
            hit = True
        else:
            locs.append(0.0)
    return tuple(locs)


def _max_v(*xs):
    m = xs[0] * 1.0  # a fresh array (x + 0.0 would turn -0.0 into 0.0)
    for x in xs[1:]:  # the later x replaces m when larger, or when the first nan
        m = where((x > m) | ((x != x) & (m == m)), x, m)
    return m


def _max_vdf(*xs):
    out = xs[-1]
    nan = out != out
    locs, free = [], None
    for a in xs[:-1]:
        hit = (a == out) | (nan & (a != a))
        if free is not None:
            hit = hit & free
        free = _not(hit) if free is None else free & _not(hit)
        locs.append(where(hit, 1.0, 0.0))
    return tuple(locs)


def _relu(a):
    return 0.0 if a <= 0.0 else a  # relu(nan) is nan


def _relu_vdf(a, out):
    m = _array_module(a)
    if m is not None and m.__name__ == "numpy":  # a cast is about 5x faster than two wheres
        d = (a > 0.0).astype(float)  # 1 where a > 0, else 0 ...
        nan = a != a
        if nan.any():
            d[nan] = a[nan]  # ... and relu'(nan) is nan
        return (d,)
    return (where(a > 0.0, 1.0, where(a <= 0.0, 0.0, a)),)


def _relu_v(a):
    m = _array_module(a)
    if m is not None and m.__name__ == "numpy":  # about 5x faster than where on big arrays
        out = m.maximum(a, 0.0)
        out += 0.0  # a -0.0 becomes 0.0; nan stays nan
        return out
    return where(a <= 0.0, 0.0, a)


def _sqrt_df(a, out):
    if _num(out) != 0.0:
        return (0.5 / out,)
    if isinstance(out, Value):  # a gradient graph: 0.5 / out at its pole, differentiable
        return (_at_pole(DIV, Value.constant(0.5), out, INF, 0.0, -INF),)
    return (INF,)


def _sqrt_vdf(a, out):
    return (where(out != 0.0, 0.5 / out, INF),)


def _add(a, b):
    return a + b


def _sub(a, b):
    return a - b


def _mul(a, b):
    return a * b


def _div(a, b):
    return a / b


def _pow(a, b):
    return a ** b


def _neg(a):
    return -a


# The table. Each entry: the value, the local derivative of the output along each input edge,
# the domain, and the vector forms where the float form does not run on arrays as it stands.
ADD = _register(Op("add", "+", 2, _add, lambda a, b, out: _ONES2, vf=_add))
SUB = _register(Op("sub", "-", 2, _sub, lambda a, b, out: _ADD_SUB, vf=_sub))
MUL = _register(Op("mul", "*", 2, _mul, lambda a, b, out: (b, a), vf=_mul))
DIV = _register(Op("div", "/", 2, _div, lambda a, b, out: (1.0 / b, -out / b), _check_div,
                   vf=_div, bad=_div_bad))
POW = _register(Op("pow", "**", 2, _pow,
                   lambda a, b, out: (_pow_dbase(a, b, out), _pow_dexp(a, b, out)), _check_pow,
                   vf=_pow, vdf=_pow_vdf, bad=_pow_bad, exact_vector=False))
NEG = _register(Op("neg", "neg", 1, _neg, lambda a, out: _MINUS_ONE, vf=_neg))
ABS = _register(Op("abs", "abs", 1, abs, lambda a, out: (sign(a),), vf=abs))
RELU = _register(Op("relu", "relu", 1, _relu,  # relu'(nan) is nan, on floats and arrays
                    lambda a, out: _ONE if a > 0.0 else (0.0,) if a <= 0.0 else (a,),
                    vf=_relu_v, vdf=_relu_vdf))
TANH = _register(Op("tanh", "tanh", 1, math.tanh, lambda a, out: (1.0 - out * out,), vf=tanh))
SIGMOID = _register(Op("sigmoid", "sigmoid", 1, _sigmoid, lambda a, out: (out * (1.0 - out),),
                       vf=sigmoid))
EXP = _register(Op("exp", "exp", 1, math.exp, lambda a, out: (out,), vf=exp))
LOG = _register(Op("log", "log", 1, math.log, lambda a, out: (1.0 / a,), _check_log, vf=log,
                   bad=_log_bad))
SQRT = _register(Op("sqrt", "sqrt", 1, math.sqrt, _sqrt_df, _check_sqrt, vf=sqrt,
                    vdf=_sqrt_vdf, bad=_sqrt_bad))
SIN = _register(Op("sin", "sin", 1, math.sin, lambda a, out: (cos(a),), _check_finite("sin"),
                   vf=sin, bad=_not_finite))
COS = _register(Op("cos", "cos", 1, math.cos, lambda a, out: (-sin(a),), _check_finite("cos"),
                   vf=cos, bad=_not_finite))
SUM = _register(Op("sum", "sum", -1, _sum_f, lambda *xs: _ones(len(xs) - 1), vf=_sum_v))
MAX = _register(Op("max", "max", -1, _max_f, _max_df, vf=_max_v, vdf=_max_vdf))
#: the names of the built-in operations (what OPS held before any define_op)
BUILTINS: tuple = tuple(OPS)

# ---------------------------------------------------------------------------------------------
# Recording on or off: a context variable, so no_grad is per thread and per asyncio task.

_recording = contextvars.ContextVar("tinygrad_scalar_recording", default=True)
# Called with (value, other, operator) on a comparison or bool() of a Value when set: tracing
# (static.trace) uses it to refuse a Python branch on a traced input, which would be frozen.
_branch_hook: contextvars.ContextVar = contextvars.ContextVar("tinygrad_scalar_branch_hook",
                                                             default=None)


@contextmanager
def on_branch(check: Callable[["Value", object, str], None]) -> Iterator[None]:
    """Inside, every comparison (< <= > >=) and bool() of a Value first calls
    check(value, other, operator) (other is None for bool). Tracing uses it to refuse a Python
    branch on a traced input, which would be frozen into the replay. Per thread and task."""
    token = _branch_hook.set(check)
    try:
        yield
    finally:
        _branch_hook.reset(token)


@contextmanager
def no_grad() -> Iterator[None]:
    """Inside, operations compute values but record no parents (results are leaves)."""
    token = _recording.set(False)
    try:
        yield
    finally:
        _recording.reset(token)


@contextmanager
def enable_grad() -> Iterator[None]:
    """Inside, operations record their parents again, even within no_grad() (what the function
    transforms and the static tracer need around the user's function)."""
    token = _recording.set(True)
    try:
        yield
    finally:
        _recording.reset(token)


def is_grad_enabled() -> bool:
    """Whether operations record their parents now (False inside no_grad())."""
    return _recording.get()


def _as_float(x, what: str = "Value") -> float:
    if type(x) is float:
        return x
    if isinstance(x, numbers.Real) and not isinstance(x, Value):
        return float(x)
    raise TypeError(f"{what} needs a real number (int, float or numpy scalar), "
                    f"got {type(x).__name__}: {x!r}")


# ---------------------------------------------------------------------------------------------
# The Value.

_new = object.__new__


class _Many:
    """Marks a node with more than two inputs: its parents and locals are then tuples in _a, _da."""
    __slots__ = ()

    def __repr__(self):
        return "MANY"

    def __reduce__(self):
        return "MANY"


MANY = _Many()


class Value:
    """A scalar in a computation graph: its data, its gradient and how it was made.

    Edges are stored flat: `_a`/`_da` the first parent and the local derivative along its edge,
    `_b`/`_db` the second (None for unary ops); an op with more inputs keeps tuples in `_a`/`_da`
    and MANY in `_b`. Leaves have `_a is None`. `_prev` and `_local` give them as tuples.
    """

    __slots__ = ("data", "grad", "label", "_fn", "_a", "_b", "_da", "_db", "_gv")

    def __init__(self, data: Number, label: str = ""):
        self.data = _as_float(data)
        self.grad = 0.0
        if type(label) is not str:
            raise TypeError(f"label must be a string, got {type(label).__name__}: {label!r}")
        self.label = label
        self._fn = self._a = self._b = self._da = self._db = self._gv = None

    # -- the graph structure, as the rest of the package reads it ------------------------------
    @property
    def _prev(self) -> tuple:
        """The parents in argument order (`a + a` has two entries)."""
        a, b = self._a, self._b
        if a is None:
            return ()
        if b is None:
            return (a,)
        return a if b is MANY else (a, b)

    @property
    def _local(self) -> tuple:
        """d self / d parent along each edge, in the order of _prev."""
        a, b = self._a, self._b
        if a is None:
            return ()
        if b is None:
            return (self._da,)
        return self._da if b is MANY else (self._da, self._db)

    @property
    def parents(self) -> tuple:
        """The inputs this node was made from, in argument order (`a + a` lists a twice); ()
        for a leaf."""
        return self._prev

    def edges(self) -> list[tuple["Value", Optional[float]]]:
        """(parent, local derivative d self / d parent) for each input edge, in argument order.

        The local derivative toward a constant (a Python number that entered the graph, as the
        2 in `x ** 2`) is None: it is never needed, so it is never computed or shown."""
        return [(p, None if p._fn is CONST else d) for p, d in zip(self._prev, self._local)]

    @property
    def _op(self) -> str:
        fn = self._fn
        return fn.symbol if fn is not None and fn is not CONST else ""

    @property
    def op(self) -> Optional[Op]:
        """The Op that made this node (None for leaves and constants)."""
        return None if self._fn is CONST else self._fn

    @property
    def is_leaf(self) -> bool:
        return self._a is None

    @property
    def is_constant(self) -> bool:
        return self._fn is CONST

    @property
    def grad_value(self) -> Optional["Value"]:
        """d root / d self as a differentiable Value, after backward(create_graph=True)."""
        return self._gv

    @staticmethod
    def constant(x: Number) -> "Value":
        """A Python number entering the graph: a leaf marked as a constant."""
        v = Value(x)
        v._fn = CONST
        return v

    # -- operators: each one node, numbers on either side become constants --------------------
    def __add__(self, other):
        if not isinstance(other, Value):
            other = _const(other)
            if other is None:
                return NotImplemented
            return _binary_k(ADD, self, other, 1)
        return _binary(ADD, self, other)

    def __radd__(self, other):
        other = _const(other)
        return NotImplemented if other is None else _binary_k(ADD, other, self, 0)

    def __sub__(self, other):
        if not isinstance(other, Value):
            other = _const(other)
            if other is None:
                return NotImplemented
            return _binary_k(SUB, self, other, 1)
        return _binary(SUB, self, other)

    def __rsub__(self, other):
        other = _const(other)
        return NotImplemented if other is None else _binary_k(SUB, other, self, 0)

    def __mul__(self, other):
        if not isinstance(other, Value):
            other = _const(other)
            if other is None:
                return NotImplemented
            return _binary_k(MUL, self, other, 1)
        return _binary(MUL, self, other)

    def __rmul__(self, other):
        other = _const(other)
        return NotImplemented if other is None else _binary_k(MUL, other, self, 0)

    def __truediv__(self, other):
        if not isinstance(other, Value):
            other = _const(other)
            if other is None:
                return NotImplemented
            return _binary_k(DIV, self, other, 1)
        return _binary(DIV, self, other)

    def __rtruediv__(self, other):
        other = _const(other)
        return NotImplemented if other is None else _binary_k(DIV, other, self, 0)

    def __pow__(self, other):
        if not isinstance(other, Value):
            other = _const(other)
            if other is None:
                return NotImplemented
            return _binary_k(POW, self, other, 1, _pow_base_only)
        return _binary(POW, self, other)

    def __rpow__(self, other):
        other = _const(other)
        return NotImplemented if other is None else _binary_k(POW, other, self, 0)

    def __neg__(self):
        return _unary(NEG, self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _unary(ABS, self)

    def relu(self):
        return _unary(RELU, self)

    def tanh(self):
        return _unary(TANH, self)

    def sigmoid(self):
        return _unary(SIGMOID, self)

    def exp(self):
        return _unary(EXP, self)

    def log(self):
        return _unary(LOG, self)

    def sqrt(self):
        return _unary(SQRT, self)

    def sin(self):
        return _unary(SIN, self)

    def cos(self):
        return _unary(COS, self)

    def apply(self, op: Op, *others) -> "Value":
        """Apply `op` with self as the first input (numbers become constants)."""
        return apply(op, self, *others)

    @staticmethod
    def sum(values: Iterable) -> "Value":
        """One n-ary sum node (every edge's local derivative is 1): cheaper than a chain of +.
        Numbers among the values become constants. When every entry is a Value this is the
        engine's fastest way to add many terms (no per-term checks beyond the type)."""
        if type(values) is not tuple:
            values = _terms(values, "Value.sum")
        v = _sum_of_values(values) if values else None
        return apply(SUM, *values) if v is None else v

    @staticmethod
    def max(values: Iterable) -> "Value":
        """One n-ary max node: the largest of the values, the first of equal ones (when one is
        nan: nan, and the first nan is the one picked). Its gradient goes to that input alone
        (local derivative 1, the others 0), as torch.max along a dimension. Unlike Python's
        max(), it compares nothing in Python, so a traced graph (static.trace) can take it: the
        branch-free maximum."""
        if type(values) is not tuple:
            values = _terms(values, "Value.max")
        return apply(MAX, *values)

    # -- comparisons by data; equality and hashing stay by identity ---------------------------
    # (something that is not a number: NotImplemented, so Python's error names Value, not float)
    def __lt__(self, other):
        if _branch_hook.get() is not None:
            _branch_hook.get()(self, other, "<")
        try:
            return self.data < (other.data if isinstance(other, Value) else other)
        except TypeError:
            return NotImplemented

    def __le__(self, other):
        if _branch_hook.get() is not None:
            _branch_hook.get()(self, other, "<=")
        try:
            return self.data <= (other.data if isinstance(other, Value) else other)
        except TypeError:
            return NotImplemented

    def __gt__(self, other):
        if _branch_hook.get() is not None:
            _branch_hook.get()(self, other, ">")
        try:
            return self.data > (other.data if isinstance(other, Value) else other)
        except TypeError:
            return NotImplemented

    def __ge__(self, other):
        if _branch_hook.get() is not None:
            _branch_hook.get()(self, other, ">=")
        try:
            return self.data >= (other.data if isinstance(other, Value) else other)
        except TypeError:
            return NotImplemented

    __eq__ = object.__eq__
    __ne__ = object.__ne__
    __hash__ = object.__hash__

    # -- reading the number: explicit reads always work, implicit conversions only when safe ----
    def item(self) -> float:
        """The number itself (PyTorch's name; the same as `.data`): a constant for the graph."""
        return self.data

    def __float__(self) -> float:
        if self._fn is CONST or not _recording.get():
            return self.data
        raise _conversion_error(self, "float()")

    def __int__(self) -> int:
        if self._fn is CONST or not _recording.get():
            return int(self.data)
        raise _conversion_error(self, "int()")

    def __format__(self, spec: str) -> str:
        """f"{v:.3f}" formats the number (an explicit read); f"{v}" is the repr."""
        return format(self.data, spec) if spec else repr(self)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """NumPy calls this for np.exp(v) and for np.float64(2) * v. Arithmetic with numbers
        runs as the Value's own operators (so it is recorded); anything else would turn the
        Value into a plain number, so it is refused with the Value method to use instead."""
        fn = _NUMPY_OPERATORS.get(ufunc.__name__) if method == "__call__" else None
        if fn is not None and not kwargs and len(inputs) == 2:
            out = fn(*inputs)
            if out is not NotImplemented:
                return out
            kinds = " and ".join(type(x).__name__ for x in inputs)
            raise TypeError(f"numpy's {ufunc.__name__} of {kinds}"
                            ": a Value is one scalar and does not broadcast over arrays; combine "
                            "it with numbers one at a time (a list comprehension)")
        raise _ufunc_error(ufunc, method, inputs)

    def __bool__(self) -> bool:  # as a PyTorch scalar: false exactly when zero
        if _branch_hook.get() is not None:
            _branch_hook.get()(self, None, "bool")
        return self.data != 0.0

    def __repr__(self) -> str:
        lab = f", label={self.label!r}" if self.label else ""
        return f"Value(data={self.data!r}, grad={self.grad!r}{lab})"

    # -- backward ------------------------------------------------------------------------------
    def topo(self) -> list["Value"]:
        """Every node this one depends on, each after all of its inputs."""
        return topological_order(self)

    def backward(self, gradient: Number = 1.0, create_graph: bool = False) -> None:
        """Fill .grad with d self / d node for every node below self.

        Interior nodes get this call's gradient; leaves accumulate across calls until zeroed
        (so two calls give leaves exactly twice the gradient). With create_graph=True every
        node's `grad_value` is also a Value whose graph can be differentiated again.
        """
        g0 = _as_float(gradient, "backward(gradient=...)")
        if create_graph:
            topo = topological_order(self)
            held = []  # leaves whose grad_value must follow .grad: (leaf, grad before this call)
            for v in topo:
                if v._a is not None:
                    v.grad = 0.0
                    v._gv = None  # interior nodes: this call's gradient only, as for .grad
                else:
                    if v.grad is None:  # `x.grad = None` (set_to_none) counts as zero
                        v.grad = 0.0
                    held.append((v, v.grad))
        else:
            topo, held = _backward_order(self)  # the same order, interior nodes zeroed
        self.grad = g0 if self._a is not None else self.grad + g0
        try:
            for v in reversed(topo):  # the generic loop: parent.grad += local * node.grad
                a = v._a
                if a is None:
                    continue
                g = v.grad
                v._gv = None  # interior nodes: this call's gradient only, as for .grad
                b = v._b
                if b is None:
                    d = v._da
                    if d or v._fn is not RELU:  # passes_nothing, inlined: relu's flat part
                        a.grad += d * g
                elif b is MANY:
                    d = v._da
                    if d is _ONES.get(len(d)):  # a plain sum: every local is 1.0, 1.0 * g is g
                        for p in a:
                            p.grad += g
                    elif v._fn is MAX:  # max passes nothing along the edges it did not pick
                        for p, d in zip(a, d):
                            if d:
                                p.grad += d * g
                    else:
                        for p, d in zip(a, d):
                            p.grad += d * g
                else:
                    a.grad += v._da * g
                    b.grad += v._db * g
        except BaseException:  # an interrupt or a .grad that cannot add: no mark is left behind
            for v in topo:
                if type(v._gv) is _Mark:
                    v._gv = None
            raise
        if create_graph:
            _backward_graph(self, topo, g0, held)
        elif held:
            _follow_grads(held)

    def backward_step(self) -> None:
        """One step of the backward loop, by hand: pass this node's .grad into its parents once
        (`parent.grad += local * self.grad` per edge), as micrograd's `o._backward()` does in
        the lecture. Nothing is zeroed first; a .grad of None counts as zero."""
        g = self.grad
        if g is None or self._a is None:
            return
        for p, d in zip(self._prev, self._local):
            if p._fn is not CONST and not passes_nothing(self, d):  # as backward() passes them
                p.grad = (0.0 if p.grad is None else p.grad) + d * g

    _backward = backward_step  # micrograd's name, so the lecture's manual steps run unchanged

    def zero_grad(self) -> None:
        """Zero .grad (and grad_value) of every node below and including self."""
        for v in topological_order(self):
            v.grad = 0.0
            v._gv = None

    def draw(self, **options):
        """This node's graph as a graphviz.Digraph: shorthand for viz.draw_dot(self, ...)."""
        from .viz import draw_dot  # drawing is optional at import time; no import cycle
        return draw_dot(self, **options)

    def detach(self) -> "Value":
        """A new leaf with the same data (and label), cut from the graph."""
        return Value(self.data, self.label)

    # -- pickling and copying: flat, so a million-deep chain never recurses ------------------
    def __reduce__(self):
        if self._a is None:
            return (_leaf, (self.data, self.grad, self.label, self._fn is CONST))
        return (_rebuild, (_records(self),))

    def __deepcopy__(self, memo):
        for v in topological_order(self, stop=lambda n: id(n) in memo):
            if id(v) in memo:
                continue
            c = copy.copy(v)
            c._gv = None
            if v._b is MANY:
                c._a = tuple(memo[id(p)] for p in v._a)
            elif v._a is not None:
                c._a = memo[id(v._a)]
                if v._b is not None:
                    c._b = memo[id(v._b)]
            memo[id(v)] = c
        return memo[id(self)]

    def __copy__(self):
        c = _new(Value)
        for s in Value.__slots__:
            setattr(c, s, getattr(self, s))
        return c


CONST = Op("const", "", 0, None, None, doc="a Python number that entered the graph")


# Implicit conversions. A Value "is being recorded" when recording is on (outside no_grad) and it
# is not a constant: then float(v), int(v), math.exp(v) or np.float64(v) would hand back a plain
# number that the graph cannot see, and `math.exp(x) * x` would silently lose the exp's part of
# the gradient. That is refused, leaves included (the silent cut happens at leaves too); explicit
# reads (.data, .item(), format specs) and no_grad() always give the number.

def _conversion_error(v: Value, how: str) -> TypeError:
    return TypeError(
        f"{how} of a Value that is being recorded ({_short(v)}) would give a plain number and "
        "silently cut the graph (math.exp(x) * x would lose the exp's part of the gradient). "
        "For math on it use the Value's methods: x.exp(), x.log(), x.sin(), x.tanh(), ... (or "
        "tinygrad_scalar.engine's exp, log, ...); for the number itself write x.data or "
        "x.item() (then it is a constant), or compute inside no_grad()")


def _ufunc_error(ufunc, method: str, inputs: tuple) -> TypeError:
    name = getattr(ufunc, "__name__", str(ufunc))
    meth = {"absolute": "abs(v)", "negative": "-v", "exp": "v.exp()", "log": "v.log()",
            "sqrt": "v.sqrt()", "sin": "v.sin()", "cos": "v.cos()", "tanh": "v.tanh()",
            "square": "v ** 2", "power": "v ** y"}.get(name)
    fix = f"write {meth} instead" if meth else "use the Value's methods (v.exp(), v.tanh(), ...)"
    return TypeError(
        f"numpy's {name}{'' if method == '__call__' else '.' + method} cannot take a Value: it "
        f"would compute on plain numbers and cut the graph. For a Value v, {fix}; for the "
        "number itself use v.data or v.item()")


def _plain(x):
    """A Value, or a numpy scalar / 0-d array as a Python number; None for anything else."""
    if isinstance(x, Value):
        return x
    if getattr(x, "shape", None) == () and hasattr(x, "item"):
        x = x.item()
    return x if isinstance(x, numbers.Real) else None


def _numpy_scalar_op(op):
    def run(x, y):
        x, y = _plain(x), _plain(y)  # Python numbers, so numpy is not asked again
        return NotImplemented if x is None or y is None else op(x, y)
    return run


_NUMPY_OPERATORS = {name: _numpy_scalar_op(op) for name, op in (
    ("add", operator.add), ("subtract", operator.sub), ("multiply", operator.mul),
    ("divide", operator.truediv), ("true_divide", operator.truediv), ("power", operator.pow),
    ("less", operator.lt), ("less_equal", operator.le), ("greater", operator.gt),
    ("greater_equal", operator.ge), ("equal", operator.eq), ("not_equal", operator.ne))}


def _short(x, limit: int = 120) -> str:
    """repr(x), cut to a readable length for error messages."""
    r = repr(x)
    return r if len(r) <= limit else r[:limit - 20] + f"... ({len(r)} characters)"


def call_text(op: Op, xs: tuple) -> str:
    """op(x1, x2, ...) for an error message; long operand lists are cut (the first few, the
    count and the non-finite ones, which are usually the reason)."""
    if len(xs) <= 8:
        return f"{op.name}({', '.join(map(repr, xs))})"
    odd = [f"[{i}]={x!r}" for i, x in enumerate(xs) if not -INF < x < INF][:4]
    shown = ", ".join(map(repr, xs[:5]))
    extra = f"; non-finite: {', '.join(odd)}" if odd else ""
    return f"{op.name}({shown}, ... {len(xs)} operands{extra})"


_call = call_text  # the old private name, for callers in other modules


def overflow_error(op: Op, xs: tuple) -> OverflowError:
    """The error for op(*xs) overflowing (an inf from finite operands), naming both: the
    engine's, and the one a replay raises for the same operation."""
    return OverflowError(f"{_call(op, xs)} overflows: the result is too large for a float")


def _wrap(op: Op, xs: tuple, e: Exception) -> Exception:
    """Python's own math errors ('math domain error') renamed after the operation and operands."""
    if isinstance(e, OverflowError):
        return overflow_error(op, xs)
    return type(e)(f"{_call(op, xs)}: {e}")


def _finish(v: Value, op: Op, xs: tuple, out: float) -> Value:
    """A non-finite result from finite inputs is an overflow, never a silent inf."""
    if all(-INF < x < INF for x in xs):
        if out != out:
            raise ValueError(f"{_call(op, xs)} is not a number (nan)")
        raise overflow_error(op, xs)
    return v


def _binary(op: Op, a: Value, b: Value) -> Value:
    """op(a, b) for two Values: a new node (a leaf under no_grad)."""
    x, y = a.data, b.data
    if op is MUL:  # most nodes of a network: MUL's rule written out, without two calls
        v = _new(Value)
        v.data = out = x * y  # floats: never raises
        if _recording.get():
            v._a = a
            v._b = b
            v._da = y
            v._db = x
            v._fn = op
        else:
            v._a = v._b = v._da = v._db = v._fn = None
        v.grad = 0.0
        v.label = ""
        v._gv = None
        if -INF < out < INF:
            return v
        return _finish(v, op, (x, y), out)
    if op.check is not None:
        op.check(x, y)
    v = _new(Value)
    try:
        v.data = out = op.f(x, y)
        if _recording.get():
            v._da, v._db = op.df(x, y, out)
            v._a, v._b, v._fn = a, b, op
        else:
            v._a = v._b = v._da = v._db = v._fn = None
    except (ArithmeticError, ValueError) as e:
        raise _wrap(op, (x, y), e) from None
    v.grad, v.label, v._gv = 0.0, "", None
    if -INF < out < INF:
        return v
    return _finish(v, op, (x, y), out)


def _binary_k(op: Op, a: Value, b: Value, k: int, df: Optional[Callable] = None) -> Value:
    """op(a, b) where input k (0 or 1) is a constant just made from a Python number. The local
    derivative toward a constant is never needed, so it is not kept: its slot holds 0.0 (the
    constant's .grad stays 0) and edges() reports None. `df` may replace op.df by a rule that
    skips that derivative altogether (pow with a constant exponent: no log of a negative base)."""
    x, y = a.data, b.data
    if op.check is not None:
        op.check(x, y)
    v = _new(Value)
    try:
        v.data = out = op.f(x, y)
        if _recording.get():
            if k:
                v._da = (op.df if df is None else df)(x, y, out)[0]
                v._db = 0.0
            else:
                v._da, v._db = 0.0, op.df(x, y, out)[1]
            v._a, v._b, v._fn = a, b, op
        else:
            v._a = v._b = v._da = v._db = v._fn = None
    except (ArithmeticError, ValueError) as e:
        raise _wrap(op, (x, y), e) from None
    v.grad, v.label, v._gv = 0.0, "", None
    if -INF < out < INF:
        return v
    return _finish(v, op, (x, y), out)


def _at_pole(op: Op, a: Value, b: Value, out: float, da: float, db: float) -> Value:
    """op(a, b) at a pole of op (0.5 / 0, 0 ** -0.5): a node with IEEE's value there (inf)
    and local derivatives da, db (0.0 toward a constant), made without op's check, which
    refuses the point. Only gradient graphs make it (a slope such as sqrt's 0.5 / out at
    out = 0): as a plain inf its own derivative would silently count as 0, and the second
    derivative of sqrt at 0 came out 0 where it is -inf (PyTorch's value too)."""
    v = _new(Value)
    v.data, v.grad, v.label, v._gv = out, 0.0, "", None
    v._a, v._b, v._da, v._db, v._fn = a, b, da, db, op
    return v


def _pow_base_only(a, b, out) -> tuple:
    """pow's local derivatives when the exponent is a constant: toward the base only."""
    return (_pow_dbase(a, b, out), None)


def _unary(op: Op, a: Value) -> Value:
    """op(a) for a Value: a new node (a leaf under no_grad)."""
    x = a.data
    if op.check is not None:
        op.check(x)
    v = _new(Value)
    try:
        v.data = out = op.f(x)
        if _recording.get():
            (v._da,) = op.df(x, out)
            v._a, v._fn = a, op
        else:
            v._a = v._da = v._fn = None
    except (ArithmeticError, ValueError) as e:
        raise _wrap(op, (x,), e) from None
    v.grad, v.label, v._b, v._db, v._gv = 0.0, "", None, None, None
    if -INF < out < INF:
        return v
    return _finish(v, op, (x,), out)


def _nary(op: Op, args: tuple) -> Value:
    """op(*args) for a tuple of Values: one node with an edge per argument."""
    xs = tuple(a.data for a in args)
    if op.check is not None:
        op.check(*xs)
    v = _new(Value)
    try:
        v.data = out = float(op.f(*xs))
        if _recording.get():
            v._a, v._b, v._da, v._fn = args, MANY, tuple(op.df(*xs, out)), op
        else:
            v._a = v._b = v._da = v._fn = None
    except (ArithmeticError, ValueError) as e:
        raise _wrap(op, xs, e) from None
    v.grad, v.label, v._db, v._gv = 0.0, "", None, None
    if -INF < out < INF:
        return v
    return _finish(v, op, xs, out)


# The node builders, public for extensions' hot loops (nn's neurons): op applied to inputs that
# are already Values, with the op's check and the overflow rule, and nothing else (no numbers,
# no arity check: apply() and the operators do those). The operators call them too.
binary = _binary
unary = _unary
nary = _nary


def _terms(values, name: str) -> tuple:
    """The inputs of an n-ary node (Value.sum, Value.max) as a tuple, or the error naming it."""
    try:
        return tuple(values)
    except TypeError:
        raise TypeError(f"{name} needs an iterable of Values or numbers, got "
                        f"{type(values).__name__}: {_short(values)}") from None


def _sum_of_values(args: tuple) -> Optional[Value]:
    """Value.sum's fast path: the SUM node of a tuple of Values, gathering the numbers and
    checking the types in one loop (faster than nary); None when an entry is not a Value."""
    xs = []
    push = xs.append
    for a in args:
        if type(a) is not Value:
            return None
        push(a.data)
    op = SUM
    v = _new(Value)
    try:
        v.data = out = op.f(*xs)
        if _recording.get():  # SUM's local derivatives, 1.0 along every edge, without a call
            v._a, v._b, v._da, v._fn = args, MANY, _ones(len(xs)), op
        else:
            v._a = v._b = v._da = v._fn = None
    except (ArithmeticError, ValueError) as e:
        raise _wrap(op, tuple(xs), e) from None
    v.grad, v.label, v._db, v._gv = 0.0, "", None, None
    if -INF < out < INF:
        return v
    return _finish(v, op, tuple(xs), out)


def _const(x) -> Optional[Value]:
    """A Python number as a constant leaf, or None when x is not a real number."""
    if type(x) is float or type(x) is int or (isinstance(x, numbers.Real)
                                              and not isinstance(x, Value)):
        v = Value(x)
        v._fn = CONST
        return v
    return None


def apply(op: Op, *args) -> Value:
    """Apply any registered Op to Values or numbers (numbers become constants)."""
    if not isinstance(op, Op):
        raise TypeError(f"apply needs an Op (e.g. OPS['tanh']), got {type(op).__name__}: {op!r}")
    if op.arity >= 0 and len(args) != op.arity:
        raise TypeError(f"{op.name} takes {op.arity} input(s), got {len(args)}")
    if not args:
        raise TypeError(f"{op.name} needs at least one input, got none")
    vals = []
    made = False
    for a in args:
        if not isinstance(a, Value):
            c = _const(a)
            if c is None:
                raise TypeError(f"{op.name} needs Values or real numbers, got "
                                f"{type(a).__name__}: {_short(a)}")
            a, made = c, True
        vals.append(a)
    if op.arity == 1:
        v = _unary(op, vals[0])
    elif op.arity == 2:
        v = _binary(op, vals[0], vals[1])
    else:
        v = _nary(op, tuple(vals))
    if made and v._a is not None:  # no derivative kept toward the constants (see _binary_k)
        _set_locals(v, tuple(0.0 if p._fn is CONST else d for p, d in zip(v._prev, v._local)))
    return v


def _set_locals(v: Value, local: tuple) -> None:
    """Replace a node's local derivatives (in the order of its parents)."""
    if v._b is MANY:
        v._da = tuple(local)
    elif v._b is None:
        (v._da,) = local
    else:
        v._da, v._db = local


_POST = object()  # on the walk's stack: "the node below me has all its inputs emitted"


def topological_order(root: Value, stop: Optional[Callable[[Value], bool]] = None) -> list[Value]:
    """Nodes reachable from root, inputs before the nodes that use them.

    An explicit stack instead of recursion, so a million-deep chain works. `stop(node)` true
    means: include the node but do not walk past it. The order is a depth-first post-order:
    a binary node's first input is walked before its second, an n-ary node's inputs from the
    last to the first; pictures number the nodes by it, and backward() passes gradients in
    its reverse (so the teaching tools' numbers equal backward()'s bit for bit).
    """
    if not isinstance(root, Value):
        raise TypeError(f"topological_order needs a Value, got {type(root).__name__}: {root!r}")
    order: list[Value] = []
    seen: set = set()
    stack: list = [root]
    push, pop, mark, emit = stack.append, stack.pop, seen.add, order.append
    while stack:
        v = pop()
        if v is _POST:
            emit(pop())
            continue
        if v in seen:
            continue
        mark(v)
        a = v._a
        if a is None or (stop is not None and stop(v)):
            emit(v)
            continue
        # a node whose inputs are all emitted already is emitted at once (no _POST round trip)
        b = v._b
        if b is None:
            if a in seen:
                emit(v)
            else:
                push(v)
                push(_POST)
                push(a)
        elif b is MANY:
            for p in a:
                if p not in seen:
                    break
            else:
                emit(v)
                continue
            push(v)
            push(_POST)
            for p in a:
                if p not in seen:
                    push(p)
        elif b in seen:
            if a in seen:
                emit(v)
            else:
                push(v)
                push(_POST)
                push(a)
        else:
            push(v)
            push(_POST)
            push(b)
            if a not in seen:
                push(a)
    return order


class _Mark:
    """backward()'s "walked" flag in a node's _gv slot while its walk runs (never seen after)."""
    __slots__ = ()


def _backward_order(root: Value) -> tuple[list, Optional[list]]:
    """backward()'s walk: topological_order(root), the same list in the same order, while
    getting the nodes ready on the way: interior nodes get .grad 0, a leaf's .grad of None
    becomes 0 (PyTorch's set_to_none counts as zero). Instead of a set, a walked node's _gv
    slot holds this walk's mark (cheaper than hashing); interior nodes' slots are cleared by
    backward's loop (their grad_value is this call's: none), leaves get theirs back at the end.
    Also returns [(leaf, grad before)] for the leaves holding a grad_value, or None."""
    mark = _Mark()
    order: list[Value] = []
    leaves: list = []
    stack: list = [root]
    push, pop, emit, keep = stack.append, stack.pop, order.append, leaves.append
    try:
        while stack:
            v = pop()
            if v is _POST:
                v = pop()
                v.grad = 0.0
                emit(v)
                continue
            if v._gv is mark:
                continue
            a = v._a
            if a is None:
                if v.grad is None:
                    v.grad = 0.0
                keep((v, v._gv))
                v._gv = mark
                emit(v)
                continue
            v._gv = mark
            b = v._b
            if b is None:
                if a._gv is mark:
                    v.grad = 0.0
                    emit(v)
                else:
                    push(v)
                    push(_POST)
                    push(a)
            elif b is MANY:
                # the inputs from the last to the first, as the stack would give them: one
                # whose own inputs are all walked (a product of a weight and a walked input)
                # is emitted here at once; the first that is not goes on the stack, on top of
                # the inputs before it, as the stack would hold them
                k = len(a)
                while k:
                    k -= 1
                    p = a[k]
                    if p._gv is mark:
                        continue
                    pa = p._a
                    if pa is None:
                        if p.grad is None:
                            p.grad = 0.0
                        keep((p, p._gv))
                        p._gv = mark
                        emit(p)
                        continue
                    pb = p._b
                    if pb is not MANY and pa._gv is mark and (pb is None or pb._gv is mark):
                        p._gv = mark
                        p.grad = 0.0
                        emit(p)
                        continue
                    push(v)
                    push(_POST)
                    for q in a[:k]:
                        if q._gv is not mark:
                            push(q)
                    push(p)
                    break
                else:
                    v.grad = 0.0
                    emit(v)
            elif b._gv is mark:
                if a._gv is mark:
                    v.grad = 0.0
                    emit(v)
                else:
                    push(v)
                    push(_POST)
                    push(a)
            else:
                push(v)
                push(_POST)
                push(b)
                if a._gv is not mark:
                    push(a)
    except BaseException:  # an interrupt: no mark is left behind
        for v in order:
            v._gv = None
        for v in stack:
            if v is not _POST and v._gv is mark:
                v._gv = None
        raise
    finally:
        held = None
        for v, gv in leaves:
            v._gv = gv
            if gv is not None:
                if held is None:
                    held = []
                held.append((v, v.grad))
    return order, held


def _backward_graph(root: Value, topo: list, g0: float, held: list) -> None:
    """Reverse mode on Values: each node's grad_value becomes a differentiable graph.

    Recording is on while it runs, even inside no_grad(): the caller asked for a graph."""
    token = _recording.set(True)
    try:
        _backward_graph_recorded(root, topo, g0, held)
    finally:
        _recording.reset(token)


def _follow_grads(held: list) -> None:
    """After a plain backward(), leaves that hold a grad_value get this call's addition to .grad
    added to it as a constant, so grad_value and .grad keep telling the same number."""
    token = _recording.set(True)
    try:
        for v, before in held:
            if v.grad != before:
                v._gv = v._gv + Value.constant(v.grad - before)
    finally:
        _recording.reset(token)


def _backward_graph_recorded(root: Value, topo: list, g0: float, held: list) -> None:
    gv = reverse_sweep(topo, {root: Value.constant(g0)}, graph=True)
    for v, g in gv.items():
        if not isinstance(g, Value):  # only zeros passed by flat edges: still a graph
            gv[v] = Value.constant(g)
    for v in topo:
        if v._a is not None:
            v._gv = gv.get(v)
    for v, before in held:  # leaves accumulate, as their float grads do
        g = gv.get(v)
        base = v._gv
        if base is None and before != 0.0:  # grad built up by plain backward() calls
            base = Value.constant(before)
        if g is None:
            v._gv = base
        else:
            v._gv = g if base is None else base + g


# ---------------------------------------------------------------------------------------------
# The sweeps. One reverse sweep and one forward sweep on private dictionaries: the function
# transforms, create_graph, narration and the teaching tables all call these (backward() keeps
# an inlined copy of the float reverse loop on the .grad slots, its hot path). Conventions:
# - an edge toward a constant carries nothing (no derivative is computed toward a constant);
# - relu in its flat part (x <= 0) passes nothing, so an inf or nan gradient arriving from
#   above gives 0 below it, as PyTorch's relu (a mask, not a product) does: sqrt(relu(x)) at
#   x = -1 has gradient 0. So does Value.max along the edges it did not pick (as torch.max).
#   Every other edge multiplies, 0 * inf = nan, as in PyTorch (sqrt(|x|) at 0 has no
#   derivative, and nan says so). `passes_nothing` is that rule, for every tool that needs it.


def passes_nothing(node: Value, local) -> bool:
    """True when the edge into `node` whose local derivative is `local` (the stored float, as
    in node.edges()) passes nothing backward: relu's flat part, and the inputs Value.max did
    not pick. There the gradient below is 0 whatever arrives from above, inf or nan too (a
    mask, not the product 0 * inf = nan). The sweeps, backward_step and the teaching tools
    ask this one function; backward() keeps an inlined copy in its hot loop."""
    return local == 0.0 and (node._fn is RELU or node._fn is MAX)


def local_rules(v: Value) -> tuple:
    """The local derivatives of node v as Values (its op's df applied to its parents and to v
    itself): differentiable, for create_graph and the nested transforms. None toward a
    constant, whose derivative is never needed (for pow: no log of the base is taken)."""
    prev = v._prev
    fn = v._fn
    if fn is POW and prev[1]._fn is CONST:
        return (_pow_dbase(prev[0], prev[1], v), None)
    return tuple(None if p._fn is CONST else d for p, d in zip(prev, fn.df(*prev, v)))


def _mul(d, g):
    """d * g, skipping an exact float 1.0 on either side (keeps gradient graphs small)."""
    if type(d) is float and d == 1.0:
        return g
    if type(g) is float and g == 1.0:
        return d
    return d * g


def total(terms: list):
    """The sum of gradient terms, floats or Values (one Σ node for many, so gradient graphs stay
    shallow): how the sweeps, and transforms seeding them, add contributions."""
    if len(terms) == 1:
        return terms[0]
    if any(isinstance(t, Value) for t in terms):
        return Value.sum(terms)
    s = 0.0
    for t in terms:
        s += t
    return s


def reverse_sweep(order: list, seeds: dict, *, stop: Optional[Iterable] = None,
                  graph: bool = False, on_edge: Optional[Callable] = None,
                  within: Optional[set] = None) -> dict:
    """Reverse mode on a private dict: the gradient of the seeded roots with respect to every
    node of `order` (a topological order, inputs first, such as topological_order(root)).

    seeds: {root: cotangent}. Returns a new dict {node: gradient} holding the nodes reached
    (constants never are). stop: nodes that keep their gradient without passing it on (the
    inputs of a transform). graph=True applies the derivative rules to Values (local_rules), so
    the gradients are differentiable Values; otherwise the stored float locals are used and the
    numbers equal backward()'s bit for bit. on_edge(node, grad, parent, local, contribution,
    before) is called for every edge (local None toward a constant) as the float sweep passes it:
    narration records the steps with it. within (graph=True only): the nodes worth a gradient
    (those the wanted inputs reach); no graph is built toward the others. No .grad is read or
    written."""
    stop = set(stop) if stop else None
    if graph:
        return _reverse_values(order, seeds, stop, within)
    grads = dict(seeds)
    get = grads.get
    for v in reversed(order):
        g = get(v)
        a = v._a
        if g is None or a is None or (stop is not None and v in stop):
            continue
        for p, d in zip(v._prev, v._local):
            if p._fn is CONST:
                if on_edge is not None:
                    on_edge(v, g, p, None, None, None)
                continue
            before = get(p, 0.0)
            c = 0.0 if d == 0.0 and passes_nothing(v, d) else d * g  # (not 0 * inf = nan)
            grads[p] = before + c
            if on_edge is not None:
                on_edge(v, g, p, d, c, before)
    return grads


def _reverse_values(order: list, seeds: dict, stop: Optional[set],
                    within: Optional[set]) -> dict:
    """The graph case of reverse_sweep: terms collected per node and summed once."""
    pending: dict = {}
    for r, ct in seeds.items():
        pending[r] = [ct]
    grads: dict = {}
    for v in reversed(order):
        terms = pending.pop(v, None)
        if terms is None:
            continue
        g = grads[v] = total(terms)
        if v._a is None or (stop is not None and v in stop):
            continue
        for p, d, d0 in zip(v._prev, local_rules(v), v._local):
            if d is not None and (within is None or p in within):
                if passes_nothing(v, d0):  # as the float sweep: nothing passes (not 0 * inf)
                    pending.setdefault(p, []).append(0.0)
                else:
                    pending.setdefault(p, []).append(_mul(d, g))
    return grads


def forward_sweep(order: list, tangents: dict, *, graph: bool = False) -> dict:
    """Forward mode on a private dict: tangents pushed from the seeded inputs through every edge
    of `order` (inputs first). tangents: {input: tangent}; the seeded nodes keep their seed.
    Returns a new dict holding the nodes that depend on a seeded input (the others have no
    entry: their tangent is an exact 0, so an infinite local derivative next to an unrelated
    input never turns into nan). graph=True applies the rules to Values (local_rules)."""
    tan = dict(tangents)
    get = tan.get
    for v in order:
        a = v._a
        if a is None or v in tangents:
            continue
        if graph:
            terms, loc = [], None
            for k, p in enumerate(v._prev):
                t = get(p)
                if t is None:
                    continue
                if loc is None:
                    loc = local_rules(v)
                terms.append(_mul(loc[k], t))
            if terms:
                tan[v] = total(terms)
            continue
        b = v._b
        if b is None:
            t = get(a)
            if t is not None:
                tan[v] = v._da * t
        elif b is MANY:
            acc = None
            for p, d in zip(a, v._da):
                t = get(p)
                if t is not None:
                    acc = d * t if acc is None else acc + d * t
            if acc is not None:
                tan[v] = acc
        else:
            ta, tb = get(a), get(b)
            if ta is not None:
                tan[v] = v._da * ta if tb is None else v._da * ta + v._db * tb
            elif tb is not None:
                tan[v] = v._db * tb
    return tan


def _leaf(data: float, grad: float, label: str, constant: bool) -> Value:
    v = Value(data, label)
    v.grad = grad
    if constant:
        v._fn = CONST
    return v


def _records(root: Value) -> list:
    """A graph as a flat list: leaves as Value objects (pickle's memo shares them between
    roots), interior nodes as (data, grad, label, op name, parent indices, local derivatives)."""
    topo = topological_order(root)
    index = {v: i for i, v in enumerate(topo)}
    return [(v.data, v.grad, v.label, v._fn.name, tuple(index[p] for p in v._prev), v._local)
            if v._a is not None else v for v in topo]


def _rebuild(records: list) -> Value:
    nodes: list[Value] = []
    for r in records:
        if isinstance(r, Value):
            nodes.append(r)
            continue
        data, grad, label, opname, parents, local = r
        nodes.append(_node(op_by_name(opname), tuple(nodes[i] for i in parents), local, data))
        nodes[-1].grad, nodes[-1].label = grad, label
    return nodes[-1]


def node(op: Op, parents: tuple, local: tuple, data: float) -> Value:
    """A node built from its parts: the op that made it, its parents (Values), the local
    derivative along each edge (same order) and its value. For extensions that compute a node
    themselves (a replay, a loader); nothing is checked against op's rules."""
    if not isinstance(op, Op):
        raise TypeError(f"node needs an Op, got {type(op).__name__}: {_short(op)}")
    if len(parents) != len(local) or not parents:
        raise ValueError(f"node needs one local derivative per parent, got {len(parents)} "
                         f"parent(s) and {len(local)} local derivative(s)")
    return _node(op, tuple(parents), tuple(local), data)


def _node(op: Op, parents: tuple, local: tuple, data: float) -> Value:
    """A node from its parts, laid out as the operators lay it out (unchecked)."""
    v = Value(data)
    v._fn = op
    if len(parents) == 1:
        v._a, v._da = parents[0], local[0]
    elif len(parents) == 2 and op.arity == 2:
        v._a, v._b, v._da, v._db = parents[0], parents[1], local[0], local[1]
    else:
        v._a, v._b, v._da = tuple(parents), MANY, tuple(local)
    return v
