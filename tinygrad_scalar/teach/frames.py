"""Backprop as a flip book: one graph picture per backward step.

Frame k draws the whole graph with the node backward is processing highlighted, the edges into
it (along which its gradient flows to its inputs) highlighted, and every gradient as it stands
after that step (on private numbers: no `.grad` changes). The steps are exactly `narrate`'s.

In Jupyter the frames show as one self-contained HTML player (previous / play / next and a
slider). It holds ONE rendered picture and, per frame, only what changes: which node and edges
are highlighted and the gradients that moved; a few lines of JavaScript apply them. Without
JavaScript (an untrusted notebook, a code host) it shows the first and the last frame and every
step's caption instead. Frames keep per-step changes only (the narration's own numbers), so
memory is linear in the graph; `max_frames` refuses a pass too long to watch before any work.
"""
from __future__ import annotations

import hashlib
import html
import io
import itertools
import json
import os
import pathlib
import re
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Iterator, Optional, Sequence, Union

from ..engine import Value, topological_order
from ..files import write_atomic
from .graph import check_value, fmt
from .narration import Narration, Step, narrate

if TYPE_CHECKING:  # viz imports this package, so it is imported where it is used
    from ..viz import DrawnParts

# draw_dot options the frames set themselves
_OWN = ("highlight_nodes", "highlight_edges", "grads", "title")
DEFAULT_MAX_FRAMES = 1000


def _named(v: Value, name: str, parts: Optional[DrawnParts], box: Optional[str]) -> str:
    """v's name in a frame's text: the narration's `name`, or, for a collapsed drawing, the name
    the picture lets a reader find (a hidden value through its box; `box` is the one the text
    is already inside)."""
    return name if parts is None else parts.seen_as(v, box)


def _at(step: Step, parts: Optional[DrawnParts]) -> tuple[Optional[str], str]:
    """(the collapsed box the step's node is hidden in, or None; where the step is: 'at d' or
    'inside L0.N0, at (w0 * x0)'). The box is what the frame highlights, so the text says it."""
    box = None if parts is None else parts.boxed.get(step.node)
    where = f"at {_named(step.node, step.name, parts, box)}"
    return box, (where if box is None else f"inside {box}, {where}")


def caption(step: Step, total: int, digits: int = 4,
            parts: Optional[DrawnParts] = None) -> str:
    """What a step does, in one line: 'step 2/3: at d (grad 3, final): b += 3 x 1 -> 3; ...'.

    Moves into constants are left out, as the pictures leave out their gradients: a derivative
    toward a constant is never needed (for x ** 2 at x < 0 it is nan). With `parts` (what a
    collapsed drawing drew) a node hidden in a box is named through the box, 'step 5/11:
    inside L0.N0, at (w0 * x0) (...): w0 += ...', since a name nobody finds in the picture
    (`n17`, `L0.N0.w0`) only confuses."""
    box, where = _at(step, parts)
    moves = "; ".join(f"{_named(e.input, e.input_name, parts, box)} += "
                      f"{fmt(step.grad, digits)} x {fmt(e.local, digits)} "
                      f"-> {fmt(e.after, digits)}" for e in step.edges
                      if not e.input.is_constant) or "only constants as inputs"
    return (f"step {step.index}/{total}: {where} (grad {fmt(step.grad, digits)}, final): "
            f"{moves}")


def title(step: Step, total: int, digits: int = 4, parts: Optional[DrawnParts] = None) -> str:
    """The short title drawn above a frame (the caption's first part; the player shows all);
    `parts` as in `caption`."""
    where = _at(step, parts)[1]
    return f"backward step {step.index}/{total}: {where}, grad {fmt(step.grad, digits)}"


_PLAYERS = itertools.count()


class Frames:
    """The frames of one backward pass: `len(frames)` steps, `frames[i]` a graphviz.Digraph
    (drawn on demand), `.svg(i)` / `.save_svgs(folder)` rendered, `.picture(i)` to display one
    frame in Jupyter, `.save_gif(path)` and
    `.save_strip(path)` as images, `.narration` the same steps as data, `.captions()` what each
    step does; in Jupyter an HTML player.

    With `stable_layout` (the default) rendered frames share one layout: every node is drawn
    at the size its widest gradient needs in any frame, so Graphviz places everything at the
    same spot in every frame and the pictures do not jump as gradients fill in.
    """

    def __init__(self, root: Value, narration: Narration, options: dict, interval_ms: int,
                 stable_layout: bool):
        self.root, self.narration, self.options = root, narration, options
        self._svgs: dict = {}
        self._sizes: Optional[dict] = None
        self._parts: Optional[DrawnParts] = None
        self.interval_ms, self.stable_layout = interval_ms, stable_layout

    def __len__(self) -> int:
        return len(self.narration)

    def __iter__(self):
        """The frames' drawings in step order, the gradients replayed once (not per frame)."""
        return (self._draw(i, dict(g)) for i, g in enumerate(self._states()))

    def _index(self, i: object) -> int:
        n = len(self)
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"frame index must be an int, got {type(i).__name__}: {i!r}")
        if not -n <= i < n:
            raise IndexError(f"frame {i} out of range: there are {n} frame(s)")
        return i % n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        i = self._index(i)
        return self._draw(i, self.grads_at(i))

    # -- the gradients as they stand, replayed from the narration (no per-frame snapshot) ------
    def _states(self) -> Iterator[dict]:
        """The gradients after each step, one dict updated in place (copy to keep one)."""
        grads: dict = {self.root: self.narration.seed}
        for step in self.narration:
            for e in step.edges:
                if e.after is not None:  # nothing is passed to a constant
                    grads[e.input] = e.after
            yield grads

    def grads_at(self, i: int) -> dict:
        """{node: gradient} after step i (0-based) for every node reached so far."""
        i = self._index(i)
        for k, g in enumerate(self._states()):
            if k == i:
                return dict(g)
        raise AssertionError("unreachable")  # pragma: no cover

    def _hidden(self) -> Optional[DrawnParts]:
        """What the collapsed drawing drew (which values its boxes hide), so that the texts name
        only what the picture shows; None when nothing is collapsed (the narration's names are
        the drawn ones)."""
        if not self.options.get("collapse"):
            return None
        if self._parts is None:
            self._parts = self._draw(None, {}).parts
        return self._parts

    def _name(self, v: Value) -> str:
        """v as the frames' pictures let a reader find it."""
        return _named(v, self.narration.names[v], self._hidden(), None)

    def _draw(self, i: Optional[int], grads: dict, with_title: bool = True):
        from ..viz import draw_dot
        if i is None:  # the picture the player changes: nothing highlighted
            return draw_dot(self.root, grads=grads, **self.options)
        step = self.narration[i]
        node = step.node
        return draw_dot(self.root, highlight_nodes=[node],
                        highlight_edges=[(e.input, node) for e in step.edges], grads=grads,
                        title=self._title(step) if with_title else "", **self.options)

    def _title(self, step: Step) -> str:
        return title(step, len(self), parts=self._hidden())

    def captions(self) -> list:
        """What each step does, one line per frame (the player shows it above the picture);
        collapsed, a node hidden in a box is named through the box (see `caption`)."""
        parts = self._hidden()
        return [caption(s, len(self), parts=parts) for s in self.narration]

    def _node_sizes(self) -> dict:
        """Graphviz's width and height of every drawn node when each shows the gradient with the
        longest text it has in any frame (one layout run)."""
        if self._sizes is None:
            from ..viz import format_number, node_sizes
            precision = self.options.get("precision", 4)
            widest: dict = {}
            longest: dict = {}
            for snap in self._states():
                for v, g in snap.items():
                    k = len(format_number(g, precision))
                    if k > longest.get(v, 1):
                        longest[v], widest[v] = k, g
            self._sizes = node_sizes(self._draw(len(self) - 1, widest))
        return self._sizes

    def _renderable(self, g):
        if not self.stable_layout:
            return g
        from ..viz import with_node_sizes
        return with_node_sizes(g, self._node_sizes())

    def svg(self, i: int) -> str:
        """Frame i rendered to SVG text (needs Graphviz's `dot`); cached."""
        if isinstance(i, bool) or not isinstance(i, int) or not -len(self) <= i < len(self):
            raise IndexError(f"frame {i!r} out of range: there are {len(self)} frame(s)")
        i %= len(self)
        s = self._svgs.get(i)
        if s is None:
            s = self._svgs[i] = self._render(i, "svg").decode("utf-8")
        return s

    def picture(self, i: int):
        """Frame i as a viz.Picture: shown in Jupyter scaled to the output column (unlike
        `IPython.display.SVG(frames.svg(i))`, which nbconvert and JupyterLab show as an <img>
        at full width, cut off at the right)."""
        from ..viz import Picture
        svg = self.svg(i)
        return Picture(svg, self[i].source, self._title(self.narration[i % len(self)]),
                       fit=self.options.get("fit", True))

    def _render(self, i: int, format: str, grads: Optional[dict] = None) -> bytes:
        g = self._renderable(self._draw(i, self.grads_at(i) if grads is None else grads))
        return g.pipe(format=format)

    def _render_all(self, format: str, which: Sequence[int]) -> list:
        """Frames `which` rendered, several `dot` processes at a time."""
        if not which:
            return []
        self._node_sizes()  # the shared layout and any Graphviz error, once
        wanted = set(which)
        jobs = [(i, dict(g)) for i, g in enumerate(self._states()) if i in wanted]
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            done = dict(zip([i for i, _ in jobs],
                            pool.map(lambda job: self._render(job[0], format, job[1]), jobs)))
        return [done[i] for i in which]

    def svgs(self) -> list:
        """Every frame rendered to SVG text, several `dot` processes at a time."""
        missing = [i for i in range(len(self)) if i not in self._svgs]
        for i, b in zip(missing, self._render_all("svg", missing)):
            self._svgs[i] = b.decode("utf-8")
        return [self._svgs[i] for i in range(len(self))]

    def save_svgs(self, folder: Union[str, os.PathLike], prefix: str = "frame") -> list:
        """Write every frame as `<folder>/<prefix>_001.svg`, ... (the folder is created);
        returns the paths written, in step order. Frames `<prefix>_NNN.svg` left in the folder
        by an earlier, longer animation are removed, so the folder holds this one only."""
        if not isinstance(prefix, str) or not prefix or "/" in prefix or os.sep in prefix:
            raise ValueError(f"prefix must be a non-empty file name part, got {prefix!r}")
        folder = pathlib.Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        width = max(3, len(str(len(self))))
        out = []
        for i, svg in enumerate(self.svgs()):
            p = folder / f"{prefix}_{i + 1:0{width}d}.svg"
            write_atomic(p, svg)
            out.append(p)
        mine = re.compile(re.escape(prefix) + r"_\d{3,}\.svg")
        written = {p.name for p in out}
        for old in folder.iterdir():
            if mine.fullmatch(old.name) and old.name not in written and old.is_file():
                old.unlink()
        return out

    # -- images for slides -----------------------------------------------------------------
    def _images(self, which: Sequence[int]) -> list:
        try:
            from PIL import Image
        except ImportError:  # pragma: no cover - Pillow comes with matplotlib
            raise ImportError("save_gif and save_strip need Pillow: pip install pillow") from None
        return [Image.open(io.BytesIO(b)).convert("RGB") for b in self._render_all("png", which)]

    def save_gif(self, path: Union[str, os.PathLike], interval_ms: Optional[int] = None,
                 loop: int = 0) -> pathlib.Path:
        """Write the frames as an animated GIF (Pillow): `interval_ms` per frame (default the
        player's), `loop` 0 repeats forever. Every frame is rendered, so this takes a `dot` run
        per step. Returns the path."""
        interval = self.interval_ms if interval_ms is None else interval_ms
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ValueError(f"interval_ms must be a positive int, got {interval!r}")
        if len(self) == 0:
            raise ValueError("backward takes no steps from a leaf: there is no frame to save")
        images = _same_canvas(self._images(range(len(self))))
        buf = io.BytesIO()
        images[0].save(buf, format="GIF", save_all=True, append_images=images[1:],
                       duration=interval, loop=loop)
        path = pathlib.Path(path)
        write_atomic(path, buf.getvalue())
        return path

    def save_strip(self, path: Union[str, os.PathLike], steps: Optional[Sequence[int]] = None,
                   columns: Optional[int] = None) -> pathlib.Path:
        """Write chosen frames side by side as one PNG, for a slide: `steps` are 1-based step
        numbers (default: up to 6 spread evenly, the first and the last included), `columns`
        per row (default: up to 3). Returns the path."""
        n = len(self)
        if n == 0:
            raise ValueError("backward takes no steps from a leaf: there is no frame to save")
        if steps is None:
            k = min(6, n)
            steps = sorted({1 + round(j * (n - 1) / max(1, k - 1)) for j in range(k)})
        steps = list(steps)
        for s in steps:
            if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= n:
                raise ValueError(f"steps must be step numbers from 1 to {n}, got {s!r}")
        if not steps:
            raise ValueError("steps is empty: name at least one step (1-based)")
        cols = min(3, len(steps)) if columns is None else columns
        if isinstance(cols, bool) or not isinstance(cols, int) or cols < 1:
            raise ValueError(f"columns must be a positive int, got {columns!r}")
        from PIL import Image
        images = _same_canvas(self._images([s - 1 for s in steps]))
        w, h = images[0].size
        rows = -(-len(images) // cols)
        sheet = Image.new("RGB", (w * min(cols, len(images)), h * rows), "white")
        for k, im in enumerate(images):
            sheet.paste(im, ((k % cols) * w, (k // cols) * h))
        buf = io.BytesIO()
        sheet.save(buf, format="PNG")
        path = pathlib.Path(path)
        write_atomic(path, buf.getvalue())
        return path

    def __repr__(self) -> str:
        return f"<Frames: {len(self)} backward step(s) from {self._name(self.root)}>"

    def _repr_html_(self) -> str:
        return self.to_html()

    # -- the player --------------------------------------------------------------------------
    def player_data(self) -> list:
        """Per frame, what the player changes on its one picture: `h` the highlighted DOT
        nodes, `e` the highlighted edges ('tail->head', as the SVG's edge titles), `g` the
        gradient texts
        that changed since the frame before, as [DOT node, text] pairs."""
        from ..viz import format_number
        base = self._draw(None, {self.root: self.narration.seed}).parts
        precision = self.options.get("precision", 4)
        shows: dict = {}  # Value -> DOT nodes that show its gradient
        for name, v in base.grad_shown.items():
            if base.nodes[name][0] is not None:
                shows.setdefault(v, []).append(name)
        edges_of: dict = {}  # (parent, child) or (None, child) -> edge positions
        for k, pairs in enumerate(base.edge_pairs):
            for pair in pairs:
                edges_of.setdefault(pair, []).append(k)
        out = []
        for step in self.narration:
            node = step.node
            hot = set()
            for e in step.edges:
                hot.update(edges_of.get((e.input, node), ()))
            hot.update(edges_of.get((None, node), ()))
            changed = []
            for e in step.edges:
                if e.after is None:  # a constant: nothing passed, nothing shown
                    continue
                for name in shows.get(e.input, ()):
                    changed.append([name, "grad " + format_number(e.after, precision)])
            titles = sorted({f"{base.edges[k][0]}->{base.edges[k][1]}" for k in hot})
            out.append({"h": [base.dot_names[node]], "e": titles, "g": changed})
        return out

    def to_html(self) -> str:
        """One self-contained HTML player: one inline SVG, what each frame changes on it, and a
        few lines of JavaScript for previous / play / next and a slider. Without JavaScript it
        shows the first and last frames and every caption."""
        n = len(self)
        if n == 0:
            root = html.escape(self._name(self.root))
            return f"<div>{root} is a leaf, so backward takes no steps: no frames.</div>"
        from ..viz import fit_svg, strip_svg_prologue
        first = self.grads_at(0)
        base = self._renderable(self._draw(None, first)).pipe(format="svg").decode("utf-8")
        base = fit_svg(strip_svg_prologue(base))
        last = fit_svg(strip_svg_prologue(self.svg(n - 1)))
        caps = self.captions()
        data = json.dumps({"frames": self.player_data(), "captions": caps},
                          separators=(",", ":"))
        # a deterministic id (content hash + a per-process counter): unique on a page, and an
        # executed notebook re-runs to the same bytes
        digest = hashlib.sha1((base + data).encode()).hexdigest()[:12]
        pid = f"tgs-frames-{digest}-{next(_PLAYERS)}"
        button = '<button type="button" class="{cls}" style="margin-right:4px">{text}</button>'
        controls = (button.format(cls="tgs-prev", text="&#9664; previous")
                    + button.format(cls="tgs-play", text="play")
                    + button.format(cls="tgs-next", text="next &#9654;")
                    + f'<input type="range" class="tgs-slider" min="1" max="{n}" value="1" '
                      'style="vertical-align:middle;width:12em">'
                    + f' <span class="tgs-label">step 1 / {n}</span>')
        listing = "".join(f"<li>{html.escape(c)}</li>" for c in caps)
        fallback = (
            '<div class="tgs-fallback">'
            f'<p style="color:#b45309">The picture above is step 1 of {n}, without its '
            "highlight. The step-by-step player needs JavaScript (in Jupyter: trust the "
            "notebook; on a code host: open it in Jupyter). Below: the last step, and what "
            "every step does.</p>"
            f'<div style="font-family:monospace">{html.escape(caps[-1])}</div>{last}'
            f'<ol style="font-family:monospace">{listing}</ol></div>')
        script = (_PLAYER_JS.replace("PLAYER_ID", pid)
                  .replace("INTERVAL", str(self.interval_ms))
                  .replace("PLAYER_DATA", data.replace("</", "<\\/")))
        return (f'<div id="{pid}" style="font-family:sans-serif;font-size:13px">'
                f"<style>#{pid} svg {{max-width:100%;height:auto}}</style>"
                f'<div class="tgs-controls" style="display:none">{controls}</div>'
                f'<div class="tgs-cap" style="margin:4px 0;font-family:monospace">'
                f"{html.escape(caps[0])}</div>"
                f'<div class="tgs-stage">{base}</div>'
                f"{fallback}"
                f"<script>{script}</script>"
                "</div>")


def _same_canvas(images: list) -> list:
    """The images on white canvases of one size (the largest), top-left aligned."""
    from PIL import Image
    w = max(im.size[0] for im in images)
    h = max(im.size[1] for im in images)
    out = []
    for im in images:
        if im.size == (w, h):
            out.append(im)
            continue
        c = Image.new("RGB", (w, h), "white")
        c.paste(im, (0, 0))
        out.append(c)
    return out


# The player: one picture; per frame it highlights the node and edges of that step and sets the
# gradient texts as they stand. Written for any browser, no library.
_PLAYER_JS = """
(function () {
  var root = document.getElementById("PLAYER_ID");
  if (!root) { return; }
  var D = PLAYER_DATA, F = D.frames, n = F.length, k = 0, timer = null;
  var fb = root.querySelector(".tgs-fallback");
  if (fb) { fb.parentNode.removeChild(fb); }
  root.querySelector(".tgs-controls").style.display = "";
  var svg = root.querySelector(".tgs-stage svg");
  var cap = root.querySelector(".tgs-cap");
  var slider = root.querySelector(".tgs-slider");
  var label = root.querySelector(".tgs-label");
  var play = root.querySelector(".tgs-play");
  var nodes = {}, texts = {}, base = {};
  svg.querySelectorAll("g.node").forEach(function (g) {
    var t = g.querySelector("title");
    if (t) { nodes[t.textContent] = g; }
  });
  var edges = {};  // 'tail->head' -> every edge group with that title (a + a has two)
  svg.querySelectorAll("g.edge").forEach(function (g) {
    var t = g.querySelector("title");
    if (t) { (edges[t.textContent] = edges[t.textContent] || []).push(g); }
  });
  function gradText(name) {
    if (!(name in texts)) {
      texts[name] = null;
      var g = nodes[name];
      if (g) {
        g.querySelectorAll("text").forEach(function (t) {
          if (t.textContent.indexOf("grad ") === 0) { texts[name] = t; }
        });
      }
      base[name] = texts[name] ? texts[name].textContent : null;
    }
    return texts[name];
  }
  F.forEach(function (f) { f.g.forEach(function (p) { gradText(p[0]); }); });
  function paint(g, on, width, text) {
    if (!g) { return; }
    g.querySelectorAll("polygon,path,polyline,ellipse,text").forEach(function (s) {
      var isText = s.tagName.toLowerCase() === "text";
      if (s.dataset.tgsStroke === undefined) {
        s.dataset.tgsStroke = s.getAttribute("stroke") || "";
        s.dataset.tgsWidth = s.getAttribute("stroke-width") || "";
        s.dataset.tgsFill = s.getAttribute("fill") || "";
      }
      if (isText) {
        if (text) { s.setAttribute("fill", on ? "#dc2626" : (s.dataset.tgsFill || "black")); }
        return;
      }
      if (on) {
        s.setAttribute("stroke", "#dc2626");
        s.setAttribute("stroke-width", width);
        if (text && s.tagName.toLowerCase() === "polygon") { s.setAttribute("fill", "#dc2626"); }
      } else {
        if (s.dataset.tgsStroke) { s.setAttribute("stroke", s.dataset.tgsStroke); }
        if (s.dataset.tgsWidth) { s.setAttribute("stroke-width", s.dataset.tgsWidth); }
        else { s.removeAttribute("stroke-width"); }
        if (text && s.dataset.tgsFill) { s.setAttribute("fill", s.dataset.tgsFill); }
      }
    });
  }
  var lit = [];
  function show(i) {
    k = Math.max(0, Math.min(n - 1, i));
    lit.forEach(function (x) { paint(x[0], false, "", x[1]); });
    lit = [];
    F[k].h.forEach(function (name) {
      paint(nodes[name], true, "3", false); lit.push([nodes[name], false]);
    });
    F[k].e.forEach(function (t) {
      (edges[t] || []).forEach(function (g) { paint(g, true, "2.5", true); lit.push([g, true]); });
    });
    var want = {};
    for (var name in base) { want[name] = base[name]; }
    for (var j = 0; j <= k; j++) { F[j].g.forEach(function (p) { want[p[0]] = p[1]; }); }
    for (var name2 in want) {
      var t = texts[name2];
      if (t && t.textContent !== want[name2]) { t.textContent = want[name2]; }
    }
    cap.textContent = D.captions[k];
    slider.value = String(k + 1);
    label.textContent = "step " + (k + 1) + " / " + n;
  }
  function stop() {
    if (timer !== null) { clearInterval(timer); timer = null; }
    play.textContent = "play";
  }
  root.querySelector(".tgs-prev").addEventListener("click", function () { stop(); show(k - 1); });
  root.querySelector(".tgs-next").addEventListener("click", function () { stop(); show(k + 1); });
  slider.addEventListener("input", function () { stop(); show(parseInt(slider.value, 10) - 1); });
  play.addEventListener("click", function () {
    if (timer !== null) { stop(); return; }
    if (k >= n - 1) { show(0); }
    play.textContent = "pause";
    timer = setInterval(function () {
      show(k + 1);
      if (k >= n - 1) { stop(); }
    }, INTERVAL);
  });
  show(0);
})();
"""


def backprop_frames(root: Value, interval_ms: int = 1200, stable_layout: bool = True,
                    max_frames: Optional[int] = DEFAULT_MAX_FRAMES,
                    **draw_options) -> Frames:
    """One picture per backward step from `root` (the steps of `narrate(root)`): the node being
    processed and the edges into it highlighted, gradients as they stand after the step.

    `draw_options` go to `viz.draw_dot` (rankdir, edge_labels (default True here: the local
    derivatives), precision, max_nodes, cluster, collapse, ...); highlight_nodes,
    highlight_edges, grads and title are set per frame. `interval_ms` is the player's time per
    frame; `stable_layout` draws every node at one size in all rendered frames so nothing moves
    between them. `max_frames` (default 1000; None: no limit) refuses a backward pass with more
    steps than that, before any work. No `.grad` changes.
    """
    check_value(root, "backprop_frames(root)")
    clash = sorted(k for k in draw_options if k in _OWN)
    if clash:
        raise ValueError(f"backprop_frames sets {', '.join(map(repr, clash))} itself for each "
                         "frame; leave it out")
    if isinstance(interval_ms, bool) or not isinstance(interval_ms, int) or interval_ms < 1:
        raise ValueError(f"interval_ms must be a positive int (milliseconds per frame), got "
                         f"{interval_ms!r}")
    if not isinstance(stable_layout, bool):
        raise ValueError(f"stable_layout must be True or False, got {stable_layout!r}")
    if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, int)
                                   or max_frames < 1):
        raise ValueError(f"max_frames must be a positive int or None (no limit), got "
                         f"{max_frames!r}")
    options = {"edge_labels": True, **draw_options}
    # sizes first, before any per-step work: one frame per interior node
    order = topological_order(root)
    steps = sum(1 for v in order if v._a is not None)
    if max_frames is not None and steps > max_frames:
        raise ValueError(
            f"backward from this root takes {steps:,} steps, more than max_frames={max_frames:,}: "
            "a flip book that long cannot be watched. Draw a smaller piece (one neuron's "
            "output, the loss of a single example, a shallower chain), or pass "
            "max_frames=None to build it anyway (the player stays small; rendering every "
            "frame to files takes one dot run per step)")
    from ..viz import draw_dot
    draw_dot(root, grads={}, **options)  # the options and max_nodes, now, not at display
    return Frames(root, narrate(root), options, interval_ms, stable_layout)
