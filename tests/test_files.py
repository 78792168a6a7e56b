"""Atomic writes: a failure never leaves a half-written or missing file, and nothing but the
target's contents changes (symlinks, special files, modes, owners, other threads' umask)."""
import os
import stat
import subprocess
import sys
import threading

import pytest

from tinygrad_scalar.files import remove_stale_temps, write_atomic

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file semantics")

@pytest.fixture
def request_cleanup():
    todo = []
    yield todo
    for f in todo:
        f()

def _umask():
    m = os.umask(0)  # only the test reads it this way, while no other thread runs
    os.umask(m)
    return m

def test_write_atomic_writes_text_and_bytes(tmp_path):
    p = tmp_path / "a.txt"
    write_atomic(p, "héllo")
    assert p.read_text(encoding="utf-8") == "héllo"
    write_atomic(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    assert os.listdir(tmp_path) == ["a.txt"]  # no temporary file left behind
    assert p.stat().st_mode & 0o777 == 0o666 & ~_umask()

def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    p = tmp_path / "model.json"
    p.write_text("old")

    def boom(*a):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(p, "new")
    assert p.read_text() == "old" and os.listdir(tmp_path) == ["model.json"]

def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="the folder .*nope.* does not exist"):
        write_atomic(tmp_path / "nope" / "a.txt", "x")

# -- symlinks and special files are written through, never replaced ---------------------------

@posix_only
def test_a_symlink_is_kept_and_its_target_replaced(tmp_path):
    real = tmp_path / "real.json"
    real.write_text("old")
    real.chmod(0o640)
    link = tmp_path / "sub" / "link.json"
    link.parent.mkdir()
    link.symlink_to(os.path.join("..", "real.json"))  # a relative link, resolved from its folder
    write_atomic(link, "new")
    assert link.is_symlink() and os.readlink(link) == os.path.join("..", "real.json")
    assert real.read_text() == "new" and real.stat().st_mode & 0o777 == 0o640
    assert sorted(os.listdir(tmp_path)) == ["real.json", "sub"]
    assert os.listdir(link.parent) == ["link.json"]
    chain = tmp_path / "chain"
    chain.symlink_to(link)  # a link to a link
    write_atomic(chain, "newer")
    assert chain.is_symlink() and link.is_symlink() and real.read_text() == "newer"

@posix_only
def test_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "made.json")
    write_atomic(link, "x")
    assert link.is_symlink() and (tmp_path / "made.json").read_text() == "x"

@posix_only
def test_a_fifo_is_written_into_not_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    write_atomic(fifo, b"through the pipe")
    reader.join(10)
    assert got == [b"through the pipe"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still a FIFO, not a regular file
    assert os.listdir(tmp_path) == ["pipe"]
    link = tmp_path / "to-pipe"  # a symlink to a FIFO: the same
    link.symlink_to(fifo)
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    write_atomic(link, "again")
    reader.join(10)
    assert got[1] == b"again" and link.is_symlink() and stat.S_ISFIFO(os.lstat(fifo).st_mode)

@posix_only
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="Linux /proc")
def test_a_link_to_an_open_descriptor_writes_the_file_in_place(tmp_path):
    # as /dev/stdout -> /proc/self/fd/1: the link names a descriptor, so the file it is open on
    # is written through it, never renamed over (the link here lives in tmp_path: a broken
    # writer replaces only that)
    out, link = tmp_path / "out.txt", tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")
    code = ("import sys; from tinygrad_scalar.files import write_atomic; "
            "write_atomic(sys.argv[1], 'via stdout')")
    with open(out, "wb") as f:
        subprocess.run([sys.executable, "-c", code, str(link)], stdout=f, check=True,
                       env={**os.environ, "PYTHONPATH": _package_root()})
    assert out.read_text() == "via stdout"
    assert link.is_symlink() and sorted(os.listdir(tmp_path)) == ["out.txt", "stdout"]
    from tinygrad_scalar.files import _resolve
    with open(out, "rb") as f:  # the descriptor's own name: in place, never renamed over
        final, in_place = _resolve(f"/proc/self/fd/{f.fileno()}")
        assert in_place and os.path.samefile(final, out)


@posix_only
@pytest.mark.skipif(not os.path.exists("/proc/self/fd"), reason="needs /proc/self/fd")
def test_stdout_as_a_pipe_and_as_a_redirected_file_gets_every_byte_in_order(tmp_path):
    # /dev/stdout -> /proc/self/fd/1 -> pipe:[N]: there is no file to replace or reopen; the
    # bytes go through descriptor 1, after what the process already printed (a link of our own
    # stands in for /dev/stdout, so a broken writer can damage only tmp_path)
    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")
    code = ("import sys; from tinygrad_scalar.files import write_atomic; "
            "print('printed first'); write_atomic(sys.argv[1], '<svg/>\\n'); print('then this')")
    env = {**os.environ, "PYTHONPATH": _package_root()}
    piped = subprocess.run([sys.executable, "-c", code, str(link)], capture_output=True,
                           env=env)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == b"printed first\n<svg/>\nthen this\n"
    out = tmp_path / "out.txt"
    with open(out, "wb") as f:  # a shell's `> out.txt`: nothing written earlier is overwritten
        subprocess.run([sys.executable, "-c", code, str(link)], stdout=f, check=True, env=env)
    assert out.read_bytes() == b"printed first\n<svg/>\nthen this\n"
    assert sorted(os.listdir(tmp_path)) == ["out.txt", "stdout"]


def _package_root():
    import tinygrad_scalar
    return os.path.dirname(os.path.dirname(tinygrad_scalar.__file__))

def test_a_folder_is_refused_by_its_name(tmp_path):
    with pytest.raises(IsADirectoryError, match="folder") as e:
        write_atomic(tmp_path, "x")
    assert e.value.filename == os.fspath(tmp_path)

def test_the_empty_path_is_named_not_a_temp_file():
    with pytest.raises(FileNotFoundError, match="empty path") as e:
        write_atomic("", "x")
    assert ".tmp" not in str(e.value)

# -- modes, owners, the umask --------------------------------------------------------------------

@posix_only
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o755])
def test_an_existing_files_mode_is_kept(tmp_path, mode):
    p = tmp_path / "model.json"
    p.write_text("old")
    p.chmod(mode)
    write_atomic(p, "new")
    assert p.read_text() == "new" and p.stat().st_mode & 0o777 == mode

@posix_only
@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")
def test_the_owner_is_kept_when_root_writes(tmp_path):
    p = tmp_path / "theirs.json"
    p.write_text("old")
    os.chown(p, 12345, 23456)
    write_atomic(p, "new")
    assert (p.stat().st_uid, p.stat().st_gid) == (12345, 23456) and p.read_text() == "new"

@posix_only
def test_a_read_only_file_is_refused_naming_it(tmp_path):
    p = tmp_path / "keep.json"
    p.write_text("precious")
    p.chmod(0o444)  # the folder stays writable: renaming over it would have worked
    with pytest.raises(PermissionError, match="read-only") as e:
        write_atomic(p, "new")
    assert e.value.filename == os.fspath(p) and ".tmp" not in str(e.value)
    assert p.read_text() == "precious" and os.listdir(tmp_path) == ["keep.json"]

@posix_only
@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root "
                    "to run a child as another user")
def test_a_file_another_user_may_not_write_is_refused(request_cleanup):
    # run as 'nobody' in a folder nobody may write into, on root's 0644 file: os.access says no
    import pwd
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody'")
    import shutil
    import tempfile
    tmp_path = __import__("pathlib").Path(tempfile.mkdtemp())  # pytest's tmp_path is 0700
    request_cleanup.append(lambda: shutil.rmtree(tmp_path))
    tmp_path.chmod(0o777)
    p = tmp_path / "roots.json"
    p.write_text("root's")
    p.chmod(0o644)
    here = os.path.join(_package_root(), "tinygrad_scalar", "files.py")
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('files', {here!r})\n"
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            "write_atomic = m.write_atomic\n"
            "try:\n    write_atomic(sys.argv[1], 'x')\n"
            "except PermissionError as e:\n    print(e.filename, '|', e)\n")
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    r = subprocess.run([python, "-I", "-c", code, str(p)], capture_output=True, text=True,
                       user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[],
                       cwd="/")
    if r.returncode != 0 and "Permission denied" in r.stderr and not r.stdout:
        pytest.skip(f"'nobody' cannot run Python or read the package: {r.stderr[-200:]}")
    assert r.stdout.startswith(f"{p} | ") and ".tmp" not in r.stdout, (r.stdout, r.stderr)
    assert p.read_text() == "root's" and os.listdir(tmp_path) == ["roots.json"]

@posix_only
def test_write_atomic_never_changes_the_umask(tmp_path, monkeypatch):
    def no(*a):
        raise AssertionError("os.umask changes the umask of every thread")
    monkeypatch.setattr(os, "umask", no)
    write_atomic(tmp_path / "new.json", "x")
    write_atomic(tmp_path / "new.json", "y")

@posix_only
def test_threads_creating_files_meanwhile_are_never_world_writable(tmp_path):
    old = os.umask(0o022)
    try:
        stop = threading.Event()
        bad = []

        def saver():
            k = 0
            while not stop.is_set() or k < 5:
                write_atomic(tmp_path / f"s{k % 5}.json", "x")
                k += 1

        def creator():
            for i in range(400):
                p = tmp_path / f"c{i}"
                with open(p, "w"):
                    pass
                if p.stat().st_mode & 0o002:
                    bad.append(p.name)
        savers = [threading.Thread(target=saver) for _ in range(2)]
        for t in savers:
            t.start()
        creator()
        stop.set()
        for t in savers:
            t.join()
        assert bad == []
        assert all(os.stat(tmp_path / f"s{k}.json").st_mode & 0o777 == 0o644 for k in range(5))
    finally:
        os.umask(old)

# -- temporary files ------------------------------------------------------------------------------

def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid

def test_a_stale_temp_from_a_killed_save_is_removed_by_the_next_save(tmp_path):
    target = tmp_path / "model.json"
    target.write_text("old")
    dead = _dead_pid()
    stale = tmp_path / f".model.json.tmp-{dead}-0a1b2c3d"
    stale.write_text("half of a model")
    live = tmp_path / f".model.json.tmp-{os.getpid()}-deadbeef"  # a save in progress here
    live.write_text("being written")
    other = tmp_path / f".other.json.tmp-{dead}-0a1b2c3d"  # another target's: not ours
    other.write_text("x")
    write_atomic(target, "new")
    assert target.read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == sorted(["model.json", live.name, other.name])
    assert remove_stale_temps(tmp_path / "other.json") == [other.name]
    assert sorted(os.listdir(tmp_path)) == sorted(["model.json", live.name])

def test_temp_files_are_named_after_the_target_and_the_process(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append(os.path.basename(src))
        real_replace(src, dst)
    monkeypatch.setattr(os, "replace", spy)
    write_atomic(tmp_path / "m.json", "x")
    name = seen[0]
    assert name.startswith(f".m.json.tmp-{os.getpid()}-")

def test_a_very_long_file_name_still_gets_a_temporary_name(tmp_path):
    p = tmp_path / ("n" * 250)
    write_atomic(p, "x")
    assert p.read_text() == "x" and os.listdir(tmp_path) == [p.name]

@posix_only
def test_an_unwritable_folder_names_the_target_not_the_temp(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into any folder")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(PermissionError) as e:
            write_atomic(folder / "m.json", "x")
        assert e.value.filename == os.fspath(folder / "m.json") and ".tmp" not in str(e.value)
    finally:
        folder.chmod(0o755)

def test_an_os_error_during_the_write_names_the_target(tmp_path, monkeypatch):
    import errno

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", src, None, dst)
    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError, match="No space left") as e:
        write_atomic(tmp_path / "m.json", "x")
    assert e.value.errno == errno.ENOSPC and e.value.filename == os.fspath(tmp_path / "m.json")
    assert ".tmp" not in str(e.value) and os.listdir(tmp_path) == []


# -- everything the package writes goes through write_atomic --------------------------------------

@pytest.mark.parametrize("dot", [True, False])
def test_the_demos_neuron_picture_is_written_atomically(tmp_path, monkeypatch, dot):
    graphviz = pytest.importorskip("graphviz")
    from tinygrad_scalar import demo
    if not dot:  # the .gv fallback when Graphviz's `dot` is missing
        def missing(*a, **k):
            raise graphviz.ExecutableNotFound(["dot"])
        monkeypatch.setattr(graphviz.Digraph, "pipe", missing)
    old = tmp_path / ("neuron.svg" if dot else "neuron.gv")
    old.write_text("the old picture")

    def full_disk(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", full_disk)
    try:
        demo.draw_neuron(str(tmp_path / "neuron.svg"))
    except OSError as e:
        assert "disk full" in str(e)
    assert old.read_text() == "the old picture"  # not truncated, not half-written
    assert os.listdir(tmp_path) == [old.name]
