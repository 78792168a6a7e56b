"""A compiled Program as a PyTorch module: the same tape, run on tensors by torch's autograd.

`Program.to_torch()` returns a `TorchProgram`: an `nn.Module` whose single parameter vector holds
the program's parameters (in `program.params` order) and whose forward takes the same feeds as
the program (tensors or arrays with a leading batch axis) and returns tensors. It runs the same
vectorised schedule as the NumPy replay (one torch call per group of same-depth operations) and
leaves gradients to torch's autograd, so a model prototyped on the scalar engine can move to a
tensor engine (GPU, torch.optim, torch.compile) when it outgrows this one.

Torch has no domain checks: where the engine raises (log of a negative number, an overflow)
the exported function returns torch's nan or inf. Operations without a torch kernel (custom
operations) run their scalar f and df per element inside a torch.autograd.Function.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import engine

try:
    import torch
except ImportError as e:  # pragma: no cover - exercised only without torch
    raise ImportError("Program.to_torch() needs PyTorch: pip install torch") from e

__all__ = ["TorchProgram"]


def _t_sum(args):
    out = args[0] + 0.0
    for a in args[1:]:
        out = out + a
    return out


_TORCH = {
    engine.ADD: lambda x: x[0] + x[1],
    engine.SUB: lambda x: x[0] - x[1],
    engine.MUL: lambda x: x[0] * x[1],
    engine.DIV: lambda x: x[0] / x[1],
    engine.POW: lambda x: torch.pow(x[0], x[1]),
    engine.NEG: lambda x: -x[0],
    engine.ABS: lambda x: torch.abs(x[0]),
    engine.RELU: lambda x: torch.relu(x[0]),
    engine.TANH: lambda x: torch.tanh(x[0]),
    engine.SIGMOID: lambda x: torch.sigmoid(x[0]),
    engine.EXP: lambda x: torch.exp(x[0]),
    engine.LOG: lambda x: torch.log(x[0]),
    engine.SQRT: lambda x: torch.sqrt(x[0]),
    engine.SIN: lambda x: torch.sin(x[0]),
    engine.COS: lambda x: torch.cos(x[0]),
    engine.SUM: _t_sum,
}


class _PerElement(torch.autograd.Function):
    """An operation without a torch kernel: its scalar f and df from the op table, per element."""

    @staticmethod
    def forward(ctx, op, *args):
        arrays = [a.detach().cpu().numpy().astype(float) for a in args]
        shape = arrays[0].shape
        cols = [a.ravel().tolist() for a in arrays]
        out = np.empty(len(cols[0]))
        locs = [np.empty(len(cols[0])) for _ in args]
        for e, xs in enumerate(zip(*cols)):
            if op.check is not None:
                op.check(*xs)
            o = float(op.f(*xs))
            out[e] = o
            for j, d in enumerate(op.df(*xs, o)):
                locs[j][e] = float(d)
        ref = args[0]
        ctx.save_for_backward(*[torch.as_tensor(loc.reshape(shape), dtype=ref.dtype,
                                                device=ref.device) for loc in locs])
        return torch.as_tensor(out.reshape(shape), dtype=ref.dtype, device=ref.device)

    @staticmethod
    def backward(ctx, g):
        return (None,) + tuple(g * loc for loc in ctx.saved_tensors)


def _per_element(op):
    def run(args):
        shape = torch.broadcast_shapes(*(a.shape for a in args))
        return _PerElement.apply(op, *[a.expand(shape) for a in args])
    return run


class TorchProgram(torch.nn.Module):
    """The program on tensors. `params`: an nn.Parameter vector in program.params order
    (initialised from the Values' current data); `forward(*feeds)`: as Program.forward, with
    tensors out. `load_into_values()` copies the trained vector back into the Values."""

    def __init__(self, program, dtype=None):
        super().__init__()
        dtype = torch.float64 if dtype is None else dtype
        self.program = program
        self.dtype = dtype
        self.params = torch.nn.Parameter(torch.tensor([p.data for p in program.params],
                                                      dtype=dtype).reshape(-1))
        self.register_buffer("frozen", torch.tensor([v.data for v in program.frozen],
                                                    dtype=dtype).reshape(-1))
        S = program._S
        n_state = len(program.params) + len(program.frozen)
        consts = [i for i in program.tape if i.kind == "const"]
        n_const = len(consts)
        self.register_buffer("consts", torch.tensor(S[n_state:n_state + n_const, 0].tolist(),
                                                    dtype=dtype).reshape(-1, 1))
        # blocks of the two row spaces: static (state, consts, static groups) and batched
        # (input leaves, batched groups); a gather is a list of (block, rows) pieces
        self._sblocks = [(0, n_state), (n_state, n_state + n_const)]
        self._bblocks = [(0, program._n_input_leaves)]
        self._steps = []
        for g in program._groups:
            blocks = self._bblocks if g.batched else self._sblocks
            fn = _TORCH.get(g.op) or _per_element(g.op)
            gathers = [(b, self._pieces(idx, self._bblocks if b else self._sblocks))
                       for b, idx in g.gathers]
            self._steps.append((fn, g.batched, len(blocks), gathers))
            blocks.append((g.start, g.stop))
        self._outs = [(program._batched[o], self._pieces(np.array([program._row[o]]),
                                                         self._bblocks if program._batched[o]
                                                         else self._sblocks))
                      for o in program._out_slots]

    @staticmethod
    def _pieces(idx, blocks):
        rows = np.arange(idx.start, idx.stop, idx.step) if isinstance(idx, slice) \
            else np.asarray(idx)
        pieces, order = [], []
        for bid, (lo, hi) in enumerate(blocks):
            mask = (rows >= lo) & (rows < hi)
            if mask.any():
                where = np.flatnonzero(mask)
                pieces.append((bid, torch.as_tensor(rows[where] - lo, dtype=torch.long)))
                order.append(where)
        order = np.concatenate(order)
        perm = None if np.array_equal(order, np.arange(len(rows))) else \
            torch.as_tensor(np.argsort(order), dtype=torch.long)
        return pieces, perm

    @staticmethod
    def _gather(store, spec):
        pieces, perm = spec
        parts = [store[bid].index_select(0, rows) for bid, rows in pieces]
        x = parts[0] if len(parts) == 1 else torch.cat(parts, 0)
        return x if perm is None else x.index_select(0, perm)

    def _tensor(self, x, name):
        if torch.is_tensor(x):
            if x.is_complex() or x.dtype == torch.bool:
                raise TypeError(f"input {name!r} must be a real tensor, got {x.dtype}")
            return x.to(self.dtype)
        from .static import _real_array
        return torch.as_tensor(_real_array(x, f"input {name!r}"), dtype=self.dtype)

    def forward(self, *feeds: Any, **named: Any):
        prog = self.program
        # shapes are checked by the program's own feeding rules (on shapes only)
        shaped = [np.empty(tuple(f.shape)) if torch.is_tensor(f) else f for f in feeds]
        shaped_named = {k: (np.empty(tuple(v.shape)) if torch.is_tensor(v) else v)
                        for k, v in named.items()}
        _, B, single = prog._feed(tuple(shaped), shaped_named)
        given = list(feeds) + [named[n] for n in prog.input_names[len(feeds):]]
        rows = []
        for s, (name, x) in enumerate(zip(prog.input_names, given)):
            t = self._tensor(x, name)
            k = len(prog._slots[s])
            if prog._slot_groups[s]:
                rows.append(t.reshape(-1, k).T)
            else:
                rows.append(t.reshape(1, -1))
        inputs = torch.cat(rows, 0) if rows else torch.zeros((0, B), dtype=self.dtype)
        state = torch.cat([self.params, self.frozen]).reshape(-1, 1)
        sstore, bstore = [state, self.consts], [inputs]
        for fn, batched, _, gathers in self._steps:
            args = [self._gather(bstore if b else sstore, spec) for b, spec in gathers]
            (bstore if batched else sstore).append(fn(args))
        outs = []
        for b, spec in self._outs:
            v = self._gather(bstore if b else sstore, spec)[0]
            outs.append(v if b else v.expand(B))
        res = []
        for start, count, is_group in prog._out_items:
            if is_group:
                t = torch.stack(outs[start:start + count], dim=1)
                res.append(t[0] if single else t)
            else:
                res.append(outs[start][0] if single else outs[start])
        return res[0] if prog._single_out else tuple(res)

    @torch.no_grad()
    def load_into_values(self) -> None:
        """Copy the parameter vector back into the program's parameter Values."""
        for p, v in zip(self.program.params, self.params.detach().cpu().tolist()):
            if not math.isfinite(v):
                raise ValueError(f"parameter {p.label or p!r} would become {v!r}")
            p.data = v
