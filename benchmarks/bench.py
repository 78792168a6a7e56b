"""tinygrad_scalar against micrograd, in one process, interleaved; prints medians and ratios.

    .venv/bin/python benchmarks/bench.py [--repeats 7] [--quick] [--step-only]

(a) micrograd's demo training step: MLP(2,[16,16,1]) on 100 moons points, SVM hinge loss + 1e-4 L2,
    forward + backward + SGD update + freeing the graph; next to it the same step on a minimal
    global-tape engine (benchmarks/tape_floor.py: the floor a graph walk is measured against).
    micrograd's graph is full of reference
    cycles (each node's backward closure refers to the node), so it is only freed by the cyclic
    garbage collector: each step therefore ends with gc.collect() for both engines.
(b) a deep chain y = y * c: time per node (build + backward) at 1e4 and 1e6 nodes (long-lived
    heap frozen with gc.freeze(), so the collection after each run walks only the run's objects).
(c) bytes per node of a 200,000-node graph (tracemalloc), for the MLP graph and for the chain.
(d) the public Value.sum of 17 Values (a neuron's sum) against the engine's node builder nary.

Machines are shared and noisy: read the ratios measured in the same run, not absolute times.
"""
from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import tape_floor  # noqa: E402
from peers import micrograd_step, need_micrograd, timed  # noqa: E402
from tinygrad_scalar import Value  # noqa: E402
from tinygrad_scalar.data import make_moons, signed_labels  # noqa: E402
from tinygrad_scalar.losses import hinge, l2  # noqa: E402
from tinygrad_scalar.nn import MLP  # noqa: E402
from tinygrad_scalar.optim import SGD  # noqa: E402


# -- (a) the demo step ------------------------------------------------------------------------

def ours_step(model, opt, X, y):
    scores = [model(x) for x in X]
    total = hinge(scores, y) + l2(model.parameters(), 1e-4)
    opt.zero_grad()
    total.backward()
    opt.step()
    return total.data


def bench_demo_step(repeats: int) -> dict:
    MV, MMLP = need_micrograd()
    X, y = make_moons(100, noise=0.1, seed=1)
    y = signed_labels(y)  # hinge loss wants labels -1/+1, as in micrograd's demo
    random.seed(1337)
    theirs = MMLP(2, [16, 16, 1])
    ours = MLP(2, [16, 16, 1], seed=1337)
    opt = SGD(ours.parameters(), lr=0.01)
    floor = tape_floor.MLP(2, [16, 16, 1], seed=1337)
    tm, to, tt = [], [], []
    for _ in range(repeats):  # interleaved, so all see the same machine load
        tm.append(timed(lambda: micrograd_step(MV, theirs, X, y, 0.01)))
        to.append(timed(lambda: ours_step(ours, opt, X, y)))
        tt.append(timed(lambda: tape_floor.step(floor, X, y, 0.01)))
    m, o, t = statistics.median(tm), statistics.median(to), statistics.median(tt)
    return {"micrograd_s": m, "ours_s": o, "ratio": m / o, "tape_s": t, "tape_ratio": m / t}


# -- (b) a deep chain -------------------------------------------------------------------------

def chain(V, n: int):
    x, c = V(1.0), V(1.0000001)
    y = x
    for _ in range(n):
        y = y * c
    y.backward()
    return x


def bench_chain(repeats: int) -> dict:
    MV, _ = need_micrograd()
    out = {}
    # freeze the long-lived heap, so that the collection after each run walks only what the run
    # made: otherwise a fixed ~5 ms walk of every module object inflates the small chain's time
    gc.collect()
    gc.freeze()
    for n in (10_000, 1_000_000):
        reps = repeats if n <= 10_000 else max(3, repeats // 2)
        out[f"ours_per_node_ns_{n}"] = statistics.median(
            timed(lambda: chain(Value, n)) for _ in range(reps)) / n * 1e9
        # the same with CPython's automatic collection paused: the engine's own scaling, apart
        # from the collector's passes over a heap of a million tracked objects
        gc.disable()
        try:
            out[f"ours_nogc_per_node_ns_{n}"] = statistics.median(
                timed(lambda: chain(Value, n)) for _ in range(reps)) / n * 1e9
        finally:
            gc.enable()
    # micrograd's backward is recursive: find how deep it gets at the default recursion limit
    depth_ok = 0
    for n in (100, 200, 300, 400, 500, 1000, 10_000):
        try:
            chain(MV, n)
            depth_ok = n
        except RecursionError:
            break
    out["micrograd_max_chain_at_default_limit"] = depth_ok
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)
    try:
        out["micrograd_per_node_ns_10000"] = statistics.median(
            timed(lambda: chain(MV, 10_000)) for _ in range(repeats)) / 10_000 * 1e9
    finally:
        sys.setrecursionlimit(limit)
    gc.unfreeze()
    out["ours_1e6_over_1e4"] = out["ours_per_node_ns_1000000"] / out["ours_per_node_ns_10000"]
    out["ours_nogc_1e6_over_1e4"] = (out["ours_nogc_per_node_ns_1000000"]
                                     / out["ours_nogc_per_node_ns_10000"])
    out["chain_ratio_1e4"] = out["micrograd_per_node_ns_10000"] / out["ours_per_node_ns_10000"]
    return out


# -- (c) memory ---------------------------------------------------------------------------------

def count_nodes(root) -> int:
    seen, stack = set(), [root]
    while stack:
        v = stack.pop()
        if id(v) in seen:
            continue
        seen.add(id(v))
        stack.extend(v._prev)
    return len(seen)


def bytes_per_node(build) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    root, keep = build()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    n = count_nodes(root)
    del root, keep
    return (after - before) / n, n


def bench_memory() -> dict:
    MV, MMLP = need_micrograd()
    X, y = make_moons(600, noise=0.1, seed=2)
    random.seed(0)
    theirs, ours = MMLP(2, [16, 16, 1]), MLP(2, [16, 16, 1], seed=0)

    def mlp_graph(V, model, points):
        def build():
            scores = [model([V(a), V(b)]) for a, b in points]
            root = scores[0]
            for s in scores[1:]:
                root = root + s
            return root, scores
        return build

    def chain_graph(V, n=200_000):
        def build():
            c = V(1.0000001)
            y = V(1.0)
            for _ in range(n):
                y = y * c
            return y, c
        return build

    # about 200,000 nodes: micrograd's MLP graph has 1+2 nodes per weight, ours one product
    # node per weight plus a sum per neuron; pick the number of points to land near 200k each
    out = {}
    for name, build in [("micrograd_mlp", mlp_graph(MV, theirs, X[:310])),
                        ("ours_mlp", mlp_graph(Value, ours, X[:536])),
                        ("micrograd_chain", chain_graph(MV)),
                        ("ours_chain", chain_graph(Value))]:
        b, n = bytes_per_node(build)
        out[name + "_bytes_per_node"] = b
        out[name + "_nodes"] = n
    return out


def bench_sum(repeats: int) -> dict:
    """Value.sum (public, checks its arguments) against engine.nary (no checks): per call."""
    import timeit
    from tinygrad_scalar.engine import SUM, nary
    vs = tuple(Value(float(i)) for i in range(17))
    n = 20_000
    pub, raw = [], []
    for _ in range(repeats):  # interleaved
        pub.append(timeit.timeit(lambda: Value.sum(vs), number=n) / n)
        raw.append(timeit.timeit(lambda: nary(SUM, vs), number=n) / n)
    p, r = statistics.median(pub), statistics.median(raw)
    return {"sum_ns": p * 1e9, "nary_ns": r * 1e9, "ratio": p / r}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="3 repeats")
    ap.add_argument("--step-only", action="store_true", help="only (a), the demo step")
    args = ap.parse_args()
    reps = 3 if args.quick else args.repeats
    print(f"Python {sys.version.split()[0]}, medians of {reps} interleaved repeats\n")
    a = bench_demo_step(reps)
    print("(a) micrograd demo step, MLP(2,[16,16,1]), 100 moons points, hinge + L2, SGD, "
          "graph freed")
    print(f"    micrograd {a['micrograd_s'] * 1e3:8.1f} ms   tinygrad_scalar "
          f"{a['ours_s'] * 1e3:7.1f} ms   ratio {a['ratio']:.1f}x faster")
    print(f"    reference floor, a minimal global-tape engine (benchmarks/tape_floor.py, no graph "
          f"walk): {a['tape_s'] * 1e3:.1f} ms   ratio {a['tape_ratio']:.1f}x")
    if args.step_only:
        return
    b = bench_chain(reps)
    print("(b) deep chain y = y * c, build + backward, time per node")
    print(f"    tinygrad_scalar: {b['ours_per_node_ns_10000']:.0f} ns at 1e4, "
          f"{b['ours_per_node_ns_1000000']:.0f} ns at 1e6 "
          f"(1e6/1e4 = {b['ours_1e6_over_1e4']:.2f}); with automatic gc paused "
          f"{b['ours_nogc_per_node_ns_10000']:.0f} and {b['ours_nogc_per_node_ns_1000000']:.0f} ns "
          f"(1e6/1e4 = {b['ours_nogc_1e6_over_1e4']:.2f})")
    print(f"    micrograd: {b['micrograd_per_node_ns_10000']:.0f} ns at 1e4 (recursion limit "
          f"raised; at the default limit its backward fails beyond "
          f"~{b['micrograd_max_chain_at_default_limit']} nodes); ratio at 1e4 "
          f"{b['chain_ratio_1e4']:.1f}x")
    c = bench_memory()
    print("(c) bytes per node (tracemalloc), graphs of about 200,000 nodes")
    for kind in ("mlp", "chain"):
        print(f"    {kind:5s}: micrograd {c[f'micrograd_{kind}_bytes_per_node']:6.0f} "
              f"({c[f'micrograd_{kind}_nodes']} nodes)   tinygrad_scalar "
              f"{c[f'ours_{kind}_bytes_per_node']:6.0f} ({c[f'ours_{kind}_nodes']} nodes)")
    d = bench_sum(reps)
    print("(d) Value.sum of 17 Values against the node builder engine.nary, per call")
    print(f"    Value.sum {d['sum_ns']:.0f} ns   nary {d['nary_ns']:.0f} ns   "
          f"ratio {d['ratio']:.2f}")


if __name__ == "__main__":
    main()
