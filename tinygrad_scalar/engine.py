"""The scalar autograd engine: an operation table and the Value that records it.

Every operation is one `Op`: a value rule `f` and a derivative rule `df` side by side. When an
operation runs, its node keeps its parents and the local partial derivative along each edge
(`_prev` and `_local`, stored flat in slots for speed and memory). Backward is then one generic
loop, `parent.grad += local * node.grad`, and every other feature (forward mode, edge labels,
path sums, narration, replay) reads the same edges through `_prev`, `_local` or `edges()`.

Derivative rules are written with operators and the dispatching functions below (`exp`, `log`,
...), so the same rule works on floats (the fast path) and on Values (`create_graph=True`, where
the derivative itself becomes a differentiable graph).
"""
from __future__ import annotations

import contextvars
import copy
import math
import numbers
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
    """Not an integer (nan included; +-inf count as integers, as for Python's float **)."""
    if type(x) is float or _array_module(x) is None:
        return x != x or (x not in (INF, -INF) and x != int(x))
    return _not(_array_module(x).floor(x) == x)


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
    if fa == 0.0 and fb < 1.0:
        return 0.0 if fb == 0.0 else INF
    try:
        return b * a ** (b - 1)
    except OverflowError:  # a finite power whose slope is too steep for a float: +-inf
        return math.copysign(INF, fb * math.copysign(1.0, fa) ** (fb - 1))


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
    return math.fsum(xs) if len(xs) > _FSUM_ABOVE else sum(xs, 0.0)


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


def _relu(a):
    return 0.0 if a <= 0.0 else a  # relu(nan) is nan


def _relu_v(a):
    return where(a <= 0.0, 0.0, a)


def _sqrt_df(a, out):
    return (0.5 / out if _num(out) != 0.0 else INF,)


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
RELU = _register(Op("relu", "relu", 1, _relu, lambda a, out: _ONE if a > 0.0 else (0.0,),
                    vf=_relu_v, vdf=lambda a, out: (where(a > 0.0, 1.0, 0.0),)))
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
#: the names of the built-in operations (what OPS held before any define_op)
BUILTINS: tuple = tuple(OPS)

# ---------------------------------------------------------------------------------------------
# Recording on or off: a context variable, so no_grad is per thread and per asyncio task.

_recording = contextvars.ContextVar("tinygrad_scalar_recording", default=True)
# Called with the Value on float(value) when set: the function transforms use it to refuse
# math.sin(x) and the like, which would turn x into a plain number and cut the graph.
_float_hook: contextvars.ContextVar = contextvars.ContextVar("tinygrad_scalar_float_hook",
                                                            default=None)
# Called with (value, other, operator) on a comparison or bool() of a Value when set: tracing
# (static.trace) uses it to refuse a Python branch on a traced input, which would be frozen.
_branch_hook: contextvars.ContextVar = contextvars.ContextVar("tinygrad_scalar_branch_hook",
                                                             default=None)


@contextmanager
def no_grad() -> Iterator[None]:
    """Inside, operations compute values but record no parents (results are leaves)."""
    token = _recording.set(False)
    try:
        yield
    finally:
        _recording.reset(token)


def is_grad_enabled() -> bool:
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
    __array_ufunc__ = None  # numpy scalars defer to us: np.float64(2) * Value(3) is a Value

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

    def edges(self) -> list[tuple["Value", float]]:
        """(parent, local derivative) for each input edge."""
        return list(zip(self._prev, self._local))

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
        return _binary(ADD, self, other)

    def __radd__(self, other):
        other = _const(other)
        return NotImplemented if other is None else _binary(ADD, other, self)

    def __sub__(self, other):
        if not isinstance(other, Value):
            other = _const(other)
            if other is None:
                return NotImplemented
        return _binary(SUB, self, other)

    def __rsub__(self, other):
        other = _const(other)
        return NotImplemented if other is None else _binary(SUB, other, self)

    def __mul__(self, other):
        if not isinstance(other, Value):
            other = _const(other)
            if other is None:
                return NotImplemented
        return _binary(MUL, self, other)

    def __rmul__(self, other):
        other = _const(other)
        return NotImplemented if other is None else _binary(MUL, other, self)

    def __truediv__(self, other):
        if not isinstance(other, Value):
            other = _const(other)
            if other is None:
                return NotImplemented
        return _binary(DIV, self, other)

    def __rtruediv__(self, other):
        other = _const(other)
        return NotImplemented if other is None else _binary(DIV, other, self)

    def __pow__(self, other):
        if not isinstance(other, Value):
            other = _const(other)
            if other is None:
                return NotImplemented
        return _binary(POW, self, other)

    def __rpow__(self, other):
        other = _const(other)
        return NotImplemented if other is None else _binary(POW, other, self)

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
        """One n-ary sum node (every edge's local derivative is 1): cheaper than a chain of +."""
        try:
            values = tuple(values)
        except TypeError:
            raise TypeError(f"Value.sum needs an iterable of Values or numbers, got "
                            f"{type(values).__name__}: {values!r}") from None
        return apply(SUM, *values)

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

    def __float__(self) -> float:
        hook = _float_hook.get()
        if hook is not None:
            hook(self)
        return self.data

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
        topo = topological_order(self)
        held = None  # leaves whose grad_value must follow .grad: (leaf, grad before this call)
        for v in topo:
            if v._a is not None:
                v.grad = 0.0
                v._gv = None  # interior nodes: this call's gradient only, as for .grad
            elif create_graph or v._gv is not None:
                if held is None:
                    held = []
                held.append((v, v.grad))
        self.grad = g0 if self._a is not None else self.grad + g0
        for v in reversed(topo):  # the generic loop: parent.grad += local * node.grad
            a = v._a
            if a is None:
                continue
            g = v.grad
            b = v._b
            if b is None:
                a.grad += v._da * g
            elif b is MANY:
                for p, d in zip(a, v._da):
                    p.grad += d * g
            else:
                a.grad += v._da * g
                b.grad += v._db * g
        if create_graph:
            _backward_graph(self, topo, g0, held)
        elif held:
            _follow_grads(held)

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


def _call(op: Op, xs: tuple) -> str:
    return f"{op.name}({', '.join(map(repr, xs))})"


def _wrap(op: Op, xs: tuple, e: Exception) -> Exception:
    """Python's own math errors ('math domain error') renamed after the operation and operands."""
    if isinstance(e, OverflowError):
        return OverflowError(f"{_call(op, xs)} overflows: the result is too large for a float")
    return type(e)(f"{_call(op, xs)}: {e}")


def _finish(v: Value, op: Op, xs: tuple, out: float) -> Value:
    """A non-finite result from finite inputs is an overflow, never a silent inf."""
    if all(-INF < x < INF for x in xs):
        if out != out:
            raise ValueError(f"{_call(op, xs)} is not a number (nan)")
        raise OverflowError(f"{_call(op, xs)} overflows: the result is too large for a float")
    return v


def _binary(op: Op, a: Value, b: Value) -> Value:
    x, y = a.data, b.data
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


def _unary(op: Op, a: Value) -> Value:
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
    for a in args:
        if not isinstance(a, Value):
            c = _const(a)
            if c is None:
                raise TypeError(f"{op.name} needs Values or real numbers, got "
                                f"{type(a).__name__}: {a!r}")
            a = c
        vals.append(a)
    if op.arity == 1:
        return _unary(op, vals[0])
    if op.arity == 2:
        return _binary(op, vals[0], vals[1])
    return _nary(op, tuple(vals))


_POST = object()  # on the walk's stack: "the node below me has all its inputs emitted"


def topological_order(root: Value, stop: Optional[Callable[[Value], bool]] = None) -> list[Value]:
    """Nodes reachable from root, inputs before the nodes that use them.

    An explicit stack instead of recursion, so a million-deep chain works. `stop(node)` true
    means: include the node but do not walk past it.
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
        push(v)
        push(_POST)
        a = v._a
        if a is None or (stop is not None and stop(v)):
            continue
        b = v._b
        if b is None:
            if a not in seen:
                push(a)
        elif b is MANY:
            for p in a:
                if p not in seen:
                    push(p)
        else:
            if b not in seen:
                push(b)
            if a not in seen:
                push(a)
    return order


def _backward_graph(root: Value, topo: list, g0: float, held: list) -> None:
    """Reverse mode on Values: each node's grad_value becomes a differentiable graph.

    Recording is on while it runs, even inside no_grad(): the caller asked for a graph."""
    token, hook = _recording.set(True), _float_hook.set(None)  # rules may read numbers
    try:
        _backward_graph_recorded(root, topo, g0, held)
    finally:
        _float_hook.reset(hook)
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
    gv: dict = {root: Value.constant(g0)}
    for v in reversed(topo):
        g = gv.get(v)
        prev = v._prev
        if g is None or not prev:
            continue
        for p, d in zip(prev, v._fn.df(*prev, v)):
            c = d * g
            gv[p] = c if p not in gv else gv[p] + c
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


def _node(op: Op, parents: tuple, local: tuple, data: float) -> Value:
    """A node from its parts, laid out as the operators lay it out."""
    v = Value(data)
    v._fn = op
    if len(parents) == 1:
        v._a, v._da = parents[0], local[0]
    elif len(parents) == 2 and op.arity == 2:
        v._a, v._b, v._da, v._db = parents[0], parents[1], local[0], local[1]
    else:
        v._a, v._b, v._da = tuple(parents), MANY, tuple(local)
    return v
