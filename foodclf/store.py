"""The image store: photo bytes kept in FOODCLF_IMAGE_DIR, named by content id.

Two backends behind one small interface (save, read, exists, local_file, remove_leftovers):
a local folder (the default, `ImageStore`), or any fsspec URL (`ObjectStore`): `s3://bucket/prefix`
(s3fs), `gs://...` (gcsfs) or `az://...` (adlfs) where that package is installed. `open_store`
picks one from FOODCLF_IMAGE_DIR. Every reader of stored photos goes through it.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import time
from pathlib import Path
from typing import Union

import fsspec

from foodclf.errors import FoodclfError, StorageFull
from foodclf.files import write_atomically
from foodclf.images import LoadedImage

# "<sha256 hex>.<ext>": the only names the store writes or reads, so a stored path can never climb out.
_STORED_NAME = re.compile(r"[0-9a-f]{64}\.[a-z0-9]{1,5}")


def open_store(location: Union[str, os.PathLike]) -> "ImageStore | ObjectStore":
    """The image store at FOODCLF_IMAGE_DIR: a folder, or an object store for a URL like s3://bucket/prefix.

    Raises:
        FoodclfError: the URL's scheme has no fsspec backend installed.
    """
    text = os.fspath(location)
    if "://" not in text or text.startswith("file://"):
        return ImageStore(text.removeprefix("file://"))
    return ObjectStore(text)


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

    def source(self, stored_path: str) -> Path:
        """What classify_many and load_image read the photo from: here, its file."""
        return self.path(stored_path)

    def local_file(self, stored_path: str, cache_dir: Union[str, os.PathLike]) -> Path:
        """A local file holding the photo, for readers that need one (training): here, the stored file itself.

        Raises:
            FoodclfError: the file is missing from the store.
        """
        path = self.path(stored_path)
        if not path.is_file():
            raise FoodclfError(f"The photo {stored_path} is missing from the image folder {self.root}.")
        return path

    def where(self) -> str:
        """The store, for messages."""
        return str(self.root)


class ObjectStore:
    """Photos as objects `<prefix>/<content id>.<ext>` in an object store (any fsspec URL).

    A photo is written with one PUT, which object stores make visible whole or not at all, so no
    temporary name is needed; the same content id is never written twice.
    """

    def __init__(self, url: str):
        try:
            # fsspec caches one filesystem (one client, one connection pool) per URL and options.
            self.fs, root = fsspec.core.url_to_fs(url)
        except (ImportError, ValueError) as err:
            raise FoodclfError(f"FOODCLF_IMAGE_DIR cannot be used: {url} ({err}).") from None
        self.url = url.rstrip("/")
        self.root = root.rstrip("/")

    def __repr__(self) -> str:
        return f"ObjectStore({self.url!r})"

    def key(self, stored_path: str) -> str:
        """The object's key in the filesystem (checked like a folder store's path)."""
        if not _STORED_NAME.fullmatch(stored_path or ""):
            raise ValueError(f"stored_path: expected '<content id>.<ext>', not {stored_path!r}")
        return f"{self.root}/{stored_path}"

    def save(self, loaded: LoadedImage) -> str:
        """Keep a photo's bytes (once per content id) and return its stored path: "<content id>.<ext>"."""
        name = stored_name(loaded.content_id, loaded.extension)
        key = self.key(name)
        try:
            if self._size(key) == len(loaded.data):
                return name  # same content id, same bytes: nothing to do
            self.fs.pipe_file(key, loaded.data)
        except OSError as err:
            raise OSError(f"could not write {self.url}/{name}: {err}") from err
        return name

    def read(self, stored_path: str) -> bytes:
        """A stored photo's bytes.

        Raises:
            FoodclfError: the object is missing, or the store cannot be read (credentials, network).
        """
        key = self.key(stored_path)
        try:
            return self.fs.cat_file(key)
        except FileNotFoundError:
            raise FoodclfError(
                f"The photo {stored_path} is missing from the image store {self.url}; check FOODCLF_IMAGE_DIR."
            ) from None
        except (OSError, PermissionError) as err:
            raise FoodclfError(
                f"The photo {stored_path} could not be read from the image store {self.url} ({err}); "
                "check FOODCLF_IMAGE_DIR and the store's credentials."
            ) from None

    def exists(self, stored_path: str) -> bool:
        """Whether the stored path's object is there."""
        return self._size(self.key(stored_path)) is not None

    def source(self, stored_path: str) -> "StoredObject":
        """What classify_many and load_image read the photo from: the object, fetched when first read."""
        self.key(stored_path)  # checked now, as a folder store's path is
        return StoredObject(self, stored_path)

    def local_file(self, stored_path: str, cache_dir: Union[str, os.PathLike]) -> Path:
        """A local copy of the photo under `cache_dir`/photos (downloaded once), for readers that need a file.

        Raises:
            FoodclfError: the object is missing or unreadable.
        """
        path = Path(cache_dir) / "photos" / stored_path
        if not path.is_file():
            data = self.read(stored_path)
            write_atomically(path, lambda f: f.write(data), prefix=".incoming-")
        return path

    def remove_leftovers(self, older_than: float = 3600.0) -> int:
        """Nothing to remove: a killed PUT leaves no object behind."""
        return 0

    def where(self) -> str:
        """The store, for messages."""
        return self.url

    def _size(self, key: str):
        """The object's size in bytes, or None when there is none."""
        try:
            return self.fs.size(key)
        except FileNotFoundError:
            return None


class StoredObject:
    """A photo in an object store as a file to read once: a missing object fails that photo alone."""

    def __init__(self, store: ObjectStore, stored_path: str):
        self.store = store
        self.name = stored_path

    def __repr__(self) -> str:
        return f"StoredObject({self.store.url}/{self.name})"

    def read(self, size: int = -1) -> bytes:
        """The object's bytes (raises FoodclfError when it is missing or unreadable)."""
        return self.store.read(self.name)


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
