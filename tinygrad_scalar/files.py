"""Writing files atomically: every file the package writes goes through here."""
from __future__ import annotations

import os
import tempfile
from typing import Union

PathLike = Union[str, "os.PathLike[str]"]


def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask  # what open() gives a new file (mkstemp would give 0600)


def write_atomic(path: PathLike, data: Union[bytes, str]) -> None:
    """Write to a temporary file in the same folder, then rename it over `path`.

    A reader never sees half a file, and a crash or error leaves any old file as it was.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):  # say so, rather than name the temporary file in the error
        raise FileNotFoundError(f"cannot write {path!r}: the folder {folder!r} does not exist")
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix="-" + os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
