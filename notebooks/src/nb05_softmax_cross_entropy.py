# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
#   make_notebooks:
#     file: 05_softmax_cross_entropy.ipynb
# ---

# %% [markdown]
# # 5. Softmax and cross-entropy
#
# Notebook 4 classified two classes with one score and its sign. With $K$ classes, a
# network outputs $K$ scores $z_1, \dots, z_K$ (the **logits**), one per class, and we want
#
# 1. to turn them into **probabilities** (softmax),
# 2. to measure how much probability the right class gets (**cross-entropy**),
# 3. the **gradient** of that loss with respect to the logits, where backprop starts.
#
# The gradient turns out to be remarkably simple, $p - y$. We derive it twice, check it
# against the engine and finite differences, and then train a network on a 3-class
# spiral with the **Adam** optimiser.

# %%
# %matplotlib inline
import math

import numpy as np
from matplotlib.figure import Figure

from tinygrad_scalar import Value
from tinygrad_scalar import data, losses, optim
from tinygrad_scalar.nn import MLP
from tinygrad_scalar.plot import plot_decision_boundary
from tinygrad_scalar.teach import check_answer
from tinygrad_scalar.train import evaluate, fit

# %% [markdown]
# ## 1. Softmax: from scores to probabilities
#
# Exponentiate (everything becomes positive, and a larger score a larger number), then
# normalise (everything adds up to 1):
#
# $$p_i = \operatorname{softmax}(z)_i = \frac{e^{z_i}}{\sum_{j=1}^{K} e^{z_j}}.$$
#
# Adding the same constant $c$ to every logit changes nothing, since $e^{z_i + c} = e^c
# e^{z_i}$ and $e^c$ cancels. Only **differences** of logits matter.

# %%
z = [2.0, 1.0, 0.1]
p = losses.softmax(z)
print("p =", [round(pi.data, 4) for pi in p], " sum =", sum(pi.data for pi in p))

shifted = losses.softmax([zi + 100 for zi in z])
assert all(math.isclose(a.data, b.data, rel_tol=1e-12) for a, b in zip(p, shifted))

# %% [markdown]
# The shift invariance is also what makes softmax safe to compute. Written literally,
# $e^{1000}$ overflows a float (the engine refuses rather than return `inf`). Subtracting
# the largest logit $m$ first keeps every exponent $\le 0$, and the result is the same:
# $p_i = e^{z_i - m} / \sum_j e^{z_j - m}$. The library's `softmax` and `cross_entropy`
# do this.

# %%
big = [Value(1000.0), Value(1001.0), Value(1002.0)]
try:
    naive = [zi.exp() / Value.sum([zj.exp() for zj in big]) for zi in big]
except OverflowError as e:
    print("naive softmax:", e)
print("stable softmax:", [round(pi.data, 4) for pi in losses.softmax(big)])

# %% [markdown]
# ## 2. Cross-entropy: the loss
#
# If the correct class is $t$, the model should give it a high probability. The
# **cross-entropy** loss is the negative log of that probability:
#
# $$L = -\log p_t = -z_t + \log \sum_{j} e^{z_j}.$$
#
# It is 0 when $p_t = 1$ and grows without bound as $p_t \to 0$. (It is the cross-entropy
# $-\sum_i y_i \log p_i$ between the one-hot target $y$, with $y_t = 1$, and $p$; over a
# data set it is the negative log-likelihood of the labels.) The second form,
# $\log\sum_j e^{z_j} - z_t$ (**log-sum-exp** minus the correct logit), never forms $p$ at
# all and is what `losses.cross_entropy` computes, shifted by the largest logit.

# %%
logits = [Value(2.0, "z0"), Value(1.0, "z1"), Value(0.1, "z2")]
target = 0
L = losses.cross_entropy(logits, target)
p = [pi.data for pi in losses.softmax(logits)]
print(f"L = {L.data:.6f}   -log p_t = {-math.log(p[target]):.6f}")
assert math.isclose(L.data, -math.log(p[target]), rel_tol=1e-12)

# %% [markdown]
# ## 3. The gradient: $\partial L / \partial z_i = p_i - [i = t]$
#
# **Route 1, from log-sum-exp.** Differentiate the two terms of
# $L = \log \sum_j e^{z_j} - z_t$ separately. The first, by the chain rule:
#
# $$\frac{\partial}{\partial z_i} \log \sum_j e^{z_j}
# = \frac{1}{\sum_j e^{z_j}} \cdot e^{z_i} = p_i .$$
#
# The second, $-z_t$, has derivative $-1$ for $i = t$ and $0$ otherwise. Writing
# $[i = t]$ for 1 if $i = t$ and 0 otherwise (the one-hot vector $y$):
#
# $$\boxed{\ \frac{\partial L}{\partial z_i} = p_i - [i = t]\ }
# \qquad\text{or, as vectors,}\qquad \nabla_z L = p - y .$$
#
# **Route 2, through the softmax.** The quotient rule on $p_i = e^{z_i} / S$ with
# $S = \sum_j e^{z_j}$, and $\partial S / \partial z_j = e^{z_j}$, gives the softmax
# Jacobian:
#
# $$\frac{\partial p_i}{\partial z_j}
# = \frac{[i = j]\, e^{z_i} S - e^{z_i} e^{z_j}}{S^2}
# = p_i \bigl([i = j] - p_j\bigr).$$
#
# Then $L = -\log p_t$ gives
# $\frac{\partial L}{\partial z_j} = -\frac{1}{p_t} \frac{\partial p_t}{\partial z_j}
# = -\bigl([t = j] - p_j\bigr) = p_j - [j = t]$, the same answer.
#
# What it says: the correct logit is pushed **up** by $1 - p_t$ (a lot when the model is
# wrong, hardly at all when it is confidently right), and every other logit is pushed
# **down** by its own probability. The components add up to $\sum_i p_i - 1 = 0$, as the
# shift invariance demands, and each lies in $(-1, 1)$, whatever the logits.

# %% [markdown]
# ### Checking it against the engine
#
# `backward()` knows nothing of this formula: it multiplies the local derivatives of the
# `exp`, `sum`, `log` and `-` nodes that `cross_entropy` recorded. Compare, and also
# compare with central finite differences
# $\bigl(L(z + h e_i) - L(z - h e_i)\bigr) / 2h$:

# %%
L.backward()
engine = [zi.grad for zi in logits]
formula = [p[i] - (1.0 if i == target else 0.0) for i in range(3)]

def ce(zs):
    return losses.cross_entropy(zs, target).data

h = 1e-6
zs = [zi.data for zi in logits]
numeric = [(ce(zs[:i] + [zs[i] + h] + zs[i + 1:]) - ce(zs[:i] + [zs[i] - h] + zs[i + 1:])) / (2 * h)
           for i in range(3)]
for i in range(3):
    print(f"dL/dz{i}: engine {engine[i]:+.10f}   p - y {formula[i]:+.10f}   "
          f"finite differences {numeric[i]:+.10f}")
    assert math.isclose(engine[i], formula[i], rel_tol=1e-12, abs_tol=1e-15)
    assert math.isclose(engine[i], numeric[i], rel_tol=1e-6, abs_tol=1e-9)
print("sum of the gradient:", sum(engine))

# %% [markdown]
# A larger test: random logits, every class as the target, and also the naive graph
# $-\log(\operatorname{softmax}(z)_t)$ built from divisions, whose backward pass takes the
# long route 2 through the Jacobian. All three agree:

# %%
rng = np.random.default_rng(0)
worst = 0.0
for trial in range(50):
    k = int(rng.integers(2, 8))
    zs = rng.normal(0, 3, size=k).tolist()
    t = int(rng.integers(k))
    a = [Value(v) for v in zs]
    losses.cross_entropy(a, t).backward()
    b = [Value(v) for v in zs]
    S = Value.sum([bi.exp() for bi in b])
    (-(b[t].exp() / S).log()).backward()
    e = np.exp(np.array(zs) - max(zs))
    pt = e / e.sum()
    expected = pt - np.eye(k)[t]
    worst = max(worst, np.abs(np.array([ai.grad for ai in a]) - expected).max(),
                np.abs(np.array([bi.grad for bi in b]) - expected).max())
print(f"largest difference from p - y over 50 cases: {worst:.1e}")
assert worst < 1e-12

# %% [markdown]
# ### A batch
#
# Over a batch of $N$ samples the loss is the **mean**
# $\frac1N \sum_n L^{(n)}$, so each sample's logits get $\frac1N (p^{(n)} - y^{(n)})$.

# %%
batch = [[Value(v) for v in row] for row in ([0.5, -1.0, 2.0], [1.0, 1.0, 1.0], [3.0, 0.0, -2.0])]
targets = [2, 0, 1]
losses.cross_entropy(batch, targets).backward()
for row, t in zip(batch, targets):
    p_row = [q.data for q in losses.softmax([v.data for v in row])]
    expected = [(p_row[i] - (i == t)) / len(batch) for i in range(3)]
    print([round(v.grad, 6) for v in row], " (p - y)/N:", [round(g, 6) for g in expected])
    assert all(math.isclose(v.grad, g, rel_tol=1e-12, abs_tol=1e-15) for v, g in zip(row, expected))

# %% [markdown]
# ### Exercise 1: the softmax Jacobian
#
# For the logits $z = (2, 1, 0.1)$ above (probabilities in `p`), use
# $\partial p_i / \partial z_j = p_i([i = j] - p_j)$ to give $\partial p_0 / \partial z_2$
# and $\partial p_1 / \partial z_1$ as numbers computed from `p`.

# %%
# answer
dp0_dz2 = -p[0] * p[2]
dp1_dz1 = p[1] * (1 - p[1])

# %%
def softmax_grad(i, j):
    zs = [Value(v) for v in (2.0, 1.0, 0.1)]
    losses.softmax(zs)[i].backward()
    return zs[j].grad

check_answer("dp0/dz2", dp0_dz2, softmax_grad(0, 2))
check_answer("dp1/dz1", dp1_dz1, softmax_grad(1, 1))
print(f"correct: dp0/dz2 = {dp0_dz2:.6f}, dp1/dz1 = {dp1_dz1:.6f}")

# %% [markdown]
# ### Exercise 2: a model that knows nothing
#
# A freshly initialised classifier often gives all $K$ classes about the same logit.
# With $K = 5$ equal logits and target class 3: what is the loss, and what is its
# gradient with respect to the logits? (This is a useful sanity check when training
# starts: a first loss far from this value means something is off.)

# %%
K = 5
# answer
uniform_loss = math.log(K)
uniform_grad = [1 / K - (1.0 if i == 3 else 0.0) for i in range(K)]

# %%
zs = [Value(0.7) for _ in range(K)]
loss = losses.cross_entropy(zs, 3)
loss.backward()
check_answer("uniform_loss", uniform_loss, loss.data)
check_answer("uniform_grad", uniform_grad, [v.grad for v in zs])
print(f"correct: loss = log {K} = {loss.data:.6f}, gradient {[round(v.grad, 2) for v in zs]}")

# %% [markdown]
# ## 4. A three-class spiral
#
# 150 points on three interleaved spiral arms. A network with 3 outputs, one logit per
# class, predicts the class with the largest logit.

# %%
X, y = data.make_spiral(150, n_classes=3, noise=0.2, seed=1337)
pts = np.array(X)
colors = np.array(["#1f77b4", "#d62728", "#2ca02c"])
fig = Figure(figsize=(4.5, 4.2), layout="constrained")
ax = fig.subplots()
ax.scatter(pts[:, 0], pts[:, 1], c=colors[y], s=22, edgecolors="k", linewidths=0.5)
ax.set_aspect("equal")
fig

# %% [markdown]
# ### Adam
#
# Plain (stochastic) gradient descent takes the same step size $\eta$ in every direction.
# **Adam** keeps, for each parameter, running averages of its gradient $g$ and of $g^2$,
# and divides one by the square root of the other:
#
# $$m \leftarrow \beta_1 m + (1 - \beta_1)\, g, \qquad
# v \leftarrow \beta_2 v + (1 - \beta_2)\, g^2, \qquad
# p \leftarrow p - \eta\, \frac{\hat m}{\sqrt{\hat v} + \epsilon},$$
#
# with $\hat m = m / (1 - \beta_1^t)$ and $\hat v = v / (1 - \beta_2^t)$ at step $t$
# correcting for $m$ and $v$ starting at zero ($\beta_1 = 0.9$, $\beta_2 = 0.999$,
# $\epsilon = 10^{-8}$). The step is about $\eta$ in size whatever the scale of the
# gradient: parameters with tiny gradients move as readily as those with large ones, and
# a gradient that keeps changing sign (noise) averages out in $m$.
#
# We train `MLP(2, [16, 16, 3])` with the mean cross-entropy on **minibatches** of 30
# points (each step sees a different random fifth of the data: *stochastic* gradients),
# 30 epochs of 5 steps. `fit` runs the loop of notebook 4: forward, loss, `zero_grad`,
# `backward`, `step`.

# %%
model = MLP(2, [16, 16, 3], seed=1337)
adam = fit(model, X, y, "cross_entropy", optim.Adam(model.parameters(), lr=0.05),
           epochs=30, batch_size=30, seed=1337, quiet=True)
loss, acc = evaluate(model, X, y, "cross_entropy")
print(f"Adam: {adam.steps} steps, cross-entropy {loss:.4f}, accuracy {acc:.1%}")
assert acc >= 0.95

# %% [markdown]
# For comparison, plain SGD with the same minibatches and number of steps, with
# learning rate 0.5:

# %%
sgd_model = MLP(2, [16, 16, 3], seed=1337)
sgd = fit(sgd_model, X, y, "cross_entropy", optim.SGD(sgd_model.parameters(), lr=0.5),
          epochs=30, batch_size=30, seed=1337, quiet=True)
sgd_loss, sgd_acc = evaluate(sgd_model, X, y, "cross_entropy")
print(f"SGD:  {sgd.steps} steps, cross-entropy {sgd_loss:.4f}, accuracy {sgd_acc:.1%}")

fig = Figure(figsize=(6, 3.5), layout="constrained")
ax = fig.subplots()
epoch_ends = [5 * (e + 1) - 1 for e in range(30)]
for hist, name, color in ((adam, "Adam, lr 0.05", "C0"), (sgd, "SGD, lr 0.5", "C1")):
    ax.plot(hist.loss, color=color, lw=0.8, alpha=0.4)
    ax.plot(epoch_ends, hist.epoch_loss, color=color, lw=2, label=f"{name} (epoch mean)")
ax.axhline(math.log(3), color="grey", ls=":", label="log 3 (uniform guess)")
ax.set_yscale("log")
ax.set_xlabel("step (minibatch of 30)")
ax.set_ylabel("cross-entropy")
ax.legend()
ax.grid(alpha=0.3)
fig

# %% [markdown]
# Both curves start near $\log 3$, the loss of a uniform guess (exercise 2). The Adam
# curve falls much faster and further. The thin lines are the losses of single
# minibatches, noisy because every step sees different points; the thick ones are the
# means over each epoch. The learned regions follow the arms:

# %%
plot_decision_boundary(model, X, y, title="spiral: MLP(2, [16, 16, 3]), Adam")

# %% [markdown]
# ### Exercise 3: Adam's first step
#
# At the first step ($t = 1$), $m = (1 - \beta_1) g$ and $v = (1 - \beta_2) g^2$, so the
# bias corrections give $\hat m = g$ and $\hat v = g^2$. Write `adam_first_step(g, lr)`:
# how much a parameter with gradient `g` changes in Adam's first step. (What does it
# mean that this hardly depends on $|g|$?)

# %%
# answer
def adam_first_step(g, lr, eps=1e-8):
    return -lr * g / (abs(g) + eps)

# %%
net = MLP(2, [4, 3], seed=7)
params = net.parameters()
opt = optim.Adam(params, lr=0.01)
opt.zero_grad()
losses.cross_entropy([net(x) for x in X[:10]], y[:10]).backward()
before = [p.data for p in params]
grads = [p.grad for p in params]
opt.step()
for p, b, g in zip(params, before, grads):
    check_answer(f"adam_first_step({g:.6g}, 0.01)", adam_first_step(g, 0.01), p.data - b,
                 abs_tol=1e-15)
print("correct: every parameter moved by about 0.01 against the sign of its gradient")

# %% [markdown]
# ## Summary
#
# - Softmax turns logits into probabilities, $p_i = e^{z_i} / \sum_j e^{z_j}$; adding a
#   constant to every logit changes nothing, which lets us subtract the largest one and
#   never overflow.
# - Cross-entropy is $L = -\log p_t = \log\sum_j e^{z_j} - z_t$, and its gradient is
#   $\partial L / \partial z_i = p_i - [i = t]$: the engine, finite differences and both
#   derivations agree. Over a batch, each sample's share is divided by $N$.
# - Adam scales each parameter's step by a running estimate of its gradient's size, and
#   trains the spiral network in a few seconds.
