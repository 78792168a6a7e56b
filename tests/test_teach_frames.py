"""Backprop frames: one picture per backward step, the HTML player, SVG files."""
import html
import json
import re

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



def player_data(page: str) -> dict:
    """The frames and captions the player script carries (its one JSON literal)."""
    m = re.search(r"var D = (\{.*?\}), F = D\.frames", page, re.DOTALL)
    return json.loads(m.group(1).replace("<\\/", "</"))


def hot_edges(source: str) -> set:
    """'tail->head' of every highlighted edge in a frame's DOT text."""
    return {ln.strip().split(" [")[0].replace(" -> ", "->")
            for ln in source.splitlines() if " -> " in ln and "#dc2626" in ln}


def grad_texts(source: str) -> dict:
    """The 'grad X' field of every node statement in a frame's DOT text."""
    out = {}
    for ln in source.splitlines():
        m = re.match(r"\s+(\w+) \[label=\"(.*?)\"", ln)
        if m and "grad " in m.group(2):
            out[m.group(1)] = "grad " + m.group(2).split("grad ", 1)[1].split(" ")[0]
    return out


def check_player_matches_frames(frames, page):
    """Replaying the player's per-frame changes on its one picture gives, frame by frame,
    exactly the highlights and gradient texts of the full drawing of that frame."""
    data = player_data(page)
    assert data["captions"] == frames.captions()
    shown = grad_texts(frames._draw(None, frames.grads_at(0)).source)  # the one picture
    for k, f in enumerate(data["frames"]):
        full = frames[k].source
        for name, text in f["g"]:
            shown[name] = text
        assert shown == grad_texts(full), k
        assert set(f["e"]) == hot_edges(full), k
        hot_nodes = {ln.strip().split(" [")[0] for ln in full.splitlines()
                     if "penwidth=3" in ln and " -> " not in ln}
        assert set(f["h"]) == hot_nodes, k


@needs_dot
def test_html_player_holds_one_picture_and_the_changes():
    a, b, c, d, e = lecture_e()
    frames = backprop_frames(e)
    page = frames._repr_html_()
    # one picture the player changes, plus the last frame for readers without JavaScript
    assert page.count("<svg") == 2 and "<?xml" not in page
    assert 'style="max-width:100%;height:auto"' in page  # both scale to the output column
    for cls in ("tgs-prev", "tgs-play", "tgs-next", "tgs-slider", "tgs-fallback"):
        assert f'class="{cls}"' in page
    # without JavaScript: the controls stay hidden, every caption is listed
    assert 'class="tgs-controls" style="display:none"' in page
    for cap in frames.captions():
        assert f"<li>{html.escape(cap)}</li>" in page
    assert "needs JavaScript" in page
    assert "http" not in re.sub(r'xmlns(:xlink)?="[^"]*"|"-//W3C[^"]*"|"http://www.w3.org[^"]*"',
                                "", page)  # nothing fetched
    check_player_matches_frames(frames, page)
    # two players on one page do not share ids
    assert re.search(r'id="(tgs-frames-[\w-]+)"', page).group(1) != re.search(
        r'id="(tgs-frames-[\w-]+)"', backprop_frames(e)._repr_html_()).group(1)


@needs_dot
def test_player_of_a_collapsed_mlp_matches_its_frames():
    from tinygrad_scalar.nn import MLP
    out = MLP(2, [3, 1], seed=1)([0.5, -0.3])
    frames = backprop_frames(out, collapse=True)
    check_player_matches_frames(frames, frames.to_html())


@needs_dot
def test_player_of_an_mlp_stays_small():
    # issue 16: MLP(2,[8,8,1]) on one input was 42 MB with one SVG per frame
    from tinygrad_scalar.nn import MLP
    out = MLP(2, [8, 8, 1], seed=0)([0.5, -0.3])
    frames = backprop_frames(out, max_nodes=None)
    assert len(frames) == 121
    page = frames.to_html()
    assert len(page.encode()) < 2_000_000 and page.count("<svg") == 2


def chain(depth: int) -> Value:
    y = Value(0.5, "x")
    for _ in range(depth):
        y = y * 1.0001
    return y


def test_max_frames_is_checked_before_any_per_step_work(monkeypatch):
    import tinygrad_scalar.teach.frames as frames_mod
    y = chain(1001)
    monkeypatch.setattr(frames_mod, "narrate", lambda root: pytest.fail("narrated first"))
    with pytest.raises(ValueError, match=r"1,001 steps, more than max_frames=1,000.*smaller"):
        backprop_frames(y, max_nodes=None)
    with pytest.raises(ValueError, match="max_frames"):
        backprop_frames(y, max_frames=0)


def test_frames_memory_is_linear_in_depth():
    # issue 13: one gradient snapshot per step made memory quadratic in depth
    import tracemalloc

    def peak(depth):
        y = chain(depth)
        tracemalloc.start()
        f = backprop_frames(y, max_nodes=None, max_frames=None)
        _ = f.grads_at(len(f) - 1)
        size = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return size

    small, big = peak(1000), peak(4000)
    assert big < 6 * small  # linear: about 4x; one snapshot per step: about 16x


@needs_dot
def test_save_svgs_removes_stale_frames_of_a_longer_run(tmp_path):
    folder = tmp_path / "frames"
    x = Value(0.3, "x")
    y = x
    for _ in range(5):
        y = y.tanh()
    backprop_frames(y).save_svgs(folder)
    (folder / "notes.txt").write_text("mine")
    (folder / "other_001.svg").write_text("<svg/>")
    a, b, c, d, e = lecture_e()
    written = backprop_frames(e).save_svgs(folder)
    assert sorted(p.name for p in folder.iterdir()) == [
        "frame_001.svg", "frame_002.svg", "frame_003.svg", "notes.txt", "other_001.svg"]
    assert [p.name for p in written] == ["frame_001.svg", "frame_002.svg", "frame_003.svg"]
    assert "backward step 3/3" in (folder / "frame_003.svg").read_text()


@needs_dot
def test_save_gif_and_strip(tmp_path):
    from PIL import Image
    a, b, c, d, e = lecture_e()
    frames = backprop_frames(e, interval_ms=300)
    gif = frames.save_gif(tmp_path / "backprop.gif")
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == 3
        assert im.info["duration"] == 300
        w, h = im.size
    strip = frames.save_strip(tmp_path / "strip.png")
    with Image.open(strip) as im:
        assert im.format == "PNG" and im.size == (3 * w, h)
    two = frames.save_strip(tmp_path / "two.png", steps=[1, 3], columns=1)
    with Image.open(two) as im:
        assert im.size == (w, 2 * h)
    with pytest.raises(ValueError, match="step numbers from 1 to 3"):
        frames.save_strip(tmp_path / "bad.png", steps=[0])
    with pytest.raises(ValueError, match="no frame"):
        backprop_frames(Value(1.0)).save_gif(tmp_path / "none.gif")


def test_captions_leave_out_moves_into_constants():
    # issue 12: the squared error at p < t showed "n3 += 1.6 x nan -> nan" in step 1's caption
    p = Value(0.2, "p")
    loss = (p - 1.0) ** 2
    caps = backprop_frames(loss).captions()
    assert not any("nan" in c for c in caps)
    assert caps[0].startswith("step 1/2: at n4 (grad 1, final): n2 += 1 x -1.6 -> -1.6")
    assert caps[1] == "step 2/2: at n2 (grad -1.6, final): p += -1.6 x 1 -> -1.6"


@needs_dot
def test_one_frame_as_a_picture_fits_the_column():
    a, b, c, d, e = lecture_e()
    frames = backprop_frames(e)
    pic = frames.picture(1)
    assert pic.svg == frames.svg(1) and "backward step 2/3" in pic.title
    assert 'style="max-width:100%;height:auto"' in pic._repr_html_()


# ---------------------------------------------------------------------------------------------
# Collapsed frames: every text names only what the picture shows.

_NODE_STMT = re.compile(r'^\s+(\w+) \[label="((?:[^"\\]|\\.)*)"(.*)\]$')


def drawn_nodes(source: str) -> dict:
    """{the name drawn on a node (its record's first field, a box's module name): highlighted?}
    for every node of a frame's DOT text; the title is not a node, so its names do not count."""
    out = {}
    for ln in source.splitlines():
        m = _NODE_STMT.match(ln)
        if m is None or m.group(1) in ("graph", "node", "edge"):
            continue
        label = m.group(2).strip()
        if label.startswith("{"):
            label = label[1:-1]
        first = re.split(r"(?<!\\)\|", label)[0].strip()
        out[re.sub(r"\\(.)", r"\1", first)] = "penwidth=3" in m.group(3)
    return out


def graph_title(source: str) -> str:
    m = re.search(r'^\s+graph \[.*?label="((?:[^"\\]|\\.)*)"', source, re.MULTILINE)
    return "" if m is None else m.group(1).replace("\\n", "\n")


def mentioned(text: str, names) -> set:
    """The node names (the graph's names in the teaching tools, `n17` for an unlabelled
    node) that `text` uses as whole words."""
    return {n for n in names if re.search(rf"(?<![\w.@]){re.escape(n)}(?![\w.@])", text)}


def check_texts_name_only_drawn_nodes(frames) -> None:
    """Each frame's caption and title mention only names drawn on that frame's nodes; a step
    'inside B' is one whose highlighted node is box B; no move is dropped to get there."""
    names = set(frames.narration.names.values())
    captions = frames.captions()
    for i, step in enumerate(frames.narration):
        source = frames[i].source
        drawn = drawn_nodes(source)
        title = graph_title(source)
        for text in (captions[i], title):
            hidden = mentioned(text, names) - set(drawn)
            assert not hidden, (text, sorted(hidden))
            for box in re.findall(r"inside ([^\s,:]+)", text):
                assert drawn.get(box) is True, (text, box)  # the box the frame highlights
        moves = sum(1 for e in step.edges if not e.input.is_constant)
        assert captions[i].count(" += ") == moves, captions[i]
    assert not mentioned(repr(frames), names) - set(drawn_nodes(frames[0].source))


def two_output_module():
    """A module `m` whose box has two outputs (so it shows no one gradient), used twice."""
    x, w = Value(1.5, "x"), Value(-2.0, "m.w")
    p, q = w * x, w + x
    p.label, q.label = "m.p", "m.q"
    y = (p * q).tanh() * x
    y.label = "y"
    return y


def collapsed_cases():
    from tinygrad_scalar.nn import MLP
    yield "MLP(2,[2,1])", MLP(2, [2, 1], seed=0)([1.0, -2.0])
    yield "MLP(3,[3,2]) tanh", MLP(3, [3, 2], activation="tanh", seed=3)([0.5, -1.0, 2.0])[1]
    m = MLP(2, [3, 1], seed=1)
    yield "loss outside the boxes", (m([0.5, -0.3]) - 1.0) ** 2 + m([-1.0, 2.0]) * 0.5
    yield "a box with two outputs", two_output_module()


CASES = [pytest.param(root, id=name) for name, root in collapsed_cases()]


@pytest.mark.parametrize("root", CASES)
def test_collapsed_frames_name_only_what_the_picture_shows(root):
    # a caption saying "at n17" or "L0.N0.w0 += ..." under a picture that shows only the box
    # L0.N0 names a node nobody can find in it
    check_texts_name_only_drawn_nodes(backprop_frames(root, collapse=True))
    check_texts_name_only_drawn_nodes(backprop_frames(root, collapse=True, rankdir="TB"))


@pytest.mark.parametrize("root", CASES)
def test_uncollapsed_frames_keep_the_narration_names(root):
    from tinygrad_scalar.teach.frames import caption
    for options in ({}, {"cluster": True}):
        frames = backprop_frames(root, max_nodes=None, **options)
        check_texts_name_only_drawn_nodes(frames)
        assert frames.captions() == [caption(s, len(frames)) for s in frames.narration]


def test_collapsed_captions_read_through_the_box():
    from tinygrad_scalar.nn import MLP
    frames = backprop_frames(MLP(2, [2, 1], seed=0)([1.0, -2.0]), collapse=True)
    caps = frames.captions()
    assert caps[1] == ("step 2/11: inside L1.N0, at (w0 * L0.N0) (grad 1, final): "
                       "w0 += 1 x 0 -> 0; L0.N0 += 1 x 0.02255 -> 0.02255")
    assert caps[4] == ("step 5/11: inside L0.N0, at (w0 * x0) (grad 0, final): "
                       "w0 += 0 x 1 -> 0; x0 += 0 x 0.6888 -> 0")
    assert graph_title(frames[2].source) == "backward step 3/11: inside L0.N0, at a, grad 0.02255"
    assert repr(frames) == "<Frames: 11 backward step(s) from L1.N0>"
    other = backprop_frames(two_output_module(), collapse=True).captions()
    assert "p in m += " in other[2] and "q in m += " in other[2]  # box m shows no one grad


@needs_dot
def test_collapsed_player_and_pictures_name_only_drawn_nodes():
    from tinygrad_scalar.nn import MLP
    frames = backprop_frames(MLP(2, [2, 1], seed=0)([1.0, -2.0]), collapse=True)
    names = set(frames.narration.names.values())
    drawn = set(drawn_nodes(frames[0].source))
    page = frames.to_html()
    shown = " ".join(player_data(page)["captions"]) + html.unescape(re.sub(r"<svg.*?</svg>", "",
                                                                           page, flags=re.S))
    assert not mentioned(shown, names) - drawn
    assert not mentioned(frames.picture(4).title, names) - drawn
