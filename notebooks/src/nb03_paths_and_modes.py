# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
#   make_notebooks:
#     file: 03_paths_and_modes.ipynb
# ---

# %% [markdown]
# # 3. Sum over paths, factoring, and forward vs reverse mode
#
# Notebook 2 computed gradients with a recursion: $\bar v = \sum_{w \text{ uses } v} \bar w\,
# \partial w/\partial v$. Unrolling that recursion gives a striking formula: a derivative is
# a **sum over all paths** through the graph of **products of local derivatives**. This
# notebook
#
# 1. enumerates the paths on $e = (a+b)(b+1)$ and checks the formula against backward;
# 2. shows that the number of paths can grow **exponentially** with the size of the graph;
# 3. shows why that does not matter: the sum can be **factored** so that every edge is used
#    once, and that factoring is exactly what backpropagation does;
# 4. compares the two ways of factoring, **forward mode** (tangents, from an input) and
#    **reverse mode** (gradients, from an output), on one graph;
# 5. counts their operations for a whole Jacobian, which is why neural networks are trained
#    with reverse mode;
# 6. writes every gradient as a formula (SymPy) next to the numbers, and measures why
#    differentiating the formula instead of the graph would be a bad idea.

# %%
import math
import random

import matplotlib.pyplot as plt
from IPython.display import display

from tinygrad_scalar import Value, topological_order
from tinygrad_scalar.teach import (answered, check_answer, expression_swell, forward_mode,
                                    mode_costs, paths, symbolic)
from tinygrad_scalar.viz import draw_dot

# %% [markdown]
# ## 1. The chain rule as a sum over paths
#
# For any two nodes $x$ and $y$ of a graph,
#
# $$\frac{\partial y}{\partial x} \;=\; \sum_{\text{paths } x \to y}\;
# \prod_{\text{edges } u \to w \text{ on the path}} \frac{\partial w}{\partial u}.$$
#
# (Unroll the recursion of notebook 2: $\bar v$ is a sum over $v$'s users, each user's
# gradient is a sum over *its* users, and so on until the output; every term of the fully
# expanded sum follows one path and multiplies the local derivatives along it.)
#
# On $e = (a+b)(b+1)$ at $a = 2,\ b = 1$, the input $b$ reaches $e$ along two paths,
# $b \to c \to e$ with product $1 \cdot 2$ and $b \to d \to e$ with product $1 \cdot 3$:

# %%
a = Value(2.0, label="a")
b = Value(1.0, label="b")
c = a + b;  c.label = "c"
d = b + 1;  d.label = "d"
e = c * d;  e.label = "e"
e.backward()

paths_b = paths(e, b)
paths_b

# %% [markdown]
# Each path drawn in red, with the local derivatives on the edges:

# %%
def path_edges(path):
    # the (input, user) pairs along a path, as draw_dot's highlight_edges wants them
    return list(zip(path.nodes, path.nodes[1:]))

for k, path in enumerate(paths_b.paths, 1):
    display(draw_dot(e, edge_labels=True, highlight_edges=path_edges(path),
                     title=f"path {k}: {' -> '.join(path.names)}, product {path.product:g}"))

# %% [markdown]
# Enumerating paths takes a few lines of recursion: a path from $x$ to $y$ is a path from
# $x$ to one of $y$'s inputs, followed by the edge into $y$.

# %%
def all_paths(x, y):
    # every path from x to y, as the list of local derivatives along it (x's end first)
    if y is x:
        return [[]]
    return [rest + [local]
            for p, local in zip(y._prev, y._local)
            for rest in all_paths(x, p)]

products = [math.prod(path) for path in all_paths(b, e)]
print("paths from b:", all_paths(b, e), " products:", products, " sum:", sum(products))
print("paths from a:", all_paths(a, e), " sum:", sum(map(math.prod, all_paths(a, e))))
assert sum(products) == b.grad and sum(map(math.prod, all_paths(a, e))) == a.grad

# %% [markdown]
# ## 2. The exponential blow-up
#
# Now chain "diamonds": each step sends $y$ through two operations and adds the results,
#
# $$y_{k} = \sin(y_{k-1}) + \cos(y_{k-1}), \qquad y_0 = x.$$
#
# Every diamond offers two ways through, so after $n$ diamonds there are $2^n$ paths from
# $x$ to $y_n$, although the graph has only $4n$ edges. Three diamonds:

# %%
def diamonds(n, x0=0.3):
    x = Value(x0, label="x")
    y = x
    for k in range(1, n + 1):
        s = y.sin();  s.label = f"s{k}"
        c = y.cos();  c.label = f"c{k}"
        y = s + c;    y.label = f"y{k}"
    return x, y

x, y3 = diamonds(3)
draw_dot(y3, show_grad=False, edge_labels=True)

# %%
paths(y3, x)

# %% [markdown]
# Listing the paths and multiplying along each one costs, for $n$ diamonds,
# $2^n$ paths $\times$ $(2n - 1)$ multiplications, plus $2^n - 1$ additions. `paths` also
# **counts** paths without listing them (by dynamic programming, one addition per edge), so
# we can tabulate the cost of enumeration against the size of the graph. Already at
# $n = 40$, a graph of 160 edges, there are about $10^{12}$ paths.

# %%
print(f"{'n':>3} {'edges':>6} {'paths':>18} {'enumeration ops':>20} {'one sweep':>10}")
rows = []
for n in (1, 2, 3, 5, 10, 20, 30, 40):
    x, y = diamonds(n)
    count = paths(y, x, max_paths=0).count
    edges = sum(len(v._prev) for v in topological_order(y))
    enumeration = count * (2 * n - 1) + (count - 1)
    rows.append((n, edges, count, enumeration))
    print(f"{n:>3} {edges:>6} {count:>18,} {enumeration:>20,} {edges:>10}")
assert all(count == 2 ** n for n, _, count, _ in rows)

# %%
ns = range(1, 41)
fig, ax = plt.subplots(figsize=(6.5, 3.5))
ax.semilogy(ns, [2 ** n * (2 * n - 1) + 2 ** n - 1 for n in ns], label="enumerate every path")
ax.semilogy(ns, [4 * n for n in ns], label="factored: one multiply-add per edge")
ax.set_xlabel("number of diamonds n")
ax.set_ylabel("arithmetic operations")
ax.set_title("Computing dy/dx on the diamond chain")
ax.legend()
ax.grid(True, which="major", alpha=0.3)
plt.show()

# %% [markdown]
# ## 3. Why factoring fixes it
#
# The blow-up is an artefact of **expanding** products of sums. On the diamond chain the
# local derivatives of diamond $k$ are $\cos y_{k-1}$ (through $\sin$) and $-\sin y_{k-1}$
# (through $\cos$), and the sum over all $2^n$ paths is a sum over every way of picking one
# branch per diamond. The distributive law undoes the expansion:
#
# $$\sum_{\text{branch choices}}\ \prod_{k=1}^{n} \ell_k(\text{choice}_k)
# \;=\; \prod_{k=1}^{n} \bigl(\cos y_{k-1} - \sin y_{k-1}\bigr):$$
#
# $2^n$ products of $n$ factors on the left, $n$ sums of two terms on the right.
#
# On a general DAG the same idea is a recursion. Let $S(v)$ be the sum over all paths from
# $x$ to $v$ of their products. Every such path ends with one edge into $v$, so
#
# $$S(x) = 1, \qquad S(v) = \sum_{u \text{ input of } v} \frac{\partial v}{\partial u}\, S(u).$$
#
# Computing $S$ in topological order touches every edge exactly **once**, and
# $S(y) = \partial y/\partial x$. The backward pass of notebook 2 is the mirror image: it
# sums over paths from each node to the *output* instead, again one edge at a time. When
# there are too many paths to list, `paths` shows this factored sum; with `max_paths=4` it
# does so already for three diamonds:

# %%
x, y3 = diamonds(3)
paths(y3, x, max_paths=4)

# %% [markdown]
# With 40 diamonds the $2^{40}$ paths are never listed, yet the factored sum, backward and
# the closed form $\prod_k (\cos y_{k-1} - \sin y_{k-1})$ agree:

# %%
x, y40 = diamonds(40)
p40 = paths(y40, x)
closed_form, t = 1.0, 0.3               # the product of (cos y - sin y), on plain floats
for _ in range(40):
    closed_form *= math.cos(t) - math.sin(t)
    t = math.sin(t) + math.cos(t)
print(f"paths: {p40.count:,}   factored sum: {p40.total:.12g}   backward: {p40.grad:.12g}"
      f"   closed form: {closed_form:.12g}")
assert p40.count == 2 ** 40
assert math.isclose(p40.total, closed_form) and math.isclose(p40.grad, closed_form)

# %% [markdown]
# ## 4. Forward mode and reverse mode on one graph
#
# There are two natural ways to organise the factored sum.
#
# **Forward mode** fixes one input $x$ and computes, in topological order, the
# **tangent** $\dot v = \partial v / \partial x$ of every node:
# $\dot x = 1$, $\ \dot v = \sum_{u \text{ input of } v} \frac{\partial v}{\partial u}\,\dot u$.
# That is the $S(v)$ of section 3. One sweep: how **one input** moves **every node**, hence
# every output.
#
# **Reverse mode** fixes one output $y$ and computes, in reverse topological order, the
# **gradient** (adjoint) $\bar v = \partial y / \partial v$ of every node:
# $\bar y = 1$, $\ \bar v = \sum_{w \text{ uses } v} \bar w\,\frac{\partial w}{\partial v}$.
# That is backpropagation. One sweep: how **every node**, hence every input, moves **one
# output**.
#
# Both multiply by the same local derivatives stored on the edges. Forward mode fits in a
# few lines too:

# %%
def my_forward(root, x):
    tangent = {}
    for v in topological_order(root):       # inputs first
        if v is x:
            tangent[v] = 1.0
        else:
            tangent[v] = sum((local * tangent[u] for u, local in zip(v._prev, v._local)), 0.0)
    return tangent

t_b = my_forward(e, b)
print({v.label or "1": t for v, t in t_b.items()})
assert t_b[e] == b.grad

# %% [markdown]
# `forward_mode(root, x)` shows both on one table: the tangents $\partial v/\partial b$ from a
# forward sweep seeded at $b$, next to the gradients $\partial e/\partial v$ from a reverse
# sweep seeded at $e$. They meet in one number, $\partial e/\partial b = 5$: the tangent of
# the output equals the gradient of the input.

# %%
forward_mode(e, b)

# %% [markdown]
# The reverse column already holds $\partial e/\partial a$ as well; to get it by forward
# mode we need a second sweep, seeded at $a$:

# %%
forward_mode(e, a)

# %% [markdown]
# ## 5. Counting operations: which mode for which Jacobian?
#
# A function with $n$ inputs and $m$ outputs has an $m \times n$ Jacobian. Forward mode
# gets one **column** per sweep, so it needs $n$ sweeps; reverse mode gets one **row** per
# sweep, so it needs $m$. Each sweep costs about one multiply-add per edge it crosses.
# `mode_costs(outputs, inputs)` counts these multiply-adds on the actual graph (only edges
# on a path from an input to an output count; the edges from the constant weights below do
# not). For $e$:

# %%
mode_costs(e, [a, b])

# %% [markdown]
# Now a small two-layer network, $n$ inputs $\to$ 8 $\tanh$ units $\to$ 8 $\tanh$ units
# $\to$ $m$ outputs, with fixed random weights (seed 0), for several $n$ and $m$:

# %%
def dense(inputs, width, rng, activation=True):
    outputs = []
    for _ in range(width):
        z = Value.sum([rng.uniform(-1, 1) * v for v in inputs])
        outputs.append(z.tanh() if activation else z)
    return outputs

def network(n, m, hidden=8, seed=0):
    rng = random.Random(seed)
    xs = [Value(rng.uniform(-1, 1), label=f"x{i}") for i in range(n)]
    hs = dense(dense(xs, hidden, rng), hidden, rng)
    return xs, dense(hs, m, rng, activation=False)

print(f"{'n inputs':>8} {'m outputs':>9} | {'forward: sweeps':>15} {'multiply-adds':>13}"
      f" | {'reverse: sweeps':>15} {'multiply-adds':>13} | cheaper")
table = {}
for n, m in [(1, 1), (10, 1), (100, 1), (1, 10), (1, 100), (10, 10)]:
    xs, ys = network(n, m)
    cost = mode_costs(ys, xs)
    table[n, m] = cost
    print(f"{n:>8} {m:>9} | {n:>15} {cost.forward_total:>13,} | {m:>15}"
          f" {cost.reverse_total:>13,} | {cost.cheaper}")

# %% [markdown]
# The pattern is the rule of thumb: **forward mode costs about $n$ times the graph, reverse
# mode about $m$ times the graph.** Training a neural network needs the gradient of **one**
# number, the loss ($m = 1$), with respect to **all** parameters ($n$ in the millions), so
# reverse mode gets the whole gradient for the price of one sweep, while forward mode would
# need one sweep per parameter. For a function with few inputs and many outputs (a curve
# $x \mapsto (y_1, \dots, y_m)$), forward mode wins.

# %%
assert table[100, 1].cheaper == "reverse" and table[1, 100].cheaper == "forward"
assert table[100, 1].forward_total == 100 * table[1, 1].forward_total

# %% [markdown]
# ## 6. Formulas next to numbers: why backprop is not symbolic differentiation
#
# A computer algebra system can write every node's value, and its gradient, as a formula
# in the inputs. `symbolic(root)` does it with SymPy (the optional `symbolic` extra): the
# gradients come from the same reverse sweep as `backward()`, with each edge's local
# derivative taken symbolically, then simplified. Put the leaves' numbers in, and out come
# backward's numbers:

# %%
formulas = symbolic(e)
formulas

# %%
for row in formulas.rows:
    assert math.isclose(row.grad_number, row.backward), row.name
print("de/db as a formula:", formulas.row("b").grad, "=", formulas.row("b").grad_number)

# %% [markdown]
# So why not differentiate the formula instead of the graph? Because a formula has no
# shared sub-expressions: every node is written out once per use, and the product rule
# writes its factors out twice more. The table counts the size of $\partial y/\partial x$
# as SymPy's `diff` writes it (before simplifying) for a chain of diamonds
# $v \mapsto \sin v \cos v$ and for one $\tanh$ neuron with $n$ inputs (all $2n+1$
# derivatives together), against the graph's size. Reverse mode on the graph needs one
# multiply-add per edge, whatever the graph:

# %%
swell = expression_swell()
swell

# %% [markdown]
# The graph grows by 3 nodes per diamond, the written-out derivative more than doubles: the
# same blow-up as the number of paths in section 2, and for the same reason. Simplifying
# can shrink a formula, but only after building it. Backpropagation never writes the
# formula: it keeps each intermediate gradient as one number on the graph and reuses it,
# which is the factoring of section 3.

# %%
diamonds_rows = [r for r in swell.rows if "diamond" in r.graph]
assert all(q.derivative_size > 2 * p.derivative_size
           for p, q in zip(diamonds_rows, diamonds_rows[1:]))

# %% [markdown]
# ## Exercises
#
# Each exercise has an answer cell, already filled in, and a cell that checks it. Change an
# answer and run the check again to see it fail.
#
# **Exercise 1.** How many paths lead from $x$ to $y_{10}$ in the chain of 10 diamonds? And
# in a chain of 5 *three-way* diamonds, $y_k = \sin y_{k-1} + \cos y_{k-1} + \tanh y_{k-1}$?

# %%
# answer: each diamond multiplies the number of ways through by its number of branches
paths_10_diamonds = 2 ** 10
paths_5_threeway = 3 ** 5

# %%
# check by counting on the graphs
x, y = diamonds(10)
check_answer("paths_10_diamonds", paths_10_diamonds, paths(y, x).count)
x = Value(0.3)
y = x
for _ in range(5):
    y = y.sin() + y.cos() + y.tanh()
check_answer("paths_5_threeway", paths_5_threeway, paths(y, x).count)
print("correct:", paths_10_diamonds, paths_5_threeway)

# %% [markdown]
# **Exercise 2.** Let $g = (a\,b)\,(a + b)$ at $a = 2,\ b = 3$, with $p = a b$ and
# $q = a + b$. List the product of local derivatives along each path from $a$ to $g$, then
# from $b$ to $g$.

# %%
# answer: paths a -> p -> g and a -> q -> g; local derivatives dp/da = b, dg/dp = q = 5,
# dq/da = 1, dg/dq = p = 6 (and symmetrically for b)
products_a = [3 * 5, 1 * 6]
products_b = [2 * 5, 1 * 6]

# %%
# check against the enumeration and against backward
ga, gb = Value(2.0, label="a"), Value(3.0, label="b")
g = (ga * gb) * (ga + gb)
g.backward()
answered(products_a=products_a, products_b=products_b)
for leaf, mine in ((ga, products_a), (gb, products_b)):
    listed = paths(g, leaf)
    check_answer(f"products_{leaf.label} (sorted)", sorted(mine),
                 sorted(path.product for path in listed.paths))
    check_answer(f"dg/d{leaf.label} (the sum)", sum(mine), leaf.grad)
print("correct: dg/da =", sum(products_a), " dg/db =", sum(products_b))

# %% [markdown]
# **Exercise 3.** For $f(x_1, \dots, x_{50}) = \bigl(x_1 + x_2 + \dots + x_{50}\bigr)^2$,
# written as one 50-input sum followed by a square, how many sweeps does each mode need
# for the gradient, how many multiply-adds does each do in total, and which is cheaper?

# %%
# answer: the graph has 50 edges x_i -> sum and 1 edge sum -> square (the constant
# exponent's edge is on no path from an input). Forward: 50 sweeps, each crossing
# x_i -> sum and sum -> square. Reverse: 1 sweep crossing all 51 edges.
forward_sweeps, reverse_sweeps = 50, 1
forward_madds, reverse_madds = 50 * 2, 50 + 1
cheaper = "reverse"

# %%
# check with mode_costs on the actual graph
xs = [Value(0.01 * i, label=f"x{i}") for i in range(1, 51)]
f = Value.sum(xs) ** 2
cost = mode_costs(f, xs)
check_answer("forward_sweeps", forward_sweeps, len(cost.forward))
check_answer("reverse_sweeps", reverse_sweeps, len(cost.reverse))
check_answer("forward_madds", forward_madds, cost.forward_total)
check_answer("reverse_madds", reverse_madds, cost.reverse_total)
check_answer("cheaper", cheaper, cost.cheaper)
print("correct:", cost.forward_total, "vs", cost.reverse_total, "multiply-adds")

# %% [markdown]
# ## Summary
#
# - $\partial y/\partial x$ is the sum, over all paths from $x$ to $y$, of the products of
#   the local derivatives along each path.
# - The number of paths can grow exponentially with the graph, but the sum factors: each
#   edge is needed once, in a sweep over the graph.
# - Forward mode sweeps from one input (tangents), reverse mode from one output (gradients).
#   A full Jacobian costs about $n$ sweeps forward and $m$ sweeps in reverse, so a scalar
#   loss of many parameters calls for reverse mode: backpropagation.
# - Backpropagation is not symbolic differentiation: the derivative written out as a
#   formula repeats every shared node once per use (it more than doubles with each
#   diamond), while the sweep over the graph stays at one multiply-add per edge.
#
# Next, [notebook 4](04_neuron_to_mlp.ipynb) builds a neuron and a multi-layer perceptron
# from these pieces.
