"""The compiled (static graph) training step against micrograd, in one process, interleaved.

    .venv/bin/python benchmarks/bench_static.py [--repeats 9] [--quick]

(a) micrograd's demo step: MLP(2, [16, 16, 1]) on 100 moons points, SVM hinge loss
    relu(1 - y * score) averaged + 1e-4 * Σ p², backward, SGD update p -= lr * p.grad, for
    micrograd 0.1.0 (installed with pip if missing), for this engine's own step (Values per
    example, train.TrainStep) and for the compiled step (static_train.CompiledStep: one traced
    example, replayed over the batch with NumPy). Every step ends with gc.collect(): micrograd's
    graph is full of reference cycles and is only freed by the cyclic collector, so freeing it is
    part of its step. The long-lived heap (modules, models) is frozen first (gc.freeze()), so a
    collection walks only what the step left behind; the same ratio without the freeze (every
    collection also walks ~25,000 long-lived objects, ~3 ms here) is printed too.
    micrograd gets the points as Python floats (its fastest input), the compiled step a NumPy
    array. A hand-written NumPy version of the same step (matrix products, no graph) is timed as
    the ceiling of what NumPy can do here.
(b) the compiled step's time per step for batches of 10 ... 10,000 points (forward, backward,
    update): the cost grows far slower than the batch until memory traffic dominates.
(c) Program.to_torch() on a chain of 1,000 ... 20,000 operations: building the module is linear
    in depth (the growth factor per 10x depth is printed; quadratic would be 100x).
(d) batch 100,000 through the NumPy replay and through the torch export (forward + backward
    of the demo network's summed hinge loss, CPU), when torch is installed.

Machines are shared and noisy: read the ratios measured in the same run, not absolute times.
"""
from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
from pathlib import Path
from typing import Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import NumpyByHand, micrograd_step, need_micrograd, timed  # noqa: E402
from tinygrad_scalar.data import make_moons, signed_labels  # noqa: E402
from tinygrad_scalar.nn import MLP  # noqa: E402
from tinygrad_scalar.optim import SGD  # noqa: E402
from tinygrad_scalar.static_train import CompiledStep  # noqa: E402
from tinygrad_scalar.train import TrainStep  # noqa: E402

LR, ALPHA = 0.01, 1e-4


def demo_setup():
    """micrograd's demo data and net, and our compiled step on the same data."""
    MV, MMLP = need_micrograd()
    X, y01 = make_moons(100, noise=0.1, seed=1)
    y = [float(v) for v in signed_labels(y01)]
    Xa, ya = np.array(X), np.array(y)
    random.seed(1337)
    theirs = MMLP(2, [16, 16, 1])
    comp = MLP(2, [16, 16, 1], seed=1337)
    comp_step = CompiledStep(comp, "hinge", SGD(comp.parameters(), lr=LR), alpha=ALPHA)
    comp_step(Xa, ya)  # the first call traces-checks (verify) and allocates buffers
    return MV, theirs, X, y, Xa, ya, comp_step


def bench_demo_step(repeats: int) -> dict:
    MV, theirs, X, y, Xa, ya, comp_step = demo_setup()
    eng = MLP(2, [16, 16, 1], seed=1337)
    eng_step = TrainStep(eng, "hinge", SGD(eng.parameters(), lr=LR), alpha=ALPHA)
    by_hand = NumpyByHand(MLP(2, [16, 16, 1], seed=1337))
    runs = {"micrograd": lambda: micrograd_step(MV, theirs, X, y, LR, ALPHA),
            "engine": lambda: eng_step(X, y),
            "compiled": lambda: comp_step(Xa, ya),
            "numpy_by_hand": lambda: by_hand(Xa, ya)}
    runs["bare gc.collect()"] = lambda: None
    gc.collect()
    out = {}
    for frozen in (False, True):  # the plain heap first, then with the long-lived part frozen
        if frozen:
            gc.freeze()
        times = {k: [] for k in runs}
        for _ in range(repeats):  # interleaved, so every contender sees the same machine load
            for k, fn in runs.items():
                times[k].append(timed(fn))
        med = {k: statistics.median(v) for k, v in times.items()}
        tag = "" if frozen else "_nofreeze"
        for k, v in med.items():
            out[f"{k}_s{tag}"] = v
        out[f"ratio_compiled_vs_micrograd{tag}"] = med["micrograd"] / med["compiled"]
        out[f"ratio_engine_vs_micrograd{tag}"] = med["micrograd"] / med["engine"]
        out[f"ratio_compiled_vs_engine{tag}"] = med["engine"] / med["compiled"]
        out[f"ratio_numpy_by_hand_vs_compiled{tag}"] = med["compiled"] / med["numpy_by_hand"]
    return out


def bench_natural(repeats: int) -> dict:
    """The same steps as a training loop runs them: no gc.collect() of our own, automatic
    collection on (it frees micrograd's cycles as they pile up), K consecutive steps timed
    together so the collections it triggers are amortised over them."""
    import time
    MV, theirs, X, y, Xa, ya, comp_step = demo_setup()
    blocks = {"micrograd": (lambda: micrograd_step(MV, theirs, X, y, LR, ALPHA), 5),
              "compiled": (lambda: comp_step(Xa, ya), 500)}
    gc.collect()
    times = {k: [] for k in blocks}
    for _ in range(repeats):
        for k, (fn, steps) in blocks.items():
            t = time.perf_counter()
            for _ in range(steps):
                fn()
            times[k].append((time.perf_counter() - t) / steps)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"micrograd_s": med["micrograd"], "compiled_s": med["compiled"],
            "ratio": med["micrograd"] / med["compiled"]}


def bench_batches(repeats: int, sizes=(10, 100, 1000, 10000)) -> dict:
    out = {}
    for n in sizes:
        X, y01 = make_moons(n, noise=0.1, seed=2)
        Xa, ya = np.array(X), np.array(signed_labels(y01), float)
        model = MLP(2, [16, 16, 1], seed=1337)
        step = CompiledStep(model, "hinge", SGD(model.parameters(), lr=LR), alpha=ALPHA,
                            verify=False)
        step(Xa, ya)
        reps = repeats if n <= 1000 else max(3, repeats // 2)
        out[n] = statistics.median(timed(lambda: step(Xa, ya)) for _ in range(reps))
    return out


def bench_to_torch(depths=(1000, 2000, 10000, 20000), paused: bool = False) -> dict:
    """Build times; paused=True with CPython's automatic collection off (its full collections
    walk the whole growing heap, which is what makes the gc-on times grow faster than 10x)."""
    import time

    from tinygrad_scalar.static import trace

    def chain(n):
        def f(x):
            for _ in range(n):
                x = (x * 0.999).tanh() + 0.001
            return x
        return trace(f, 0.5)
    chain(2).to_torch()  # imports and first-call set-up
    out = {}
    for n in depths:
        prog = chain(n)
        gc.collect()
        if paused:
            gc.disable()
        try:
            t = time.perf_counter()
            prog.to_torch()
            out[n] = time.perf_counter() - t
        finally:
            gc.enable()
    return out


def bench_torch_batch(repeats: int, n: int = 100_000) -> Optional[dict]:
    try:
        import torch
    except ImportError:
        return None
    from tinygrad_scalar.static import trace
    X, y01 = make_moons(n, noise=0.1, seed=5)
    Xa, ya = np.array(X), np.array(signed_labels(y01), float)
    model = MLP(2, [16, 16, 1], seed=1337)
    prog = trace(lambda x, t: (1.0 - t * model(x)).relu(), [0.0, 0.0], 1.0,
                 params=model.parameters())
    tp = prog.to_torch()
    tX, ty = torch.tensor(Xa), torch.tensor(ya)

    def replay():
        prog(Xa, ya)
        prog.backward(write=False)

    def torch_step():
        tp.params.grad = None
        tp(tX, ty).sum().backward()
    reps = max(3, repeats // 3)
    return {"numpy": statistics.median(timed(replay) for _ in range(reps)),
            "torch": statistics.median(timed(torch_step) for _ in range(reps))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--quick", action="store_true", help="3 repeats")
    args = ap.parse_args()
    reps = 3 if args.quick else args.repeats
    print(f"Python {sys.version.split()[0]}, NumPy {np.__version__}, medians of {reps} "
          "interleaved repeats\n")
    a = bench_demo_step(reps)
    print("(a) micrograd's demo step: MLP(2,[16,16,1]), 100 moons points, hinge + 1e-4 L2, SGD,"
          " gc.collect() after every step (long-lived heap frozen)")
    for k, name in (("micrograd", "micrograd 0.1.0"), ("engine", "engine (Values per example)"),
                    ("compiled", "compiled (traced once, NumPy replay)"),
                    ("numpy_by_hand", "NumPy by hand (matmuls, no graph)")):
        print(f"    {name:40s} {a[k + '_s'] * 1e3:10.3f} ms/step")
    print(f"    compiled vs micrograd: {a['ratio_compiled_vs_micrograd']:.0f}x faster "
          f"(target >= 250x); engine vs micrograd: {a['ratio_engine_vs_micrograd']:.1f}x; "
          f"compiled vs engine: {a['ratio_compiled_vs_engine']:.0f}x; NumPy by hand is "
          f"{a['ratio_numpy_by_hand_vs_compiled']:.1f}x faster than compiled")
    print(f"    a bare gc.collect() costs {a['bare gc.collect()_s'] * 1e3:.3f} ms with the heap "
          f"frozen, {a['bare gc.collect()_s_nofreeze'] * 1e3:.3f} ms without")
    print(f"    without gc.freeze() (every step also pays the bare collection): compiled vs "
          f"micrograd {a['ratio_compiled_vs_micrograd_nofreeze']:.0f}x (compiled "
          f"{a['compiled_s_nofreeze'] * 1e3:.3f} ms, micrograd "
          f"{a['micrograd_s_nofreeze'] * 1e3:.1f} ms per step)")
    n = bench_natural(max(3, reps // 3))
    print(f"    as a training loop runs (automatic gc only, consecutive steps): compiled vs "
          f"micrograd {n['ratio']:.0f}x (compiled {n['compiled_s'] * 1e3:.3f} ms, micrograd "
          f"{n['micrograd_s'] * 1e3:.1f} ms per step)")
    b = bench_batches(reps)
    print("\n(b) compiled step (forward + backward + SGD + gc.collect) per batch size")
    base = b[min(b)]
    for n, t in b.items():
        print(f"    batch {n:6d}: {t * 1e3:9.3f} ms/step   ({t / base:6.1f}x the time of "
              f"batch {min(b)} for {n // min(b)}x the points; {t / n * 1e6:8.2f} us/point)")
    try:
        import torch  # noqa: F401
    except ImportError:
        print("\n(c), (d): torch is not installed")
        return
    for paused in (False, True):
        c = bench_to_torch(paused=paused)
        print(f"\n(c) Program.to_torch() build time by chain depth (automatic gc "
              f"{'paused' if paused else 'on'})")
        for n, t in c.items():
            print(f"    depth {n:6d}: {t * 1e3:9.1f} ms   ({t / n * 1e6:6.1f} us per operation)")
        print(f"    growth for 10x the depth: {c[10000] / c[1000]:.1f}x (1k -> 10k), "
              f"{c[20000] / c[2000]:.1f}x (2k -> 20k); linear is 10x, quadratic 100x")
    d = bench_torch_batch(reps)
    print("\n(d) batch 100,000, forward + backward of the summed hinge loss")
    print(f"    NumPy replay (exact):  {d['numpy'] * 1e3:9.1f} ms")
    print(f"    torch export (CPU):    {d['torch'] * 1e3:9.1f} ms")


if __name__ == "__main__":
    main()
