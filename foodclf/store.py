"""The image store: photo bytes kept in FOODCLF_IMAGE_DIR, named by content id."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Union

from foodclf.errors import FoodclfError
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
        write_atomically(path, lambda f: f.write(loaded.data), prefix=".incoming-", durable=True)
        return name

    def remove_leftovers(self, older_than: float = 3600.0) -> int:
        """Delete temporaries of writes killed midway; recent ones may belong to a live writer."""
        removed = 0
        cutoff = time.time() - older_than
        for temp in self.root.glob(".incoming-*.part"):
            try:
                if temp.stat().st_mtime < cutoff:
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


def stored_name(content_id: str, extension: str) -> str:
    """The file name a photo is stored under: "<content id>.<ext>"."""
    name = f"{content_id.lower()}.{extension.lower()}"
    if not _STORED_NAME.fullmatch(name):
        raise ValueError(f"content_id/extension: cannot name a stored file {name!r}")
    return name
