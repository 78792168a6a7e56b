"""Function transforms in the style of JAX: grad, value_and_grad, jvp, vjp, jacobian, hessian.

A transform calls the user's Python function on fresh Value leaves, then reads the recorded
edges. Nothing touches `.grad`: each transform computes on private dictionaries, so it can run
inside a training loop or inside another transform without disturbing either.

Float in, float out: called with floats at top level, every transform returns floats. Called with
Values (as an outer transform calls it) or while an outer transform is running, it builds the
graph of its result instead (the `create_graph=True` rules, `op.df` applied to Values), so the
result can be differentiated again: `grad(grad(grad(f)))` works to any order, and `jvp` of
`grad` is a Hessian-vector product.

Each differentiated argument that arrives as a Value is first passed through a one-input sum
node, so an inner transform has its own input node and never confuses "d/dy" with the outer
"d/dx" when the same Value is used for both (`grad(lambda x: x * grad(lambda y: x * y)(x))`).
"""
from __future__ import annotations

import contextvars
import functools
import numbers
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, Sequence, Union

from . import engine
from .engine import SUM, Value, apply, topological_order

Scalar = Union[float, Value]
ArgNums = Union[int, Sequence[int]]

# How many transforms are running around the current call: inside one, results are graphs.
_depth = contextvars.ContextVar("tinygrad_scalar_transform_depth", default=0)

__all__ = ["grad", "value_and_grad", "jvp", "vjp", "jacobian", "hessian"]


# ---------------------------------------------------------------------------------------------
# Shared pieces.


@contextmanager
def transforming() -> Iterator[None]:
    """Mark a call to a function being differentiated: recording on, nested transforms build
    graphs. (gradcheck uses it too, for the same reason.)"""
    depth = _depth.set(_depth.get() + 1)
    try:
        with engine.enable_grad():
            yield
    finally:
        _depth.reset(depth)


def _fname(f: Any) -> str:
    return getattr(f, "__qualname__", None) or getattr(f, "__name__", None) or repr(f)


def _check_callable(f: Any, who: str) -> None:
    if not callable(f):
        raise TypeError(f"{who} needs a function to differentiate, got {type(f).__name__}: {f!r}")


def _short(x: Any) -> str:
    r = repr(x)
    return r if len(r) <= 80 else r[:77] + "..."


def _is_real(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, Value))


def _argnums(argnums: Any, who: str) -> tuple[Optional[tuple], bool]:
    """argnums as (tuple of ints, or None for all), and whether a single int was given."""
    if argnums is None:
        return None, False
    if isinstance(argnums, numbers.Integral) and not isinstance(argnums, bool):
        return (int(argnums),), True
    if isinstance(argnums, (tuple, list)):
        if not argnums:
            raise ValueError(f"{who}: argnums is empty; give an int or a non-empty tuple of ints")
        for a in argnums:
            if not isinstance(a, numbers.Integral) or isinstance(a, bool):
                raise TypeError(f"{who}: argnums must hold ints, got {type(a).__name__}: {a!r} "
                                f"in {argnums!r}")
        return tuple(int(a) for a in argnums), False
    raise TypeError(f"{who}: argnums must be an int or a tuple of ints, got "
                    f"{type(argnums).__name__}: {argnums!r}")


def _resolve(nums: Optional[tuple], n: int, who: str) -> tuple:
    """Python-style indices (negative from the end) checked against the n positional args."""
    if nums is None:
        if n == 0:
            raise TypeError(f"{who}: the function was called with no positional arguments; "
                            "there is nothing to differentiate")
        return tuple(range(n))
    out = []
    for i in nums:
        if not -n <= i < n:
            raise ValueError(f"{who}: argnums={i} is out of range for a call with {n} positional "
                             f"argument(s) (valid: {-n}..{n - 1})" if n else
                             f"{who}: argnums={i} but the function was called with no positional "
                             "arguments")
        out.append(i % n)
    if len(set(out)) != len(out):
        raise ValueError(f"{who}: argnums {nums!r} name the same argument twice")
    return tuple(out)


def _inputs(args: Sequence, nums: tuple, who: str) -> tuple[list, list, bool]:
    """The call's arguments with fresh input nodes at the differentiated positions.

    Other float arguments become constant Values (ints and everything else pass unchanged).
    Returns (args, input nodes, graph) where graph says whether to build differentiable
    results: any Value argument, or a transform running around this one.
    """
    graph = _depth.get() > 0 or any(isinstance(a, Value) for a in args)
    new = list(args)
    leaves = []
    with engine.enable_grad():  # the input nodes must record even inside no_grad
        for i in nums:
            a = args[i]
            if isinstance(a, Value):
                v = apply(SUM, a)  # an identity node: this transform's own input (see module doc)
            elif _is_real(a):
                v = Value(a)
            else:
                raise TypeError(f"{who}: argument {i} must be a real number or a Value to be "
                                f"differentiated, got {type(a).__name__}: {_short(a)}")
            new[i] = v
            leaves.append(v)
        chosen = set(nums)
        for i, a in enumerate(args):  # other float arguments: constants, so f may call .exp()
            if i not in chosen and _is_real(a) and not isinstance(a, numbers.Integral):
                new[i] = Value.constant(a)
    return new, leaves, graph


def _scalar(out: Any, f: Any, who: str, hint: str = "") -> Scalar:
    if isinstance(out, Value):
        return out
    if _is_real(out):
        return float(out)
    raise TypeError(f"{who}: {_fname(f)} must return a scalar (a Value or a real number), but it "
                    f"returned {type(out).__name__}: {_short(out)}{hint}")


def _outputs(out: Any, f: Any, who: str) -> tuple[list, Optional[type]]:
    """A function's result as a list of scalars, and its container type (None for a scalar)."""
    if isinstance(out, (list, tuple)):
        if not out:
            raise ValueError(f"{who}: {_fname(f)} returned an empty {type(out).__name__}; "
                             "there is nothing to differentiate")
        items = []
        for k, o in enumerate(out):
            if isinstance(o, Value):
                items.append(o)
            elif _is_real(o):
                items.append(float(o))
            else:
                raise TypeError(f"{who}: output {k} of {_fname(f)} must be a scalar (a Value or a "
                                f"real number), got {type(o).__name__}: {_short(o)}")
        return items, type(out)
    return [_scalar(out, f, who, "; or a list/tuple of scalars")], None


def _number(x) -> float:
    """The number in a scalar result (a Value's data: an explicit read)."""
    return x.data if isinstance(x, Value) else float(x)


def _finish(x, graph: bool):
    """Results in graph mode are always Values; in float mode floats (a Value cotangent the user
    passed stays a Value)."""
    if graph:
        return x if isinstance(x, Value) else Value.constant(float(x))
    return x if isinstance(x, Value) else float(x)


def _merged_order(roots: Sequence[Value], stop: set) -> list:
    order, seen = [], set()
    # leaves stop the walk anyway; only interior input nodes (nested calls) need the callback
    halt = None if all(v.is_leaf for v in stop) else stop.__contains__
    for r in roots:
        for v in topological_order(r, stop=halt):
            if v not in seen:
                seen.add(v)
                order.append(v)
    return order


def _depends(order: list, stop: set) -> set:
    """The nodes of `order` that depend on a node of `stop` (including those nodes)."""
    dep = set(stop)
    for v in order:
        if v not in stop and any(p in dep for p in v.parents):
            dep.add(v)
    return dep


def reverse(seeds: Sequence[tuple], wrt: Sequence[Value], graph: bool = False) -> list:
    """Reverse mode on private numbers: d(sum of seed * root)/d w for each w in wrt.

    seeds: (root, cotangent) pairs. Walks only nodes between the roots and `wrt` (it stops at
    the wrt nodes). graph=True applies the derivative rules to Values, so the results are
    differentiable graphs; otherwise the stored float local derivatives are used.
    Unreached inputs get 0.0. No `.grad` is read or written. (The sweep is the engine's
    reverse_sweep.)
    """
    stop = set(wrt)
    roots = [r for r, _ in seeds if isinstance(r, Value)]
    order = _merged_order(roots, stop)
    dep = _depends(order, stop) if graph else None
    cts: dict = {}
    for r, ct in seeds:
        if isinstance(r, Value) and (dep is None or r in dep):
            cts.setdefault(r, []).append(ct)
    first = {r: engine.total(c) for r, c in cts.items()}
    grads = engine.reverse_sweep(order, first, stop=stop, graph=graph, within=dep)
    return [grads.get(w, 0.0) for w in wrt]




def forward(outputs: Sequence, inputs: Sequence[Value], tangents: Sequence,
            graph: bool = False) -> list:
    """Forward mode: push tangents from `inputs` through the graph in topological order.

    Each node's tangent is the sum over its edges of local derivative * parent tangent, using
    the same stored local derivatives backward uses (graph=True: the rules applied to Values).
    Returns the tangent of each output (0.0 when an output does not depend on the inputs).
    (The sweep is the engine's forward_sweep.)
    """
    stop = set(inputs)
    order = _merged_order([o for o in outputs if isinstance(o, Value)], stop)
    tan = engine.forward_sweep(order, dict(zip(inputs, tangents)), graph=graph)
    return [tan.get(o, 0.0) if isinstance(o, Value) else 0.0 for o in outputs]


# ---------------------------------------------------------------------------------------------
# The transforms.


def _named(wrapper: Callable, f: Callable, prefix: str) -> Callable:
    functools.update_wrapper(wrapper, f)
    name = getattr(f, "__name__", "f")
    wrapper.__name__ = f"{prefix}_{name}"
    wrapper.__qualname__ = f"{prefix}({getattr(f, '__qualname__', name)})"
    return wrapper


def _value_and_grad_call(f, nums, single, args, kwargs, who):
    idx = _resolve(nums, len(args), who)
    new, leaves, graph = _inputs(args, idx, who)
    with transforming():
        out = f(*new, **kwargs)
        y = _scalar(out, f, who, "; for several outputs use jacobian or vjp")
        if isinstance(y, Value):
            gs = reverse([(y, 1.0)], leaves, graph)
        else:
            gs = [0.0] * len(leaves)
        value = _finish(y, graph) if graph else _number(y)
        gs = [_finish(g, graph) for g in gs]
    return value, (gs[0] if single else tuple(gs))


def value_and_grad(f: Callable, argnums: ArgNums = 0) -> Callable:
    """Like grad, but the new function returns (f(*args), gradient) from one evaluation."""
    _check_callable(f, "value_and_grad")
    nums, single = _argnums(argnums, "value_and_grad")

    def value_and_grad_f(*args, **kwargs):
        return _value_and_grad_call(f, nums, single, args, kwargs, "value_and_grad")
    return _named(value_and_grad_f, f, "value_and_grad")


def grad(f: Callable, argnums: ArgNums = 0) -> Callable:
    """The derivative of a scalar function, as a new function.

    f takes numbers positionally and returns a Value (or a number). argnums picks what to
    differentiate: an int gives one derivative, a tuple gives a tuple of them (negative indices
    count from the end, as in Python). Called with floats the result is float(s); called with
    Values, or inside another transform, it is Value(s) that can be differentiated again.
    Positional floats that are not differentiated arrive as constant Values (so f can call
    `.exp()` on them); ints and keyword arguments are passed through unchanged.
    """
    _check_callable(f, "grad")
    nums, single = _argnums(argnums, "grad")

    def grad_f(*args, **kwargs):
        return _value_and_grad_call(f, nums, single, args, kwargs, "grad")[1]
    return _named(grad_f, f, "grad")


def _sequence(xs: Any, what: str, who: str) -> list:
    if not isinstance(xs, (list, tuple)):
        raise TypeError(f"{who}: {what} must be a tuple or list (one entry per argument; write "
                        f"(x,) for one), got {type(xs).__name__}: {_short(xs)}")
    return list(xs)


def jvp(f: Callable, primals: Sequence, tangents: Sequence) -> tuple:
    """Forward mode: (f(*primals), J @ tangents) in one forward sweep, no reverse pass.

    primals and tangents are tuples with one number per positional argument of f. f may
    return a scalar or a list/tuple of scalars; the results then have the same shape.
    """
    _check_callable(f, "jvp")
    ps = _sequence(primals, "primals", "jvp")
    ts = _sequence(tangents, "tangents", "jvp")
    if len(ps) != len(ts):
        raise ValueError(f"jvp: got {len(ps)} primal(s) but {len(ts)} tangent(s); give one "
                         "tangent per primal")
    if not ps:
        raise ValueError("jvp: primals is empty; there is nothing to differentiate")
    for k, t in enumerate(ts):
        if not (isinstance(t, Value) or _is_real(t)):
            raise TypeError(f"jvp: tangent {k} must be a real number or a Value, got "
                            f"{type(t).__name__}: {_short(t)}")
    new, leaves, graph = _inputs(ps, tuple(range(len(ps))), "jvp")
    graph = graph or any(isinstance(t, Value) for t in ts)
    with transforming():
        out = f(*new)
        outs, kind = _outputs(out, f, "jvp")
        tans = forward(outs, leaves, [t if isinstance(t, Value) else float(t) for t in ts], graph)
        values = [_finish(o, graph) if graph else _number(o) for o in outs]
        tans = [_finish(t, graph) for t in tans]
    if kind is None:
        return values[0], tans[0]
    return kind(values), kind(tans)


def vjp(f: Callable, *primals: Any) -> tuple:
    """Reverse mode: (f(*primals), vjp_fn) where vjp_fn(cotangent) = cotangent @ J.

    vjp_fn takes a number when f returns a scalar, a list/tuple of the same length when it
    returns several, and returns a tuple with one entry per primal. It can be called many
    times (one reverse sweep each); f is evaluated once.
    """
    _check_callable(f, "vjp")
    if not primals:
        raise ValueError("vjp: no primals given; call vjp(f, x, y, ...)")
    new, leaves, graph = _inputs(primals, tuple(range(len(primals))), "vjp")
    with transforming():
        out = f(*new)
        outs, kind = _outputs(out, f, "vjp")
        values = [_finish(o, graph) if graph else _number(o) for o in outs]

    def vjp_fn(cotangent: Any) -> tuple:
        if kind is None:
            cts = [cotangent]
        else:
            cts = _sequence(cotangent, "the cotangent", "vjp_fn")
            if len(cts) != len(outs):
                raise ValueError(f"vjp_fn: f has {len(outs)} outputs but the cotangent has "
                                 f"{len(cts)} entries")
        for k, c in enumerate(cts):
            if not (isinstance(c, Value) or _is_real(c)):
                raise TypeError(f"vjp_fn: cotangent {'' if kind is None else f'{k} '}must be a "
                                f"real number or a Value, got {type(c).__name__}: {_short(c)}")
        with transforming():
            seeds = [(o, c if isinstance(c, Value) else float(c)) for o, c in zip(outs, cts)]
            gs = reverse(seeds, leaves, graph)
            return tuple(_finish(g, graph) for g in gs)

    return (values[0] if kind is None else kind(values)), vjp_fn


def jacobian(f: Callable, argnums: Optional[ArgNums] = None) -> Callable:
    """The Jacobian matrix, as a new function: J[i][j] = d output_i / d argument_j.

    f returns a list/tuple of scalars (a scalar counts as one output). Always a list of rows
    (one per output) of length k, the number of differentiated arguments (argnums=None: all
    positional arguments; an int or a tuple picks some). Computed in reverse mode, one sweep
    per output over the graph recorded by a single evaluation of f.
    """
    _check_callable(f, "jacobian")
    nums, _ = _argnums(argnums, "jacobian")

    def jacobian_f(*args, **kwargs):
        idx = _resolve(nums, len(args), "jacobian")
        new, leaves, graph = _inputs(args, idx, "jacobian")
        with transforming():
            out = f(*new, **kwargs)
            outs, _kind = _outputs(out, f, "jacobian")
            rows = []
            for o in outs:
                gs = reverse([(o, 1.0)], leaves, graph) if isinstance(o, Value) else \
                    [0.0] * len(leaves)
                rows.append([_finish(g, graph) for g in gs])
        return rows
    return _named(jacobian_f, f, "jacobian")


def hessian(f: Callable, argnums: Optional[ArgNums] = None) -> Callable:
    """The matrix of second derivatives of a scalar function, as a new function.

    H[i][j] = d2 f / d x_i d x_j over the differentiated arguments (argnums=None: all positional
    arguments). Computed as the Jacobian of the gradient: reverse over reverse, the inner
    gradient built as a graph (the create_graph rules).
    """
    _check_callable(f, "hessian")
    nums, _ = _argnums(argnums, "hessian")

    def hessian_f(*args, **kwargs):
        idx = _resolve(nums, len(args), "hessian")
        return jacobian(grad(f, argnums=idx), argnums=idx)(*args, **kwargs)
    return _named(hessian_f, f, "hessian")
