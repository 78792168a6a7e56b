"""The writer the code generator (static.codegen) writes its source with: names and views.

Generated code reads the run's buffers through views bound once per run (a per-run tuple the
sweeps unpack), index arrays and rules through named constants, and scratch arrays made once
per run. `Writer` hands out those names, one per distinct expression (so a view used by several
groups is one name), readable where it can (`v3`, `w0`, `input8_0`), and collects the lines of
the forward and backward sweeps; `slice_source` and `strided` turn plan indices into source.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from numpy.lib.stride_tricks import as_strided

__all__ = ["Writer", "slice_source", "strided"]


def slice_source(s: slice) -> str:
    """A slice as source, one spelling per slice (so one view gets one name)."""
    return f"{s.start}:{s.stop}:{1 if s.step is None else s.step}"


def strided(idx, m: int, n: int) -> Optional[tuple]:
    """(base, row step, column step) when flat indices idx (row-major for an (m, n) matrix) are
    base + r * rs + i * cs, so the matrix is a view of the buffer (a step may be negative:
    every entry it addresses is one of idx, inside the buffer); else None."""
    idx = np.asarray(idx, dtype=np.intp).reshape(m, n)
    base = int(idx[0, 0])
    rs = int(idx[1, 0] - base) if m > 1 else 0
    cs = int(idx[0, 1] - base) if n > 1 else 0
    want = base + rs * np.arange(m)[:, None] + cs * np.arange(n)[None, :]
    return (base, rs, cs) if np.array_equal(idx, want) else None


class Writer:
    """Source lines, the constants they name and the per-run views they read."""

    def __init__(self, names: dict):
        #: name -> object, the generated code's globals (index arrays, rules, helpers)
        self.consts: dict = {"np": np, "as_strided": as_strided, **names}
        self.views: list = []  # (name, expression over V, S, S0, P1, P3, Gb, Gf, T)
        self._view_of: dict = {}
        self._taken: set = {"R", "C", "inputs", "X", "W", "o", "gX"}
        self.fwd: list = []
        self.bwd: list = []

    def const(self, obj, stem: str = "k") -> str:
        name = f"{stem}{len(self.consts)}"
        self.consts[name] = obj
        return name

    def _name(self, hint: Optional[str]) -> str:
        if hint is None or hint in self._taken:
            hint = f"r{len(self.views)}"
        self._taken.add(hint)
        return hint

    def view(self, expr: str, hint: Optional[str] = None) -> str:
        """The name of a view (or array) bound once per run; the same expression, the same
        name. hint: a readable name (v3: group 3's values; x0, w0, z0, b0: layer 0's
        inputs, weights, rows and biases; dw0, db0: their gradients; input8_0, param8_0,
        const8_0: argument 0 of group 8 when it is fed, a parameter or a constant)."""
        name = self._view_of.get(expr)
        if name is None:
            name = self._view_of[expr] = self._name(hint)
            self.views.append((name, expr))
        return name

    def buffer(self, expr: str, hint: Optional[str] = None) -> str:
        """A per-run scratch array (never shared: two buffers of one shape are two arrays)."""
        name = self._name(hint)
        self.views.append((name, expr))
        return name

    def index(self, idx) -> str:
        """An index (slice or array) as source: a slice literal, or a named constant."""
        return slice_source(idx) if isinstance(idx, slice) else self.const(idx)

    def matrix(self, buf: str, idx, m: int, n: int, hint: Optional[str] = None,
               scratch: bool = True) -> tuple[Optional[str], Optional[str]]:
        """A view of buf's flat entries idx as an (m, n) matrix, when they are evenly spaced,
        and None or, when a step is negative (BLAS takes no such matrix: NumPy's own loop is
        several times slower) and scratch is asked for, a contiguous (m, n) buffer to go
        through; (None, None) when they are not evenly spaced."""
        st = strided(idx, m, n)
        if st is None:
            return None, None
        base, rs, cs = st
        if scratch and (rs < 0 or cs < 0):
            view = self._view(buf, base, rs, cs, m, n, None if hint is None else hint + "_rows")
            return view, self.buffer(f"np.empty(({m}, {n}))", hint)
        return self._view(buf, base, rs, cs, m, n, hint), None

    def _view(self, buf: str, base: int, rs: int, cs: int, m: int, n: int,
              hint: Optional[str]) -> str:
        if m * n == 1:
            return self.view(f"{buf}[{base}:{base + 1}].reshape(1, 1)", hint)
        return self.view(f"as_strided({buf}[{base}:], ({m}, {n}), ({rs} * {buf}.strides[0], "
                         f"{cs} * {buf}.strides[0]))", hint)
