"""Exceptions whose messages a moderator can act on."""


class FoodclfError(Exception):
    """Base of every error foodclf shows to a person."""


class ImageRejected(FoodclfError):
    """The file is not an image we can classify (not an image, truncated, too big...)."""


class ImageTooLarge(ImageRejected):
    """The file or its pixel count is over the configured limit."""


class UnsupportedImageType(ImageRejected):
    """The file is an image, but of a format we do not accept (e.g. TIFF)."""


class ModelUnavailable(FoodclfError):
    """The model could not be loaded (no network to the hub, bad folder...)."""


class UnknownCategory(FoodclfError):
    """A label that is empty or not allowed."""


class ReviewConflict(FoodclfError):
    """Someone else reviewed the image since it was shown to this moderator."""


class SettingsError(FoodclfError, ValueError):
    """An environment variable holds a value we cannot use."""
