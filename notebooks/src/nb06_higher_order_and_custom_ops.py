# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
#   make_notebooks:
#     file: 06_higher_order_and_custom_ops.ipynb
# ---

# %% [markdown]
# # 6. Beyond first derivatives, and your own operations
#
# So far `backward()` produced numbers: one gradient per node. This notebook goes further:
#
# 1. derivatives as **functions** (`grad`), and derivatives of derivatives,
#    `grad(grad(f))`;
# 2. why that works: with `create_graph=True` the backward pass builds the derivative as a
#    **graph**, which can be differentiated again;
# 3. uses of second derivatives: curvature, Newton's method and the **Hessian** matrix;
# 4. **defining a new operation** from its value and its local derivative, and how the
#    engine checks the derivative you give it;
# 5. **gradient checking** against finite differences, and how to choose the step.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np

from tinygrad_scalar import Value
from tinygrad_scalar.custom import DefinitionError, define_op
from tinygrad_scalar.engine import sigmoid, tanh
from tinygrad_scalar.functional import grad, hessian, jvp
from tinygrad_scalar.gradcheck import GradcheckError, gradcheck, gradcheck_report
from tinygrad_scalar.teach import answered, check_answer
from tinygrad_scalar.viz import draw_dot

# %% [markdown]
# ## 1. Derivatives as functions
#
# `grad(f)` takes a Python function of numbers that computes with `Value`s and returns a
# **new function**, its derivative. Since the result is again a function of the same kind,
# `grad` can be applied to it again. For $f(x) = x^3$: $f' = 3x^2$, $f'' = 6x$,
# $f''' = 6$, and $f'''' = 0$.

# %%
f = lambda x: x ** 3
df = grad(f)
d2f = grad(df)
d3f = grad(d2f)
print("at x = 2:", f(Value(2.0)).data, df(2.0), d2f(2.0), d3f(2.0), grad(d3f)(2.0))
assert (df(2.0), d2f(2.0), d3f(2.0)) == (12.0, 12.0, 6.0)

# %% [markdown]
# ## 2. The derivative is a graph too
#
# Every operation's derivative rule is itself made of operations: the local derivative of
# $y = \tanh x$ is $1 - y^2$. With `backward(create_graph=True)` the engine applies these
# rules to **Values** instead of floats, so the gradient it produces is the output of a new
# graph, built from the old one. That graph is available as `grad_value`:

# %%
x = Value(0.5, label="x")
y = x.tanh();  y.label = "y"
y.backward(create_graph=True)
dy_dx = x.grad_value;  dy_dx.label = "dy/dx"
print("dy/dx =", dy_dx.data, "= 1 - tanh(0.5)^2 =", 1 - math.tanh(0.5) ** 2)
draw_dot(dy_dx, show_grad=False)

# %% [markdown]
# Read it from the left: the forward graph $x \to y = \tanh x$, then $y \cdot y$, then
# $1 - y^2$, times the seed gradient $1$. This is an ordinary graph, so its own backward pass
# gives the second derivative,
# $\frac{d}{dx}(1 - \tanh^2 x) = -2 \tanh x\,(1 - \tanh^2 x)$.
# (Leaves add up gradients across backward calls, so clear $x$'s first.)

# %%
x.zero_grad()
dy_dx.backward()
t = math.tanh(0.5)
print("d2y/dx2 =", x.grad, " closed form:", -2 * t * (1 - t * t))
assert math.isclose(x.grad, -2 * t * (1 - t * t), rel_tol=1e-12)

# %% [markdown]
# `grad(grad(f))` does exactly this, on private numbers (no `.grad` is touched). Here are
# $\tanh$ and its first two derivatives over a range, computed by the engine and compared
# with the closed forms:

# %%
xs = np.linspace(-3, 3, 121)
d1, d2 = grad(lambda x: x.tanh()), grad(grad(lambda x: x.tanh()))
first = [d1(float(v)) for v in xs]
second = [d2(float(v)) for v in xs]
assert np.allclose(first, 1 - np.tanh(xs) ** 2, rtol=0, atol=1e-12)
assert np.allclose(second, -2 * np.tanh(xs) * (1 - np.tanh(xs) ** 2), rtol=0, atol=1e-12)

fig, ax = plt.subplots(figsize=(6.5, 3.5))
ax.plot(xs, np.tanh(xs), label="tanh x")
ax.plot(xs, first, label="grad: 1 - tanh² x")
ax.plot(xs, second, label="grad(grad): -2 tanh x (1 - tanh² x)")
ax.axhline(0, color="gray", lw=0.5)
ax.set_xlabel("x")
ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
plt.show()

# %% [markdown]
# ## 3. Using second derivatives
#
# ### Newton's method
#
# To find a minimum of $f$, look for a zero of $f'$. Newton's method replaces $f'$ by its
# tangent line at the current point and jumps to the tangent's zero:
#
# $$x \leftarrow x - \frac{f'(x)}{f''(x)}.$$
#
# Near a minimum the number of correct digits roughly **doubles** at every step. For
# $f(x) = x^4 - 3x^2 + x$, starting at $x = 2$:

# %%
f = lambda x: x ** 4 - 3 * x ** 2 + x
df, d2f = grad(f), grad(grad(f))

x = 2.0
for step in range(7):
    print(f"step {step}: x = {x:.15f}   f'(x) = {df(x): .3e}")
    x = x - df(x) / d2f(x)
assert abs(df(x)) < 1e-12 and d2f(x) > 0     # a minimum: slope 0, curving upwards

# %% [markdown]
# ### The Hessian
#
# For a function of several inputs, the second derivatives form a matrix, the **Hessian**
# $H_{ij} = \partial^2 f / \partial x_i\,\partial x_j$. It describes the curvature of $f$ in
# every direction, and it is symmetric for smooth $f$ (the order of differentiation does not
# matter). `hessian(f)` computes it as the derivative of the gradient. For
# $f(x, y) = x^2 y + \sin(xy)$:
#
# $$H = \begin{pmatrix} 2y - y^2 \sin(xy) & 2x + \cos(xy) - xy\sin(xy) \\
# 2x + \cos(xy) - xy\sin(xy) & -x^2 \sin(xy) \end{pmatrix}.$$

# %%
f = lambda x, y: x ** 2 * y + (x * y).sin()
H = hessian(f)(1.0, 2.0)

x, y = 1.0, 2.0
f_xy = 2 * x + math.cos(x * y) - x * y * math.sin(x * y)
H_closed = [[2 * y - y * y * math.sin(x * y), f_xy],
            [f_xy, -x * x * math.sin(x * y)]]
print(np.array(H))
assert np.allclose(H, H_closed, rtol=1e-12, atol=0)
assert H[0][1] == H[1][0]

# %% [markdown]
# Forming the whole Hessian costs one reverse sweep per input. Often only its product with
# a vector $v$ is needed (for example by conjugate-gradient solvers), and that is the
# **directional derivative of the gradient**: forward mode (`jvp`) applied to the gradient
# function, without ever forming $H$.

# %%
gradient = grad(f, argnums=(0, 1))
v = (1.0, 0.5)
_, Hv = jvp(gradient, (1.0, 2.0), v)
print("H v by forward-over-reverse:", Hv, "  H @ v:", np.array(H) @ v)
assert np.allclose(Hv, np.array(H) @ v, rtol=1e-12, atol=0)

# %% [markdown]
# ## 4. Defining a new operation
#
# An operation is two rules: its **value** $f(x)$ and its **local derivative**
# $\partial f / \partial x$ (one per input). That is all the engine needs: backward
# multiplies along the edge, forward mode too, drawings show the operation's name.
#
# Take softplus, $\operatorname{softplus}(x) = \log(1 + e^x)$, a smooth version of ReLU
# whose derivative is the sigmoid $\sigma(x) = 1/(1 + e^{-x})$. The value rule works on
# floats (written stably for large $|x|$). The derivative rule is written with the engine's
# `sigmoid`, which works on floats **and** on Values: that is what lets `create_graph` and
# `grad(grad(...))` differentiate it again.

# %%
softplus = define_op(
    "softplus",
    lambda x: math.log1p(math.exp(-abs(x))) + max(x, 0.0),   # value, on floats
    lambda x, out: sigmoid(x),                               # d softplus / dx
    replace=True,          # so that this cell can be run again
)

w = Value(0.8, label="w")
z = softplus(w * 2.0 - 1.0);  z.label = "z"
z.backward()
print("dz/dw =", w.grad, " by hand: 2 * sigmoid(0.6) =", 2 / (1 + math.exp(-0.6)))
draw_dot(z, edge_labels=True)

# %% [markdown]
# The new operation works everywhere a built-in one does, including higher derivatives:
# $\operatorname{softplus}'' = \sigma' = \sigma(1 - \sigma)$, which is $1/4$ at 0.

# %%
print("softplus''(0) =", grad(grad(softplus))(0.0))
assert grad(grad(softplus))(0.0) == 0.25

# %% [markdown]
# A wrong derivative rule would silently give wrong gradients everywhere it is used. So the
# first time an operation runs, its rule is compared with central differences of its value
# rule, and a mismatch is an error that names the operation, the point and both numbers.
# Here the rule $e^x$ is wrong (it is the derivative of $e^x$, not of softplus):

# %%
wrong = define_op("softplus_wrong",
                  lambda x: math.log1p(math.exp(-abs(x))) + max(x, 0.0),
                  lambda x, out: math.exp(x),                # wrong!
                  replace=True)
try:
    wrong(Value(0.3))
except DefinitionError as err:
    print(err)

# %% [markdown]
# ## 5. Gradient checking
#
# Finite differences give an **independent** estimate of a derivative, using only the
# value of the function:
#
# $$\text{forward: } \frac{f(x + h) - f(x)}{h} = f'(x) + O(h), \qquad
# \text{central: } \frac{f(x + h) - f(x - h)}{2h} = f'(x) + O(h^2).$$
#
# The step $h$ cannot be made arbitrarily small: $f(x+h)$ and $f(x-h)$ are each rounded to
# about 16 digits, and dividing their difference by a tiny $2h$ magnifies that rounding
# error like $10^{-16}/h$. The total error is smallest in between. For $\sin$ at $x = 1$
# (exact derivative $\cos 1$):

# %%
hs = np.logspace(-14, -1, 53)
x0, exact = 1.0, math.cos(1.0)
forward_err = [abs((math.sin(x0 + h) - math.sin(x0)) / h - exact) for h in hs]
central_err = [abs((math.sin(x0 + h) - math.sin(x0 - h)) / (2 * h) - exact) for h in hs]

fig, ax = plt.subplots(figsize=(6.5, 3.5))
ax.loglog(hs, forward_err, "o-", ms=3, label="forward difference")
ax.loglog(hs, central_err, "o-", ms=3, label="central difference")
ax.axvline(1e-6, color="gray", ls="--", lw=1)
ax.text(0.8e-6, 0.92, "gradcheck's eps = 1e-6", color="gray", ha="right",
        transform=ax.get_xaxis_transform())
ax.set_xlabel("step h")
ax.set_ylabel("|error| of the estimated derivative")
ax.legend()
plt.show()
best = hs[int(np.argmin(central_err))]
print(f"smallest central-difference error {min(central_err):.1e} at h = {best:.1e}")

# %% [markdown]
# With central differences and $h = 10^{-6}$ the estimate is good to about 10 digits,
# plenty to tell a correct derivative from a wrong one. `gradcheck_report(f, inputs)` does
# this for every input of `f` and puts it next to the derivative from `backward()`;
# `gradcheck(f, inputs)` returns `True` or raises an error that contains the same table.

# %%
neuron = lambda x, w, b: softplus(x * w + b).tanh()
gradcheck_report(neuron, [0.5, -1.2, 0.3])

# %% [markdown]
# `gradcheck` is for testing **your** derivatives, for example an operation defined with
# `verify=False` (the engine's own check switched off). With the wrong rule from above it
# catches the mistake:

# %%
unchecked = define_op("softplus_unchecked",
                      lambda x: math.log1p(math.exp(-abs(x))) + max(x, 0.0),
                      lambda x, out: math.exp(x),            # still wrong
                      verify=False, replace=True)
try:
    gradcheck(lambda x, w: unchecked(x * w), [0.5, -1.2])
except GradcheckError as err:
    print(err)

# %% [markdown]
# ## Exercises
#
# Each exercise has an answer cell, already filled in, and a cell that checks it. Change an
# answer and run the check again to see it fail.
#
# **Exercise 1.** Write the second derivative of $f(x) = x \sin x$ in closed form, as a
# Python function of a float.

# %%
# answer: f' = sin x + x cos x, so f'' = cos x + cos x - x sin x
def f2_closed(x):
    return 2 * math.cos(x) - x * math.sin(x)

# %%
# check against grad(grad(f)) at several points
f2 = grad(grad(lambda x: x * x.sin()))
for point in (-2.0, -0.3, 0.0, 0.7, 3.0):
    check_answer(f"f2_closed({point})", f2_closed(point), f2(point), abs_tol=1e-12)
print("correct")

# %% [markdown]
# **Exercise 2.** Give the Hessian of $g(x, y) = x y^2 + e^x$ at $(x, y) = (0, 1)$, as a
# list of two rows.

# %%
# answer: g_x = y^2 + e^x, g_y = 2xy  ->  g_xx = e^x, g_xy = 2y, g_yy = 2x
H_g = [[1.0, 2.0],
       [2.0, 0.0]]

# %%
# check
H_engine = hessian(lambda x, y: x * y ** 2 + x.exp())(0.0, 1.0)
check_answer("H_g", H_g, np.asarray(H_engine).tolist())
print("correct:", H_engine)

# %% [markdown]
# **Exercise 3.** Define the operation $\operatorname{logcosh}(x) = \log\cosh x$ (a smooth
# absolute value used as a robust loss). Its derivative is $\tanh x$; write the rule with
# the engine's `tanh` so that second derivatives work. For large $|x|$ compute the value as
# $|x| + \log(1 + e^{-2|x|}) - \log 2$, which never overflows.

# %%
# answer
logcosh = define_op(
    "logcosh",
    lambda x: abs(x) + math.log1p(math.exp(-2 * abs(x))) - math.log(2.0),
    lambda x, out: tanh(x),
    replace=True,
)

# %%
# check: value, gradient against finite differences, second derivative 1 - tanh^2
answered(logcosh=logcosh)
check_answer("logcosh(0.7)", logcosh(0.7), math.log(math.cosh(0.7)))
check_answer("logcosh(1000)", logcosh(1000.0), 1000.0 - math.log(2.0))
assert gradcheck(lambda x, c: logcosh(x - c) * c, [0.4, 1.5])
check_answer("the second derivative at 0.5", grad(grad(logcosh))(0.5),
             1 - math.tanh(0.5) ** 2)
print("correct")

# %% [markdown]
# ## Summary
#
# - `grad(f)` is a function, so it can be differentiated again: `grad(grad(f))`,
#   `hessian(f)`, and Hessian-vector products with `jvp(grad(f), ...)`.
# - This works because derivative rules are written with operations, so a backward pass
#   with `create_graph=True` builds the derivative as a new graph.
# - A new operation is a value rule and a derivative rule (`define_op`); the engine checks
#   the derivative the first time it runs, and `gradcheck` checks any function against
#   central finite differences, best with a step near $10^{-6}$.
#
# Next, [notebook 7](07_static_graphs_minibatches.ipynb) records a graph once and replays it
# on whole minibatches.
