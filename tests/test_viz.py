"""Drawing: DOT structure, edge derivatives, determinism, rendering, missing dot, large graphs,
bad options, Jupyter display."""
from __future__ import annotations

import html
import math
import os
import random
import re
import shutil
import subprocess
import sys
import textwrap

import graphviz
import pytest

from tinygrad_scalar import Value, topological_order
from tinygrad_scalar.viz import (DEFAULT_MAX_NODES, Drawing, GraphvizNotFoundError, Picture,
                                 Pictures, cluster_paths, draw_dot, format_number, render_to,
                                 show, show_backward, to_svg)

from conftest import needs_dot  # skips where Graphviz's dot is missing

# ---------------------------------------------------------------------------------------------
# A small parser for the DOT that draw_dot writes: enough to check structure, not a DOT parser.

_NODE = re.compile(r"^\s+(\w+) \[(.*)\]$")
_EDGE = re.compile(r"^\s+(\w+) -> (\w+)(?: \[(.*)\])?$")
_ATTR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^ "\]]+)')


def _attrs(text):
    out = {}
    for k, v in _ATTR.findall(text or ""):
        out[k] = v[1:-1].replace('\\"', '"') if v.startswith('"') else v
    return out


def parse(source):
    """(nodes: name -> attrs, edges: [(src, dst, attrs)], clusters: name -> [member names])."""
    nodes, edges, clusters, stack = {}, [], {}, []
    for line in source.splitlines():
        m = re.match(r"^\s+subgraph (\"[^\"]+\"|\S+) \{$", line)
        if m:
            stack.append(m.group(1).strip('"'))
            clusters[stack[-1]] = []
            continue
        if line.strip() == "}" and stack:
            stack.pop()
            continue
        m = _EDGE.match(line)
        if m:
            edges.append((m.group(1), m.group(2), _attrs(m.group(3))))
            continue
        m = _NODE.match(line)
        if m and m.group(1) not in ("graph", "node", "edge"):
            nodes[m.group(1)] = _attrs(m.group(2))
            for c in stack:
                clusters[c].append(m.group(1))
    return nodes, edges, clusters


def fields(label):
    """The record's fields: '{ a | data 2 | grad 0 }' -> ['a', 'data 2', 'grad 0']."""
    label = label.strip()
    if label.startswith("{"):
        label = label[1:-1]
    return [f.strip() for f in re.split(r"(?<!\\)\|", label)]


def number_of(field):
    return float(field.split(" ", 1)[1])


def small_graph():
    """d = tanh(2 * (a*b + a)), the lecture-sized example, with labels and one constant."""
    a = Value(2.0, label="a")
    b = Value(-3.0, label="b")
    c = a * b + a
    c.label = "c"
    d = (c * 2).tanh()
    d.label = "d"
    return a, b, c, d


def mlp_graph(sizes, xs, seed=0, reg=False):
    """An MLP's graph built here with nn's labelling convention (no dependency on nn.py)."""
    r = random.Random(seed)
    x = [Value(v, label=f"x{i}") for i, v in enumerate(xs)]
    params = []
    for layer, (nin, nout) in enumerate(zip(sizes, sizes[1:])):
        out = []
        for k in range(nout):
            ws = [Value(r.uniform(-1, 1), label=f"L{layer}.N{k}.w{i}") for i in range(nin)]
            b = Value(0.1, label=f"L{layer}.N{k}.b")
            params += ws + [b]
            z = Value.sum([w * xi for w, xi in zip(ws, x)] + [b])
            z.label = f"L{layer}.N{k}.z"
            a = z.tanh()
            a.label = f"L{layer}.N{k}.a"
            out.append(a)
        x = out
    loss = (x[0] - 1.0) ** 2
    if reg:
        loss = loss + 0.01 * Value.sum([p * p for p in params])
    return loss, params


# ---------------------------------------------------------------------------------------------
# What a picture shows.


def test_records_ops_and_edges_of_a_small_graph():
    a, b, c, d = small_graph()
    d.backward()
    g = draw_dot(d)
    assert isinstance(g, graphviz.Digraph) and isinstance(g, Drawing)
    nodes, edges, _ = parse(g.source)
    topo = topological_order(d)
    values = [n for n in nodes if not n.endswith("op")]
    ops = [n for n in nodes if n.endswith("op")]
    assert values == [f"n{i}" for i in range(len(topo))]
    assert len(ops) == sum(1 for v in topo if not v.is_leaf)
    for i, v in enumerate(topo):
        f = fields(nodes[f"n{i}"]["label"])
        # every node shows the name narration and the tables use: its label, else n<i>
        assert f[0] == (v.label or f"n{i}")
        if v.is_constant:  # a constant shows its value only: its gradient means nothing
            assert len(f) == 2 and number_of(f[1]) == pytest.approx(v.data, rel=1e-3)
            continue
        assert len(f) == 3
        assert number_of(f[-2]) == pytest.approx(v.data, rel=1e-3)
        assert number_of(f[-1]) == pytest.approx(v.grad, rel=1e-3)
        if not v.is_leaf:
            assert nodes[f"n{i}op"]["label"] == v._op
            assert nodes[f"n{i}op"]["shape"] != "record"
    # every input edge goes value -> op node, then op node -> its value
    expected = []
    for i, v in enumerate(topo):
        expected += [(f"n{topo.index(p)}", f"n{i}op") for p in v._prev]
        if not v.is_leaf:
            expected.append((f"n{i}op", f"n{i}"))
    assert sorted((s, t) for s, t, _ in edges) == sorted(expected)
    assert Value(1.0).draw().source == draw_dot(Value(1.0)).source
    assert d.draw(edge_labels=True).source == draw_dot(d, edge_labels=True).source


def test_a_plus_a_shows_two_edges_and_highlights_both():
    a = Value(3.0, label="a")
    y = a + a
    nodes, edges, _ = parse(draw_dot(y, edge_labels=True, highlight_edges=[(a, y)]).source)
    into = [e for e in edges if e[:2] == ("n0", "n1op")]
    assert len(into) == 2
    assert all(e[2]["label"] == "1" and "color" in e[2] for e in into)
    z = a * a
    _, edges, _ = parse(draw_dot(z, edge_labels=True).source)
    assert [e[2]["label"] for e in edges if e[:2] == ("n0", "n1op")] == ["3", "3"]


def test_leaves_constants_root_and_interior_are_styled_apart():
    a, b, c, d = small_graph()
    nodes, _, _ = parse(draw_dot(d).source)
    topo = topological_order(d)
    style = {}
    for i, v in enumerate(topo):
        kind = ("root" if v is d else "constant" if v.is_constant else
                "leaf" if v.is_leaf else "interior")
        attrs = {k: x for k, x in nodes[f"n{i}"].items() if k != "label"}
        style.setdefault(kind, set()).add(tuple(sorted(attrs.items())))
    assert set(style) == {"root", "constant", "leaf", "interior"}
    assert all(len(s) == 1 for s in style.values())  # one style per kind
    assert len({next(iter(s)) for s in style.values()}) == 4  # four different styles
    assert "dashed" in next(iter(style["constant"]))[-1][1]


def test_edge_labels_are_local_derivatives_and_path_products_sum_to_the_gradient():
    a = Value(0.7, label="a")
    b = Value(-1.3, label="b")
    f = (a * b + a.tanh()) * a + b.exp() / a  # several paths from a and b to f
    f.backward()
    nodes, edges, _ = parse(draw_dot(f, edge_labels=True, precision=17).source)
    topo = topological_order(f)
    # each value -> op edge is labelled with d(op output)/d(input), from the node's own record
    for i, v in enumerate(topo):
        labelled = [float(e[2]["label"]) for e in edges if e[1] == f"n{i}op"]
        assert labelled == list(v._local)
    assert all("label" not in e[2] for e in edges if e[0].endswith("op"))
    # follow every path from a leaf to the root multiplying labels: the sum is the gradient
    out = {}
    for s, t, at in edges:
        out.setdefault(s, []).append((t, float(at.get("label", 1.0))))

    def paths(name):
        if name == f"n{len(topo) - 1}":
            return 1.0
        return sum(d * paths(t) for t, d in out.get(name, []))

    ia, ib = topo.index(a), topo.index(b)
    ta, xa, xb = math.tanh(0.7), 0.7, -1.3
    dfa = 2 * xa * xb + ta + xa * (1 - ta * ta) - math.exp(xb) / xa ** 2  # closed forms
    dfb = xa * xa + math.exp(xb) / xa
    assert paths(f"n{ia}") == pytest.approx(dfa, rel=1e-12)
    assert paths(f"n{ib}") == pytest.approx(dfb, rel=1e-12)
    assert a.grad == pytest.approx(dfa, rel=1e-12) and b.grad == pytest.approx(dfb, rel=1e-12)


def test_numbers_are_compact_and_stable():
    assert format_number(0.123456) == "0.1235"
    assert format_number(-0.0) == "0" and format_number(0) == "0"
    assert format_number(1e-5) == "1e-05"
    assert format_number(123456.0) == "1.235e+05"
    assert format_number(2.0) == "2"
    assert format_number(math.inf) == "inf" and format_number(math.nan) == "nan"
    assert format_number(1 / 3, precision=2) == "0.33"
    assert format_number(0.1, precision=17) == "0.10000000000000001"
    _, _, _, d = small_graph()
    assert "0.0027" not in draw_dot(d, precision=2).source
    d.backward()
    assert '"{ d | data -1 | grad 1 }"' in draw_dot(d).source
    assert '"{ c | data -4 | grad 9.003e-07 }"' in draw_dot(d).source  # 2 (1 - tanh(-8)^2)
    assert '"{ c | data -4 | grad 9e-07 }"' in draw_dot(d, precision=1).source


def test_show_grad_false_and_grads_mapping():
    a, b, c, d = small_graph()
    d.backward()
    assert "grad " not in draw_dot(d, show_grad=False).source
    assert '"{ d | data -1 }"' in draw_dot(d, show_grad=False).source
    before = {v: v.grad for v in topological_order(d)}
    nodes, _, _ = parse(draw_dot(d, grads={d: 1.0, c: Value(0.25)}).source)
    topo = topological_order(d)
    for i, v in enumerate(topo):
        if v.is_constant:
            continue  # constants show no gradient
        want = 1.0 if v is d else 0.25 if v is c else 0.0  # missing -> drawn as 0
        assert number_of(fields(nodes[f"n{i}"]["label"])[-1]) == want
    assert {v: v.grad for v in topo} == before  # grads= never touches .grad


def test_highlight_nodes_and_edges():
    a, b, c, d = small_graph()
    g = draw_dot(d, highlight_nodes=[c], highlight_edges=[(c._prev[0], c)])
    nodes, edges, _ = parse(g.source)
    topo = topological_order(d)
    ic, ip = topo.index(c), topo.index(c._prev[0])
    hot = {n for n, at in nodes.items() if at.get("color") == "#dc2626"}
    assert hot == {f"n{ic}"}
    hot_edges = {(s, t) for s, t, at in edges if at.get("color") == "#dc2626"}
    assert hot_edges == {(f"n{ip}", f"n{ic}op"), (f"n{ic}op", f"n{ic}")}


def test_highlights_outside_the_graph_are_refused():
    a, b, c, d = small_graph()
    stranger = Value(1.0)
    with pytest.raises(ValueError, match="not in the graph"):
        draw_dot(d, highlight_nodes=[stranger])
    with pytest.raises(ValueError, match="not an input of"):
        draw_dot(d, highlight_edges=[(b, d)])  # b feeds a*b, not d
    with pytest.raises(ValueError, match="not an input of"):
        draw_dot(d, highlight_edges=[(c, a)])  # reversed pair
    with pytest.raises(ValueError, match="pairs"):
        draw_dot(d, highlight_edges=[a])
    with pytest.raises(ValueError, match="Values"):
        draw_dot(d, highlight_nodes=[1.0])
    with pytest.raises(ValueError, match="grads"):
        draw_dot(d, grads={"a": 1.0})
    with pytest.raises(ValueError, match="real numbers"):
        draw_dot(d, grads={a: "1"})


def test_rankdir_and_record_orientation():
    _, _, _, d = small_graph()
    lr, tb = draw_dot(d, rankdir="LR").source, draw_dot(d, rankdir="TB").source
    assert "rankdir=LR" in lr and "rankdir=TB" in tb
    # records flip with rankdir; braces keep data and grad side by side in both
    assert 'label="{ d | data' in lr and 'label="d | data' in tb
    assert parse(lr)[1] == parse(tb)[1]


@pytest.mark.parametrize("options, match", [
    (dict(rankdir="lr"), "rankdir must be 'LR'"),
    (dict(rankdir="sideways"), "rankdir"),
    (dict(format="svgz!"), "format must be"),
    (dict(format=None), "format must be"),
    (dict(show_grad="yes"), "show_grad must be True or False"),
    (dict(edge_labels=1), "edge_labels must be True or False"),
    (dict(cluster=None), "cluster must be"),
    (dict(collapse="no"), "collapse must be"),
    (dict(precision=0), "precision"),
    (dict(precision=2.5), "precision"),
    (dict(max_nodes=0), "max_nodes"),
    (dict(max_nodes=True), "max_nodes"),
    (dict(max_nodes="500"), "max_nodes"),
    (dict(title=3), "title"),
    (dict(graph_attr={"dpi": 150}), "graph_attr"),
    (dict(rankdri="TB"), "did you mean 'rankdir'"),
    (dict(edge_label=True), "did you mean 'edge_labels'"),
])
def test_bad_options_raise_clear_value_errors(options, match):
    _, _, _, d = small_graph()
    with pytest.raises(ValueError, match=match):
        draw_dot(d, **options)
    with pytest.raises(ValueError, match=match):
        d.draw(**options)


def test_root_must_be_a_value():
    with pytest.raises(TypeError, match="needs a Value"):
        draw_dot(3.0)
    with pytest.raises(TypeError, match="Value or a graphviz.Digraph"):
        to_svg("y")


def test_title_and_graph_attributes():
    _, _, _, d = small_graph()
    src = draw_dot(d, title="step 3", graph_attr={"dpi": "150"}).source
    assert 'label="step 3"' in src and "dpi=150" in src


def test_labels_with_record_characters_are_escaped():
    a = Value(1.0, label='x{1}|<y>"q"')
    y = a * 2
    src = draw_dot(y).source
    nodes, _, _ = parse(src)
    assert fields(nodes["n0"]["label"])[0] == r'x\{1\}\|\<y\>\"q\"'.replace('\\"', '"')
    if shutil.which("dot"):
        svg = draw_dot(y).pipe(format="svg").decode()
        assert "x{1}|&lt;y&gt;&quot;q&quot;" in svg or 'x{1}|&lt;y&gt;"q"' in svg


@needs_dot
def test_titles_cluster_names_and_op_symbols_are_shown_literally():
    # a trailing backslash used to end the DOT string early (dot: syntax error), <...> was read
    # as an HTML label, and \N showed Graphviz's node name instead of the text
    from tinygrad_scalar.custom import define_op
    op = define_op("viz_backslash_op", lambda x: 2.0 * x, lambda x, out: 2.0, symbol="\\",
                   verify=False, replace=True)
    x = Value(1.0, label="L\\.N0.w")
    y = op(x) + 1.0
    title = '<b>step</b> \\N "q" back\\\nline 2'
    svg = draw_dot(y, title=title, cluster=True).pipe(format="svg").decode()
    texts = [html.unescape(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]
    assert '<b>step</b> \\N "q" back\\' in texts and "line 2" in texts
    assert "L\\" in texts            # the cluster's name
    assert "\\" in texts             # the operation's symbol
    svg = draw_dot(y, collapse=True).pipe(format="svg").decode()
    assert "L\\.N0" in html.unescape(svg)


# ---------------------------------------------------------------------------------------------
# Determinism.


_BUILD = """
from tinygrad_scalar import Value
a = Value(2.0, label='a'); b = Value(-3.0, label='b')
c = a * b + a; c.label = 'c'
d = (c * 2).tanh(); d.label = 'd'
e = d + d * c
e.backward()
"""


def test_same_graph_same_bytes_every_time_and_in_another_process():
    ns1, ns2 = {}, {}
    exec(_BUILD, ns1)
    exec(_BUILD, ns2)  # an identical graph made of different objects (different id()s)
    e1, e2 = ns1["e"], ns2["e"]
    opts = dict(edge_labels=True, cluster=True)
    s1 = draw_dot(e1, **opts).source
    assert s1 == draw_dot(e1, **opts).source == draw_dot(e2, **opts).source
    code = _BUILD + "\nfrom tinygrad_scalar.viz import draw_dot\n" \
                    "import sys; sys.stdout.write(draw_dot(e, edge_labels=True, cluster=True)" \
                    ".source)"
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout
    assert out == s1
    assert not re.search(r"\d{8,}", s1)  # no id()-like numbers anywhere


def test_deep_chain_draws_without_recursion():
    x = Value(0.5, label="x")
    y = x
    for _ in range(3000):
        y = y * 1.0001
    src = draw_dot(y, max_nodes=None).source
    assert src.count("->") == 2 * 3000 + 3000  # two inputs and one output edge per node


# ---------------------------------------------------------------------------------------------
# Rendering.


@needs_dot
def test_pipe_and_render_svg_png_pdf(tmp_path):
    _, _, _, d = small_graph()
    d.backward()
    g = draw_dot(d, edge_labels=True)
    svg = g.pipe(format="svg").decode()
    assert "<svg" in svg and "data &#45;4" in svg and "tanh" in svg
    assert g.pipe(format="png").startswith(b"\x89PNG")
    assert g.pipe(format="pdf").startswith(b"%PDF")
    assert draw_dot(d, format="png").pipe().startswith(b"\x89PNG")
    out = g.render(tmp_path / "graph", format="pdf")
    assert open(out, "rb").read(4) == b"%PDF"
    assert "<svg" in to_svg(d) and to_svg(g) == svg
    for suffix, magic in ((".svg", b"<?xml"), (".png", b"\x89PNG"), (".pdf", b"%PDF")):
        p = render_to(d, tmp_path / f"g{suffix}", rankdir="TB")
        assert p.read_bytes().startswith(magic)
    assert render_to(g, tmp_path / "g.dot").read_text() == g.source
    with pytest.raises(ValueError, match="suffix"):
        render_to(d, tmp_path / "g.unknown")
    with pytest.raises(ValueError, match="already a drawing"):
        render_to(g, tmp_path / "g.svg", rankdir="TB")


@pytest.fixture
def no_dot(tmp_path, monkeypatch):
    """Hide every Graphviz executable: PATH holds only an empty folder."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("dot") is None


def test_missing_dot_says_how_to_install_and_keeps_the_source(no_dot, tmp_path):
    a, b, c, d = small_graph()
    g = draw_dot(d)
    assert "digraph" in g.source and "tanh" in g.source  # no dot needed for the source
    calls = [lambda: g.pipe(format="svg"), lambda: g.pipe(format="png"),
             lambda: g.render(tmp_path / "x", format="pdf"), lambda: g._repr_mimebundle_(),
             lambda: to_svg(d), lambda: show(d), lambda: render_to(d, tmp_path / "x.png")]
    for call in calls:
        with pytest.raises(GraphvizNotFoundError) as info:
            call()
        msg = str(info.value)
        assert "dot" in msg and "apt-get install graphviz" in msg
        assert "brew install graphviz" in msg and "conda install -c conda-forge graphviz" in msg
        assert ".source" in msg
        assert isinstance(info.value, graphviz.ExecutableNotFound)  # old except clauses work
    assert render_to(d, tmp_path / "x.dot").read_text() == g.source  # DOT needs no dot
    d.grad = c.grad = 0.0
    with pytest.raises(GraphvizNotFoundError):
        show_backward(d)
    assert d.grad == 0.0 and a.grad == 0.0  # nothing ran when nothing could be drawn


# ---------------------------------------------------------------------------------------------
# Large graphs: refused kindly, grouped by module, or collapsed.


def test_large_graph_is_refused_with_the_count_and_what_to_do():
    loss, _ = mlp_graph([2, 16, 16, 1], [0.5, -0.3])
    n = len(topological_order(loss))
    assert n > DEFAULT_MAX_NODES
    with pytest.raises(ValueError) as info:
        draw_dot(loss)
    msg = str(info.value)
    assert f"{n} values" in msg and f"max_nodes={DEFAULT_MAX_NODES}" in msg
    assert "max_nodes=None" in msg and "collapse=True" in msg and "smaller piece" in msg
    with pytest.raises(ValueError, match=f"{n} values"):
        draw_dot(loss, max_nodes=100, cluster=True)
    nodes, _, _ = parse(draw_dot(loss, max_nodes=None).source)
    assert sum(1 for k in nodes if not k.endswith("op")) == n
    nodes, _, _ = parse(draw_dot(loss, collapse=True).source)  # 2 + 16 + 16 + 1 boxes + loss
    assert len([k for k in nodes if k.startswith("c")]) == 33
    with pytest.raises(ValueError, match="even with each neuron collapsed"):
        draw_dot(loss, collapse=True, max_nodes=20)
    chain = Value(1.0)
    for _ in range(30):
        chain = chain * 2
    with pytest.raises(ValueError, match="61 values and none of them has a module label"):
        draw_dot(chain, collapse=True, max_nodes=20)


def test_cluster_rule_from_labels():
    loss, params = mlp_graph([2, 2, 1], [0.5, -0.3], reg=True)
    topo = topological_order(loss)
    paths = dict(zip(topo, cluster_paths(topo)))
    for p in params:  # rule 1: dotted labels
        assert paths[p] == tuple(p.label.split(".")[:-1])
    for v in topo:
        if v.label.endswith((".z", ".a")):
            assert paths[v] == tuple(v.label.split(".")[:2])
        if v.label.startswith("x"):
            assert paths[v] is None  # inputs belong to no module
        if v._op == "*" and not v.label:
            w, other = v._prev
            if not w.label:
                continue  # the constant 0.01 scaling the regularisation sum
            if other is w:  # the regularisation term w * w feeds a sum outside the neuron
                assert paths[v] is None
            else:  # rule 2: w * x joins the neuron of its weight
                assert paths[v] == paths[w] and paths[v] is not None
        if v.is_constant:
            assert paths[v] is None
    assert paths[loss] is None
    # labels that are not module paths
    odd = [Value(1.0, label=s) for s in ("plain", "a..b", ".x", "y.")]
    assert cluster_paths(odd) == [None] * 4


def test_clusters_nest_neurons_inside_layers():
    loss, _ = mlp_graph([2, 2, 1], [0.5, -0.3])
    loss.backward()
    topo = topological_order(loss)
    src = draw_dot(loss, cluster=True).source
    nodes, edges, clusters = parse(src)
    assert set(clusters) == {"cluster_L0", "cluster_L0.N0", "cluster_L0.N1", "cluster_L1",
                             "cluster_L1.N0"}
    for v, path in zip(topo, cluster_paths(topo)):
        name = f"n{topo.index(v)}"
        for c in clusters:
            inside = path is not None and c[len("cluster_"):] in (
                ".".join(path[:k]) for k in range(1, len(path) + 1))
            assert (name in clusters[c]) == inside, (v, c)
            if not v.is_leaf:
                assert (name + "op" in clusters[c]) == inside
    assert src.index("subgraph cluster_L0 {") < src.index('subgraph "cluster_L0.N0" {')
    assert 'label=N0' in src and 'label=L1' in src
    assert parse(draw_dot(loss).source)[1] == edges  # grouping changes no edge
    assert "subgraph" not in draw_dot(small_graph()[3], cluster=True).source  # no modules


def test_collapse_draws_each_neuron_as_one_box():
    loss, _ = mlp_graph([2, 2, 1], [0.5, -0.3])
    loss.backward()
    topo = topological_order(loss)
    nodes, edges, clusters = parse(draw_dot(loss, collapse=True, edge_labels=True).source)
    boxes = {k: fields(v["label"]) for k, v in nodes.items() if k.startswith("c")}
    by_name = {f[0]: k for k, f in boxes.items()}
    assert set(by_name) == {"L0.N0", "L0.N1", "L1.N0"}
    out = next(v for v in topo if v.label == "L1.N0.a")  # a box shows its neuron's output
    f = boxes[by_name["L1.N0"]]
    assert number_of(f[1]) == pytest.approx(out.data, rel=1e-3)
    assert number_of(f[2]) == pytest.approx(out.grad, rel=1e-3)
    assert set(clusters) == {"cluster_L0", "cluster_L1"}
    pairs = [(s, t) for s, t, _ in edges]
    assert len(pairs) == len(set(pairs))  # one edge per input into a box
    ix0 = f"n{next(i for i, v in enumerate(topo) if v.label == 'x0')}"
    assert {t for s, t in pairs if s == ix0} == {by_name["L0.N0"], by_name["L0.N1"]}
    assert {s for s, t in pairs if t == by_name["L1.N0"]} == {by_name["L0.N0"], by_name["L0.N1"]}
    # the edge out of the last neuron still carries its local derivative d(a - 1)/d a = 1
    assert [at.get("label") for s, t, at in edges if s == by_name["L1.N0"]] == ["1"]
    assert all("label" not in at for s, t, at in edges if t.startswith("c"))
    hot, _, _ = parse(draw_dot(loss, collapse=True, highlight_nodes=[out]).source)
    assert hot[by_name["L1.N0"]].get("color") == "#dc2626"
    # the root drawn inside a collapsed neuron keeps the root's look (yellow, bold)
    root = loss._prev[0]._prev[0]  # L1.N0.a, the network's output
    nodes, _, _ = parse(draw_dot(root, collapse=True).source)
    box = {fields(v["label"])[0]: v for k, v in nodes.items() if k.startswith("c")}
    assert box["L1.N0"]["fillcolor"] == "#fde68a" and "bold" in box["L1.N0"]["style"]
    assert box["L0.N0"]["fillcolor"] != "#fde68a"


@needs_dot
def test_clustered_and_collapsed_graphs_render():
    loss, _ = mlp_graph([2, 3, 1], [0.5, -0.3])
    loss.backward()
    assert b"<svg" in draw_dot(loss, cluster=True, edge_labels=True).pipe(format="svg")
    assert draw_dot(loss, collapse=True, rankdir="TB").pipe(format="png").startswith(b"\x89PNG")


# ---------------------------------------------------------------------------------------------
# Jupyter.


@needs_dot
def test_show_returns_an_inline_svg_picture():
    _, _, _, d = small_graph()
    p = show(d, edge_labels=True)
    assert isinstance(p, Picture)
    assert "<svg" in p._repr_svg_() and p.source == draw_dot(d, edge_labels=True).source
    assert p.inline_svg().startswith("<svg")
    assert draw_dot(d)._repr_mimebundle_()["image/svg+xml"].count("<svg") == 1


@needs_dot
def test_show_backward_draws_zeros_then_gradients():
    a, b, c, d = small_graph()
    a.grad = 5.0  # stale, accumulated earlier: replaced, as by zero_grad(); backward()
    pics = show_backward(d, edge_labels=True)
    assert isinstance(pics, Pictures) and len(pics) == 2
    before, after = pics
    assert "before" in before.title and "after" in after.title
    grads_before = re.findall(r"grad (\S+?) ?[}\"]", before.source)
    assert grads_before and set(grads_before) == {"0"}
    ref = {v: v.grad for v in topological_order(d)}
    ta = math.tanh(2 * (2 * -3 + 2))
    assert a.grad == pytest.approx((1 - ta * ta) * 2 * (-3 + 1))  # closed form, not 5 + ...
    assert d.grad == 1.0
    assert f"grad {format_number(a.grad)}" in after.source
    show_backward(d)  # twice: the same grads, never doubled
    assert {v: v.grad for v in topological_order(d)} == ref
    html = pics._repr_html_()
    assert html.count("<svg") == 2 and "<?xml" not in html and "before backward()" in html
    with pytest.raises(ValueError, match="grads"):
        show_backward(d, grads={})


def test_executed_notebook_shows_svg(tmp_path):
    nbformat = pytest.importorskip("nbformat", reason="nbformat is needed to build a notebook")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is needed to run a notebook")
    jc = pytest.importorskip("jupyter_client", reason="jupyter_client is needed for a kernel")
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed (make test installs it)")
    try:
        jc.kernelspec.KernelSpecManager().get_kernel_spec("python3")
    except jc.kernelspec.NoSuchKernel as e:  # only a missing kernel skips; other errors fail
        pytest.skip(f"no python3 Jupyter kernel available: {e}")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(textwrap.dedent(src)) for src in (
        """
        from tinygrad_scalar import Value
        from tinygrad_scalar.viz import draw_dot, show, show_backward
        a = Value(2.0, label='a'); b = Value(-3.0, label='b')
        y = (a * b + a).tanh(); y.label = 'y'
        """,
        "draw_dot(y)",
        "show(y, edge_labels=True)",
        "show_backward(y)",
    )]
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outs = [c.outputs for c in nb.cells]
    assert not any(o.get("output_type") == "error" for cell in outs for o in cell)
    assert "image/svg+xml" in outs[1][0]["data"]
    assert "image/svg+xml" in outs[2][0]["data"]
    assert outs[3][0]["data"]["text/html"].count("<svg") == 2


def test_constants_show_no_gradient_and_repr_has_no_address():
    x = Value(-3.0, "x")
    y = x ** 2  # the exponent 2 is a constant; d y / d exponent is nan for a negative base
    y.backward()
    src = draw_dot(y).source
    assert "nan" not in src and '"{ n1 | data 2 }"' in src
    assert "0x" not in repr(draw_dot(y))


def test_frames_player_html_is_deterministic_across_processes():
    import subprocess
    import sys
    code = ("from tinygrad_scalar import Value\nfrom tinygrad_scalar.teach import backprop_frames\n"
            "a = Value(2.0, 'a'); b = Value(1.0, 'b'); e = (a + b) * (b + 1)\n"
            "print(backprop_frames(e).to_html())")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout for _ in range(2)]
    assert runs[0] == runs[1] and "tgs-frames-" in runs[0]
