"""The compiled step (layers as matrix products) against NumPy by hand and jax, in one process.

    .venv/bin/python benchmarks/bench_fused.py [--repeats 7] [--quick] [--blas-threads 1]

(a) micrograd's demo step: MLP(2, [16, 16, 1]), moons points, hinge + 1e-4 * Σ p², backward,
    SGD, at batch 100 and 10,000: micrograd 0.1.0, the engine (Values), the plainest fast design
    with micrograd's semantics (benchmarks/dfs_floor.py: slots, local derivatives, an iterative
    sort from the root) and the global-tape floor (benchmarks/tape_floor.py: no sort) (batch 100
    only: at 10,000 one of their steps takes minutes),
    the compiled step (CompiledStep, exact=False: fused layers, generated code) as fit runs it
    (inside keep_arrays: the parameters stay in an array between steps) and as one call that
    reads and writes the Values, the unfused compiled step, the same step written by hand as
    NumPy matrix products, and jax.jit + vmap of the per-example loss (float64, compile time
    excluded; when jax is installed: `pip install jax jaxlib`).
(b) MLP(64, [64, 32, 10]) (relu, linear output), softmax cross-entropy + 1e-4 L2, SGD, batch 256:
    the same contenders but micrograd, the engine and the floor.
(c) where the compiled step's time goes: the program's forward and backward, the optimizer's
    array step, and the Python work a call that syncs the Values adds (reading the parameters
    out of their Values, writing .grad and .data back).
(d) the compiled step (fit loop) per batch size, 10 ... 100,000 points: time and bytes
    (tracemalloc peak of a step, buffers included) per point.

Timing: contenders run interleaved, medians of `repeats` rounds. micrograd and the engine build
graphs full of reference cycles, so their steps end with gc.collect() (after gc.freeze() of the
long-lived heap); the compiled and NumPy steps build none, and are timed as loops of many steps.
BLAS runs on one thread (--blas-threads): on this shared 2-core machine a threaded product of a
(16, 16) by a (16, 10000) matrix was 5-70x slower than the single-threaded one, for everyone.
"""
from __future__ import annotations

import argparse
import os
import sys

if __name__ == "__main__":  # before NumPy loads: BLAS reads its thread count once
    _a = sys.argv[sys.argv.index("--blas-threads") + 1] if "--blas-threads" in sys.argv else "1"
    os.environ.setdefault("OPENBLAS_NUM_THREADS", _a)
    os.environ.setdefault("OMP_NUM_THREADS", _a)

import gc  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import dfs_floor  # noqa: E402
import tape_floor  # noqa: E402
from peers import NumpyByHand, jax_peer, micrograd_step, need_micrograd, timed  # noqa: E402
from tinygrad_scalar.data import make_moons, signed_labels  # noqa: E402
from tinygrad_scalar.nn import MLP  # noqa: E402
from tinygrad_scalar.optim import SGD  # noqa: E402
from tinygrad_scalar.static_train import CompiledStep  # noqa: E402
from tinygrad_scalar.train import TrainStep  # noqa: E402

LR, ALPHA = 0.01, 1e-4


def loop_time(fn, steps: int) -> float:
    """Seconds per step of `steps` consecutive calls (no garbage of their own to collect)."""
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t) / steps


def steps_for(seconds_per_step: float) -> int:
    return max(3, min(300, int(0.15 / max(seconds_per_step, 1e-6))))


def interleaved(runs: dict, repeats: int) -> dict:
    """Median seconds per step for each contender: name -> (fn, uses cycles?)."""
    for fn, _ in runs.values():
        fn()  # warm up (first calls trace, allocate)
    sizes = {}
    for k, (fn, cyc) in runs.items():
        sizes[k] = 1 if cyc else steps_for(loop_time(fn, 3))
    times: dict = {k: [] for k in runs}
    for _ in range(repeats):
        for k, (fn, cyc) in runs.items():
            times[k].append(timed(fn) if cyc else loop_time(fn, sizes[k]))
    return {k: statistics.median(v) for k, v in times.items()}


def compiled(model: MLP, loss: str, fuse: bool) -> CompiledStep:
    return CompiledStep(model, loss, SGD(model.parameters(), lr=LR), alpha=ALPHA, exact=False,
                        fuse=fuse)


def kept(step: CompiledStep) -> CompiledStep:
    """The step as fit(compiled=True) runs it: inside keep_arrays (the parameters stay in an
    array between steps; the Values get them when the block ends). The block stays open for
    the benchmark's life."""
    block = step.keep_arrays()
    block.__enter__()
    KEPT_OPEN.append(block)  # a context manager that is collected closes its block
    return step


KEPT_OPEN: list = []


def contenders(model_fn, loss: str, X, y) -> dict:
    """The compiled step three ways and NumPy by hand: name -> (step function, uses cycles?)."""
    fit_loop = kept(compiled(model_fn(), loss, True))
    per_call = compiled(model_fn(), loss, True)
    plain = compiled(model_fn(), loss, False)
    hand = NumpyByHand(model_fn(), loss)
    return {"compiled (fit loop)": (lambda: fit_loop(X, y), False),
            "compiled (per call)": (lambda: per_call(X, y), False),
            "compiled unfused": (lambda: plain(X, y), False),
            "NumPy by hand": (lambda: hand(X, y), False)}


def moons(n: int):
    X, y01 = make_moons(n, noise=0.1, seed=1)
    return X, [float(v) for v in signed_labels(y01)]


def bench_moons(repeats: int) -> dict:
    MV, MMLP = need_micrograd()
    out = {}
    for B in (100, 10_000):
        X, y = moons(B)
        Xa, ya = np.array(X), np.array(y)
        runs = contenders(lambda: MLP(2, [16, 16, 1], seed=1337), "hinge", Xa, ya)
        jax_step = jax_peer(MLP(2, [16, 16, 1], seed=1337), "hinge", Xa, ya)
        if jax_step is not None:
            runs["jax.jit + vmap"] = (jax_step, False)
        if B <= 100:
            random.seed(1337)
            theirs = MMLP(2, [16, 16, 1])
            eng = MLP(2, [16, 16, 1], seed=1337)
            eng_step = TrainStep(eng, "hinge", SGD(eng.parameters(), lr=LR), alpha=ALPHA)
            floor = tape_floor.MLP(2, [16, 16, 1], seed=1337)
            plain_dfs = dfs_floor.MLP(2, [16, 16, 1], seed=1337)
            runs = {"micrograd 0.1.0": (lambda: micrograd_step(MV, theirs, X, y, LR, ALPHA),
                                        True),
                    "engine (Values)": (lambda: eng_step(X, y), True),
                    "DFS floor": (lambda: dfs_floor.step(plain_dfs, X, y, LR, ALPHA), True),
                    "tape floor": (lambda: tape_floor.step(floor, X, y, LR, ALPHA), True),
                    **runs}
        gc.collect()
        gc.freeze()
        out[B] = interleaved(runs, repeats)
        gc.unfreeze()
    return out


def digits_like(B: int):
    rng = np.random.default_rng(0)
    return rng.uniform(0.0, 1.0, size=(B, 64)), rng.integers(0, 10, size=B)


def bench_digits(repeats: int) -> dict:
    X, y = digits_like(256)
    runs = contenders(lambda: MLP(64, [64, 32, 10], seed=7), "cross_entropy", X, y)
    jax_step = jax_peer(MLP(64, [64, 32, 10], seed=7), "cross_entropy", X, y)
    if jax_step is not None:
        runs["jax.jit + vmap"] = (jax_step, False)
    return interleaved(runs, repeats)


def breakdown(repeats: int) -> dict:
    """The fused step's parts, each timed alone (medians of loops)."""
    out = {}
    for name, model, loss, (X, y) in (
            ("moons, batch 100", MLP(2, [16, 16, 1], seed=1337), "hinge", moons(100)),
            ("64-64-32-10, batch 256", MLP(64, [64, 32, 10], seed=7), "cross_entropy",
             digits_like(256))):
        step = compiled(model, loss, True)
        X, y = np.asarray(X, float), np.asarray(y, float)
        step(X, y)
        prog, params, opt = step.program, step.params, step.optimizer
        T = step._targets(y)
        state = prog.last_state()
        P = state[:len(params)]
        G = prog.backward((1.0, 0.0), write=False).params
        loop = kept(compiled(type(model)(model.nin, [n.nout for n in model.layers], seed=1),
                             loss, True))
        loop(X, y)

        def write():
            for p, g, d in zip(params, G.tolist(), P.tolist()):
                p.grad = g
                p.data = d

        parts = {"whole step (fit loop)": lambda: loop(X, y),
                 "whole step (per call)": lambda: step(X, y),
                 "program forward": lambda: prog.forward_with(state, X, T),
                 "forward + backward": lambda: (prog.forward_with(state, X, T),
                                                prog.backward((1.0, 0.0), write=False)),
                 "optimizer.step_array": lambda: opt.step_array(P, G),
                 "read params from Values": lambda: np.fromiter((p.data for p in params),
                                                                float, len(params)),
                 "write .grad, .data": write}
        med = {k: statistics.median(loop_time(f, 50) for _ in range(repeats))
               for k, f in parts.items()}
        out[name] = (len(params), med)
    return out


def scaling(sizes=(10, 100, 1000, 10_000, 100_000)) -> dict:
    out = {}
    for B in sizes:
        X, y = moons(B)
        Xa, ya = np.array(X), np.array(y)
        step = kept(compiled(MLP(2, [16, 16, 1], seed=1337), "hinge", True))
        step._verify = False  # verify re-runs examples on the engine: not part of a step
        tracemalloc.start()
        step(Xa, ya)  # the first step at this size allocates its buffers
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        t = statistics.median(loop_time(lambda: step(Xa, ya), steps_for(loop_time(
            lambda: step(Xa, ya), 2))) for _ in range(3))
        out[B] = (t, peak)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="3 repeats")
    ap.add_argument("--blas-threads", default="1", help="OPENBLAS_NUM_THREADS (default 1)")
    args = ap.parse_args()
    reps = 3 if args.quick else args.repeats
    print(f"Python {sys.version.split()[0]}, NumPy {np.__version__}, BLAS threads "
          f"{os.environ.get('OPENBLAS_NUM_THREADS')}, medians of {reps} interleaved rounds\n")
    a = bench_moons(reps)
    for B, med in a.items():
        hand = med["NumPy by hand"]
        print(f"(a) micrograd's demo step, MLP(2,[16,16,1]), hinge + 1e-4 L2, SGD, batch {B}")
        for k, t in med.items():
            vs = f"{t / hand:7.2f}x NumPy by hand"
            mg = (f", {med['micrograd 0.1.0'] / t:8.0f}x faster than micrograd"
                  if "micrograd 0.1.0" in med else "")
            print(f"    {k:20s} {t * 1e3:10.3f} ms/step  {vs}{mg}")
        target = 2.0 if B == 100 else 1.5
        r = med["compiled (fit loop)"] / hand
        print(f"    compiled (fit loop) / by hand = {r:.2f} (target <= {target}); "
              f"{med['compiled unfused'] / med['compiled (fit loop)']:.1f}x faster than "
              "unfused\n")
    d = bench_digits(reps)
    print("(b) MLP(64,[64,32,10]), softmax cross-entropy + 1e-4 L2, SGD, batch 256")
    for k, t in d.items():
        print(f"    {k:20s} {t * 1e3:10.3f} ms/step  {t / d['NumPy by hand']:7.2f}x NumPy by hand")
    print(f"    compiled (fit loop) / by hand = "
          f"{d['compiled (fit loop)'] / d['NumPy by hand']:.2f} (target <= 2); "
          f"{d['compiled unfused'] / d['compiled (fit loop)']:.1f}x faster than unfused\n")
    print("(c) where the fused step's time goes (each part timed alone)")
    for name, (n, med) in breakdown(reps).items():
        print(f"    {name} ({n} parameters):")
        for k, t in med.items():
            print(f"      {k:26s} {t * 1e6:9.1f} us  "
                  f"({t / med['whole step (per call)'] * 100:5.1f}% of a call)")
    print("\n(d) fused compiled moons step per batch size (forward, backward, L2, SGD)")
    sc = scaling()
    for B, (t, peak) in sc.items():
        print(f"    batch {B:7d}: {t * 1e3:9.3f} ms/step  {t / B * 1e6:8.3f} us/point  "
              f"{peak / B:10.0f} bytes/point (first step's tracemalloc peak)")


if __name__ == "__main__":
    main()
