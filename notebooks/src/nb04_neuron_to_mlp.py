# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
#   make_notebooks:
#     file: 04_neuron_to_mlp.ipynb
# ---

# %% [markdown]
# # 4. From a neuron to an MLP
#
# Notebooks 1 to 3 differentiated small formulas. A neural network is also a formula,
# only a bigger one, made of one repeated piece: the **neuron**. In this notebook we
#
# 1. build a neuron from `Value`s and meet its two classic activations, **sigmoid** and
#    **tanh**, with their derivatives;
# 2. watch backpropagation run through a single neuron, one frame per step;
# 3. put neurons side by side (a **layer**) and layers one after another (an **MLP**);
# 4. train an MLP to separate two interleaved half moons with the **hinge loss** and
#    **gradient descent** (the `SGD` optimiser), and look at its loss curve and decision
#    boundary.
#
# Every gradient below comes from the engine's `backward()`; the exercises check your
# derivations against it.

# %%
# %matplotlib inline
import math

import numpy as np
from IPython.display import display
from matplotlib.figure import Figure

from tinygrad_scalar import Value, topological_order
from tinygrad_scalar import data, losses, optim
from tinygrad_scalar.nn import MLP, Layer, Neuron
from tinygrad_scalar.plot import plot_decision_boundary, plot_loss
from tinygrad_scalar.teach import backprop_frames, check_answer
from tinygrad_scalar.viz import draw_dot

# %% [markdown]
# ## 1. A neuron
#
# A neuron with inputs $x_1, \dots, x_n$ has one **weight** $w_i$ per input and a **bias**
# $b$. It computes a weighted sum, the *pre-activation* $z$, and passes it through a fixed
# non-linear function $\varphi$, the *activation*:
#
# $$z = \sum_{i} w_i x_i + b, \qquad a = \varphi(z).$$
#
# The weights say how much each input matters, the bias shifts the threshold. With
# `Value`s this is a few lines, and the engine records the graph as it goes.

# %%
x0, x1 = Value(2.0, "x0"), Value(0.0, "x1")
w0, w1 = Value(-3.0, "w0"), Value(1.0, "w1")
b = Value(6.8813735870195432, "b")

p0 = w0 * x0;                 p0.label = "w0*x0"
p1 = w1 * x1;                 p1.label = "w1*x1"
z = Value.sum([p0, p1, b]);   z.label = "z"
a = z.tanh();                 a.label = "a"
print(f"z = {z.data:.6f}   a = tanh(z) = {a.data:.6f}")
draw_dot(a, show_grad=False)

# %% [markdown]
# (The bias is chosen so that $a = 1/\sqrt 2$: then $1 - a^2 = \tfrac12$, a round number
# for the gradients below.) The sum is a single node $\Sigma$ with three inputs, as in
# the usual picture of a neuron.
#
# `nn.Neuron` builds exactly this graph and keeps the weights for us. Its parameters start
# random (uniform in $(-1, 1)$, bias 0); here we overwrite them with the numbers above.

# %%
neuron = Neuron(2, activation="tanh", seed=0)
neuron.w[0].data, neuron.w[1].data, neuron.b.data = -3.0, 1.0, 6.8813735870195432
out = neuron([2.0, 0.0])
print(neuron, "parameters:", [p.label for p in neuron.parameters()])
print("same output:", out.data, "==", a.data)
assert out.data == a.data

# %% [markdown]
# ## 2. Two activations: sigmoid and tanh
#
# Without $\varphi$, stacking neurons would only ever give a linear function of the input.
# The two classic choices squash $z$ into a bounded range:
#
# $$\sigma(z) = \frac{1}{1 + e^{-z}} \in (0, 1), \qquad
# \tanh(z) = \frac{e^{z} - e^{-z}}{e^{z} + e^{-z}} \in (-1, 1).$$
#
# Their derivatives are expressed through their own outputs, which is why backprop can
# compute them cheaply from the forward pass. For the sigmoid, by the chain rule on
# $(1 + e^{-z})^{-1}$:
#
# $$\sigma'(z) = \frac{e^{-z}}{(1 + e^{-z})^2}
# = \underbrace{\frac{1}{1 + e^{-z}}}_{\sigma(z)}\;
#   \underbrace{\frac{e^{-z}}{1 + e^{-z}}}_{1 - \sigma(z)}
# = \sigma(z)\,\bigl(1 - \sigma(z)\bigr).$$
#
# For tanh, the quotient rule gives
# $\tanh'(z) = \frac{(e^z + e^{-z})^2 - (e^z - e^{-z})^2}{(e^z + e^{-z})^2} = 1 - \tanh^2(z)$.
# Both derivatives are largest at $z = 0$ ($\tfrac14$ and $1$) and vanish for large
# $|z|$: a *saturated* neuron passes almost no gradient back.

# %%
zs = np.linspace(-5, 5, 201)
sig = 1 / (1 + np.exp(-zs))
fig = Figure(figsize=(9, 3.2), layout="constrained")
ax1, ax2 = fig.subplots(1, 2)
ax1.plot(zs, sig, label=r"$\sigma(z)$")
ax1.plot(zs, sig * (1 - sig), "--", label=r"$\sigma'(z) = \sigma(1-\sigma)$")
ax2.plot(zs, np.tanh(zs), label=r"$\tanh(z)$")
ax2.plot(zs, 1 - np.tanh(zs) ** 2, "--", label=r"$\tanh'(z) = 1-\tanh^2$")
for ax in (ax1, ax2):
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("z")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
fig

# %% [markdown]
# The engine stores exactly these local derivatives on the edge from $z$ to $a$ when it
# computes the forward pass. A check over a range of $z$:

# %%
for zv in np.linspace(-4, 4, 17):
    s, t = Value(zv).sigmoid(), Value(zv).tanh()
    assert math.isclose(s._local[0], s.data * (1 - s.data), rel_tol=1e-12)
    assert math.isclose(t._local[0], 1 - t.data ** 2, rel_tol=1e-12, abs_tol=1e-15)
print("sigmoid and tanh local derivatives match their closed forms")

# %% [markdown]
# ## 3. Backpropagation through one neuron
#
# Run `backward()` from the neuron's output. By the chain rule, with $a = \tanh(z)$ and
# $z = w_0 x_0 + w_1 x_1 + b$:
#
# $$\frac{\partial a}{\partial w_i} = \bigl(1 - a^2\bigr)\,x_i, \qquad
# \frac{\partial a}{\partial x_i} = \bigl(1 - a^2\bigr)\,w_i, \qquad
# \frac{\partial a}{\partial b} = 1 - a^2 .$$
#
# Here $1 - a^2 = \tfrac12$, so $\partial a/\partial w_0 = \tfrac12 \cdot 2 = 1$ and
# $\partial a/\partial w_1 = \tfrac12 \cdot 0 = 0$: a weight whose input is zero gets no
# gradient, because changing it changes nothing. The edges carry the local derivatives.

# %%
a.backward()
for v in (w0, w1, b, x0, x1):
    print(f"da/d{v.label} = {v.grad:+.4f}")
draw_dot(a, edge_labels=True)

# %% [markdown]
# The same backward pass as a flip book: one frame per step, in reverse topological
# order. In each frame the node being processed and the edges its gradient flows along
# are red; every gradient is shown as it stands after the step. There are four steps:
# the tanh, the sum (which copies its gradient to all three inputs, local derivative 1),
# and the two products (each passes the gradient times the *other* factor).
#
# (In Jupyter, `backprop_frames(a)` as the last line of a cell shows the same frames in a
# small player with previous / play / next buttons. Here they are shown one below the
# other, so that they also appear where the notebook is only viewed.)

# %%
frames = backprop_frames(a, precision=3)
for i, caption in enumerate(frames.captions()):
    print(caption)
    display(frames.picture(i))   # scaled to the column

# %% [markdown]
# ### Exercise 1: a sigmoid neuron
#
# Give the neuron a sigmoid instead: $a = \sigma(z)$ with the same inputs and weights.
# Using $\sigma' = \sigma(1 - \sigma)$, write the gradients of $a$ with respect to $w_0$,
# $w_1$ and $b$ as numbers computed from `s` ($=\sigma(z)$, a float) and the inputs.
# The next cell compares them with the engine.

# %%
sig_neuron = Neuron(2, activation="sigmoid", seed=0)
sig_neuron.w[0].data, sig_neuron.w[1].data, sig_neuron.b.data = -3.0, 1.0, 6.8813735870195432
a_sig = sig_neuron([2.0, 0.0])
s = a_sig.data

# answer: d a / d w0, d a / d w1, d a / d b
answer_w0 = s * (1 - s) * 2.0
answer_w1 = s * (1 - s) * 0.0
answer_b = s * (1 - s)

# %%
a_sig.backward()
w0_, w1_, b_ = sig_neuron.parameters()
check_answer("da/dw0", answer_w0, w0_.grad)
check_answer("da/dw1", answer_w1, w1_.grad)
check_answer("da/db", answer_b, b_.grad)
print(f"correct: {answer_w0:.6f}, {answer_w1:.6f}, {answer_b:.6f}")

# %% [markdown]
# ## 4. A layer: neurons side by side
#
# A **layer** is several neurons reading the *same* inputs, each with its own weights.
# With weight matrix $W$ (row $j$ holds neuron $j$'s weights) it computes
#
# $$a_j = \varphi\Bigl(\sum_i W_{ji} x_i + b_j\Bigr), \qquad j = 1, \dots, m.$$
#
# Because every input feeds every neuron, an input's gradient is a **sum over the
# neurons** (the multivariable chain rule from notebook 2). For the sum of the outputs,
# $L = \sum_j a_j$ with tanh:
#
# $$\frac{\partial L}{\partial x_i} = \sum_j \bigl(1 - a_j^2\bigr) W_{ji}.$$
#
# Let's check that on a layer of three tanh neurons, with the inputs as `Value`s so that
# they receive gradients too. `cluster=True` draws a box around each neuron.

# %%
layer = Layer(2, 3, activation="tanh", seed=4)
xs = [Value(0.5, "x0"), Value(-1.0, "x1")]
outs = layer(xs)
L = Value.sum(outs);  L.label = "L"
L.backward()

for i, xi in enumerate(xs):
    by_hand = sum((1 - n_out.data ** 2) * n.w[i].data for n, n_out in zip(layer.neurons, outs))
    print(f"dL/dx{i}: engine {xi.grad:+.6f}   sum over neurons {by_hand:+.6f}")
    assert math.isclose(xi.grad, by_hand, rel_tol=1e-12)
draw_dot(L, cluster=True)

# %% [markdown]
# ## 5. An MLP: layers one after another
#
# A **multi-layer perceptron** feeds each layer's outputs to the next layer as its inputs.
# `MLP(2, [16, 16, 1])` has two inputs, two hidden layers of 16 neurons with the ReLU
# activation $\max(0, z)$, and one output neuron with **no** activation (linear), so that
# its output, the *score*, can be any real number. Each neuron is named by its layer and
# position (`L1.N7`), and so is every parameter (`L1.N7.w3`).

# %%
model = MLP(2, [16, 16, 1], seed=1337)
print(model)
print("first parameters:", [name for name, _ in model.named_parameters()][:4], "...")
print("values in the graph of one input point:", len(topological_order(model([0.5, -1.0]))))

# %% [markdown]
# Even this small network makes a graph of about 700 values for a single input point
# (337 parameters, 2 inputs, and the products, sums and activations). For a picture we use
# a smaller MLP and `collapse=True`, which draws each neuron as one box:

# %%
small = MLP(2, [4, 4, 1], seed=0)
draw_dot(small([0.5, -1.0]), collapse=True, show_grad=False)

# %% [markdown]
# ### Exercise 2: counting parameters
#
# A layer with $n_\text{in}$ inputs and $n_\text{out}$ neurons has one weight per
# (input, neuron) pair and one bias per neuron. Write `count_parameters(nin, nouts)` that
# returns the number of parameters of `MLP(nin, nouts)`; the next cell checks it against
# `num_parameters()` for several architectures.

# %%
# answer
def count_parameters(nin, nouts):
    sizes = [nin] + list(nouts)
    return sum((n_in + 1) * n_out for n_in, n_out in zip(sizes, sizes[1:]))

# %%
for nin, nouts in [(2, [16, 16, 1]), (3, [4, 4, 1]), (1, [1]), (5, [7, 3, 2]), (2, [16, 16, 3])]:
    check_answer(f"count_parameters({nin}, {nouts})", count_parameters(nin, nouts),
                 MLP(nin, nouts).num_parameters())
print("correct: MLP(2, [16, 16, 1]) has", count_parameters(2, [16, 16, 1]), "parameters")

# %% [markdown]
# ## 6. Training: the moons classifier
#
# Two interleaved half moons, 100 points, labelled $y = -1$ (blue) and $y = +1$ (red).
# No straight line separates them, so a single neuron cannot; the MLP can.

# %%
X, y01 = data.make_moons(100, noise=0.1, seed=1337)
y = data.signed_labels(y01)          # 0/1 -> -1/+1, what the hinge loss expects
pts = np.array(X)
fig = Figure(figsize=(4.5, 3.5), layout="constrained")
ax = fig.subplots()
ax.scatter(pts[:, 0], pts[:, 1], c=["#1f77b4" if t < 0 else "#d62728" for t in y],
           s=22, edgecolors="k", linewidths=0.5)
ax.set_aspect("equal")
fig

# %% [markdown]
# ### The loss
#
# The model gives a score $s_i = f(x_i)$; we predict the class by its sign. The **hinge
# loss** (the support vector machine's) asks for each point to be on the right side
# *with a margin*: $y_i s_i \ge 1$. A point that satisfies this costs nothing; one that
# does not costs how far it falls short:
#
# $$L = \frac1N \sum_{i=1}^{N} \max\bigl(0,\ 1 - y_i s_i\bigr)
# \;+\; \alpha \sum_{p} p^2 .$$
#
# The second term, **L2 regularisation** with a small $\alpha = 10^{-4}$, prefers small
# weights, which gives a smoother boundary.
#
# ### The optimiser
#
# **Gradient descent** moves every parameter a little against its gradient,
# $p \leftarrow p - \eta\,\partial L/\partial p$, where $\eta$ is the learning rate.
# We start at $\eta = 1$ and lower it linearly to $0.1$ over 100 steps: big steps
# first, careful ones at the end. (With all 100 points in every step this is plain
# gradient descent; *stochastic* gradient descent uses a random subset per step, as
# notebook 5 does.) Each step is: forward all points, loss, `zero_grad()`,
# `backward()`, `step()`.

# %%
model = MLP(2, [16, 16, 1], seed=1337)
steps = 100
opt = optim.SGD(model.parameters(), lr=lambda k: 1.0 - 0.9 * k / steps)
history = {"loss": [], "accuracy": []}

for k in range(steps):
    scores = [model(x) for x in X]
    loss = losses.hinge(scores, y) + losses.l2(model.parameters(), alpha=1e-4)
    opt.zero_grad()
    loss.backward()
    opt.step()
    acc = sum((s.data > 0) == (t > 0) for s, t in zip(scores, y)) / len(y)
    history["loss"].append(loss.data)
    history["accuracy"].append(acc)
    if k % 20 == 0 or k == steps - 1:
        print(f"step {k:3d}  loss {loss.data:.4f}  accuracy {acc:.0%}")

# %%
plot_loss(history, title="moons: hinge loss + L2, gradient descent")

# %% [markdown]
# The loss jumps about in the first steps, while the learning rate is large, and settles
# as the rate shrinks and the points leave the margin. Once every point is beyond it,
# the hinge part is (almost) zero and what remains is the L2 term. The decision
# boundary is where the score changes sign (the black line); the shading shows the class
# the network predicts everywhere in the plane:

# %%
final = [model(x) for x in X]
accuracy = sum((s.data > 0) == (t > 0) for s, t in zip(final, y)) / len(y)
print(f"training accuracy after {steps} steps: {accuracy:.0%}")
print(f"hinge part {losses.hinge(final, y).data:.5f}, "
      f"L2 part {losses.l2(model.parameters(), alpha=1e-4).data:.5f}")
assert accuracy >= 0.95
plot_decision_boundary(model, X, y, title="moons: MLP(2, [16, 16, 1])")

# %% [markdown]
# ### Exercise 3: the gradient of the hinge loss
#
# Each term $\max(0, 1 - y s)$ has a simple derivative with respect to the score $s$:
# $-y$ when the point is inside the margin ($y s < 1$), and $0$ when it is safely on the
# right side ($y s > 1$). With the mean over $N$ points, each term's derivative is also
# divided by $N$. Write `hinge_grad(s, y, n)`: the derivative of the mean hinge loss over
# `n` points with respect to one point's score `s` (label `y`).

# %%
# answer
def hinge_grad(s, y, n):
    return -y / n if y * s < 1 else 0.0

# %%
cases = [(0.3, 1), (-2.0, 1), (1.5, 1), (0.3, -1), (-2.0, -1), (-1.5, -1)]
scores = [Value(s) for s, _ in cases]
labels = [t for _, t in cases]
losses.hinge(scores, labels).backward()
for (s, t), v in zip(cases, scores):
    check_answer(f"hinge_grad({s}, {t}, {len(cases)})", hinge_grad(s, t, len(cases)), v.grad)
print("correct:", [round(v.grad, 4) for v in scores])

# %% [markdown]
# ## Summary
#
# - A neuron is $a = \varphi(\sum_i w_i x_i + b)$; its local derivatives come from
#   $\varphi'$, which for sigmoid and tanh is a function of the output:
#   $\sigma(1 - \sigma)$ and $1 - \tanh^2$.
# - A layer is neurons sharing inputs, so input gradients **add up** over the neurons;
#   an MLP chains layers, and its parameter count is $\sum (n_\text{in} + 1)\,n_\text{out}$.
# - Training is a loop: forward, loss, `zero_grad`, `backward`, step. The hinge loss
#   pushes every point beyond a margin; its gradient is $-y$ for points inside it and 0
#   for the rest.
#
# Next, notebook 5 replaces the single score by one score per class and the hinge loss
# by softmax and cross-entropy.
