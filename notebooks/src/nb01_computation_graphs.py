# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
#   make_notebooks:
#     file: 01_computation_graphs.ipynb
# ---

# %% [markdown]
# # 1. Computation graphs
#
# A computer evaluates a formula one elementary operation at a time: an addition, a
# multiplication, a sine. If we write every intermediate result down as a **node** and draw
# an **edge** from each input to the operation that uses it, we get the formula's
# **computation graph**. Backpropagation, the algorithm that trains neural networks, is
# nothing more than a walk over this graph (notebook 2). This notebook builds graphs,
# evaluates them and draws them.
#
# You will see:
#
# 1. variables and operations as nodes, on $e = (a+b)\,(b+1)$ at $a=2,\ b=1$;
# 2. what each node remembers, and why the graph is a DAG rather than a tree;
# 3. the order of evaluation (a *topological order*), with a ten-line evaluator of our own;
# 4. a composite function, $y = e^{\sin(x^2)}$, taken apart into elementary steps;
# 5. three exercises, each with an answer cell and a cell that checks it.

# %%
import math

from tinygrad_scalar import Value, topological_order
from tinygrad_scalar.teach import answered, check_answer
from tinygrad_scalar.viz import draw_dot

# %% [markdown]
# ## 1. Variables and operations
#
# Take
#
# $$e = (a + b)\,(b + 1).$$
#
# Give every intermediate result a name: $c = a + b$, $d = b + 1$, $e = c \cdot d$. At
# $a = 2$, $b = 1$, plain Python computes exactly these three steps:

# %%
a, b = 2.0, 1.0
c = a + b
d = b + 1
e = c * d
c, d, e

# %% [markdown]
# Plain floats forget how they were made: `e` is just `6.0`. A `Value` wraps a float and, each
# time an operation runs, **records** the operation and its inputs. The arithmetic is the
# same; what we get in addition is the graph. The labels are only names for the pictures.

# %%
a = Value(2.0, label="a")
b = Value(1.0, label="b")
c = a + b;  c.label = "c"
d = b + 1;  d.label = "d"
e = c * d;  e.label = "e"
e

# %% [markdown]
# `draw_dot` draws the recorded graph. Each box is a value (label, data); each small ellipse
# is the operation that produced the box to its right. **Inputs** (leaves) are blue, the
# **constant** `1` that entered through `b + 1` is grey and dashed, the **output** is yellow.
# (`show_grad=False` hides the gradients, which are the subject of notebook 2.)

# %%
draw_dot(e, show_grad=False)

# %% [markdown]
# ## 2. What a node remembers
#
# Every node keeps its operation (`_op`, an empty string for leaves) and its inputs (`_prev`,
# in argument order). That is all the structure there is: following `_prev` from `e`
# reaches every node the result depends on.

# %%
def describe(v):
    # 'c = a + b', 'v = sin(u)' for an operation; 'a (input)' for a leaf
    name = lambda p: p.label or f"{p.data:g}"
    if v.is_leaf:
        return f"{name(v)} ({'constant' if v.is_constant else 'input'})"
    args = [name(p) for p in v._prev]
    if len(args) == 1:
        return f"{name(v)} = {v._op}({args[0]})"
    return f"{name(v)} = {f' {v._op} '.join(args)}"

for v in (e, c, d, a, b):
    print(describe(v))

# %% [markdown]
# Notice that `b` is an input of **two** operations. A formula written on paper is a tree in
# which `b` appears twice; the graph shares the node instead, so `b` has two outgoing
# edges. A graph whose edges all point from inputs towards results, with no cycles, is a
# **directed acyclic graph (DAG)**. Shared nodes are where the interesting part of
# backpropagation happens: notebook 2 shows that their gradients *add up*.

# %%
users_of_b = [v.label for v in topological_order(e) if any(p is b for p in v._prev)]
users_of_b

# %% [markdown]
# ## 3. The order of evaluation
#
# A node can be computed as soon as all of its inputs are known. An ordering of the nodes
# in which every node comes **after all of its inputs** is called a **topological order**.
# Python evaluated our lines in such an order, and `topological_order(root)` returns one for
# any graph (the constant `1` has no label, so it is shown by its value):

# %%
order = topological_order(e)
[v.label or f"const {v.data:g}" for v in order]

# %% [markdown]
# A topological order is usually not unique: `a, b, 1, d, c, e` would do as well, since `c`
# and `d` do not depend on each other. To see that a graph plus a topological order is all
# one needs, here is an evaluator written from scratch. The graph is a dictionary from a
# node's name to its operation and the names of its inputs.

# %%
graph = {            # node: (operation, input names)
    "c": ("+", ["a", "b"]),
    "d": ("+", ["b", "one"]),
    "e": ("*", ["c", "d"]),
}
OPERATIONS = {"+": lambda x, y: x + y, "*": lambda x, y: x * y}

def evaluate(graph, inputs, order):
    values = dict(inputs)
    for name in order:
        if name in graph:                       # an operation node: inputs are ready
            op, args = graph[name]
            values[name] = OPERATIONS[op](*(values[n] for n in args))
    return values

evaluate(graph, {"a": 2.0, "b": 1.0, "one": 1.0}, ["a", "b", "one", "c", "d", "e"])

# %% [markdown]
# An order that is not topological fails: computing `e` before `d` asks for a value that
# does not exist yet.

# %%
try:
    evaluate(graph, {"a": 2.0, "b": 1.0, "one": 1.0}, ["a", "b", "one", "c", "e", "d"])
except KeyError as err:
    print("e needs", err, "which has not been computed yet")

# %% [markdown]
# A small checker will be useful in the exercises: an order is topological when it lists
# every node once and every node's inputs come before it.

# %%
def is_topological(graph, leaves, order):
    nodes = set(graph) | set(leaves)
    if sorted(order) != sorted(nodes):
        return False                     # a node is missing or repeated
    position = {name: i for i, name in enumerate(order)}
    return all(position[p] < position[v] for v, (_, args) in graph.items() for p in args)

(is_topological(graph, ["a", "b", "one"], ["a", "b", "one", "c", "d", "e"]),
 is_topological(graph, ["a", "b", "one"], ["b", "one", "d", "a", "c", "e"]),
 is_topological(graph, ["a", "b", "one"], ["a", "b", "one", "c", "e", "d"]))

# %% [markdown]
# ## 4. A composite function: $y = e^{\sin(x^2)}$
#
# A function that looks like one formula is a chain of elementary operations:
#
# $$u = x^2, \qquad v = \sin u, \qquad y = e^{v}.$$
#
# Each step is an operation whose derivative we know ($2x$, $\cos u$, $e^v$). The graph
# records exactly this decomposition, and notebook 2 will multiply those derivatives along
# its edges.

# %%
x = Value(1.5, label="x")
u = x ** 2;   u.label = "u"
v = u.sin();  v.label = "v"
y = v.exp();  y.label = "y"
draw_dot(y, show_grad=False)

# %% [markdown]
# The exponent `2` in `x ** 2` is an input of the power operation, so it enters the graph as
# a constant leaf. Evaluating the nodes in topological order gives the same number as the
# formula in one line, bit for bit, because it is the same sequence of float operations:

# %%
for node in topological_order(y):
    print(f"{describe(node):22s} -> {node.data:.6f}")

assert y.data == math.exp(math.sin(1.5 ** 2))

# %% [markdown]
# The graph belongs to the **program**, not to the mathematical function. Writing $x^2$ as
# `x * x` computes the same value with a different graph: one multiplication whose two
# input edges both come from `x`, and no constant.

# %%
y2 = (x * x).sin().exp(); y2.label = "y"
print("same value:", y2.data == y.data)
draw_dot(y2, show_grad=False)

# %% [markdown]
# ## 5. A slightly larger graph
#
# A neuron with two inputs computes $\tanh(w_1 x_1 + w_2 x_2 + b)$. The same kind of
# graph, drawn top to bottom this time (`rankdir="TB"`). Notebook 4 builds whole networks
# out of these.

# %%
x1, x2 = Value(2.0, label="x1"), Value(0.0, label="x2")
w1, w2 = Value(-3.0, label="w1"), Value(1.0, label="w2")
bias = Value(6.8813735870195432, label="b")   # chosen so that out = 1/sqrt(2)
n = x1 * w1 + x2 * w2 + bias;  n.label = "n"
out = n.tanh();  out.label = "out"
draw_dot(out, rankdir="TB", show_grad=False)

# %% [markdown]
# ## Exercises
#
# Each exercise has an answer cell, already filled in, and a cell that checks it. Change an
# answer and run the check again to see it fail.
#
# **Exercise 1.** Evaluate the nodes of $y = e^{\sin(x^2)}$ at $x = 0.5$ by hand, using
# only `math` (no `Value`): give $u$, $v$ and $y$.

# %%
# answer
u_val = 0.5 ** 2
v_val = math.sin(u_val)
y_val = math.exp(v_val)

# %%
# check: build the graph at x = 0.5 and compare node by node
x_ = Value(0.5)
u_ = x_ ** 2
v_ = u_.sin()
y_ = v_.exp()
check_answer("u", u_val, u_.data)
check_answer("v", v_val, v_.data)
check_answer("y", y_val, y_.data)
print("correct: u, v, y =", u_val, v_val, y_val)

# %% [markdown]
# **Exercise 2.** The graph of $f = a b + b c$ is given below as a dictionary. Write a
# topological order that starts with `c` (the leaves are `a`, `b`, `c`).

# %%
graph_f = {
    "p": ("*", ["a", "b"]),
    "q": ("*", ["b", "c"]),
    "f": ("+", ["p", "q"]),
}
# answer
my_order = ["c", "b", "q", "a", "p", "f"]

# %%
# check: a valid topological order starting with c, and it evaluates f correctly
answered(my_order=my_order)
check_answer("first node of my_order", my_order[0], "c")
check_answer("'my_order is a topological order'",
             is_topological(graph_f, ["a", "b", "c"], my_order), True)
vals = evaluate(graph_f, {"a": 2.0, "b": 3.0, "c": 4.0}, my_order)
check_answer("f evaluated in my_order", vals["f"], 2.0 * 3.0 + 3.0 * 4.0)
print("correct:", " -> ".join(my_order))

# %% [markdown]
# **Exercise 3.** Build $g = (x + y)(x - y) + y$ at $x = 3$, $y = 2$ with `Value`s. How many
# **operation** nodes does its graph have, and how many edges leave $x$?

# %%
# answer
gx, gy = Value(3.0, label="x"), Value(2.0, label="y")
g = (gx + gy) * (gx - gy) + gy
n_operations = 4          # +, -, *, +
edges_from_x = 2          # x feeds x + y and x - y

# %%
# check against the recorded graph
answered(g=g, gx=gx)
check_answer("g", g.data, (3 + 2) * (3 - 2) + 2)
nodes = topological_order(g)
check_answer("n_operations", n_operations, sum(not v.is_leaf for v in nodes))
check_answer("edges_from_x", edges_from_x, sum(p is gx for v in nodes for p in v._prev))
print("correct:", n_operations, "operations,", edges_from_x, "edges from x, g =", g.data)
draw_dot(g, show_grad=False)

# %% [markdown]
# ## Summary
#
# - A computation is a graph: leaves are inputs and constants, every other node is one
#   elementary operation applied to its inputs.
# - A shared input has several outgoing edges, so the graph is a DAG, not a tree.
# - Evaluating means visiting the nodes in a topological order (inputs before users).
# - The graph records the program: `x ** 2` and `x * x` give different graphs.
#
# Next, [notebook 2](02_backprop.ipynb) walks the same graphs backwards to compute
# derivatives.
