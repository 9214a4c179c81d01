"""The image store: photo bytes kept in FOODCLF_IMAGE_DIR, named by content id."""

from __future__ import annotations

import errno
import os
import re
import socket
import time
from pathlib import Path
from typing import Union

from foodclf.errors import FoodclfError, StorageFull
from foodclf.files import write_atomically
from foodclf.images import LoadedImage

# "<sha256 hex>.<ext>": the only names the store writes or reads, so a stored path can never climb out.
_STORED_NAME = re.compile(r"[0-9a-f]{64}\.[a-z0-9]{1,5}")


class ImageStore:
    """A folder of photos named `<content id>.<ext>`; writes are atomic, so a kill leaves no half file."""

    def __init__(self, root: Union[str, os.PathLike]):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"ImageStore({str(self.root)!r})"

    def save(self, loaded: LoadedImage) -> str:
        """Keep a photo's bytes (once per content id) and return its stored path, relative to the root.

        Args:
            loaded: a photo from foodclf.images.load_image.

        Returns:
            "<content id>.<ext>", the value for images.stored_path.
        """
        name = stored_name(loaded.content_id, loaded.extension)
        path = self.root / name
        if path.is_file() and path.stat().st_size == len(loaded.data):
            return name  # same content id, same bytes: nothing to do
        try:
            # The temporary's name says which process writes it, so a restart can clear a killed writer's at once.
            write_atomically(path, lambda f: f.write(loaded.data), prefix=f".incoming-{_WRITER}-", durable=True)
        except OSError as err:
            if err.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFull(
                    f"The disk holding the photos ({self.root}) is full, so this photo was not saved; "
                    "please tell the administrator."
                ) from err
            raise
        return name

    def remove_leftovers(self, older_than: float = 3600.0) -> int:
        """Delete temporaries of writes killed midway: any older than `older_than` seconds, and at once
        those of a process on this machine that is no longer running; others may belong to a live writer."""
        removed = 0
        cutoff = time.time() - older_than
        for temp in self.root.glob(".incoming-*.part"):
            try:
                if _writer_is_gone(temp.name) or temp.stat().st_mtime < cutoff:
                    temp.unlink()
                    removed += 1
            except FileNotFoundError:
                pass  # its writer finished or another cleaner got there first
        return removed

    def path(self, stored_path: str) -> Path:
        """The file of a stored path (checked, so it always lies inside the store)."""
        if not _STORED_NAME.fullmatch(stored_path or ""):
            raise ValueError(f"stored_path: expected '<content id>.<ext>', not {stored_path!r}")
        return self.root / stored_path

    def read(self, stored_path: str) -> bytes:
        """A stored photo's bytes.

        Raises:
            FoodclfError: the file is missing from the store.
        """
        try:
            return self.path(stored_path).read_bytes()
        except FileNotFoundError:
            raise FoodclfError(
                f"The photo {stored_path} is missing from the image folder {self.root}; check FOODCLF_IMAGE_DIR."
            ) from None

    def exists(self, stored_path: str) -> bool:
        """Whether the stored path's file is there."""
        return self.path(stored_path).is_file()


# "<host>.<pid>" of this process, in its temporaries' names ("." and "-" kept out of the host part).
_WRITER = f"{re.sub(r'[^A-Za-z0-9]', '_', socket.gethostname())[:40]}.{os.getpid()}"
_TEMP_WRITER = re.compile(r"\.incoming-(?P<host>[A-Za-z0-9_]+)\.(?P<pid>\d+)-")


def _writer_is_gone(name: str) -> bool:
    """Whether a temporary's writer ran on this machine and has exited (killed, most likely)."""
    match = _TEMP_WRITER.match(name)
    if match is None or match["host"] != _WRITER.split(".")[0]:
        return False  # an older name, or another machine's process: only age can tell
    pid = int(match["pid"])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, someone else's
    return False


def stored_name(content_id: str, extension: str) -> str:
    """The file name a photo is stored under: "<content id>.<ext>"."""
    name = f"{content_id.lower()}.{extension.lower()}"
    if not _STORED_NAME.fullmatch(name):
        raise ValueError(f"content_id/extension: cannot name a stored file {name!r}")
    return name
