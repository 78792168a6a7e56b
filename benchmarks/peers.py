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


def jax_peer(model, loss: str, X, y, lr: float = 0.01, alpha: float = 1e-4):
    """One training step of the same network in JAX: the per-example loss vmapped over the batch,
    value_and_grad and the SGD update under one jax.jit, in float64; returns a function that
    runs one step (compiled by a first call here, so compile time is excluded), or None when
    jax is not installed (`pip install jax jaxlib`)."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    layers = [(jnp.asarray(W), jnp.asarray(b)) for W, b in NumpyByHand(model, loss).layers]
    last = len(layers) - 1

    def example(ps, x, t):
        h = x
        for i, (W, b) in enumerate(ps):
            z = W @ h + b
            h = jnp.maximum(z, 0.0) if i < last else z
        if loss == "hinge":
            return jnp.maximum(1.0 - t * h[0], 0.0)
        m = jnp.max(h)
        return m + jnp.log(jnp.sum(jnp.exp(h - m))) - h[t]

    def total(ps, Xb, Tb):
        data = jnp.mean(jax.vmap(example, in_axes=(None, 0, 0))(ps, Xb, Tb))
        return data + alpha * sum(jnp.sum(W * W) + jnp.sum(b * b) for W, b in ps)

    @jax.jit
    def step(ps, Xb, Tb):
        value, g = jax.value_and_grad(total)(ps, Xb, Tb)
        return value, [(W - lr * gW, b - lr * gb) for (W, b), (gW, gb) in zip(ps, g)]

    Xj = jnp.asarray(np.asarray(X, dtype=float))
    Tj = jnp.asarray(np.asarray(y, dtype=float) if loss == "hinge" else np.asarray(y, dtype=int))
    state = [layers]

    def run():
        value, state[0] = step(state[0], Xj, Tj)
        value.block_until_ready()
        return value

    run()
    return run
