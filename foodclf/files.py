"""Writing a file so that readers, and a process killed halfway, never see half of it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def write_atomically(
    path: Path, write: Callable[[BinaryIO], None], *, prefix: str = ".incoming-", durable: bool = False
) -> None:
    """Call write(file) on a temporary file beside `path`, then rename it into place.

    os.replace is atomic on one filesystem: `path` holds the old file or the whole new one. A write
    that fails leaves nothing behind but the old file.

    Args:
        prefix: of the temporary's name (`<prefix>*.part`), so leftovers of a kill can be found.
        durable: fsync before the rename, for data that must survive a power cut (stored photos).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
