"""Backprop frames: one picture per backward step, the HTML player, SVG files."""
import json
import re
import shutil
import subprocess

import pytest

from tinygrad_scalar import Value
from tinygrad_scalar.engine import topological_order
from tinygrad_scalar.teach import Frames, backprop_frames, narrate

from conftest import needs_dot  # skips where Graphviz's dot is missing


def lecture_e():
    a, b = Value(2.0, "a"), Value(1.0, "b")
    c = a + b
    d = b + 1
    e = c * d
    c.label, d.label, e.label = "c", "d", "e"
    return a, b, c, d, e


def node_line(source: str, name: str) -> str:
    (line,) = [ln for ln in source.splitlines() if ln.strip().startswith(name + " [")]
    return line


def test_one_frame_per_backward_step():
    a, b, c, d, e = lecture_e()
    frames = backprop_frames(e)
    assert isinstance(frames, Frames)
    assert len(frames) == len(narrate(e)) == 3
    x = Value(0.5, "x")
    y = x
    for _ in range(7):
        y = y.tanh() * y
    assert len(backprop_frames(y)) == sum(1 for v in topological_order(y) if v._prev)


def test_frames_highlight_the_step_and_show_grads_so_far():
    a, b, c, d, e = lecture_e()
    frames = backprop_frames(e)
    # topological names: a n0, b n1, c n2, const n3, d n4, e n5
    first, second, third = (f.source for f in frames)
    assert "penwidth=3" in node_line(first, "n5")            # e is being processed
    assert "penwidth=3" not in node_line(first, "n2")
    assert "grad 2" in node_line(first, "n2") and "grad 3" in node_line(first, "n4")
    assert "grad 0" in node_line(first, "n1")                # b not reached yet
    assert "penwidth=3" in node_line(second, "n4")           # then d
    assert "grad 3" in node_line(second, "n1")               # b got 3 from d
    assert "grad 5" in node_line(third, "n1")                # and 2 more from c
    # the highlighted edges are exactly the processed node's input edges
    hot = [ln.strip() for ln in third.splitlines() if "->" in ln and "#dc2626" in ln]
    assert [h.split(" [")[0] for h in hot] == ["n0 -> n2op", "n1 -> n2op", "n2op -> n2"]
    assert "backward step 3/3: at c, grad 2" in third
    assert frames.captions()[2] == ("step 3/3: at c (grad 2, final): "
                                    "a += 2 x 1 -> 2; b += 2 x 1 -> 5")
    assert 'label=2' in first  # local derivatives on the edges by default


def test_frames_leave_grads_alone_and_check_options():
    a, b, c, d, e = lecture_e()
    for v in topological_order(e):
        v.grad = 7.0
    frames = backprop_frames(e, rankdir="TB", edge_labels=False)
    _ = [f.source for f in frames]
    assert all(v.grad == 7.0 for v in topological_order(e))
    assert "label=2" not in frames[0].source and "rankdir=TB" in frames[0].source
    with pytest.raises(ValueError, match="sets 'grads' itself"):
        backprop_frames(e, grads={})
    with pytest.raises(ValueError, match="unknown option"):
        backprop_frames(e, colour="red")
    with pytest.raises(ValueError, match="interval_ms"):
        backprop_frames(e, interval_ms=0)
    with pytest.raises(TypeError, match="needs a Value"):
        backprop_frames("e")
    with pytest.raises(IndexError, match="frame 3 out of range"):
        frames[3]
    assert frames[-1].source == frames[2].source


def test_leaf_root_has_no_frames():
    frames = backprop_frames(Value(1.0, "w"))
    assert len(frames) == 0 and "no steps" in frames._repr_html_()


@needs_dot
def test_save_svgs(tmp_path):
    a, b, c, d, e = lecture_e()
    written = backprop_frames(e).save_svgs(tmp_path / "frames")
    assert [p.name for p in written] == ["frame_001.svg", "frame_002.svg", "frame_003.svg"]
    for p in written:
        text = p.read_text()
        assert "<svg" in text and text.rstrip().endswith("</svg>")


PLAYER_HARNESS = r"""
// A stand-in for the few DOM calls the player makes, then a scripted session.
function El(cls) { this.cls = cls; this.style = {display: ""}; this.textContent = "";
                   this.value = "1"; this.handlers = {}; }
El.prototype.addEventListener = function (ev, f) { this.handlers[ev] = f; };
var N = %d;
var frames = [], caps = [];
for (var i = 0; i < N; i++) { frames.push(new El("tgs-frame")); caps.push(new El("tgs-cap")); }
var one = {".tgs-slider": new El(), ".tgs-label": new El(), ".tgs-play": new El(),
           ".tgs-prev": new El(), ".tgs-next": new El()};
var root = {querySelectorAll: function (s) { return s === ".tgs-frame" ? frames : caps; },
            querySelector: function (s) { return one[s]; }};
var timers = [];
global.document = {getElementById: function (id) { return id === "%s" ? root : null; }};
global.setInterval = function (f) { timers.push(f); return timers.length; };
global.clearInterval = function () {};
function shown() { var s = []; for (var i = 0; i < N; i++) {
  if (frames[i].style.display !== "none") s.push(i); } return s; }
var log = [];
eval(%s);
log.push([shown(), one[".tgs-label"].textContent]);
one[".tgs-next"].handlers.click(); log.push([shown(), one[".tgs-slider"].value]);
one[".tgs-next"].handlers.click(); one[".tgs-next"].handlers.click();
log.push([shown(), one[".tgs-label"].textContent]);
one[".tgs-prev"].handlers.click(); log.push([shown()]);
one[".tgs-slider"].value = "1"; one[".tgs-slider"].handlers.input(); log.push([shown()]);
one[".tgs-play"].handlers.click(); log.push([one[".tgs-play"].textContent]);
timers[0](); timers[0](); log.push([shown(), one[".tgs-play"].textContent]);
console.log(JSON.stringify(log));
"""


def node_boxes(svg: str) -> dict:
    """Each graph node's outline in an SVG from Graphviz: {name: points}."""
    return dict(re.findall(r"<title>([^<]+)</title>\n<(?:polygon|ellipse)[^>]*?"
                           r"(?:points|cx)=\"([^\"]*)\"", svg))


@needs_dot
def test_stable_layout_keeps_every_node_in_place():
    x = Value(0.7, "x")
    y = x
    for _ in range(4):
        y = (y * x).tanh() + y   # gradients of many lengths fill in over 16 steps
    stable = backprop_frames(y).svgs()
    boxes = [node_boxes(s) for s in stable]
    order = topological_order(y)
    drawn = set(boxes[0]) - {"tinygrad_scalar"}  # the graph's own background has a title too
    assert len(drawn) == len(order) + sum(1 for v in order if v._prev)  # values and ops
    assert all(b == boxes[0] for b in boxes)
    size = re.compile(r'<svg width="(\w+)" height="(\w+)"')
    assert len({size.search(s).groups() for s in stable}) == 1
    # without it, Graphviz sizes nodes to their text and the drawing moves between frames
    loose = backprop_frames(y, stable_layout=False).svgs()
    assert len({size.search(s).groups() for s in loose}) > 1
    # stable frames still show each frame's own gradients
    assert "grad 0" in stable[0] and stable[0] != stable[-1]


@needs_dot
def test_html_player_is_self_contained_and_steps():
    a, b, c, d, e = lecture_e()
    frames = backprop_frames(e)
    page = frames._repr_html_()
    assert page.count("<svg") == 3 and "<?xml" not in page
    assert page.count('class="tgs-frame"') == 3
    for cls in ("tgs-prev", "tgs-play", "tgs-next", "tgs-slider"):
        assert f'class="{cls}"' in page
    assert "step 1/3: at e" in page and "step 3/3: at c" in page
    assert re.search(r"<script>.*</script>", page, re.DOTALL)
    assert "http" not in re.sub(r'xmlns(:xlink)?="[^"]*"|"-//W3C[^"]*"|"http://www.w3.org[^"]*"',
                                "", page)  # nothing fetched
    # two players on one page do not share ids
    assert re.search(r'id="(tgs-frames-[\w-]+)"', page).group(1) != re.search(
        r'id="(tgs-frames-[\w-]+)"', backprop_frames(e)._repr_html_()).group(1)
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the player's script is not exercised")
    pid = re.search(r'id="(tgs-frames-[\w-]+)"', page).group(1)
    script = re.search(r"<script>(.*)</script>", page, re.DOTALL).group(1)
    js = PLAYER_HARNESS % (3, pid, json.dumps(script))
    out = subprocess.run([node, "-e", js], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [
        [[0], "step 1 / 3"],
        [[1], "2"],
        [[2], "step 3 / 3"],   # next stops at the last frame
        [[1]],
        [[0]],
        ["pause"],
        [[2], "play"],         # played to the end, then stopped
    ]
