"""Progress of a long run: tqdm bars for a terminal, a callback (fraction, message) for the dashboard."""

from __future__ import annotations

from typing import Callable, Optional

from tqdm.auto import tqdm

ProgressCallback = Callable[[float, str], None]  # fraction done (0 to 1), what is happening


class Progress:
    """Maps each stage of a run onto its share of the whole, so one callback sees 0 to 1 once."""

    def __init__(self, callback: Optional[ProgressCallback] = None, bars: bool = False):
        self.callback = callback
        self.bars = bars
        self.done = 0.0

    def note(self, fraction: float, message: str) -> None:
        """Report that the run is `fraction` done."""
        self.done = max(self.done, min(1.0, fraction))
        if self.callback is not None:
            self.callback(self.done, message)

    def stage(self, share: float, total: int, message: str, unit: str = "photo") -> "Stage":
        """A stage worth `share` of the whole run, counted in `total` steps."""
        return Stage(self, self.done, share, total, message, unit)


class Stage:
    """One counted stage; use as a context manager and call `update(n)`."""

    def __init__(self, progress: Progress, start: float, share: float, total: int, message: str, unit: str):
        self.progress, self.start, self.share = progress, start, share
        self.total, self.message, self.count = max(total, 0), message, 0
        self.bar = tqdm(total=total, desc=message, unit=unit, disable=not progress.bars, leave=True)
        progress.note(start, message)

    def update(self, n: int = 1, **postfix) -> None:
        self.count += n
        self.bar.update(n)
        if postfix:
            self.bar.set_postfix(postfix, refresh=False)
        fraction = self.count / self.total if self.total else 1.0
        self.progress.note(self.start + self.share * min(fraction, 1.0), f"{self.message} {self.count}/{self.total}")

    def __enter__(self) -> "Stage":
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()
        self.progress.note(self.start + self.share, self.message)
