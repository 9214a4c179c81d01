"""Exceptions whose messages a moderator can act on."""

from __future__ import annotations

from datetime import timedelta
from typing import Optional


class FoodclfError(Exception):
    """Base of every error foodclf shows to a person."""


class ImageRejected(FoodclfError):
    """The file is not an image we can classify (not an image, truncated, too big...)."""


class ImageTooLarge(ImageRejected):
    """The file or its pixel count is over the configured limit."""


class UnsupportedImageType(ImageRejected):
    """The file is an image, but of a format we do not accept (e.g. TIFF)."""


class DecodeBusy(FoodclfError):
    """Too many photos are being opened at once: the decode budget stayed full; try again shortly."""

    def __init__(self, message: str, retry_after: int = 5):
        super().__init__(message)
        self.retry_after = retry_after  # seconds, for an HTTP Retry-After header


class ModelUnavailable(FoodclfError):
    """The model could not be loaded (no network to the hub, bad folder...)."""


class UnknownCategory(FoodclfError):
    """A label that is empty or not allowed."""


class OpinionTaken(FoodclfError):
    """A second opinion was given by someone else, or its photo decided again, since it was shown."""


class ReviewConflict(FoodclfError):
    """Someone else reviewed the image since it was shown to this moderator.

    Built from what happened (who, which action, which label, how long ago), so the store keeps
    no wording: the sentence a moderator reads is made here.
    """

    def __init__(
        self,
        reviewer: Optional[str] = None,
        action: Optional[str] = None,
        label: Optional[str] = None,
        ago: Optional[timedelta] = None,
        *,
        undoing: bool = False,
    ):
        self.reviewer, self.action, self.label, self.ago, self.undoing = reviewer, action, label, ago, undoing
        super().__init__(self._sentence())

    def _sentence(self) -> str:
        ask = (
            "their decision stands, so there is nothing of yours to undo on this photo."
            if self.undoing
            else "look again and decide."
        )
        if self.reviewer is None:
            return f"This photo's decision was just changed; {ask}"
        ago = _ago(self.ago or timedelta(0))
        if self.action == "undone":
            return f"{self.reviewer} undid a decision on this photo {ago}; {ask}"
        what = {
            "confirmed": f"confirmed as {_spoken(self.label)}",
            "corrected": f"corrected to {_spoken(self.label)}",
            "not_food": "marked not food",
        }.get(self.action or "", self.action or "")
        return f"This photo was just reviewed by {self.reviewer} ({what}) {ago}; {ask}"


class StorageFailed(FoodclfError):
    """A photo or its rows could not be saved (a full disk, a locked database); trying again may work."""


class DatabaseBusy(StorageFailed):
    """Another program held the database's write lock for longer than we wait; nothing was written."""

    def __init__(self, message: str, retry_after: int = 5):
        super().__init__(message)
        self.retry_after = retry_after


class StorageFull(StorageFailed):
    """The disk holding the photos or the database is full; nothing was saved."""


class SettingsError(FoodclfError, ValueError):
    """An environment variable holds a value we cannot use."""


class AccessDenied(FoodclfError):
    """The signed-in person's role does not include this page or action; nothing was done."""


class DownloadGone(FoodclfError):
    """A download link that is unknown, used already, or expired: the file is not there any more."""


def _spoken(label: Optional[str]) -> str:
    # As the dashboard shows labels ("apple_pie" -> "Apple pie"); errors sit below foodclf.labels.
    text = " ".join((label or "no label").replace("_", " ").split())
    return text[:1].upper() + text[1:]


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"
