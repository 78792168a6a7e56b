"""Backprop as a flip book: one graph picture per backward step.

Frame k draws the whole graph with the node backward is processing highlighted, the edges into
it (along which its gradient flows to its inputs) highlighted, and every gradient as it stands
after that step (on private numbers: no `.grad` changes). The steps are exactly `narrate`'s.
In Jupyter the frames show as one self-contained HTML player (previous / play / next and a
slider: inline SVGs and a few lines of JavaScript, no widget server).
"""
from __future__ import annotations

import html
import json
import os
import pathlib
import hashlib
import itertools
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Union

from ..engine import Value
from ..files import write_atomic
from ._graph import check_value, fmt
from .narration import Narration, Step, narrate

# draw_dot options the frames set themselves
_OWN = ("highlight_nodes", "highlight_edges", "grads", "title")
_SLACK = 0.08  # inches added to each node's width: text widths differ a little from lengths


def caption(step: Step, total: int, digits: int = 4) -> str:
    """What a step does, in one line: 'step 2/3: at d (grad 3, final): b += 3 x 1 -> 3; ...'."""
    moves = "; ".join(f"{e.input_name} += {fmt(step.grad, digits)} x {fmt(e.local, digits)} "
                      f"-> {fmt(e.after, digits)}" for e in step.edges)
    return (f"step {step.index}/{total}: at {step.name} (grad {fmt(step.grad, digits)}, final): "
            f"{moves}")


def title(step: Step, total: int, digits: int = 4) -> str:
    """The short title drawn above a frame (the caption's first part; the player shows all)."""
    return f"backward step {step.index}/{total}: at {step.name}, grad {fmt(step.grad, digits)}"


_PLAYERS = itertools.count()


class Frames:
    """The frames of one backward pass: `len(frames)` steps, `frames[i]` a graphviz.Digraph
    (drawn on first use), `.svg(i)` / `.save_svgs(folder)` rendered, `.narration` the same
    steps as data, `.captions()` what each step does; in Jupyter an HTML player.

    With `stable_layout` (the default) rendered frames share one layout: every node is drawn
    at the size its widest gradient needs in any frame, so Graphviz places everything at the
    same spot in every frame and the pictures do not jump as gradients fill in.
    """

    def __init__(self, root: Value, narration: Narration, options: dict, snapshots: list,
                 interval_ms: int, stable_layout: bool):
        self.root, self.narration, self.options = root, narration, options
        self._snapshots = snapshots  # grads after each step, {node: grad} for touched nodes
        self._drawings: dict = {}
        self._svgs: dict = {}
        self._sizes: Optional[dict] = None
        self.interval_ms, self.stable_layout = interval_ms, stable_layout

    def __len__(self) -> int:
        return len(self.narration)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __getitem__(self, i: int):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        n = len(self)
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"frame index must be an int, got {type(i).__name__}: {i!r}")
        if not -n <= i < n:
            raise IndexError(f"frame {i} out of range: there are {n} frame(s)")
        i %= n
        g = self._drawings.get(i)
        if g is None:
            g = self._drawings[i] = self._draw(i, self._snapshots[i])
        return g

    def _draw(self, i: int, grads: dict):
        from ..viz import draw_dot
        step = self.narration[i]
        node = step.node
        return draw_dot(self.root, highlight_nodes=[node],
                        highlight_edges=[(e.input, node) for e in step.edges],
                        grads=grads, title=title(step, len(self)), **self.options)

    def captions(self) -> list:
        """What each step does, one line per frame (the player shows it above the picture)."""
        return [caption(s, len(self)) for s in self.narration]

    def _node_sizes(self) -> dict:
        """Graphviz's width and height of every drawn node when each shows the gradient with the
        longest text it has in any frame (one layout run, as JSON)."""
        if self._sizes is None:
            from ..viz import format_number
            precision = self.options.get("precision", 4)
            widest: dict = {}
            for snap in self._snapshots:
                for v, g in snap.items():
                    if len(format_number(g, precision)) > len(format_number(
                            widest.get(v, 0.0), precision)):
                        widest[v] = g
            laid = json.loads(self._draw(len(self) - 1, widest).pipe(format="json"))
            self._sizes = {o["name"]: (o["width"], o["height"])
                           for o in laid.get("objects", ()) if "width" in o and "height" in o}
        return self._sizes

    def _renderable(self, i: int):
        g = self[i]
        if not self.stable_layout:
            return g
        g = g.copy()
        for name, (w, h) in self._node_sizes().items():  # a repeated node statement adds to it
            g.node(name, width=str(float(w) + _SLACK), height=h, fixedsize="true")
        return g

    def svg(self, i: int) -> str:
        """Frame i rendered to SVG text (needs Graphviz's `dot`); cached."""
        if isinstance(i, bool) or not isinstance(i, int) or not -len(self) <= i < len(self):
            raise IndexError(f"frame {i!r} out of range: there are {len(self)} frame(s)")
        i %= len(self)
        s = self._svgs.get(i)
        if s is None:
            from ..viz import to_svg
            s = self._svgs[i] = to_svg(self._renderable(i))
        return s

    def svgs(self) -> list:
        """Every frame rendered to SVG text, several `dot` processes at a time."""
        missing = [i for i in range(len(self)) if i not in self._svgs]
        if len(missing) > 1:
            self.svg(missing[0])  # the shared layout and any Graphviz error, once
            with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
                list(pool.map(self.svg, missing[1:]))
        return [self.svg(i) for i in range(len(self))]

    def save_svgs(self, folder: Union[str, os.PathLike], prefix: str = "frame") -> list:
        """Write every frame as `<folder>/<prefix>_001.svg`, ... (the folder is created);
        returns the paths written, in step order."""
        folder = pathlib.Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        width = max(3, len(str(len(self))))
        out = []
        for i, svg in enumerate(self.svgs()):
            p = folder / f"{prefix}_{i + 1:0{width}d}.svg"
            write_atomic(p, svg)
            out.append(p)
        return out

    def __repr__(self) -> str:
        return f"<Frames: {len(self)} backward step(s) from {self.narration.names[self.root]}>"

    def _repr_html_(self) -> str:
        return self.to_html()

    def to_html(self) -> str:
        """One self-contained HTML player: every frame as inline SVG, the first one shown, and
        a few lines of JavaScript for previous / play / next and a slider."""
        n = len(self)
        if n == 0:
            root = html.escape(self.narration.names[self.root])
            return f"<div>{root} is a leaf, so backward takes no steps: no frames.</div>"
        from ..viz import strip_svg_prologue
        svgs = self.svgs()
        # a deterministic id (content hash + a per-process counter): unique on a page, and an
        # executed notebook re-runs to the same bytes
        digest = hashlib.sha1("".join(svgs).encode()).hexdigest()[:12]
        pid = f"tgs-frames-{digest}-{next(_PLAYERS)}"
        frames = []
        for i, svg in enumerate(svgs):
            svg = strip_svg_prologue(svg)
            hide = "" if i == 0 else "display:none"
            frames.append(f'<div class="tgs-frame" style="{hide}">{svg}</div>')
        caps = "".join(f'<div class="tgs-cap" style="{"" if i == 0 else "display:none"}">'
                       f"{html.escape(c)}</div>" for i, c in enumerate(self.captions()))
        button = ('<button type="button" class="{cls}" style="margin-right:4px">{text}</button>')
        controls = (button.format(cls="tgs-prev", text="&#9664; previous")
                    + button.format(cls="tgs-play", text="play")
                    + button.format(cls="tgs-next", text="next &#9654;")
                    + f'<input type="range" class="tgs-slider" min="1" max="{n}" value="1" '
                      'style="vertical-align:middle;width:12em">'
                    + f' <span class="tgs-label">step 1 / {n}</span>')
        script = _PLAYER_JS.replace("PLAYER_ID", pid).replace("INTERVAL", str(self.interval_ms))
        return (f'<div id="{pid}" style="font-family:sans-serif;font-size:13px">'
                f"<style>#{pid} svg {{max-width:100%;height:auto}}</style>"
                f"<div>{controls}</div>"
                f'<div style="margin:4px 0;font-family:monospace">{caps}</div>'
                f"{''.join(frames)}"
                f"<script>{script}</script>"
                "</div>")


# The player: shows one frame and its caption at a time. Written for any browser, no library.
_PLAYER_JS = """
(function () {
  var root = document.getElementById("PLAYER_ID");
  if (!root) { return; }
  var frames = root.querySelectorAll(".tgs-frame");
  var caps = root.querySelectorAll(".tgs-cap");
  var slider = root.querySelector(".tgs-slider");
  var label = root.querySelector(".tgs-label");
  var play = root.querySelector(".tgs-play");
  var n = frames.length, k = 0, timer = null;
  function show(i) {
    k = Math.max(0, Math.min(n - 1, i));
    for (var j = 0; j < n; j++) {
      frames[j].style.display = j === k ? "" : "none";
      caps[j].style.display = j === k ? "" : "none";
    }
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
                    **draw_options) -> Frames:
    """One picture per backward step from `root` (the steps of `narrate(root)`): the node being
    processed and the edges into it highlighted, gradients as they stand after the step.

    `draw_options` go to `viz.draw_dot` (rankdir, edge_labels (default True here: the local
    derivatives), precision, max_nodes, cluster, ...); highlight_nodes, highlight_edges, grads
    and title are set per frame. `interval_ms` is the player's time per frame; `stable_layout`
    draws every node at one size in all rendered frames so nothing moves between them. No
    `.grad` changes.
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
    options = {"edge_labels": True, **draw_options}
    narration = narrate(root)
    # the gradients after each step, replayed from the narration's own numbers
    grads: dict = {root: 1.0}
    snapshots = []
    for step in narration:
        for e in step.edges:
            if e.after is not None:  # nothing is passed to a constant
                grads[e.input] = e.after
        snapshots.append(dict(grads))
    frames = Frames(root, narration, options, snapshots, interval_ms, stable_layout)
    # check the options (and max_nodes) now, not at the first display
    from ..viz import draw_dot
    draw_dot(root, grads={}, **options)
    return frames
