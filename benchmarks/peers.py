"""What both benchmark scripts share: micrograd (installed on demand), its demo step, a timer."""
from __future__ import annotations

import gc
import subprocess
import sys
import time


def need_micrograd():
    """micrograd 0.1.0's Value and MLP, installed into this environment when missing."""
    try:
        import micrograd  # noqa: F401  (installed?)
    except ImportError:
        print("installing micrograd==0.1.0 into this environment for the comparison")
        subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "micrograd==0.1.0"])
    from micrograd import engine, nn
    return engine.Value, nn.MLP


def timed(fn) -> float:
    """Seconds for fn() plus freeing what it left: micrograd's graph needs the cyclic collector."""
    t = time.perf_counter()
    fn()
    gc.collect()
    return time.perf_counter() - t


def micrograd_step(MV, model, X, y, lr: float, alpha: float = 1e-4) -> float:
    """micrograd's demo training step, as its README demo writes it."""
    inputs = [[MV(a), MV(b)] for a, b in X]
    scores = [model(x) for x in inputs]
    losses = [(1 + -yi * si).relu() for yi, si in zip(y, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = alpha * sum((p * p for p in model.parameters()))
    total = data_loss + reg_loss
    model.zero_grad()
    total.backward()
    for p in model.parameters():
        p.data -= lr * p.grad
    return total.data
