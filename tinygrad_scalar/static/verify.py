"""Checking a traced program against the engine on real examples.

`verify` re-runs the traced function with the engine on a few examples and compares the graph
it builds (structure and constants: a difference means Python control flow read the data and
was frozen at trace time), then the outputs and parameter gradients with the replay's.
"""
from __future__ import annotations

import math
import numbers
from typing import Optional

import numpy as np

from ..engine import Value
from .tape import Tape, TraceError, joined

__all__ = ["verify", "rel_err", "first_difference"]


def rel_err(got, want) -> float:
    """max |got - want| / max(|want|, tiny), nan-aware (nan on both sides agrees)."""
    got, want = np.asarray(got, float), np.asarray(want, float)
    if got.shape != want.shape:
        return math.inf
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    if same.all():
        return 0.0
    with np.errstate(all="ignore"):
        err = np.abs(got - want) / np.maximum(np.abs(want), np.finfo(float).tiny)
    err = np.where(same, 0.0, err)
    err = np.where(np.isnan(err), math.inf, err)
    return float(err.max())


def first_difference(a: Tape, b: Tape) -> Optional[str]:
    """Where two tapes differ (an instruction, the length, the outputs), or None."""
    for x, y in zip(a.instrs, b.instrs):
        same_const = x.kind != "const" or (x.value == y.value or (x.value != x.value and
                                                                   y.value != y.value))
        if x.kind != y.kind or x.op is not y.op or x.args != y.args or not same_const:
            return f"instruction %{x.index}: traced `{x}`, now `{y}`"
    if len(a.instrs) != len(b.instrs):
        return (f"the length of the tape: traced {len(a.instrs)} instructions, now "
                f"{len(b.instrs)}")
    if a.out_slots != b.out_slots:
        return f"the outputs: traced {a.out_slots}, now {b.out_slots}"
    return None


def verify(program, arrays: list, B: int, single: bool, samples: int, rtol: float) -> dict:
    """See Program.verify."""
    if program.function is None:
        raise TraceError("verify re-runs the traced function: only programs made by "
                         "trace(fn, ...) keep one (Program.from_graph has no function)")
    if isinstance(samples, bool) or not isinstance(samples, numbers.Integral) or samples < 1:
        raise ValueError(f"samples must be a positive int, got {samples!r}")
    picks = sorted(set(int(round(x)) for x in np.linspace(0, B - 1, min(samples, B))))
    saved = [p.grad for p in program.params]
    worst = 0.0
    try:
        for b in picks:
            example = [a if single else a[b] for a in arrays]
            worst = max(worst, _verify_one(program, b, example, rtol))
    finally:
        for p, g in zip(program.params, saved):
            p.grad = g
    return {"examples": picks, "max_rel_err": worst}


def _verify_one(program, b: int, example: list, rtol: float) -> float:
    tape = program.plan.tape
    ph = []
    for s, (name, a) in enumerate(zip(tape.input_names, example)):
        if tape.slot_groups[s]:
            ph.append([Value(float(x), f"{name}[{i}]") for i, x in enumerate(a)])
        else:
            ph.append(Value(float(a), name))
    out = program.function(*ph)
    try:
        other = Tape(out, ph, tape.params, tape.frozen, tape.input_names, allow_unused=True)
    except TraceError as e:
        raise TraceError(f"example {b}: the function built a different graph than at trace "
                         f"time ({e}). Python control flow that reads .data is frozen "
                         "when tracing") from None
    diff = first_difference(tape, other)
    if diff is not None:
        raise TraceError(f"example {b}: the graph differs from the traced one at {diff}. "
                         "Python control flow that read .data (an if on .data, a max "
                         "over .data, a data-dependent constant or loop length) was frozen "
                         "at trace time, as under jax.jit: write it branch-free (relu, abs, "
                         "arithmetic) or keep this part on the engine")
    # values and gradients: the engine's backward against this program's replay
    flat = other.outputs
    root = joined(flat)
    for p in tape.params:
        p.grad = 0.0
    root.backward()
    want_g = np.array([p.grad for p in tape.params])
    want_v = np.array([o.data for o in flat])
    got = program.forward(*example)
    got_v = np.concatenate([np.atleast_1d(np.asarray(x, float)) for x in
                            (got if not tape.single_out else (got,))])
    seeds = None if len(flat) == 1 else [
        (1.0 if not is_group else np.ones(count)) for _, count, is_group in tape.out_items]
    got_g = program.backward(seeds, write=False).params
    worst = 0.0
    for what, w, g in (("outputs", want_v, got_v), ("parameter gradients", want_g, got_g)):
        err = rel_err(g, w)
        if err > rtol:
            k = int(np.nanargmax(np.where(np.isnan(g) == np.isnan(w), np.abs(g - w), np.inf)))
            raise TraceError(f"example {b}: replayed {what} differ from the engine's "
                             f"(relative error {err:.3g} > {rtol:g}; entry {k}: replay "
                             f"{g[k]!r}, engine {w[k]!r})")
        worst = max(worst, err)
    return worst
