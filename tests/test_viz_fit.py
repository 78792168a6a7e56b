"""Pictures that fit and names that match (issue 16 §1, §6), no derivative toward a constant
(issue 12 §2), labels Graphviz cannot take (issue 13 §3)."""
from __future__ import annotations

import json
import math
import re
import shutil

import pytest

import masked
from tinygrad_scalar import Value, topological_order
from tinygrad_scalar.nn import MLP
from tinygrad_scalar.teach import forward_mode, narrate, paths
from tinygrad_scalar.viz import (FIT_STYLE, draw_dot, fit_svg, node_sizes, show, show_backward,
                                 to_svg)

needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz's dot is not installed (make test installs it)")

_NODE = re.compile(r'^\s+(\w+) \[label="(.*?)"(?: |\])', re.MULTILINE)


def heads(source: str) -> dict:
    """{DOT node: the first field of its record}: the name the picture shows."""
    out = {}
    for name, label in _NODE.findall(source):
        label = label.strip()
        if label.startswith("{"):
            label = label[1:-1]
        out[name] = re.split(r"(?<!\\)\|", label)[0].strip()
    return out


def graphs():
    a, b = Value(2.0, "a"), Value(-3.0, "b")
    d = ((a * b + a) * 0.25).tanh()                 # unlabelled interior nodes and a constant
    w1, w2 = Value(0.5, "w"), Value(1.5, "w")       # two nodes with one label
    e = (w1 * w2 + w1).relu() * 3.0
    neuron = MLP(2, [1], seed=0)([0.3, -0.7])
    x = Value(0.4)                                   # no label anywhere
    f = x * x + x
    return [d, e, neuron, f]


@pytest.mark.parametrize("k", range(4))
def test_every_name_the_teaching_tools_use_is_on_its_node(k):
    root = graphs()[k]
    order = topological_order(root)
    shown = heads(draw_dot(root).source)
    nar = narrate(root)
    used = {s.name for s in nar} | {e.input_name for s in nar for e in s.edges}
    used |= {name for name, _ in nar.leaves()}
    leaf = next(v for v in order if v._a is None and not v.is_constant)
    used |= {n for p in paths(root, leaf).paths for n in p.names}
    used |= {r.name for r in forward_mode(root, leaf).rows}
    for name in used:
        v = nar.names  # Value -> name, the teaching tools' own
        node = next(n for n, nm in v.items() if nm == name)
        assert shown[f"n{order.index(node)}"] == name, name
    assert set(nar.names.values()) <= set(shown.values())


def test_duplicate_labels_show_the_unique_names():
    d, e, neuron, f = graphs()
    shown = set(heads(draw_dot(e).source).values())
    assert {"w@n0", "w@n1"} <= shown and "w" not in shown


def test_no_local_derivative_toward_a_constant():
    # issue 12: (p - t) ** 2 with p < t drew nan on the edge from the exponent 2
    p = Value(0.2, "p")
    loss = (p - 1.0) ** 2
    loss.backward()
    src = draw_dot(loss, edge_labels=True).source
    assert "nan" not in src
    order = topological_order(loss)
    consts = [f"n{i}" for i, v in enumerate(order) if v.is_constant]
    assert len(consts) == 2
    labelled = {m.group(1) for m in re.finditer(r"^\s+(\w+) -> \w+ \[.*label=", src, re.M)}
    assert not labelled & set(consts)
    assert labelled == {f"n{order.index(p)}", f"n{order.index(loss._prev[0])}"}
    table = forward_mode(loss, p)
    assert "nan" not in table.to_text() and "nan" not in table._repr_html_()
    assert "NaN" not in json.dumps(table.to_dict())
    for r in table.rows:
        assert (r.adjoint is None) == order[[x.name for x in table.rows].index(r.name)].is_constant
    # derivatives toward Values keep their numbers: d loss / d p = 2 (p - 1)
    assert table.forward == pytest.approx(2 * (0.2 - 1.0))
    assert dict((r.name, r.adjoint) for r in table.rows)["p"] == pytest.approx(2 * (0.2 - 1.0))


def test_a_nul_in_a_label_or_title_is_refused_clearly():
    a = Value(1.0, "a\x00b")
    y = a * 2.0
    with pytest.raises(ValueError, match=r"label of node n0 .*NUL"):
        draw_dot(y)
    with pytest.raises(ValueError, match="title .*NUL"):
        draw_dot(Value(1.0, "ok") * 2.0, title="x\x00")


@needs_dot
def test_a_nul_in_a_module_label_is_refused_before_dot_runs():
    w = Value(0.5, "L0.N\x000.w0")
    y = (w * 2.0).tanh()
    with pytest.raises(ValueError, match="NUL"):
        to_svg(y, collapse=True)


def test_fit_svg_scales_to_the_column_and_keeps_other_styles():
    svg = '<?xml version="1.0"?>\n<svg width="900pt" height="90pt" viewBox="0 0 900 90">x</svg>'
    out = fit_svg(svg)
    assert f'style="{FIT_STYLE}"' in out and out.startswith("<?xml") and fit_svg(out) == out
    styled = fit_svg('<svg width="1pt" style="color:red">')
    assert styled == f'<svg width="1pt" style="{FIT_STYLE};color:red">'


@needs_dot
def test_jupyter_shows_pictures_scaled_with_full_size_one_option_away():
    a = Value(2.0, "a")
    y = (a * 3.0).tanh()
    bundle = draw_dot(y)._repr_mimebundle_()
    assert FIT_STYLE in bundle["image/svg+xml"]
    # nbconvert and JupyterLab show image/svg+xml as an <img> at the SVG's own width (cut at the
    # right): an inline <svg> in HTML, which they prefer, obeys max-width
    assert bundle["text/html"].startswith('<div style="max-width:100%;overflow-x:auto"><svg')
    assert FIT_STYLE in bundle["text/html"] and "<?xml" not in bundle["text/html"]
    full = draw_dot(y, fit=False)._repr_mimebundle_()
    assert FIT_STYLE not in full["image/svg+xml"] and FIT_STYLE not in full["text/html"]
    assert FIT_STYLE in show(y)._repr_html_() and FIT_STYLE not in show(y).full_size()._repr_html_()
    pic = show(y)
    assert FIT_STYLE in pic._repr_svg_() and FIT_STYLE not in pic.svg
    assert FIT_STYLE not in pic.full_size()._repr_svg_()
    assert FIT_STYLE not in show(y, fit=False)._repr_svg_()
    assert FIT_STYLE not in to_svg(y)  # files and web pages get Graphviz's own SVG
    with pytest.raises(ValueError, match="fit must be True or False"):
        draw_dot(y, fit="yes")


@needs_dot
def test_show_backward_draws_both_at_one_size_side_by_side():
    a, b = Value(2.0, "a"), Value(-3.0, "b")
    d = ((a * b + a) * 0.25).tanh()
    pics = show_backward(d)
    size = re.compile(r'<svg width="(\w+)" height="(\w+)"')
    assert size.search(pics[0].svg).groups() == size.search(pics[1].svg).groups()
    boxes = [dict(re.findall(r"<title>(\w+)</title>\n<polygon[^>]*points=\"([^\"]*)\"", p.svg))
             for p in pics]
    boxes[0].pop("tinygrad_scalar"), boxes[1].pop("tinygrad_scalar")  # the background
    assert boxes[0] == boxes[1] and len(boxes[0]) == len(topological_order(d))
    page = pics._repr_html_()
    assert "flex-wrap" not in page and page.count("flex:1 1 0") == 2
    assert page.count(FIT_STYLE) == 2


def box_order(source_graph, prefix: str) -> list:
    """The collapsed boxes of one layer, top to bottom, as Graphviz lays them out."""
    laid = json.loads(source_graph.pipe(format="json"))
    found = []
    for o in laid["objects"]:
        if o["name"].startswith("c") and "pos" in o:
            head = o["label"].strip("{ }").split("|")[0].strip()
            if head.startswith(prefix):
                found.append((-float(o["pos"].split(",")[1]), head))
    return [h for _, h in sorted(found)]


@needs_dot
@pytest.mark.parametrize("sizes", [(2, [16, 16, 1]), (3, [12, 6, 1])])
def test_neurons_appear_in_order(sizes):
    nin, layers = sizes
    out = MLP(nin, layers, seed=0)([0.5] * nin)
    g = draw_dot(out, collapse=True)
    for k, width in enumerate(layers):
        want = [f"L{k}.N{j}" for j in range(width)]
        assert box_order(g, f"L{k}.") == want
    clustered = draw_dot(out, cluster=True, max_nodes=None).source
    names = re.findall(r'subgraph "?cluster_([\w.]+)"? \{', clustered)
    layers_seen = [n for n in names if "." not in n]
    assert layers_seen == [f"L{k}" for k in range(len(layers))]
    assert [n for n in names if n.startswith("L0.")] == [f"L0.N{j}" for j in range(layers[0])]


@pytest.mark.parametrize("name", ["max_sqrt", "relu_sqrt", "max_twice"])
def test_focus_caption_through_an_edge_that_passes_nothing_is_backwards_number(name):
    # sqrt'(0) = inf reaches an edge that passes nothing (max did not pick b, relu(b) is flat):
    # b's box shows backward's number, and the caption must give the same, not 0 x inf = nan
    leaves, y = masked.build(name)
    y.backward()
    b = leaves["b"]
    src = draw_dot(y, focus=b, edge_labels=True).source
    m = re.search(r"sum of the products of local derivatives along them = (\S+) = dy/db", src)
    assert m and float(m.group(1)) == b.grad, src
    assert "b -> n" in src and "passes nothing" in src
    assert src.count("= nan") == 1                      # only in "not inf x 0 = nan"
    # where the mask changes nothing, the caption is the plain one
    assert "passes nothing" not in draw_dot(y, focus=leaves["a"]).source


def test_focus_draws_the_paths_in_full_and_greys_the_rest():
    a, b = Value(2.0, "a"), Value(-3.0, "b")
    c = a * b
    d = c + b * b
    e = (d * a).tanh()
    e.label = "e"
    e.backward()
    src = draw_dot(e, focus=b, edge_labels=True).source
    order = topological_order(e)
    grey = {n for n, _ in re.findall(r"^\s+(n\d+) \[label=\"(.*)fontcolor=\"#9ca3af\"", src, re.M)}
    # on a path from b to e: b, c = a*b, b*b, d, d*a, e; off it: a alone
    assert grey == {f"n{order.index(a)}"}
    # three paths b -> e: via c, and twice via b*b; their product sum is de/db (closed form)
    t = math.tanh((2 * -3 + 9) * 2)
    closed = (1 - t * t) * a.data * (a.data + 2 * b.data)
    assert b.grad == pytest.approx(closed)
    m = re.search(r"focus on b: 3 paths from b to e; .* = (\S+) = de/db", src)
    assert m and float(m.group(1)) == pytest.approx(closed, rel=1e-3)
    # edges leaving the focus (a -> its uses) are grey, the paths' edges are not
    a_name = f"n{order.index(a)}"
    for ln in src.splitlines():
        if " -> " in ln and ln.strip().startswith(a_name + " "):
            assert "#d1d5db" in ln
        if " -> " in ln and ln.strip().startswith(f"n{order.index(b)} "):
            assert "#d1d5db" not in ln
    assert draw_dot(e, focus="b").source == draw_dot(e, focus=b).source  # by name too
    with pytest.raises(ValueError, match="not in the graph"):
        draw_dot(e, focus=Value(1.0, "z"))
    z = Value(1.0, "z")
    s = z * 0.0 + a
    assert "no path" not in draw_dot(s, focus=z).source
    assert "no path from a" not in draw_dot(s, focus=a).source


def test_collapsed_focus_caption_names_only_drawn_nodes():
    # the focus title of a collapsed drawing said "focus on L0.N0.w0: 1 path from L0.N0.w0 to
    # L1.N0.z", two names inside boxes the picture draws closed
    # (and its line on an edge that passes nothing named "L0.N0.z -> L0.N0.a")
    from tinygrad_scalar.teach.graph import node_names
    root = MLP(2, [2, 1], seed=0)([1.0, -2.0])
    out = MLP(2, [2, 1], seed=3)([Value(0.5, "x0"), Value(-1.0, "x1")])
    masked = (out - out.data).sqrt()  # an inf gradient meets relu's flat part in L0.N0
    masked.backward()
    lines = 0
    for r in (root, masked):
        names = node_names(topological_order(r))
        for v in topological_order(r):
            src = draw_dot(r, collapse=True, focus=v).source
            title = re.search(r'label="(focus on [^"]*)"', src).group(1)
            lines += "passes nothing" in title
            said = {n for n in names.values()
                    if re.search(rf"(?<![\w.@]){re.escape(n)}(?![\w.@])", title)}
            assert said <= set(heads(src).values()), (title, sorted(said))
    assert lines  # the masked graph's captions do have that line
    assert "focus on w0 in L0.N0: 1 path from w0 in L0.N0 to L1.N0;" in draw_dot(
        root, collapse=True, focus="L0.N0.w0").source
    # uncollapsed, every node is drawn under its own name
    assert "focus on L0.N0.w0: 1 path from L0.N0.w0 to L1.N0.z;" in draw_dot(
        root, focus="L0.N0.w0").source


@needs_dot
def test_node_sizes_reads_graphviz_layout():
    y = (Value(1.0, "abc") * 2.0).tanh()
    sizes = node_sizes(draw_dot(y))
    assert set(sizes) == {"n0", "n1", "n2", "n2op", "n3", "n3op"}
