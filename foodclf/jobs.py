"""A long run (training a model) in a background thread, with progress anyone can read.

The dashboard holds one per server process: the run goes on when the moderator who started it
moves to another page or closes the tab, and everyone sees the same progress.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from foodclf.errors import FoodclfError

log = logging.getLogger(__name__)

FAILED = "The run stopped on an error on our side; the details are in the server log."


@dataclass(frozen=True)
class JobState:
    """A snapshot of a job, safe to read from any thread."""

    running: bool = False
    fraction: float = 0.0  # 0 to 1
    message: str = ""
    started_by: str = ""
    started_at: float = 0.0  # time.time()
    finished_at: float = 0.0
    result: Any = None
    error: Optional[str] = None  # a message a person can act on

    @property
    def finished(self) -> bool:
        return not self.running and self.finished_at > 0


class BackgroundJob:
    """Runs one function at a time in a thread; the function reports progress(fraction, message)."""

    def __init__(self, name: str = "foodclf-job"):
        self.name = name
        self._state = JobState()
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None

    @property
    def state(self) -> JobState:
        with self._lock:
            return self._state

    def start(self, work: Callable[..., Any], *args, started_by: str = "", **kwargs) -> bool:
        """Start `work(*args, progress=..., **kwargs)`; False (and nothing started) if a run is going on."""
        with self._lock:
            if self._state.running:
                return False
            self._state = JobState(running=True, message="Starting…", started_by=started_by, started_at=time.time())
            self._thread = threading.Thread(target=self._run, args=(work, args, kwargs), name=self.name, daemon=True)
            self._thread.start()
            return True

    def wait(self, timeout: Optional[float] = None) -> JobState:
        """Wait for the current run to end (tests); returns the state then."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.state

    def clear(self) -> None:
        """Forget a finished run's outcome (the page dismissed it)."""
        with self._lock:
            if not self._state.running:
                self._state = JobState()

    def _progress(self, fraction: float, message: str) -> None:
        with self._lock:
            self._state = _replace(self._state, fraction=max(0.0, min(1.0, float(fraction))), message=message)

    def _run(self, work, args, kwargs) -> None:
        result, error = None, None
        try:
            result = work(*args, progress=self._progress, **kwargs)
        except FoodclfError as err:
            error = str(err)
        except Exception:  # noqa: BLE001  (a thread's error must reach the page, not vanish)
            log.exception("background job %s failed", self.name)
            error = FAILED
        with self._lock:
            self._state = _replace(
                self._state,
                running=False,
                finished_at=time.time(),
                result=result,
                error=error,
                fraction=1.0 if error is None else self._state.fraction,
            )


def _replace(state: JobState, **changes) -> JobState:
    return JobState(**{**state.__dict__, **changes})
