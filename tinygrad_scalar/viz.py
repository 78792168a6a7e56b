"""Drawing a Value's graph with Graphviz: records for values, small nodes for operations.

`draw_dot(root, ...)` returns a `Drawing`, a `graphviz.Digraph` whose source is the same bytes
every time for the same graph: nodes are named by their position in `topological_order(root)`
(`n0`, `n1`, ... and `n5op` for the operation that made `n5`), never by `id()`, and everything
is emitted in that order. Rendering (`.pipe()`, `.render()`, inline display in Jupyter) needs
Graphviz's `dot` program; when it is missing the error says how to install it, and `.source`
still works.

Large graphs: `max_nodes` refuses to draw more values than a person can read, `cluster=True`
draws boxes around the nodes each module (layer, neuron) made, and `collapse=True` draws every
neuron as a single box. Modules are recognised from labels (see `cluster_paths`).
"""
from __future__ import annotations

import difflib
import html
import json
import numbers
import os
import pathlib
import re
from typing import Iterable, Mapping, Optional, Union

import graphviz

from .engine import Value, topological_order
from .files import write_atomic
from .teach.graph import node_names, resolve, reverse_sweep

__all__ = ["draw_dot", "Drawing", "GraphvizNotFoundError", "show", "show_backward", "to_svg",
           "render_to", "Picture", "Pictures", "cluster_paths", "format_number", "fit_svg",
           "svg_html", "node_sizes", "with_node_sizes", "widest_sizes", "DrawnParts",
           "DEFAULT_MAX_NODES", "RANKDIRS"]

DEFAULT_MAX_NODES = 500
RANKDIRS = ("LR", "TB", "RL", "BT")
OP_LABELS = {"sum": "\u03a3"}  # op symbols drawn differently from how the engine names them

# Styles, one place: leaves (inputs and parameters), constants, the root, highlights.
_LEAF = {"style": "filled", "fillcolor": "#dbeafe"}
_CONST = {"style": "filled,dashed", "fillcolor": "#f3f4f6", "color": "#6b7280",
          "fontcolor": "#4b5563"}
_ROOT = {"style": "filled,bold", "fillcolor": "#fde68a", "penwidth": "2"}
_COLLAPSED = {"style": "filled,rounded", "fillcolor": "#fef3c7"}
_OP = {"shape": "ellipse", "fontsize": "10", "margin": "0.03,0.01", "height": "0.3",
       "width": "0.3"}
_HIGHLIGHT = {"color": "#dc2626", "penwidth": "3"}
_HIGHLIGHT_EDGE = {"color": "#dc2626", "penwidth": "2.5", "fontcolor": "#dc2626"}
_CLUSTER = {"style": "rounded", "color": "#9ca3af", "fontcolor": "#374151"}
_GREY = {"color": "#d1d5db", "fontcolor": "#9ca3af"}  # outside the focus: drawn faintly
_GREY_FILL = {"style": "filled", "fillcolor": "#f9fafb"}

_INSTALL_HINT = ("Install Graphviz (the Python package `graphviz` alone is not enough): "
                 "`sudo apt-get install graphviz` on Debian/Ubuntu, `brew install graphviz` on "
                 "macOS, or `conda install -c conda-forge graphviz`; then make sure `dot -V` "
                 "works in a terminal.")


class GraphvizNotFoundError(graphviz.ExecutableNotFound):
    """Graphviz's `dot` program is not installed (or not on PATH), so nothing can be rendered.

    A subclass of graphviz.ExecutableNotFound, so code that already catches that still works.
    """

    def __init__(self, what: str = "render the graph"):
        RuntimeError.__init__(self, f"Graphviz's `dot` program was not found on PATH, so this "
                                    f"cannot {what}. {_INSTALL_HINT} The DOT text is still "
                                    "available without it: `drawing.source`.")


class Drawing(graphviz.Digraph):
    """A graphviz.Digraph of a Value's graph (what draw_dot returns).

    The same as graphviz.Digraph, except that a missing `dot` program raises
    GraphvizNotFoundError, which says how to install it.
    """

    fit = True  # shown in Jupyter scaled to the output column (draw_dot(..., fit=False): not)
    parts: Optional["DrawnParts"] = None  # what draw_dot drew, node by node (None on a copy)

    def __repr__(self) -> str:  # no memory address: executed notebooks stay byte-identical
        return f"<Drawing: {len(self.body)} DOT statements>"

    def _repr_image_svg_xml(self) -> str:
        svg = self.pipe(format="svg", encoding="utf-8")
        return fit_svg(svg) if self.fit else svg

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs) -> dict:
        # Also as HTML with the <svg> inline: Jupyter and nbconvert prefer HTML, and an inline
        # SVG obeys max-width, while an image/svg+xml output is often shown as an <img> at the
        # SVG's own width, cut off at the right of the column.
        bundle = super()._repr_mimebundle_(include, exclude, **kwargs)
        svg = bundle.get("image/svg+xml")
        if svg is not None and (not exclude or "text/html" not in exclude):
            bundle["text/html"] = svg_html(svg, self.fit)
        return bundle

    def pipe(self, *args, **kwargs):
        try:
            return super().pipe(*args, **kwargs)
        except GraphvizNotFoundError:
            raise
        except graphviz.ExecutableNotFound:
            raise GraphvizNotFoundError("render the graph (pipe)") from None

    def render(self, *args, **kwargs):
        try:
            return super().render(*args, **kwargs)
        except GraphvizNotFoundError:
            raise
        except graphviz.ExecutableNotFound:
            raise GraphvizNotFoundError("render the graph to a file") from None

    def unflatten(self, *args, **kwargs):
        try:
            return super().unflatten(*args, **kwargs)
        except graphviz.ExecutableNotFound:
            raise GraphvizNotFoundError("run Graphviz's unflatten") from None


class DrawnParts:
    """What draw_dot drew, for tools that change a rendered picture in place (the frames player).

    `nodes` maps each drawn DOT node name (`n3`, a collapsed box `c0`) to the gradient text it
    shows (`'grad 0.5'`, or None) and whether it is highlighted; `edges` lists every edge in the
    order it was emitted (the order of the SVG's edge groups) as (tail, head, highlighted);
    `names` maps each Value to its name in the teaching tools (the name drawn on it, unless it is
    hidden in a collapsed box). `boxed` maps each Value hidden in a collapsed box to the box's
    name (`L0.N0`), `box_shows` each box that shows one value's data and grad to that value;
    `seen_as(v)` is how text about the picture should name v, so a reader can find it.
    """

    def __init__(self) -> None:
        self.nodes: dict = {}
        self.edges: list = []
        self.names: dict = {}
        self.dot_names: dict = {}  # Value -> the DOT node that shows it
        self.grad_shown: dict = {}  # DOT node name -> the Value whose gradient it shows
        # per edge (same order as `edges`): the (parent, child) pairs of Values it stands for;
        # an operation -> output edge stands for (None, output)
        self.edge_pairs: list = []
        self.boxed: dict = {}  # Value -> the name of the collapsed box it is hidden in
        self.box_shows: dict = {}  # box name -> the one Value whose data and grad it shows

    def __repr__(self) -> str:
        return f"<DrawnParts: {len(self.nodes)} nodes, {len(self.edges)} edges>"

    def seen_as(self, v: Value, inside: Optional[str] = None) -> str:
        """The name text about this picture gives v, so that a reader finds v in it: v's own
        name when v is drawn; for a value hidden in a collapsed box, the box's name when the box
        shows v (its output), else `w0 in L0.N0`. Text already about box `inside` (a caption
        'inside L0.N0: ...') names that box's values by their short name alone (`w0`)."""
        box = self.boxed.get(v)
        if box is None:
            return self.names[v]
        if box == inside:
            return self._short_name(v, box)
        if self.box_shows.get(box) is v:
            return box
        return f"{self._short_name(v, box)} in {box}"

    def _short_name(self, v: Value, box: str) -> str:
        """A hidden value's name inside its box: its label without the box's path (`w0` for
        L0.N0.w0), else what computed it from named values (`(w0 * x0)`, in parentheses so
        that '(w0 * x0) += 1' reads as one value): the `n17` of an unlabelled node would name
        a node the picture does not draw."""
        name = self.names[v]
        if name.startswith(box + "."):
            return name[len(box) + 1:]
        op = v.op
        sym = op.symbol if op is not None else ""
        args = [self._arg_name(p, box) for p in v.parents]
        if not sym or None in args:
            return f"a {sym or 'value'} node"
        if sym.isalnum():
            return f"{sym}({', '.join(args)})"
        if len(args) == 2:
            return f"({args[0]} {sym} {args[1]})"
        return f"({sym}{args[0]})" if len(args) == 1 else f"a {sym} node"

    def _arg_name(self, p: Value, box: str) -> Optional[str]:
        """An operand's name in `_short_name`, or None when it has none of its own (one level
        of description only, so a long chain is not spelled out)."""
        other = self.boxed.get(p)
        named = (other is None or self.names[p].startswith(other + ".")
                 or (other != box and self.box_shows.get(other) is p))
        return self.seen_as(p, box) if named else None


# ---------------------------------------------------------------------------------------------
# Small pieces: numbers, record text, labels to module paths.


def format_number(x: float, precision: int = 4) -> str:
    """A number in at most `precision` significant digits ('%.4g'): 0.1235, 1e-05, inf.

    Python formats floats itself (correctly rounded), so the text is the same on every
    platform. Negative zero is shown as 0.
    """
    x = float(x)
    if x == 0.0:
        return "0"
    return f"{x:.{precision}g}"


_RECORD_SPECIAL = re.compile(r'([{}|<>"\\])')


def _refuse_nul(s: str, what: str) -> None:
    if "\x00" in s:
        raise ValueError(f"{what} {s!r} contains a NUL character (\\x00), which Graphviz cannot "
                         "draw; give it a label without one (e.g. v.label = "
                         "v.label.replace('\\x00', ''))")


def _record_text(s: str) -> str:
    """Text safe inside a record label: the characters that structure records are escaped."""
    s = s.replace("\r", " ").replace("\n", " ")
    return _RECORD_SPECIAL.sub(r"\\\1", s)


def _plain_text(s: str) -> str:
    """Free text (a title, a cluster name, an operation symbol) shown literally by Graphviz.

    Without this a backslash is an escape (a trailing one breaks the DOT file, `\\N` shows the
    node's name) and text in `<...>` is read as an HTML label. Newlines become line breaks.
    """
    s = s.replace("\\", "\\\\").replace("\r\n", "\n").replace("\r", "\n")
    return graphviz.nohtml(s.replace("\n", "\\n"))


def _path_of_label(label: str) -> Optional[tuple]:
    parts = label.split(".")
    if len(parts) < 2 or not all(parts):
        return None
    return tuple(parts[:-1])


def cluster_paths(topo: list) -> list:
    """The module each node belongs to, as a tuple path like ('L0', 'N3'), or None.

    The rule, read from labels only (the nn module labels its parameters and neuron outputs):
    1. A node labelled with dots, `A.B.name`, belongs to module `A.B`, drawn inside `A`
       (`L0.N3.w0`, `L0.N3.z`, `L0.N3.a` are in neuron N3 of layer L0).
    2. A computed node without such a label joins module K when one of its inputs is a leaf of
       K (a parameter such as `L0.N3.w0`) and everything that uses it is in K, or nothing does.
       So `w0 * x0` joins the neuron whose weight it multiplies, while a regularisation term
       `w0 * w0` that feeds a sum outside the neuron stays outside.
    3. Everything else (inputs, constants, the loss) belongs to no module.
    `topo` is `topological_order(root)`; the result is in the same order.
    """
    n = len(topo)
    index = {v: i for i, v in enumerate(topo)}
    paths: list = [None] * n
    users: list = [[] for _ in range(n)]
    for i, v in enumerate(topo):
        if v.label:
            paths[i] = _path_of_label(str(v.label))
        for p in v._prev:
            users[index[p]].append(i)
    for i in range(n - 1, -1, -1):  # users come later in topo, so they are settled first
        v = topo[i]
        if paths[i] is not None or v._a is None:
            continue
        for p in v._prev:
            k = paths[index[p]]
            if k is not None and p._a is None:
                if all(paths[u] == k for u in users[i]):
                    paths[i] = k
                break
    return paths


# ---------------------------------------------------------------------------------------------
# Checking options: every bad option is a ValueError that names it and says what is expected.

_OPTIONS = ("format", "rankdir", "show_grad", "edge_labels", "precision", "max_nodes",
            "cluster", "collapse", "highlight_nodes", "highlight_edges", "grads", "title",
            "graph_attr", "focus", "fit")


def _check_bool(name: str, x) -> bool:
    if not isinstance(x, bool):
        raise ValueError(f"{name} must be True or False, got {type(x).__name__}: {x!r}")
    return x


def _check_options(root, format, rankdir, show_grad, edge_labels, precision, max_nodes,
                   cluster, collapse, title, graph_attr, fit, unknown) -> None:
    if unknown:
        name = sorted(unknown)[0]
        close = difflib.get_close_matches(name, _OPTIONS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"draw_dot got an unknown option {name!r}{hint}; "
                         f"the options are: {', '.join(_OPTIONS)}")
    if not isinstance(root, Value):
        raise TypeError(f"draw_dot needs a Value to draw, got {type(root).__name__}: {root!r}")
    if not isinstance(format, str) or format not in graphviz.FORMATS:
        raise ValueError(f"format must be a Graphviz output format such as 'svg', 'png' or "
                         f"'pdf', got {format!r}")
    if rankdir not in RANKDIRS:
        raise ValueError(f"rankdir must be 'LR' (left to right) or 'TB' (top to bottom) "
                         f"(or 'RL', 'BT'), got {rankdir!r}")
    for name, x in (("show_grad", show_grad), ("edge_labels", edge_labels),
                    ("cluster", cluster), ("collapse", collapse), ("fit", fit)):
        _check_bool(name, x)
    if isinstance(precision, bool) or not isinstance(precision, int) or not 1 <= precision <= 17:
        raise ValueError(f"precision must be an int from 1 to 17 (significant digits), "
                         f"got {precision!r}")
    if max_nodes is not None and (isinstance(max_nodes, bool) or not isinstance(max_nodes, int)
                                  or max_nodes < 1):
        raise ValueError(f"max_nodes must be a positive int or None (no limit), got {max_nodes!r}")
    if not isinstance(title, str):
        raise ValueError(f"title must be a str, got {type(title).__name__}: {title!r}")
    _refuse_nul(title, "title")
    if graph_attr is not None:
        if not isinstance(graph_attr, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in graph_attr.items()):
            raise ValueError(f"graph_attr must be a dict of str to str (Graphviz graph "
                             f"attributes such as {{'dpi': '150'}}), got {graph_attr!r}")


def _check_highlights(topo_set, highlight_nodes, highlight_edges):
    try:
        nodes = list(highlight_nodes)
    except TypeError:
        raise ValueError(f"highlight_nodes must be an iterable of Values, "
                         f"got {highlight_nodes!r}") from None
    for v in nodes:
        if not isinstance(v, Value):
            raise ValueError(f"highlight_nodes must hold Values, got {type(v).__name__}: {v!r}")
        if v not in topo_set:
            raise ValueError(f"highlight_nodes: {v!r} is not in the graph being drawn")
    try:
        edges = list(highlight_edges)
    except TypeError:
        raise ValueError(f"highlight_edges must be an iterable of (parent, child) pairs of "
                         f"Values, got {highlight_edges!r}") from None
    pairs = set()
    for e in edges:
        if not (isinstance(e, tuple) and len(e) == 2 and isinstance(e[0], Value)
                and isinstance(e[1], Value)):
            raise ValueError(f"highlight_edges must hold (parent, child) pairs of Values, "
                             f"got {e!r}")
        parent, child = e
        if child not in topo_set or not any(p is parent for p in child._prev):
            raise ValueError(f"highlight_edges: {parent!r} is not an input of {child!r} in the "
                             f"graph being drawn (pairs are (parent, child))")
        pairs.add((parent, child))  # Values hash and compare by identity
    return set(nodes), pairs


def _check_grads(grads):
    if grads is None:
        return None
    if not isinstance(grads, Mapping):
        raise ValueError(f"grads must be a dict from Value to number or None (or grads=None "
                         f"to show .grad), "
                         f"got {type(grads).__name__}: {grads!r}")
    out = {}
    for k, g in grads.items():
        if not isinstance(k, Value):
            raise ValueError(f"grads keys must be Values, got {type(k).__name__}: {k!r}")
        if g is None:  # no gradient to show (a constant's, as teach's sweeps give it)
            continue
        if isinstance(g, Value):
            g = g.data
        if isinstance(g, bool) or not isinstance(g, numbers.Real):
            raise ValueError(f"grads values must be real numbers, got {type(g).__name__}: "
                             f"{g!r} for {k!r}")
        out[k] = float(g)
    return out


def _too_many(count: int, max_nodes: int, what: str, collapse: bool) -> ValueError:
    hints = ["max_nodes=None to draw it anyway (slow to lay out and hard to read)"]
    if not collapse:
        hints.append("collapse=True to draw each neuron as one box (with nn's labels)")
    hints.append("or draw a smaller piece, e.g. one neuron's output or the loss of a "
                 "single example")
    return ValueError(f"this graph has {count} {what}, more than max_nodes={max_nodes}; "
                      f"pass {', '.join(hints)}")


# ---------------------------------------------------------------------------------------------
# The drawing.


def _natural(path: tuple) -> tuple:
    """A sort key that puts N2 before N10: digits compare as numbers."""
    return tuple(tuple((0, int(t), "") if t.isdigit() else (1, 0, t)
                       for t in re.split(r"(\d+)", part) if t) for part in path)


def _focus_set(topo: list, x: Value) -> set:
    """x and every node that depends on x: the nodes on some path from x to the root."""
    on = {x}
    for v in topo:
        if v not in on and any(p in on for p in v._prev):
            on.add(v)
    return on


def _focus_caption(root: Value, x: Value, parts: DrawnParts, precision: int) -> str:
    """The focus title, naming root and x as the picture shows them (a collapsed box's name
    for a value hidden in it)."""
    from .teach.pathsum import paths  # the path table's own count and factored sum
    ps = paths(root, x, max_paths=0)
    y, xn = parts.seen_as(root), parts.seen_as(x)
    dy, dx = (f"({t})" if " " in t else t for t in (y, xn))
    if ps.count == 0:
        return f"focus on {xn}: no path from {xn} to {y}, so d{dy}/d{dx} = 0"
    count = f"{ps.count:,} path{'s' if ps.count != 1 else ''}"
    caption = (f"focus on {xn}: {count} from {xn} to {y}; sum of the products of local "
               f"derivatives along them = {format_number(ps.total, precision)} = d{dy}/d{dx}")
    if ps.masked:  # say why a 0 next to an inf gave 0: backward's mask, as the path table does
        by_name = {n: v for v, n in parts.names.items()}  # the table names its inputs
        why = [_masked_edge(parts, by_name.get(r.terms[k][0]), r.terms[k][0], r.node, r.op)
               for r in ps.factored for k in r.masked]
        caption += (f"\n{', '.join(why[:3])}{', ...' if len(why) > 3 else ''}: an inf or nan "
                    "arrives from above, and backward sends 0 down it, not inf x 0 = nan")
    return caption


def _masked_edge(parts: DrawnParts, src: Optional[Value], src_name: str, dst: Value,
                 op: str) -> str:
    """'a -> m passes nothing (max did not pick a)', naming both ends as the picture shows
    them (`inside L0.N0: z -> a` when a collapsed box hides both)."""
    box = parts.boxed.get(dst)
    if src is None:
        a, b, inside = src_name, parts.seen_as(dst), ""
    elif box is not None and parts.boxed.get(src) == box:
        a, b, inside = parts.seen_as(src, box), parts.seen_as(dst, box), f"inside {box}: "
    else:
        a, b, inside = parts.seen_as(src), parts.seen_as(dst), ""
    why = f"max did not pick {a}" if op == "max" else "relu's flat part"
    return f"{inside}{a} -> {b} passes nothing ({why})"


def _box_outputs(topo: list, index: dict, box: list, count: int) -> dict:
    """Box index -> the positions of its values that feed a node outside it (and the root):
    what a collapsed box stands for to the rest of the picture."""
    outputs: dict = {b: [] for b in range(count)}
    if not count:
        return outputs
    for i, v in enumerate(topo):
        for p in v._prev:
            j = index[p]
            if box[j] is not None and box[j] != box[i] and j not in outputs[box[j]]:
                outputs[box[j]].append(j)
    n = len(topo)
    if n and box[n - 1] is not None and (n - 1) not in outputs[box[n - 1]]:
        outputs[box[n - 1]].append(n - 1)
    return outputs


def draw_dot(root: Value, format: str = "svg", rankdir: str = "LR", show_grad: bool = True,
             edge_labels: bool = False, *, precision: int = 4,
             max_nodes: Optional[int] = DEFAULT_MAX_NODES, cluster: bool = False,
             collapse: bool = False, highlight_nodes: Iterable[Value] = (),
             highlight_edges: Iterable[tuple] = (), grads: Optional[Mapping] = None,
             title: str = "", graph_attr: Optional[Mapping[str, str]] = None,
             focus: Union[Value, str, None] = None, fit: bool = True,
             **unknown) -> Drawing:
    """The graph that computed `root`, as a graphviz.Digraph (a Drawing).

    Each Value is a record `name | data | grad`, named as the teaching tools name it (its label,
    else `n<i>`, its position in topological order), so every name a caption or table uses can
    be found in the picture. Each operation is a small node between its inputs and its output.
    Leaves are blue, constants grey and dashed, the root yellow and bold. `focus=x` draws the
    paths from x to the root in full and the rest faintly, with their product sum as caption.
    `fit` (default True) scales the picture to the output column in Jupyter; `fit=False` shows
    it at full size. See docs/viz.md for every option.
    """
    _check_options(root, format, rankdir, show_grad, edge_labels, precision, max_nodes,
                   cluster, collapse, title, graph_attr, fit, unknown)
    topo = topological_order(root)
    n = len(topo)
    if max_nodes is not None and n > max_nodes and not collapse:
        raise _too_many(n, max_nodes, "values", collapse)
    index = {v: i for i, v in enumerate(topo)}
    names = node_names(topo)
    for i, v in enumerate(topo):
        if v.label:
            _refuse_nul(v.label, f"the label of node n{i}")
    hi_nodes, hi_edges = _check_highlights(index, highlight_nodes, highlight_edges)
    grads = _check_grads(grads)
    on: Optional[set] = None
    if focus is not None:
        fx = resolve(focus, names, "draw_dot(focus=...)")
        if fx not in index:
            raise ValueError(f"focus: {fx!r} is not in the graph being drawn")
        on = _focus_set(topo, fx)

    paths = cluster_paths(topo) if (cluster or collapse) else [None] * n
    # collapse: every innermost module (one that contains no other) becomes one box
    box: list = [None] * n  # for collapsed nodes: the index of their module's box
    boxes: dict = {}  # path -> box index, in order of first appearance
    if collapse:
        parents_of = {p[:-1] for p in paths if p is not None and len(p) > 1}
        for i, p in enumerate(paths):
            if p is not None and p not in parents_of:
                box[i] = boxes.setdefault(p, len(boxes))
        drawn = n - sum(b is not None for b in box) + len(boxes)
        if max_nodes is not None and drawn > max_nodes:
            what = ("boxes even with each neuron collapsed" if boxes else
                    "values and none of them has a module label (like L0.N3.w0) to collapse")
            raise _too_many(drawn, max_nodes, what, True)
        for p in boxes:
            _refuse_nul(".".join(p), "the module name")
    # which nodes feed a node outside their box (the box's outputs), for collapsed labels
    outputs = _box_outputs(topo, index, box, len(boxes))
    box_paths = list(boxes)
    members_of: dict = {b: [] for b in range(len(boxes))}
    for i in range(n):
        if box[i] is not None:
            members_of[box[i]].append(i)

    parts = DrawnParts()
    parts.names = names
    for i in range(n):
        if box[i] is not None:
            parts.boxed[topo[i]] = ".".join(box_paths[box[i]])
    for b, outs in outputs.items():
        if len(outs) == 1:
            parts.box_shows[".".join(box_paths[b])] = topo[outs[0]]
    if focus is not None:
        caption = _focus_caption(root, fx, parts, precision)
        title = f"{title}\n{caption}" if title else caption

    g = Drawing(name="tinygrad_scalar", format=format, engine="dot")
    g.fit = fit
    g.parts = parts
    g.attr("graph", rankdir=rankdir, fontname="Helvetica", nodesep="0.25", ranksep="0.35")
    if collapse and boxes:
        # every neuron of a layer connects to every one of the next, so reordering cannot save
        # crossings; Graphviz's first order (N0, N1, ..., the order of the edges) is kept
        g.attr("graph", mclimit="0.01")
    if title:
        g.attr("graph", label=_plain_text(title), labelloc="t", fontsize="14")
    if graph_attr:
        g.attr("graph", **dict(graph_attr))
    g.attr("node", fontname="Helvetica", fontsize="11", shape="record", height="0.3")
    g.attr("edge", fontname="Helvetica", fontsize="9", arrowsize="0.6")

    braces = rankdir in ("LR", "RL")  # records flip with rankdir; keep the fields side by side

    def fields(parts: list) -> str:
        s = " | ".join(parts)
        return "{ " + s + " }" if braces else s

    def grad_of(v: Value) -> float:
        return v.grad if grads is None else grads.get(v, 0.0)

    def grad_text(v: Value) -> Optional[str]:
        if show_grad and not v.is_constant:  # a constant's gradient means nothing to a learner
            return "grad " + format_number(grad_of(v), precision)
        return None

    def value_fields(v: Value, head: str) -> str:
        parts = [head] if head else []
        parts.append("data " + format_number(v.data, precision))
        gt = grad_text(v)
        if gt is not None:
            parts.append(gt)
        return fields(parts)

    def faint(attrs: dict, on_focus: bool) -> dict:
        if on is not None and not on_focus:
            if "fillcolor" in attrs or "style" in attrs:
                attrs.update(_GREY_FILL)
            attrs.update(_GREY)
        return attrs

    def emit_value(sub, i: int) -> None:
        v = topo[i]
        attrs: dict = {}
        if i == n - 1:
            attrs.update(_ROOT)
        elif v.is_constant:
            attrs.update(_CONST)
        elif v._a is None:
            attrs.update(_LEAF)
        hot = v in hi_nodes
        if hot:
            attrs.update(_HIGHLIGHT)
        faint(attrs, on is None or v in on)
        sub.node(f"n{i}", value_fields(v, _record_text(names[v])), **attrs)
        parts.nodes[f"n{i}"] = (grad_text(v), hot)
        parts.dot_names[v] = f"n{i}"
        parts.grad_shown[f"n{i}"] = v
        if v._a is not None:
            op = v.op
            sym = OP_LABELS.get(op.name, op.symbol) if op is not None else "?"
            sub.node(f"n{i}op", _plain_text(sym), **faint(dict(_OP), on is None or v in on))
            parts.nodes[f"n{i}op"] = (None, False)

    def emit_box(sub, b: int) -> None:
        path = box_paths[b]
        outs = outputs[b]
        members = members_of[b]
        head = _record_text(".".join(path))
        gt = None
        if len(outs) == 1:
            label = value_fields(topo[outs[0]], head)
            gt = grad_text(topo[outs[0]])
            parts.grad_shown[f"c{b}"] = topo[outs[0]]
        else:
            label = fields([head, f"{len(members)} values"])
        attrs = dict(_COLLAPSED)
        if n - 1 in members:  # the root is inside this neuron: the box is drawn as the root
            attrs.update(_ROOT, style="filled,rounded,bold")
        hot = any(topo[i] in hi_nodes for i in members)
        if hot:
            attrs.update(_HIGHLIGHT)
        if on is not None and not any(topo[i] in on for i in members):
            attrs.update(_GREY, fillcolor=_GREY_FILL["fillcolor"])
        sub.node(f"c{b}", label, **attrs)
        parts.nodes[f"c{b}"] = (gt, hot)
        for i in members:
            parts.dot_names[topo[i]] = f"c{b}"

    # Nodes, grouped into nested clusters by module path: values in topological order, then
    # the collapsed boxes and the nested modules in natural order (N0, N1, ..., N10).
    tree: dict = {(): {"nodes": [], "boxes": [], "children": {}}}

    def group(path: tuple) -> dict:
        if path not in tree:
            parent = group(path[:-1])
            tree[path] = {"nodes": [], "boxes": [], "children": {}}
            parent["children"][path] = tree[path]
        return tree[path]

    seen_box = set()
    for i in range(n):
        p = paths[i] or ()
        if box[i] is not None:
            if box[i] in seen_box:
                continue
            seen_box.add(box[i])
            group(p[:-1])["boxes"].append(box[i])
        else:
            group(p)["nodes"].append(i)

    def emit_group(sub, path: tuple) -> None:
        node = tree[path]
        for i in node["nodes"]:
            emit_value(sub, i)
        ordered = sorted(node["boxes"], key=lambda b: _natural(box_paths[b]))
        for b in ordered:
            emit_box(sub, b)
        for child in sorted(node["children"], key=_natural):
            # a backslash in a DOT name would escape the closing quote: doubled, names stay unique
            cname = "cluster_" + ".".join(child).replace("\\", "\\\\")
            with sub.subgraph(name=cname) as c:
                c.attr(label=_plain_text(child[-1]), **_CLUSTER)
                emit_group(c, child)

    emit_group(g, ())

    # Edges: input -> operation (labelled with the local derivative, none toward a constant:
    # that derivative is never needed), operation -> output.
    def name(j: int) -> str:
        return f"c{box[j]}" if box[j] is not None else f"n{j}"

    def edge(src: str, dst: str, hot: bool, on_focus: bool, pairs: tuple,
             label: Optional[str] = None):
        attrs = dict(_HIGHLIGHT_EDGE) if hot else {}
        if label is not None:
            attrs["label"] = label
        g.edge(src, dst, **faint(attrs, on_focus))
        parts.edges.append((src, dst, hot))
        parts.edge_pairs.append(pairs)

    hi_children = {c for _, c in hi_edges}
    box_edges: dict = {}  # (src, dst) -> [highlighted?, on the focus?, pairs], edges into a box
    for i, v in enumerate(topo):
        if v._a is None:
            continue
        into_box = box[i] is not None
        v_on = on is None or v in on
        for p, d in v.edges():  # d is None toward a constant: no derivative, no label
            j = index[p]
            hot = (p, v) in hi_edges
            p_on = on is None or (p in on and v_on)
            if into_box:  # no single local derivative for an edge into a whole neuron
                if box[j] != box[i]:
                    key = (name(j), f"c{box[i]}")
                    h, o, ps = box_edges.get(key, (False, False, ()))
                    box_edges[key] = (h or hot, o or p_on, ps + ((p, v),))
                continue
            label = None
            if edge_labels and d is not None:
                label = format_number(d, precision)
            edge(name(j), f"n{i}op", hot, p_on, ((p, v),), label)
        if not into_box:
            edge(f"n{i}op", f"n{i}", v in hi_children, v_on, ((None, v),))
    # into the boxes in their natural order (N0, N1, ...): Graphviz's first guess at the order
    # of a rank follows the order of the edges, and keeps it when nothing is gained by moving
    box_rank = {f"c{b}": k for k, b in enumerate(sorted(range(len(boxes)),
                                                        key=lambda b: _natural(box_paths[b])))}
    for (src, dst), (hot, o, ps) in sorted(box_edges.items(),
                                           key=lambda kv: box_rank[kv[0][1]]):
        edge(src, dst, hot, o, ps)
    return g


# ---------------------------------------------------------------------------------------------
# Rendering and Jupyter.

GraphOrValue = Union[Value, graphviz.Digraph]


def _as_drawing(x: GraphOrValue, options: dict) -> graphviz.Digraph:
    if isinstance(x, Value):
        return draw_dot(x, **options)
    if isinstance(x, graphviz.Digraph):
        if options:
            raise ValueError(f"drawing options {sorted(options)} apply when drawing a Value; "
                             "this is already a drawing")
        return x
    raise TypeError(f"expected a Value or a graphviz.Digraph (from draw_dot), "
                    f"got {type(x).__name__}: {x!r}")


def _pipe(g: graphviz.Digraph, format: str, what: str) -> bytes:
    try:
        return g.pipe(format=format)
    except GraphvizNotFoundError:
        raise
    except graphviz.ExecutableNotFound:
        raise GraphvizNotFoundError(what) from None


def to_svg(x: GraphOrValue, **options) -> str:
    """SVG text of a Value's graph (or of a drawing): for web pages, or to embed in HTML."""
    return _pipe(_as_drawing(x, options), "svg", "render the graph to SVG").decode("utf-8")


_SUFFIX_FORMATS = {".jpg": "jpeg", ".gv": "dot"}


def render_to(x: GraphOrValue, path: Union[str, os.PathLike], **options) -> pathlib.Path:
    """Write a Value's graph (or a drawing) to `path`; the format comes from the suffix.

    `.svg`, `.png`, `.pdf` (any Graphviz format) need `dot`; `.dot` and `.gv` write the DOT
    text and do not. Returns the path written.
    """
    path = pathlib.Path(path)
    suffix = path.suffix.lower()
    fmt = _SUFFIX_FORMATS.get(suffix, suffix[1:])
    if fmt not in graphviz.FORMATS:
        raise ValueError(f"cannot tell the format from the file name {str(path)!r}: use a "
                         "suffix such as .svg, .png, .pdf or .dot")
    g = _as_drawing(x, options)
    data = g.source if fmt == "dot" else _pipe(g, fmt, f"write {str(path)!r}")
    write_atomic(path, data)
    return path


_SVG_PROLOGUE = re.compile(r"\A.*?(?=<svg\b)", re.DOTALL)
_SVG_TAG = re.compile(r"<svg\b[^>]*>")
FIT_STYLE = "max-width:100%;height:auto"


def strip_svg_prologue(svg: str) -> str:
    """The <svg> element alone (no XML declaration or doctype), to inline it into HTML."""
    return _SVG_PROLOGUE.sub("", svg, count=1)


def fit_svg(svg: str) -> str:
    """The same SVG, scaled down to the width of whatever holds it (never up): the root element
    gets `style="max-width:100%;height:auto"`, so a wide graph fits a notebook's output column
    and keeps its proportions (Graphviz writes a viewBox). Text outside <svg> is kept."""
    m = _SVG_TAG.search(svg)
    if m is None or FIT_STYLE in m.group(0):
        return svg
    tag = m.group(0)
    if re.search(r'\sstyle="', tag):
        new = re.sub(r'\sstyle="', f' style="{FIT_STYLE};', tag, count=1)
    else:
        new = tag[:-1] + f' style="{FIT_STYLE}">'
    return svg[:m.start()] + new + svg[m.end():]


def svg_html(svg: str, fit: bool = True) -> str:
    """An SVG as an HTML block with the <svg> inline: scaled down to the column when `fit`,
    else at full size with a horizontal scroll bar where it is wider than the column."""
    inner = strip_svg_prologue(svg)
    inner = fit_svg(inner) if fit else inner
    return f'<div style="max-width:100%;overflow-x:auto">{inner}</div>'


def node_sizes(drawing: graphviz.Digraph) -> dict:
    """Graphviz's width and height (inches, as text) of every node of a drawing: one layout run
    (`dot -Tjson`). With `with_node_sizes` this makes several drawings share one layout."""
    laid = json.loads(_pipe(drawing, "json", "lay out the graph"))
    return {o["name"]: (o["width"], o["height"])
            for o in laid.get("objects", ()) if "width" in o and "height" in o}


_SLACK = 0.08  # inches added to each fixed node width: text widths differ a little from lengths


def with_node_sizes(drawing: graphviz.Digraph, sizes: dict) -> graphviz.Digraph:
    """A copy of `drawing` in which every node in `sizes` has that fixed size, so two drawings
    of one graph with different numbers lay out identically (same place, same scale)."""
    g = drawing.copy()
    for name, (w, h) in sizes.items():  # a repeated node statement adds to the first one
        g.node(name, width=str(float(w) + _SLACK), height=str(h), fixedsize="true")
    return g


def widest_sizes(drawings: list) -> dict:
    """Per node, the largest width and height it has in any of the drawings."""
    out: dict = {}
    for d in drawings:
        for name, (w, h) in node_sizes(d).items():
            ow, oh = out.get(name, (w, h))
            out[name] = (max(float(w), float(ow)), max(float(h), float(oh)))
    return out


class Picture:
    """A rendered graph that shows inline in Jupyter (as image/svg+xml), scaled to the output
    column unless made with `fit=False` (`.full_size()` gives the unscaled one).

    `.svg` is the SVG text as Graphviz wrote it, `.source` the DOT text it was rendered from.
    """

    def __init__(self, svg: str, source: str, title: str = "", fit: bool = True):
        self.svg, self.source, self.title, self.fit = svg, source, title, fit

    def _repr_svg_(self) -> str:
        return fit_svg(self.svg) if self.fit else self.svg

    def _repr_html_(self) -> str:  # preferred by Jupyter and nbconvert: see Drawing
        return svg_html(self.svg, self.fit)

    def full_size(self) -> "Picture":
        """The same picture shown at its natural size (wider than the column if it is)."""
        return Picture(self.svg, self.source, self.title, fit=False)

    def inline_svg(self) -> str:
        """The <svg> element alone (no XML prologue), for embedding in HTML (scaled to fit
        unless the picture was made with fit=False)."""
        svg = strip_svg_prologue(self.svg)
        return fit_svg(svg) if self.fit else svg

    def __repr__(self) -> str:
        return f"<Picture {self.title!r}: {len(self.svg)} characters of SVG>"


class Pictures:
    """Several pictures side by side in equal columns, shown inline in Jupyter as one HTML
    block; each scales to its column (pictures of one graph drawn with one layout therefore
    show at the same scale)."""

    def __init__(self, pictures: list):
        self.pictures = list(pictures)

    def __getitem__(self, k: int) -> Picture:
        return self.pictures[k]

    def __len__(self) -> int:
        return len(self.pictures)

    def _repr_html_(self) -> str:
        figs = "".join(
            '<figure style="margin:0;flex:1 1 0;min-width:0">'
            f'<figcaption style="font-weight:bold">{html.escape(p.title)}</figcaption>'
            f"{p.inline_svg()}</figure>" for p in self.pictures)
        return ('<div style="display:flex;gap:1.5em;align-items:flex-start;max-width:100%">'
                f"{figs}</div>")

    def __repr__(self) -> str:
        return f"<Pictures: {', '.join(repr(p.title) for p in self.pictures)}>"


def show(x: GraphOrValue, **options) -> Picture:
    """Render a Value's graph now and return a Picture that Jupyter shows inline, scaled to
    the output column (`fit=False`: at full size).

    Renders immediately, so a missing `dot` or a graph over max_nodes is reported at the call.
    """
    g = _as_drawing(x, options)
    svg = _pipe(g, "svg", "show the graph").decode("utf-8")
    return Picture(svg, g.source, options.get("title", ""), fit=getattr(g, "fit", True))


def show_backward(root: Value, **options) -> Pictures:
    """The graph before and after backward(), side by side: the first teaching picture.

    Draws `root`'s graph with every grad shown as 0, then runs `root.zero_grad()` and
    `root.backward()` and draws it again. Both are laid out with the same node sizes, so they
    show at the same scale with every node at the same place; top to bottom unless `rankdir`
    says otherwise, so that two fit side by side. Afterwards every node's `.grad`
    holds d root / d node, exactly as after `root.zero_grad(); root.backward()` (grads
    accumulated earlier in this graph are replaced). Nothing changes if drawing fails.
    """
    if not isinstance(root, Value):
        raise TypeError(f"show_backward needs a Value, got {type(root).__name__}: {root!r}")
    for k in ("grads", "title", "show_grad"):
        if k in options:
            raise ValueError(f"show_backward sets {k!r} itself; leave it out")
    t_before = "before backward(): every grad 0"
    t_after = "after backward(): grad = d root / d node"
    options = {"rankdir": "TB", **options}  # tall and narrow: two fit side by side
    before = draw_dot(root, grads={}, **options)
    order = topological_order(root)
    after_grads = reverse_sweep(order, root)  # what backward will store, on private numbers
    after = draw_dot(root, grads=after_grads, **options)
    sizes = widest_sizes([before, after])
    svgs = [_pipe(with_node_sizes(d, sizes), "svg", "show the graph").decode("utf-8")
            for d in (before, after)]
    root.zero_grad()
    root.backward()
    fit = options.get("fit", True)
    return Pictures([Picture(svgs[0], before.source, t_before, fit),
                     Picture(svgs[1], after.source, t_after, fit)])
