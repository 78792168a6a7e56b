# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
#   make_notebooks:
#     file: 07_static_graphs_minibatches.ipynb
# ---

# %% [markdown]
# # 7. Static graphs and minibatches
#
# The engine is **define-by-run**: every time a model sees an example, a brand-new graph
# of `Value` objects is built, differentiated and thrown away. That is what makes it easy
# to read and to debug, and it is also why it is slow: training the moons classifier of
# notebook 4 builds a graph of several hundred `Value` objects for each of its 100 points,
# at every step.
#
# Yet the graph's *shape* is the same for every example; only the numbers change. So we
# can record it **once**, as a fixed program (a **static graph**), and then run that
# program on a whole **minibatch** at a time, with one NumPy array per node instead of
# one Python object per node and example. This is the idea behind TensorFlow's graphs and
# `jax.jit`. In this notebook we
#
# 1. trace a graph into a program and read it;
# 2. replay it on a batch with NumPy and check it against the engine, number for number;
# 3. see why a parameter's gradient is the **sum over the batch** of its per-example
#    gradients, and where the replay forms that sum;
# 4. measure the speed, train with the replay, and see what tracing cannot capture.

# %%
# %matplotlib inline
import time

import numpy as np
from matplotlib.figure import Figure

from tinygrad_scalar import Value, topological_order
from tinygrad_scalar import data, optim
from tinygrad_scalar.demo import train_digits
from tinygrad_scalar.nn import MLP, Neuron
from tinygrad_scalar.plot import plot_confusion, plot_digits
from tinygrad_scalar.static import TraceError, trace
from tinygrad_scalar.teach import answered, check_answer
from tinygrad_scalar.train import fit
from tinygrad_scalar.viz import draw_dot

# %% [markdown]
# ## 1. The same graph, different numbers
#
# Take one tanh neuron and the squared error of its output on one example $(x, y)$:
# $\ell = (\tanh(w_0 x_0 + w_1 x_1 + b) - y)^2$. Build the graph for two different
# examples and compare the operations, in topological order:

# %%
neuron = Neuron(2, activation="tanh", seed=0)

def loss_fn(x, y):
    d = neuron(x) - y
    return d * d

g1 = loss_fn([0.5, -1.0], 0.2)
g2 = loss_fn([1.0, 2.0], -0.5)
ops1 = [v._op or "leaf" for v in topological_order(g1)]
ops2 = [v._op or "leaf" for v in topological_order(g2)]
print(ops1)
print("same structure:", ops1 == ops2, "  losses:", g1.data, g2.data)
draw_dot(g1, show_grad=False)

# %% [markdown]
# ## 2. Trace once
#
# `trace(fn, *examples, params=...)` calls `fn` once on **placeholder** leaves made from
# example inputs, and compiles the graph it built into a **tape**: one instruction per
# node, inputs before the nodes that use them. There are four kinds of entries:
#
# - `input`: a placeholder, fed new numbers at every run (here $x_0, x_1, y$);
# - `param`: state that every run reads from the `Value` (the weights), and that receives
#   a gradient;
# - `const`: a number baked into the program;
# - an operation (`mul`, `sum`, `tanh`, ...) on earlier slots, with the engine's own
#   value and derivative rules.

# %%
prog = trace(loss_fn, [0.0, 0.0], 0.0, params=neuron.parameters())
print(prog)
print(prog.listing())

# %% [markdown]
# ## 3. Replay a batch with NumPy
#
# To run the program on $B$ examples at once, give every fed and every computed slot a
# **batch axis**: slot `%6` becomes an array of $B$ numbers, one per example. Parameters
# and constants get none: there is one $w_0$, shared by every example, and NumPy
# broadcasts it. An instruction like `%6 = mul %4, %5` is then a single NumPy
# multiplication of length $B$.
#
# The replay goes further and groups instructions that can run together (same depth in
# the graph, same operation) into one call. Both products of the neuron run as one
# multiplication of a $(2, B)$ array:

# %%
print(prog.schedule())   # (operation, how many nodes, has a batch axis)

# %% [markdown]
# Feed it a batch: `X` of shape $(B, 2)$ and `y` of shape $(B,)$. The result is one loss
# per example. The engine, one example at a time, gives exactly the same numbers (the
# replay performs the same floating-point operations in the same order):

# %%
rng = np.random.default_rng(0)
X = rng.normal(size=(5, 2))
y = rng.normal(size=5)

replayed = prog(X, y)
engine = np.array([loss_fn(list(x), t).data for x, t in zip(X, y)])
print("replay:", replayed)
print("engine:", engine)
assert np.array_equal(replayed, engine)

# %% [markdown]
# ## 4. Gradients summed over the batch
#
# The loss of a minibatch is the sum (or the mean) of the examples' losses,
# $L(\theta) = \sum_{b=1}^{B} \ell_b(\theta)$. Differentiation is linear, so
#
# $$\frac{\partial L}{\partial \theta} = \sum_{b=1}^{B} \frac{\partial \ell_b}{\partial \theta}:$$
#
# a parameter's gradient is the **sum of its per-example gradients** (divided by $B$ for
# the mean). There are three ways to get it.
#
# **(a) The engine, one example at a time.** Leaves *accumulate* their gradients across
# `backward()` calls (that is why we call `zero_grad()` before a step). So running
# `backward()` once per example, *without* zeroing in between, leaves exactly the sum in
# each parameter's `.grad`.

# %%
params = neuron.parameters()
neuron.zero_grad()
for x, t in zip(X, y):
    loss_fn(list(x), t).backward()
grads_a = np.array([p.grad for p in params])
print("(a) accumulated over examples:", grads_a)

# %% [markdown]
# **(b) The engine, one graph for the whole batch.** Build all $B$ graphs, add the losses
# with one sum node and call `backward()` once. The parameters are shared by the $B$
# sub-graphs, so each receives contributions along $B$ routes, and backprop adds them:
# the multivariable chain rule of notebook 2 again.

# %%
neuron.zero_grad()
total = Value.sum([loss_fn(list(x), t) for x, t in zip(X, y)])
total.backward()
grads_b = np.array([p.grad for p in params])
print("(b) one graph, one backward:  ", grads_b)

# %% [markdown]
# **(c) The replay.** `prog.backward(reduce="sum")` sweeps the tape in reverse with
# arrays. Every gradient flowing through a computed node is an array over the batch. But
# a parameter has no batch axis, so where a contribution reaches a parameter it is
# **summed over the batch on the spot**: for the product $w_0 x_0$, the contribution to
# $w_0$ is $\sum_b \bar p_b\, x_{0,b}$, where $\bar p_b$ is the gradient arriving at the
# product in example $b$. This is how small teaching frameworks, such as EDF (the minimal
# NumPy autodiff framework of one of the lecture courses this project grew out of), and
# the big ones handle parameters in a minibatch. `per_example=True` also returns the gradients
# before the sum, one row per example.

# %%
neuron.zero_grad()
prog(X, y)                                   # backward uses the last forward's batch
result = prog.backward(reduce="sum", per_example=True)
grads_c = np.array([p.grad for p in params])  # written into .grad, as the engine does
print("(c) replay, summed on the spot:", grads_c)
print("per-example rows", result.per_example.shape, "summed:", result.per_example.sum(axis=0))

for g in (grads_b, grads_c, result.per_example.sum(axis=0)):
    assert np.allclose(g, grads_a, rtol=1e-12, atol=0)

# %% [markdown]
# The three agree (to the last bit or two: a sum of floats depends a little on the order
# in which it is added up).
#
# ### Exercise 1: the batch gradient of a linear neuron, in closed form
#
# For a **linear** neuron $s = w \cdot x + b$ and the squared error, the batch loss is
# $L = \sum_b (w \cdot x_b + b - y_b)^2$. Its gradient is a sum over the batch:
#
# $$\frac{\partial L}{\partial w} = \sum_b 2\,(w \cdot x_b + b - y_b)\, x_b, \qquad
# \frac{\partial L}{\partial b} = \sum_b 2\,(w \cdot x_b + b - y_b).$$
#
# Compute both with NumPy, without the engine, from `w` (shape $(2,)$), `b`, `X` and `y`:
# `answer_w` (shape $(2,)$) and `answer_b`. The next cell compares them with the replay.

# %%
lin = Neuron(2, activation="linear", seed=1)
lin.b.data = 0.3
w, b = np.array([v.data for v in lin.w]), lin.b.data

# answer
residual = X @ w + b - y
answer_w = 2 * residual @ X
answer_b = 2 * residual.sum()

# %%
def lin_loss(x, t):
    d = lin(x) - t
    return d * d

lin_prog = trace(lin_loss, [0.0, 0.0], 0.0, params=lin.parameters())
lin_prog(X, y)
g = lin_prog.backward(reduce="sum", write=False).params   # in lin.parameters() order: w0, w1, b
answered(answer_w=answer_w, answer_b=answer_b)
check_answer("answer_w", list(answer_w), list(g[:2]))
check_answer("answer_b", answer_b, g[2])
print("correct:", answer_w, answer_b)

# %% [markdown]
# ## 5. A real model, and the speed
#
# Now micrograd's moons classifier, `MLP(2, [16, 16, 1])`, with the hinge loss of one
# example, $\max(0, 1 - y\,s)$, traced into a program:

# %%
model = MLP(2, [16, 16, 1], seed=1337)

def hinge_one(x, y):
    return (1.0 - y * model(x)).relu()

mlp_prog = trace(hinge_one, [0.0, 0.0], 1.0, params=model.parameters())
print(mlp_prog)
print(mlp_prog.schedule())

# %% [markdown]
# The engine builds all of those operations as Python objects for every example; the
# replay runs them as the few groups listed, each a NumPy call over (nodes × batch).
#
# ### Exercise 2: how long is the tape?
#
# In a hidden layer each neuron makes one product per input, one sum and one ReLU; the
# output neuron is linear (products and a sum, no activation); and the per-example loss
# $\operatorname{relu}(1 - y s)$ adds three operations. Write `count_ops(nin, nouts)`, the
# number of operations on the tape for `MLP(nin, nouts)` (the last width being 1) with
# this loss.

# %%
# answer
def count_ops(nin, nouts):
    sizes = [nin] + list(nouts)
    ops = 0
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        last = i == len(nouts) - 1
        ops += n_out * (n_in + 1 + (0 if last else 1))
    return ops + 3

# %%
tape_ops = sum(1 for ins in mlp_prog.tape if ins.kind == "op")
check_answer("count_ops(2, [16, 16, 1])", count_ops(2, [16, 16, 1]), tape_ops)
small = MLP(3, [5, 1], seed=0)
small_prog = trace(lambda x, y: (1.0 - y * small(x)).relu(), [0.0] * 3, 1.0,
                   params=small.parameters())
check_answer("count_ops(3, [5, 1])", count_ops(3, [5, 1]),
             sum(1 for ins in small_prog.tape if ins.kind == "op"))
print("correct:", tape_ops, "operations")

# %% [markdown]
# ### Timing one training step
#
# One gradient computation of the mean hinge loss on 100 moons points, on the engine and
# with the replay. First the check that both compute the same gradient, then the clock
# (best of a few runs; the numbers depend on the machine and on what else it is doing,
# so only their order of magnitude matters):

# %%
Xm, ym01 = data.make_moons(100, noise=0.1, seed=1337)
ym = data.signed_labels(ym01)
Xa, ya = np.array(Xm), np.array(ym, dtype=float)

def engine_grads():
    model.zero_grad()
    loss = Value.sum([hinge_one(x, t) for x, t in zip(Xm, ym)]) * (1 / len(Xm))
    loss.backward()
    return loss.data

def replay_grads(Xb=Xa, yb=ya):
    model.zero_grad()
    out = mlp_prog(Xb, yb)
    mlp_prog.backward(reduce="mean")
    return out.mean()

engine_grads()
g_engine = np.array([p.grad for p in model.parameters()])
replay_grads()
g_replay = np.array([p.grad for p in model.parameters()])
assert np.allclose(g_replay, g_engine, rtol=1e-12, atol=1e-15)
print("same gradients for all", len(g_engine), "parameters")

# %%
# timings: this cell's output changes from run to run
def best_time(f, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)

t_engine = best_time(engine_grads, 3)
t_replay = best_time(replay_grads, 20)
print(f"engine: {1e3 * t_engine:8.2f} ms per step")
print(f"replay: {1e3 * t_replay:8.2f} ms per step  ({t_engine / t_replay:.0f}x faster)")

# %% [markdown]
# And how the replay's time grows with the batch size. The engine's cost is proportional
# to the number of examples: each one is a new graph. The replay pays Python's overhead
# once per *group*, whatever the batch size, so for small batches its time hardly
# changes; only for large batches does the arithmetic on the arrays take over.

# %%
# timings: this cell's output changes from run to run
for B in (10, 100, 1000, 10000):
    Xb, yb = data.make_moons(B, noise=0.1, seed=B)
    Xb, yb = np.array(Xb), np.array(data.signed_labels(yb), dtype=float)
    t = best_time(lambda: replay_grads(Xb, yb), 5)
    print(f"batch {B:6d}: {1e3 * t:8.2f} ms per step, {1e6 * t / B:7.2f} µs per example")

# %% [markdown]
# ## 6. Training with the replay
#
# `fit(..., compiled=True)` trains through a traced program (it traces one example's
# loss, replays each minibatch and steps the optimiser on an array of the parameters,
# writing them into the Values before any callback and at the end), so the rest of the
# training loop of notebooks 4 and 5 stays as it was. Train micrograd's moons
# setting twice from the same initial weights, once on the engine and once compiled:

# %%
# timings: this cell's output changes from run to run
def train(compiled):
    net = MLP(2, [16, 16, 1], seed=1337)
    opt = optim.SGD(net.parameters(), lr=lambda k: 1.0 - 0.9 * k / 100)
    hist = fit(net, Xm, ym, "hinge", opt, epochs=100, alpha=1e-4, quiet=True,
               compiled=compiled)
    return net, hist

net_e, hist_e = train(compiled=False)
net_c, hist_c = train(compiled=True)
print(f"engine:   {hist_e.seconds:6.2f} s")
print(f"compiled: {hist_c.seconds:6.2f} s")

# %%
worst = max(abs(a - b) / abs(a) for a, b in zip(hist_e.loss, hist_c.loss))
params_diff = max(abs(p.data - q.data) for p, q in zip(net_e.parameters(), net_c.parameters()))
print(f"largest relative difference between the two loss curves: {worst:.0e}")
print(f"largest difference between the trained parameters: {params_diff:.0e}")
print("100% accuracy after", hist_e.steps_to(1.0), "steps (engine) and",
      hist_c.steps_to(1.0), "steps (compiled)")
assert worst < 1e-9 and hist_e.steps_to(1.0) == hist_c.steps_to(1.0)

fig = Figure(figsize=(6, 3.5), layout="constrained")
ax = fig.subplots()
ax.plot(hist_e.loss, lw=4, alpha=0.4, label="engine")
ax.plot(hist_c.loss, "k--", lw=1, label="compiled replay")
ax.set_yscale("log")
ax.set_xlabel("step")
ax.set_ylabel("hinge loss + L2")
ax.legend()
ax.grid(alpha=0.3)
fig

# %% [markdown]
# The two curves lie on top of each other: the replay computes the same numbers, only
# without building hundreds of objects per example.
#
# ## 7. What a trace cannot see
#
# A trace records the operations that *happened* for the example it was traced with.
# Python control flow on the data would run once, at trace time, and be frozen into the
# program. So while tracing, a comparison or `bool()` of a Value that depends on a traced
# input raises `TraceError` at once, as `jax.jit` refuses it, and says how to write the
# branch branch-free. Here $f(x) = 2x$ for $x > 0$ and $x^2$ otherwise, traced at $x = 1$:

# %%
def f(x):
    return x * 2.0 if x > 0 else x * x

try:
    trace(f, 1.0)
except TraceError as e:
    print("TraceError:", str(e)[:230], "...")

# %% [markdown]
# What the tracer cannot see is an explicit read of the number: `x.data` is a plain float,
# and a branch on it is frozen without a word (under `jax.jit`, reading the number of a
# traced value is an error instead; here `.data` is how you ask for the number).

# %%
def f_data(x):
    return x * 2.0 if x.data > 0 else x * x

f_prog = trace(f_data, 1.0)
xs = np.array([1.0, -2.0, 3.0])
print("replay:", f_prog(xs), "  engine:", [f_data(Value(v)).data for v in xs])
try:
    f_prog.verify(xs)
except TraceError as e:
    print("TraceError:", str(e)[:160], "...")

# The replay took the $2x$ branch for $x = -2$. `verify` re-runs the function
# with the engine on a few examples of the batch and compares the graphs, which catches
# it. The cure is to write such parts **branch-free**, with operations that decide per
# element inside the graph. The engine's stable cross-entropy (notebook 5) subtracts the
# largest logit found by a `max` over `.data`, for instance, so the compiled training
# step uses a branch-free version: one n-ary `Value.max` node, which picks the largest
# input per example inside the graph (its gradient goes to that input). You can build the
# two-input case yourself from the identity below.
#
# ### Exercise 3: a branch-free maximum
#
# Using only arithmetic and `relu` (no `if`, no `.data`), write `smax(a, b)`, the larger
# of two Values. (Hint: $\max(a, b) = a + \max(0, b - a)$.) The next cell traces it once
# and checks it on a batch where either argument may be the larger one.

# %%
# answer
def smax(a, b):
    return a + (b - a).relu()

# %%
check_answer("smax(2, 5)", smax(Value(2.0), Value(5.0)), 5.0)
check_answer("smax(5, 2)", smax(Value(5.0), Value(2.0)), 5.0)
m_prog = trace(smax, 0.0, 0.0)
A, Bv = rng.normal(size=50), rng.normal(size=50)
assert np.allclose(m_prog(A, Bv), np.maximum(A, Bv), rtol=1e-15, atol=1e-15)  # a + (b - a) rounds
m_prog.verify(A, Bv, samples=10)          # raises TraceError if the graph depended on the data
print("correct: one trace, right for every example")

# %% [markdown]
# ## 8. From scalar groups to matrix products
#
# The replay above runs one NumPy call per group of same-kind operations. But a layer of
# neurons is really $Z = W X + b$: with `exact=False` the compiler runs one more pass over
# the plan that finds every sum of products `w * x` of a parameter and an input (plus a
# bias), gathers the neurons that read the same inputs into a layer, and runs the layer as
# one matrix product forward and two backward ($W^T \bar Z$ for the inputs, $\bar Z X^T$ for
# the weights, summed over the batch). Nothing in it knows about `nn`: a neuron written by
# hand matches too. `summary()` shows what the compiler did:

# %%
fused = trace(hinge_one, [0.0, 0.0], 1.0, params=model.parameters(), exact=False)
print(fused.summary())

# %% [markdown]
# The compiler then writes the plan out as Python, once: a line or two of NumPy per group,
# with every row range and view of the buffers bound in advance, so a step runs only the
# calls (the interpreting loop over groups cost more than the arithmetic at these sizes).
# `source()` shows that code. Here is the forward sweep: the three layers as `np.matmul`
# (`x0`, `w0`, `z0`, `b0`: layer 0's inputs, weights, results and biases; the weights are
# first copied out of the parameter vector into one matrix), the relus as `np.maximum`
# (`v2`: the values of group 2), then the hinge, $\max(0, 1 - y \cdot \text{score})$, with
# the label `input8_0` fed per example. `C[k]` keeps what the backward sweep reads.

# %%
code = fused.source()
forward = code[code.index("def forward"):code.index("def backward")]
print("\n".join(line for line in forward.splitlines() if not line.lstrip().startswith("(")))

# %% [markdown]
# The numbers are the engine's up to rounding: a matrix product adds its terms in its own
# order, so they agree to a few $10^{-14}$ relative here, not bit for bit (`exact=True`,
# the default, never fuses and stays bit-identical).

# %%
Xm, ym = data.make_moons(200, noise=0.1, seed=3)
ym = np.array(data.signed_labels(ym), dtype=float)
Xm = np.array(Xm)
a, b = fused(Xm, ym), mlp_prog(Xm, ym)
print("largest relative difference:", float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300))))

# %% [markdown]
# ## 9. A real data set: handwritten digits
#
# `data.load_digits()` gives the 1,797 8x8 digits that scikit-learn ships inside its package
# (no download), scaled to $[0, 1]$ and split with a seed. `fit(..., compiled=True,
# exact=False)` traces one example's softmax cross-entropy and replays every minibatch of
# 128 images with the fused program (its parameters kept in an array between steps, and
# written back into the Values when training ends); the demo (`make demo`) trains the same
# network.

# %%
digits = train_digits(quiet=True)
print(f"MLP(64, [16, 10]) on {digits['train_size']} training images: "
      f"{digits['accuracy']:.1%} of the {len(digits['y_test'])} held-out images right")
plot_digits(digits["X_test"][:20], digits["y_test"][:20], digits["predictions"][:20],
            title="held-out digits: prediction (label)")

# %%
plot_confusion(digits["y_test"], digits["predictions"], 10, title="digits, held-out images")

# %% [markdown]
# ## Summary
#
# - A define-by-run graph has the same structure for every example; `trace` records it
#   once as a program of instructions over inputs, parameters and constants.
# - Replaying the program with a batch axis on every fed and computed slot runs a whole
#   minibatch with a few NumPy calls, and gives the engine's numbers exactly.
# - The gradient of a batch loss is the sum of the per-example gradients. The engine gets
#   it by accumulating in the leaves or through one shared graph; the replay sums each
#   contribution over the batch where it reaches a parameter, which has no batch axis.
# - The speed-up is large because Python's overhead is paid per group of operations, not
#   per operation and example; with `exact=False` each layer of neurons becomes one matrix
#   product. The price: control flow that reads the data is frozen at
#   trace time, so such code must be branch-free (and `verify` checks it).
