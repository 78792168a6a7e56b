# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
#   make_notebooks:
#     file: 02_backprop.ipynb
# ---

# %% [markdown]
# # 2. Backpropagation, by hand and by the engine
#
# Notebook 1 built computation graphs. Here we walk them **backwards** to get the derivative
# of the output with respect to every node, in one pass. This is backpropagation
# (reverse-mode automatic differentiation), and it rests on two ideas only:
#
# 1. each operation knows the **local derivative** of its output with respect to each input,
#    written on the edge;
# 2. the **chain rule** combines them: visit the nodes in reverse topological order and pass
#    `local derivative x gradient` down every edge, **adding** what arrives at a node.
#
# We derive both, write a backward pass of our own in six lines, check it against the
# engine, run the usual wrong versions of backward side by side with the right one, quiz
# ourselves, watch the engine narrate its steps, and work three examples by hand:
# $f = (x+y)z$, $\sqrt{x^2+y^2}$ and $1/x^2$.

# %%
import math

from IPython.display import display

from tinygrad_scalar import Value, topological_order
from tinygrad_scalar.teach import (backprop_frames, check_answer, misconceptions, narrate,
                                    quiz)
from tinygrad_scalar.teach.misconceptions import diamond
from tinygrad_scalar.viz import draw_dot

# %% [markdown]
# ## 1. The chain rule
#
# If $y$ depends on $x$ only through $u$, a small change $\Delta x$ moves $u$ by about
# $\frac{du}{dx}\Delta x$, which moves $y$ by about $\frac{dy}{du}\frac{du}{dx}\Delta x$:
#
# $$\frac{dy}{dx} = \frac{dy}{du}\,\frac{du}{dx}.$$
#
# For the chain of notebook 1, $u = x^2$, $v = \sin u$, $y = e^v$, that is three factors,
# one per edge of the graph:
#
# $$\frac{dy}{dx} = \underbrace{e^{v}}_{dy/dv}\;\underbrace{\cos u}_{dv/du}\;
# \underbrace{2x}_{du/dx}.$$
#
# When a node $x$ influences the output along **several** routes (it feeds several
# operations $w_1, w_2, \dots$), the small changes add up, and so do the derivatives:
#
# $$\frac{\partial y}{\partial x} = \sum_{w\ \text{uses}\ x}
# \frac{\partial y}{\partial w}\,\frac{\partial w}{\partial x}.$$
#
# This one formula is all of backpropagation.

# %%
x = Value(1.5, label="x")
u = x ** 2;   u.label = "u"
v = u.sin();  v.label = "v"
y = v.exp();  y.label = "y"
y.backward()

by_hand = math.exp(v.data) * math.cos(u.data) * 2 * x.data
print(f"engine: {x.grad:.12f}   chain rule by hand: {by_hand:.12f}")
assert math.isclose(x.grad, by_hand, rel_tol=1e-12)

# %% [markdown]
# ## 2. Local derivatives on the edges
#
# Back to $e = (a+b)(b+1)$ at $a=2$, $b=1$, with $c = a+b$ and $d = b+1$. Each operation's
# local derivatives are simple:
#
# | node | operation | local derivative along each input edge |
# |---|---|---|
# | $c = a + b$ | $+$ | $\partial c/\partial a = 1,\ \partial c/\partial b = 1$ |
# | $d = b + 1$ | $+$ | $\partial d/\partial b = 1$ |
# | $e = c\,d$ | $\times$ | $\partial e/\partial c = d = 2,\ \partial e/\partial d = c = 3$ |
#
# The engine computes these numbers during the forward pass and keeps them on the node
# (`_local`, in the same order as the inputs `_prev`), because the inputs' values are at
# hand then. `edge_labels=True` writes them on the edges.

# %%
a = Value(2.0, label="a")
b = Value(1.0, label="b")
c = a + b;  c.label = "c"
d = b + 1;  d.label = "d"
e = c * d;  e.label = "e"

for node in (e, c, d):
    print(node.label, node._op, [(p.label or "1", local) for p, local in node.edges()])
draw_dot(e, show_grad=False, edge_labels=True)

# %% [markdown]
# ## 3. The backward pass, and why it visits nodes in reverse topological order
#
# Write $\bar v = \partial e / \partial v$ (the **gradient** of the output with respect to
# node $v$). Then $\bar e = 1$, and by the chain rule, for every other node,
#
# $$\bar v = \sum_{w\ \text{uses}\ v} \bar w \,\frac{\partial w}{\partial v}.$$
#
# So the algorithm is:
#
# 1. set every gradient to 0, and $\bar e = 1$;
# 2. for each node $w$ in **reverse** topological order, for each input $v$ of $w$ with
#    local derivative $\ell$: $\ \bar v \mathrel{+}= \ell \cdot \bar w$.
#
# **Loop invariant.** *When the loop reaches a node $w$, $\bar w$ is final.* Every node that
# uses $w$ comes after $w$ in a topological order, hence **before** it in the reverse order,
# so all of them have already added their term $\bar u\,\partial u/\partial w$; by induction
# each of those $\bar u$ was final when it was used. What $\bar w$ holds is then exactly the
# sum in the formula above. So $w$ may pass its gradient on, and no node is ever revisited:
# one pass, one multiply-add per edge.
#
# Here is the whole algorithm, on a private dictionary:

# %%
def my_backward(root):
    order = topological_order(root)
    grad = {v: 0.0 for v in order}
    grad[root] = 1.0
    for w in reversed(order):
        for v, local in zip(w._prev, w._local):
            grad[v] += local * grad[w]
    return grad

g = my_backward(e)
print("mine:   de/da =", g[a], " de/db =", g[b])

# %% [markdown]
# The engine's `backward()` is the same loop (it stores the results in `.grad`):

# %%
e.backward()
print("engine: de/da =", a.grad, " de/db =", b.grad)
assert (a.grad, b.grad) == (g[a], g[b]) == (2.0, 5.0)
draw_dot(e, edge_labels=True)

# %% [markdown]
# We can also *check* the invariant while the loop runs: before a node passes its gradient
# on, every node that uses it must already be done.

# %%
def backward_checking_invariant(root):
    order = topological_order(root)
    users = {v: [] for v in order}
    for w in order:
        for v in w._prev:
            users[v].append(w)
    grad = {v: 0.0 for v in order}
    grad[root] = 1.0
    done = set()
    for w in reversed(order):
        assert all(u in done for u in users[w]), f"{w.label}: gradient not final yet"
        for v, local in zip(w._prev, w._local):
            grad[v] += local * grad[w]
        done.add(w)
    return grad

assert backward_checking_invariant(e) == my_backward(e)
print("invariant held at every step")

# %% [markdown]
# ## 4. A node used twice: gradients add
#
# $b$ feeds both $c$ and $d$, so it receives two contributions:
# $\bar c\,\partial c/\partial b = 2 \cdot 1$ through $c$ and
# $\bar d\,\partial d/\partial b = 3 \cdot 1$ through $d$. Its gradient is their sum, $5$.
# Check with calculus: $e = (a+b)(b+1)$ gives $\partial e/\partial b = (b+1) + (a+b) = 2 + 3$.
#
# That is why the update is `+=`. A backward pass that **assigns** instead keeps only the
# contribution that happens to arrive last:

# %%
def wrong_backward(root):
    order = topological_order(root)
    grad = {v: 0.0 for v in order}
    grad[root] = 1.0
    for w in reversed(order):
        for v, local in zip(w._prev, w._local):
            grad[v] = local * grad[w]          # bug: = instead of +=
    return grad

print("with =  : de/db =", wrong_backward(e)[b])
print("with += : de/db =", my_backward(e)[b])

# %% [markdown]
# The same happens when one operation uses a node twice. In $y = x \cdot x$ both input edges
# of the multiplication come from $x$, each with local derivative $x$ (the *other* factor),
# and the two add up to the familiar $2x$:

# %%
t = Value(3.0, label="x")
sq = t * t;  sq.label = "y"
sq.backward()
print("dy/dx =", t.grad, "= 2x")
draw_dot(sq, edge_labels=True)

# %% [markdown]
# **Leaves accumulate.** Because of `+=`, the engine *adds* into the gradient of a leaf
# every time `backward()` runs; that is what lets a loss that is a sum over examples be
# differentiated piece by piece. The price: gradients must be reset between steps with
# `zero_grad()`, or each step adds onto the last one's (here, where the same graph runs
# backward twice, they double).

# %%
e.backward()                    # a second time, without zeroing
print("after two backward calls: a.grad =", a.grad)
e.zero_grad()
e.backward()
print("after zero_grad, one call: a.grad =", a.grad)

# %% [markdown]
# ## 5. Wrong versions of backward, side by side
#
# The mistakes people make when they write backward themselves are few, and each one looks
# right on simple graphs: recursing into the inputs without a topological order, `=`
# instead of `+=`, calling `backward()` twice on a graph whose interior gradients are not
# reset, resetting only the leaves, forgetting the local derivative, and the wrong sign
# for the second input of a subtraction. `misconceptions(root)` runs every one of them on
# your graph, on private numbers (no `.grad` changes), next to the right loop: a table
# with each leaf's gradient (and what it should be), then one picture per variant with the
# nodes whose gradient came out wrong in red, and a one-line reason.
#
# The diamond $b = a + a$, $c = b + b$ is the smallest graph where the first two go wrong:
# $b$ is used twice, so a recursion passes $b$'s gradient on before the second use has
# added to it, and `=` keeps one of the two contributions.

# %%
misconceptions(diamond())

# %% [markdown]
# Here the local derivatives are all 1 and nothing is subtracted, so dropping the local
# derivative or the sign changes nothing. Called without a graph, `misconceptions()` uses
# $L = c \cdot c$ with $c = a - b$ (four nodes), on which every variant breaks:

# %%
misconceptions()

# %% [markdown]
# On our $e = (a+b)(b+1)$, the recursion happens to be right (no node's gradient is passed
# on before it is final), but `=` loses one of $b$'s two contributions:

# %%
lab = misconceptions(e)
print(lab.to_text())
assert lab.variant("assign").grads[b] == 2.0     # only the contribution through c
assert (a.grad, b.grad) == (2.0, 5.0)            # the lab changed no .grad

# %% [markdown]
# ## 6. Predict, then reveal
#
# `quiz(root, nodes)` draws the graph with some gradients hidden (`grad ?`): work them out
# from the local derivatives on the edges, then `check` your answers. A wrong answer gets
# the chain rule at that node as a hint: each use's upstream gradient times its local
# derivative. Nothing changes `.grad`.

# %%
q = quiz(e, nodes=["c", "b"])
q

# %%
q.check(c=2, b=3)     # b is used twice: 3 is only the contribution through d

# %% [markdown]
# ## 7. The narrated backward pass
#
# `narrate(root)` records every step the backward loop takes, computed on private numbers
# (no `.grad` changes): the node being processed, its final gradient, and for each input
# edge the local derivative, the contribution `upstream x local`, and the input's gradient
# before and after the `+=`. Nodes without a label are named `n<i>`, their position in the
# topological order (here `n3` is the constant `1`).

# %%
narrate(e)

# %% [markdown]
# The same steps as pictures: in each frame the node being processed and the edges its
# gradient flows along are red, and every gradient is shown as it stands after that step.
# (`backprop_frames(e)` alone, as the last line of a cell, shows a small player with
# previous / play / next buttons; here we display the frames one by one.)

# %%
frames = backprop_frames(e)
for i, caption in enumerate(frames.captions()):
    print(caption)
    display(frames.picture(i))   # scaled to the column

# %% [markdown]
# ## 8. Three examples, step by step
#
# ### $f = (x + y)\,z$ at $x=-2,\ y=5,\ z=-4$
#
# Forward: $q = x + y = 3$, $f = q z = -12$.
#
# Backward: $\bar f = 1$. The product passes each factor the *other* one:
# $\bar z = q = 3$ and $\bar q = z = -4$. The sum passes its gradient unchanged to both
# inputs (local derivatives 1): $\bar x = \bar y = -4$.

# %%
x = Value(-2.0, label="x")
y = Value(5.0, label="y")
z = Value(-4.0, label="z")
q = x + y;  q.label = "q"
f = q * z;  f.label = "f"
f.backward()
assert (x.grad, y.grad, z.grad) == (-4.0, -4.0, 3.0)
narrate(f)

# %%
draw_dot(f, edge_labels=True)

# %% [markdown]
# ### $r = \sqrt{x^2 + y^2}$ at $x=3,\ y=4$
#
# Forward: $p = x^2 = 9$, $s = y^2 = 16$, $t = p + s = 25$, $r = \sqrt{t} = 5$.
#
# Backward: $\bar r = 1$; $\ \bar t = \frac{1}{2\sqrt t} = 0.1$; the sum passes $0.1$ to
# $p$ and $s$; $\ \bar x = 0.1 \cdot 2x = 0.6$ and $\bar y = 0.1 \cdot 2y = 0.8$. The closed
# form agrees: $\partial r/\partial x = x/r = 3/5$, $\partial r/\partial y = y/r = 4/5$.
#
# (The constant exponents `2` also get a gradient, $\partial r/\partial 2$: how $r$ would
# change if the exponent changed. Backward computes it because it is an input of the power
# operation; nobody needs to read it, so pictures and the leaf summary leave it out.)

# %%
x = Value(3.0, label="x")
y = Value(4.0, label="y")
p = x ** 2;   p.label = "p"
s = y ** 2;   s.label = "s"
t = p + s;    t.label = "t"
r = t.sqrt(); r.label = "r"
r.backward()
assert math.isclose(x.grad, 3 / 5) and math.isclose(y.grad, 4 / 5)
narrate(r)

# %%
draw_dot(r, edge_labels=True)

# %% [markdown]
# ### $y = 1/x^2$ at $x = 2$
#
# Forward: $u = x^2 = 4$, $y = 1/u = 0.25$.
#
# Backward: $\bar y = 1$; the division $1/u$ has local derivative
# $\partial y/\partial u = -1/u^2 = -0.0625$; then $\bar x = \bar u \cdot 2x = -0.0625 \cdot 4
# = -0.25$. Closed form: $\frac{d}{dx} x^{-2} = -2x^{-3} = -0.25$.

# %%
x = Value(2.0, label="x")
u = x ** 2;  u.label = "u"
y = 1 / u;   y.label = "y"
y.backward()
assert x.grad == -2 * 2.0 ** -3
narrate(y)

# %%
draw_dot(y, edge_labels=True)

# %% [markdown]
# ## Exercises
#
# Each exercise has an answer cell, already filled in, and a cell that checks it against
# the engine. Change an answer and run the check again to see it fail.
#
# **Exercise 1.** For $f = (x+y)\,z$ at $x=1,\ y=2,\ z=-3$, give
# $\partial f/\partial x$, $\partial f/\partial y$, $\partial f/\partial z$ by hand.

# %%
# answer: the product passes z to q, and q = x + y = 3 to z; the sum passes z on to x and y
df_dx, df_dy, df_dz = -3.0, -3.0, 3.0

# %%
# check
x, y, z = Value(1.0), Value(2.0), Value(-3.0)
f = (x + y) * z
f.backward()
check_answer("df/dx", df_dx, x.grad)
check_answer("df/dy", df_dy, y.grad)
check_answer("df/dz", df_dz, z.grad)
print("correct:", df_dx, df_dy, df_dz)

# %% [markdown]
# **Exercise 2.** The division $c = a / b$ has two local derivatives, $\partial c/\partial a$
# and $\partial c/\partial b$. Give both at $a = 3$, $b = 2$.

# %%
# answer: c = a * b**-1, so dc/da = 1/b and dc/db = -a/b**2
local_a, local_b = 1 / 2, -3 / 2 ** 2

# %%
# check against the local derivatives the engine stores on the node
c = Value(3.0) / Value(2.0)
check_answer("dc/da", local_a, c._local[0])
check_answer("dc/db", local_b, c._local[1])
print("correct:", c._local)

# %% [markdown]
# **Exercise 3.** $y = x / x^2$ uses $x$ twice: once as the numerator, once inside $x^2$.
# At $x = 3$, give the contribution that reaches $x$ through the numerator, the one through
# $x^2$, and their sum. (Check the sum against $\frac{d}{dx}\frac{1}{x} = -1/x^2$.)

# %%
# answer: y = x / u with u = x**2
#   numerator:   dy/dx (u held fixed) = 1/u = 1/9
#   through u:   dy/du * du/dx = (-x/u**2) * 2x = -2/9
via_numerator = 1 / 9
via_square = -2 / 9
total = via_numerator + via_square

# %%
# check: the narration has one contribution per edge into x; backward adds them
x = Value(3.0, label="x")
u = x ** 2
y = x / u
steps = {step.node: step for step in narrate(y)}
check_answer("contribution through the numerator", via_numerator,
             [edge.contribution for edge in steps[y].edges if edge.input is x][0])
check_answer("contribution through x**2", via_square,
             [edge.contribution for edge in steps[u].edges if edge.input is x][0])
y.backward()
check_answer("total dy/dx", total, x.grad)
assert math.isclose(x.grad, -1 / 3 ** 2)
print("correct:", via_numerator, "+", via_square, "=", x.grad)

# %% [markdown]
# **Exercise 4.** The quiz below hides three gradients of $g = (a b + b)\,a$ at $a = 2$,
# $b = 3$. Predict them from the local derivatives on the edges.

# %%
qa, qb = Value(2.0, label="a"), Value(3.0, label="b")
p = qa * qb;  p.label = "p"
s = p + qb;   s.label = "s"
g = s * qa;   g.label = "g"
q4 = quiz(g, nodes=["s", "a", "b"])
q4

# %%
# answer: dg/ds = a = 2; dg/dp = dg/ds = 2; dg/da = s + dg/dp * b = 9 + 6;
# dg/db = dg/dp * a + dg/ds = 4 + 2
my_ds, my_da, my_db = 2.0, 15.0, 6.0

# %%
# check: per node right, or wrong with the chain rule as a hint
q4.check(s=my_ds, a=my_da, b=my_db).assert_right()

# %% [markdown]
# ## Summary
#
# - Every edge carries a local derivative, computed in the forward pass.
# - Backward starts with $\bar y = 1$ and visits nodes in reverse topological order, doing
#   `input.grad += local * node.grad` along every edge; the invariant (all users of a node are
#   done before it) makes each gradient final when it is used. One pass, one multiply-add per
#   edge.
# - A node used several times receives several contributions, and they **add**. Leaves keep
#   adding across `backward()` calls until `zero_grad()`.
# - The usual bugs (recursion without a topological order, `=`, stale interior gradients,
#   a dropped local derivative, a wrong sign) each look right on some graphs;
#   `misconceptions(root)` shows where each one breaks on yours.
#
# Next, [notebook 3](03_paths_and_modes.ipynb) unrolls the recursion into a sum over paths,
# shows why that sum explodes and how factoring it tames it, and compares forward and
# reverse mode.
