"""One-time download links: a finished file waits on disk for the one person and session it was made for.

The dashboard's exports are handed to the browser this way (ui/downloads.py serves the link), so the
server never holds a file in memory. A link works once, for LINK_TTL_S; its file is removed when it
is used, when it expires (a sweep every SWEEP_S, and at each new offer), or when the same session
offers another file. Files left by a process that stopped are removed by the next sweep of their
folder once they are older than the TTL.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, Optional

from starlette.responses import PlainTextResponse, Response, StreamingResponse

from foodclf.errors import DownloadGone

log = logging.getLogger(__name__)

LINK_TTL_S = 15 * 60  # long enough to click, short enough that files do not pile up
SWEEP_S = 60  # how often expired files are looked for
CHUNK = 1 << 20  # bytes read and sent at a time
GONE = (
    "This download link has expired or was used already (each link works once, for 15 minutes). "
    "Go back to the Export page and prepare the file again."
)


@dataclass(frozen=True)
class Waiting:
    """A file waiting for its download, and whom it was made for."""

    path: Path
    file_name: str  # the name the browser saves it as
    mime: str
    owner: str  # who prepared it (recorded with the export)
    session: str  # the dashboard session that prepared it: only that page, while open, may fetch it
    claims: Optional[dict[str, Any]]  # the sign-in's ID-token claims then (None: no sign-in, the local admin)
    expires_at: float  # on the registry's clock


class Downloads:
    """The links of one server process (thread-safe): token -> the file waiting for it."""

    def __init__(self, ttl_s: float = LINK_TTL_S, *, clock: Callable[[], float] = time.monotonic):
        self.ttl_s = ttl_s
        self._clock = clock
        self._waiting: dict[str, Waiting] = {}
        self._folders: set[Path] = set()
        self._lock = threading.Lock()
        self._sweeper: Optional[threading.Thread] = None

    def offer(
        self,
        path: Path,
        *,
        file_name: str,
        mime: str,
        owner: str,
        session: str,
        claims: Optional[dict[str, Any]] = None,
    ) -> str:
        """Make a one-time link for a file; returns its token (unguessable: 256 random bits).

        The file now belongs to the registry: it is removed once fetched or expired. The same
        session's earlier link, if unused, is withdrawn and its file removed.
        """
        token = secrets.token_urlsafe(32)
        entry = Waiting(Path(path), file_name, mime, owner, session, claims, self._clock() + self.ttl_s)
        with self._lock:
            earlier = [t for t, w in self._waiting.items() if w.session == session]
            gone = [self._waiting.pop(t) for t in earlier]
            self._waiting[token] = entry
            self._folders.add(entry.path.parent)
        _remove(*gone)
        self.sweep()
        self._start_sweeper()
        return token

    def take(self, token: str) -> Waiting:
        """The file for a token, once: the link is spent whatever follows (the caller streams and removes the file).

        Raises:
            DownloadGone: no such link, used already, or expired (its file is removed).
        """
        with self._lock:
            entry = self._waiting.pop(token, None)
        if entry is None:
            raise DownloadGone(GONE)
        if entry.expires_at <= self._clock():
            _remove(entry)
            raise DownloadGone(GONE)
        return entry

    def withdraw(self, token: str) -> None:
        """Drop a link and its file (the page's choice changed; nothing happens if it is gone already)."""
        with self._lock:
            entry = self._waiting.pop(token, None)
        if entry is not None:
            _remove(entry)

    def waiting(self) -> int:
        """How many links wait to be used."""
        with self._lock:
            return len(self._waiting)

    def sweep(self) -> int:
        """Remove expired links' files, and files in their folders that no link holds and that are older
        than the TTL (left by a process that stopped); returns how many files were removed."""
        now = self._clock()
        with self._lock:
            expired = [t for t, w in self._waiting.items() if w.expires_at <= now]
            gone = [self._waiting.pop(t) for t in expired]
            held = {w.path for w in self._waiting.values()}
            folders = list(self._folders)
        removed = _remove(*gone)
        oldest = time.time() - self.ttl_s
        for folder in folders:
            try:
                strays = [p for p in folder.iterdir() if p not in held and p.stat().st_mtime < oldest]
            except OSError:  # the folder went away (or is unreadable): nothing to sweep there
                continue
            removed += _remove_paths(strays)
        return removed

    def _start_sweeper(self) -> None:
        with self._lock:
            if self._sweeper is not None:
                return
            self._sweeper = threading.Thread(target=self._sweep_forever, name="foodclf-download-sweep", daemon=True)
        self._sweeper.start()

    def _sweep_forever(self) -> None:
        while True:
            time.sleep(SWEEP_S)
            try:
                self.sweep()
            except Exception:  # noqa: BLE001  (the sweeper must outlive one bad pass; the next one retries)
                log.exception("could not sweep expired downloads")


def file_response(waiting: Waiting) -> Response:
    """The HTTP response for a taken link: the file streamed CHUNK bytes at a time, then gone from disk.

    The file leaves its folder as soon as it is open (the open handle still reads it), so nothing is
    left behind even if the browser goes away mid-download: the space is freed when the handle closes.
    """
    try:
        file = open(waiting.path, "rb")  # noqa: SIM115  (closed by _chunks when the response ends)
    except FileNotFoundError:
        return refusal(404, GONE)
    size = os.fstat(file.fileno()).st_size
    waiting.path.unlink(missing_ok=True)
    headers = {
        "Content-Disposition": f'attachment; filename="{waiting.file_name}"',
        "Content-Length": str(size),
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    return StreamingResponse(_chunks(file), media_type=waiting.mime, headers=headers)


def refusal(status: int, message: str) -> Response:
    """A refused download: the sentence the person reads in the tab the link opened."""
    return PlainTextResponse(message, status_code=status, headers={"Cache-Control": "no-store"})


def _chunks(file: BinaryIO) -> Iterator[bytes]:
    with file:
        while chunk := file.read(CHUNK):
            yield chunk


def _remove(*entries: Waiting) -> int:
    return _remove_paths([entry.path for entry in entries])


def _remove_paths(paths: list[Path]) -> int:
    removed = 0
    for path in paths:
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            pass
        except OSError:
            log.warning("could not remove the download file %s", path, exc_info=True)
    return removed
