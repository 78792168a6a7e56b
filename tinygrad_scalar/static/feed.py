"""Feeding a program: which value goes to which input slot, and the batch size of the shapes.

Shared by every backend: the NumPy replay and the torch module check feeds by the same rules
(a slot of one leaf takes a number or shape (B,), a slot of k leaves (k,) or (B, k); every
input has the same leading batch axis), working on shapes only.
"""
from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np

from ..engine import Value
from .tape import TraceError

__all__ = ["bind", "batch_of", "real_array", "seeds"]


def bind(names: Sequence[str], args: tuple, kwargs: dict) -> list:
    """The fed values in slot order, from positional and keyword arguments."""
    if len(args) > len(names):
        raise TypeError(f"this program takes {len(names)} input(s) ({', '.join(names)}), "
                        f"got {len(args)} positional")
    given: list = list(args) + [None] * (len(names) - len(args))
    have = [True] * len(args) + [False] * (len(names) - len(args))
    for k, v in kwargs.items():
        if k not in names:
            raise TypeError(f"unknown input {k!r}; this program's inputs are {list(names)}")
        i = list(names).index(k)
        if have[i]:
            raise TypeError(f"input {k!r} given twice")
        given[i], have[i] = v, True
    missing = [names[i] for i in range(len(names)) if not have[i]]
    if missing:
        raise TypeError(f"missing input(s) {missing}; this program's inputs are {list(names)}")
    return given


def batch_of(names: Sequence[str], sizes: Sequence[int], groups: Sequence[bool],
             shapes: Sequence[tuple]) -> tuple[int, bool]:
    """(batch size, single example?) for inputs of these shapes, or a TraceError that says
    which input has the wrong shape. sizes[s]: leaves in slot s; groups[s]: fed as (k,)."""
    batch, single = None, None
    for name, k, group, shape in zip(names, sizes, groups, shapes):
        nd = len(shape)
        if group:
            if nd == 1 and shape[0] == k:
                is_single, b = True, 1
            elif nd == 2 and shape[1] == k:
                is_single, b = False, shape[0]
            else:
                raise TraceError(f"input {name!r} holds {k} leaves: feed shape ({k},) for "
                                 f"one example or (batch, {k}) for a batch, got shape "
                                 f"{tuple(shape)}")
        else:
            if nd == 0:
                is_single, b = True, 1
            elif nd == 1:
                is_single, b = False, shape[0]
            else:
                raise TraceError(f"input {name!r} is one leaf: feed a number for one "
                                 f"example or shape (batch,) for a batch, got shape "
                                 f"{tuple(shape)}")
        if single is None:
            single = is_single
        elif single != is_single:
            this = "one example" if is_single else "a batch"
            first = "one example" if single else "a batch"
            raise TraceError(f"input {name!r} is fed {this} but {names[0]!r} {first}: "
                             "feed every input with the same leading batch axis (np.full "
                             "repeats a shared value)")
        if batch is None:
            batch = b
        elif b != batch:
            shown = ", ".join(f"{n}: {tuple(s)}" for n, s in zip(names, shapes))
            raise TraceError(f"inputs disagree on the batch size ({shown}): every input "
                             "needs the same leading batch axis")
    if batch is None:
        batch, single = 1, True
    if batch == 0:
        raise TraceError("the batch is empty: feed at least one example")
    return batch, single


def real_array(x: Any, what: str) -> np.ndarray:
    """x as a float array; strings, complex numbers and other non-reals are a TypeError (NumPy
    would parse '1.5' or drop an imaginary part without a word)."""
    if type(x) is np.ndarray and x.dtype == np.float64:  # already so (every compiled step)
        return x
    if type(x) is float:  # a seed
        return np.array(x)
    try:
        raw = np.asarray(x)
    except (TypeError, ValueError):
        raw = None
    if raw is not None and raw.dtype.kind in "biuf":
        return raw.astype(float, copy=False)
    if raw is not None and raw.dtype.kind == "O":
        flat = raw.ravel().tolist()
        if all(isinstance(v, (numbers.Real, Value)) for v in flat):
            return np.array([v.data if isinstance(v, Value) else float(v) for v in flat],
                            dtype=float).reshape(raw.shape)
    raise TypeError(f"{what} must be real numbers, got {type(x).__name__}: {x!r}"[:300])


def seeds(out_items: list, single_out: bool, n_outputs: int, grad_outputs, B: int,
          single: bool) -> list:
    """Per flat output, its seed d loss / d output as a (B,) array (None: left out)."""
    if grad_outputs is None:
        if n_outputs != 1:
            raise TypeError(f"this program has {n_outputs} outputs: pass grad_outputs (one seed "
                            "per output, a number or one per example)")
        return [np.ones(B)]
    items = [grad_outputs] if single_out else list(grad_outputs) \
        if not isinstance(grad_outputs, numbers.Real) else None
    if items is None or len(items) != len(out_items):
        raise TypeError(f"grad_outputs must match the outputs: {len(out_items)} "
                        f"item(s), got {grad_outputs!r}"[:300])
    out = []
    for (start, count, is_group), g in zip(out_items, items):
        if g is None:
            out.extend([None] * count)
            continue
        a = real_array(g, "grad_outputs")  # a None inside was nan, a '0.5' parsed
        if is_group:
            want = [(count,), (B, count)] if B > 1 or not single else [(count,)]
            if a.ndim == 0:
                a = np.full((B, count), float(a))
            elif a.shape == (count,) and single:
                a = a.reshape(1, count)
            elif a.shape != (B, count):
                raise TraceError(f"grad_outputs for a group of {count} outputs must be a "
                                 f"number or shape {(B, count)}, got {a.shape}; {want}")
            out.extend(a[:, c] for c in range(count))
        else:
            if a.ndim == 0:
                a = np.full(B, float(a))
            elif a.shape != (B,):
                raise TraceError(f"grad_outputs entry must be a number or shape ({B},), "
                                 f"got {a.shape}")
            out.append(a)
    if all(x is None for x in out):
        raise TraceError("grad_outputs leaves every output out: seed at least one")
    return out
