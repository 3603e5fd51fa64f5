"""One way to replace a file: write a temporary file beside it, then rename it over the target."""

from __future__ import annotations

import os
from collections.abc import Callable


def write_atomically(path: str | os.PathLike, write: Callable[[str], object]) -> None:
    """Call ``write(temporary_path)``, then rename that file to ``path``.

    Guarantee: a reader of ``path`` sees either its old content or the complete new content, never a partial file,
    even when the process is killed (the rename is atomic on one file system); a failed ``write`` leaves ``path``
    untouched and no temporary file behind.
    """
    target = os.fspath(path)
    folder, name = os.path.split(target)
    partial = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
    try:
        write(partial)
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
