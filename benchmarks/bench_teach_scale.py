"""How the teaching tools scale (issue 13 §5, issue 16 §2); prints sizes, times, peak memory and
the growth factor from one size to the next (2x the size: about 2x is linear, 4x quadratic).

    .venv/bin/python benchmarks/bench_teach_scale.py [--quick]

(a) backprop_frames on a chain y = y * c of growing depth, built with max_frames=None and
    max_nodes=None (no rendering): peak memory (tracemalloc) and time. Frames keep per-step
    changes only (the narration's own numbers), so memory grows linearly.
(b) backprop_frames on a 100,000-deep chain with the defaults: refused by max_frames before any
    per-step work (how long the refusal takes).
(c) mode_costs of a chain of sums s = x0 + x1 + ... (the k-th partial sum depends on k inputs):
    peak memory and time at growing input counts. Inputs are taken in blocks of bits, so memory
    is linear in nodes plus inputs (the time still grows with inputs x nodes / block).
(d) the frames player of MLP(2,[8,8,1]) on one input (121 frames): HTML size and time (needs
    Graphviz's dot; one picture plus the per-frame changes).

Machines are shared and noisy: read the growth factors, not absolute times.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinygrad_scalar import Value  # noqa: E402
from tinygrad_scalar.teach import backprop_frames, mode_costs  # noqa: E402


def chain(depth: int) -> Value:
    y = Value(0.5, "x")
    for _ in range(depth):
        y = y * 1.0001
    return y


def sums(n: int) -> tuple:
    xs = [Value(float(i), f"x{i}") for i in range(n)]
    s = xs[0]
    for x in xs[1:]:
        s = s + x
    return s, xs


def measure(fn) -> tuple:
    """(seconds, peak bytes): timed once without tracing, then traced once."""
    t = time.perf_counter()
    fn()
    seconds = time.perf_counter() - t
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak


def table(title: str, unit: str, rows: list) -> None:
    print(f"\n{title}")
    print(f"{unit:>10}  {'time s':>8}  {'peak MB':>8}  {'memory growth':>13}  {'time growth':>11}")
    prev = None
    for size, seconds, peak in rows:
        mg = f"{peak / prev[2]:.2f}x" if prev else ""
        tg = f"{seconds / prev[1]:.2f}x" if prev else ""
        print(f"{size:>10,}  {seconds:8.3f}  {peak / 1e6:8.2f}  {mg:>13}  {tg:>11}")
        prev = (size, seconds, peak)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes")
    args = ap.parse_args()
    depths = [500, 1000, 2000] if args.quick else [1000, 2000, 4000, 8000]
    rows = []
    for d in depths:
        y = chain(d)
        s, p = measure(lambda: backprop_frames(y, max_frames=None, max_nodes=None))
        rows.append((d, s, p))
    table("(a) backprop_frames of a chain (no rendering)", "depth", rows)

    y = chain(100_000)
    t = time.perf_counter()
    try:
        backprop_frames(y)
        outcome = "built (unexpected)"
    except ValueError as e:
        outcome = f"refused: {str(e)[:70]}..."
    print(f"\n(b) 100,000-deep chain, defaults: {outcome} in {time.perf_counter() - t:.2f} s")

    counts = [1000, 2000, 4000] if args.quick else [2500, 5000, 10000, 20000]
    rows = []
    for n in counts:
        s, xs = sums(n)
        sec, p = measure(lambda: mode_costs(s, xs))
        rows.append((n, sec, p))
    table("(c) mode_costs of a chain of sums", "inputs", rows)

    if shutil.which("dot") is None:
        print("\n(d) skipped: Graphviz's dot is not installed")
        return
    from tinygrad_scalar.nn import MLP
    out = MLP(2, [8, 8, 1], seed=0)([0.5, -0.3])
    t = time.perf_counter()
    frames = backprop_frames(out, max_nodes=None)
    page = frames.to_html()
    print(f"\n(d) player of MLP(2,[8,8,1]): {len(frames)} frames, "
          f"{len(page.encode()) / 1e6:.2f} MB of HTML, {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main()
