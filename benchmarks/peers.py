"""What both benchmark scripts share: micrograd (installed on demand), its demo step, a timer."""
from __future__ import annotations

import gc
import subprocess
import sys
import time

import numpy as np


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


class NumpyByHand:
    """An MLP's training step written directly with matrices (relu hidden layers, linear
    output), loss 'hinge' (labels ±1, one output) or 'cross_entropy' (class indices)."""

    def __init__(self, model, loss: str = "hinge", lr: float = 0.01, alpha: float = 1e-4):
        self.layers = [(np.array([[p.data for p in n.w] for n in layer.neurons]),
                        np.array([n.b.data for n in layer.neurons])) for layer in model.layers]
        self.loss, self.lr, self.alpha = loss, lr, alpha

    def __call__(self, X, y):
        acts, h = [X], X
        last = len(self.layers) - 1
        for i, (W, b) in enumerate(self.layers):
            z = h @ W.T + b
            h = np.maximum(z, 0.0) if i < last else z
            acts.append(h)
        B = len(y)
        if self.loss == "hinge":
            margin = 1.0 - y * h[:, 0]
            data = np.maximum(margin, 0.0).mean()
            g = np.where(margin > 0.0, -y, 0.0)[:, None] / B
        else:
            m = h.max(axis=1, keepdims=True)
            e = np.exp(h - m)
            s = e.sum(axis=1, keepdims=True)
            rows = np.arange(B)
            data = (np.log(s[:, 0]) + m[:, 0] - h[rows, y]).mean()
            g = e / s
            g[rows, y] -= 1.0
            g /= B
        loss = data + self.alpha * sum((W * W).sum() + (b * b).sum() for W, b in self.layers)
        for i in range(last, -1, -1):
            W, b = self.layers[i]
            gW, gb = g.T @ acts[i] + 2 * self.alpha * W, g.sum(0) + 2 * self.alpha * b
            if i:
                g = (g @ W) * (acts[i] > 0.0)
            W -= self.lr * gW
            b -= self.lr * gb
        return loss
