"""Safe image loading: any upload in, an upright RGB picture out, or a clear refusal.

Every check that can be made from the header (byte size, pixel count, format)
is made before the pixels are decoded, so a decompression bomb never allocates.

Every path that decodes a photo (API, dashboard, ingest, training) calls `decode_image`, which
  * decodes at the model's scale (MODEL_SIDE), so a photo gets the same pixels, and so the same
    scores, whatever route it came by, and a model trains on the pixels it will serve on;
  * takes its pixels from one budget shared by the whole process (DecodeBudget), so however many
    requests arrive at once, decoding never holds more than FOODCLF_DECODE_BUDGET_MP megapixels:
    a photo waits for room, or is refused with DecodeBusy when the wait runs out.
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import os
import re
import struct
import threading
import time
import unicodedata
import warnings
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Union

import imagehash
import numpy as np
from PIL import Image, ImageCms, ImageFile, ImageOps, UnidentifiedImageError

from foodclf.errors import DecodeBusy, ImageRejected, ImageTooLarge, UnsupportedImageType

# Formats a phone or a browser produces. TIFF, BMP and the rest are refused:
# nobody posts them, and each extra decoder is extra attack surface.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "MPO")
ACCEPTED_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".mpo")
EXTENSION_BY_FORMAT = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif"}

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000
# A decoded photo keeps its shorter side at most this many pixels (it is never enlarged): the
# models see 224-384 px, and their processors resize to at most 384 / 0.875 = 439 px before
# cropping, so more pixels change nothing but memory (and photos of up to 512 px, like Food-101's,
# pass untouched). A JPEG at least four times the side its caller needs (`side`: the model's own
# resize, foodclf.pixels.decode_side; 256 for Lite0) is decoded at a reduced scale straight away
# (the JPEG decoder's own 1/2, 1/4 or 1/8 scaling) that keeps twice that side, and a resize brings it
# down: decoding at the model's side itself (a 512 px photo at 1/2 for Lite0) was measured and lost a
# photo of the 75 on the shared test split (96.0 -> 94.7 %). Anything else is decoded and then
# resized. Part of the training feature cache's key: change DECODE_VERSION with it.
MODEL_SIDE = 512
DECODE_VERSION = "side512-draft-to-twice-model-2"
DEFAULT_DECODE_BUDGET_PIXELS = 64_000_000
DEFAULT_DECODE_WAIT_SECONDS = 10.0

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO]

_SRGB = ImageCms.createProfile("sRGB")


@dataclass(frozen=True)
class LoadedImage:
    """A decoded photo and what we know about its file."""

    image: Image.Image  # RGB, EXIF orientation applied, shorter side at most MODEL_SIDE
    content_id: str  # sha256 of the file's bytes, hex
    data: bytes
    format: str  # JPEG, PNG, WEBP, GIF or MPO
    file_name: str  # sanitised, for display only: never a path
    width: int  # of the file, after orientation (not of `image`, which may be smaller)
    height: int
    # perceptual_hash(image), when the decoding thread was asked for it (ingest: off the storing thread)
    phash: str = ""

    @property
    def size_bytes(self) -> int:
        return len(self.data)

    def perceptual_hash(self) -> str:
        """`phash` as the decoding thread computed it, or computed now (perceptual_hash of `image`)."""
        return self.phash or perceptual_hash(self.image)

    @property
    def extension(self) -> str:
        return EXTENSION_BY_FORMAT.get(self.format, "img")


def content_id(data: bytes) -> str:
    """The stable id of a file: the sha256 of its bytes, so a re-upload is recognised."""
    return hashlib.sha256(data).hexdigest()


def perceptual_hash(image: Image.Image) -> str:
    """The photo's 64-bit perceptual hash (DCT pHash) as 16 hex digits: a resized or re-encoded copy keeps
    nearly the same bits (db/similar.py: NEAR_DUPLICATE_BITS), where the content id changes entirely.

    Computed from the decoded picture (LoadedImage.image), so every route gets the same hash. The picture is
    at the model's decode scale (foodclf.pixels.decode_side): after switching to a model with another scale a
    photo's hash may move a bit or two, far under NEAR_DUPLICATE_BITS.

    imagehash.phash shrinks the picture to 32x32 with one Lanczos pass over every pixel; shrinking by whole
    factors first (reducing_gap) is 0.66 ms a photo instead of 1.35-1.95 on the shared 512 px photos, a tenth
    of ingest's CPU. Measured on the 300 shared photos: resized, re-encoded copies still within 2 bits, two
    different photos still at least 14 apart; hashes stored before moved by at most 2 bits (0.2 on average).
    """
    small = image.convert("L").resize((32, 32), Image.Resampling.LANCZOS, reducing_gap=4.0)
    return str(imagehash.phash(small))


def display_name(name: str | None, limit: int = 120) -> str:
    """A file name safe to show and store: no folders, no control characters."""
    if not name:
        return "photo"
    name = unicodedata.normalize("NFC", str(name))
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip(" .")
    return name[:limit] or "photo"


def read_source(source: ImageSource, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[bytes, str]:
    """Read the bytes of a path, a bytes object or a file object, refusing oversize files early.

    Returns:
        The bytes and a display name.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name = "photo"
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = path.name
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise ImageTooLarge(_too_many_bytes(size, max_bytes))
            with path.open("rb") as f:
                data = f.read(max_bytes + 1)
        except FileNotFoundError:
            raise ImageRejected(f"There is no file at {path}.") from None
        except IsADirectoryError:
            raise ImageRejected(f"{path} is a folder, not an image.") from None
        except PermissionError:
            raise ImageRejected(f"We are not allowed to read {path}.") from None
    elif hasattr(source, "read"):
        name = getattr(source, "name", None) or "photo"
        if hasattr(source, "seek"):
            try:
                source.seek(0)
            except (OSError, ValueError):
                pass  # a pipe or a socket reads from where it is
        data = source.read(max_bytes + 1)
        if isinstance(data, str):
            raise ValueError("source: open the file in binary mode ('rb')")
    else:
        raise ValueError(f"source: expected a path, bytes or a file object, not {type(source).__name__}")
    if len(data) > max_bytes:
        raise ImageTooLarge(_too_many_bytes(len(data), max_bytes, at_least=True))
    return data, display_name(str(name))


class DecodeBudget:
    """The pixels all decodes in this process may hold at once; each decode waits its turn for room.

    Waiters are served first come, first served, so a large photo is not starved by a stream of
    small ones; a decode needing more than the whole budget waits until it has the budget alone.
    One exception keeps phone photos moving while a 40 MP upload waits: a small decode (at most
    1/16 of the budget) may pass the queue while the one at its head is held back by other large
    decodes, not by small ones, and small ones passing hold at most 1/4 of the budget.
    """

    def __init__(self, pixels: int = DEFAULT_DECODE_BUDGET_PIXELS, wait_seconds: float = DEFAULT_DECODE_WAIT_SECONDS):
        self._ready = threading.Condition()
        self._queue: deque[tuple[object, int]] = deque()  # (ticket, cost) of each waiter, in arrival order
        self.in_use = 0
        self.passing = 0  # held by small decodes that passed the queue
        self.peak = 0  # the most pixels held at once since the last reset_peak (for tests and benchmarks)
        self.configure(pixels, wait_seconds)

    def configure(self, pixels: int, wait_seconds: float) -> None:
        """Change the size and the longest wait (decodes under way keep what they hold)."""
        if pixels <= 0:
            raise ValueError(f"pixels: expected more than 0, not {pixels}")
        if wait_seconds < 0:
            raise ValueError(f"wait_seconds: expected 0 or more, not {wait_seconds}")
        with self._ready:
            self.capacity = int(pixels)
            self.wait_seconds = float(wait_seconds)
            self._ready.notify_all()

    def reset_peak(self) -> None:
        with self._ready:
            self.peak = self.in_use

    @contextmanager
    def reserve(self, pixels: int) -> Iterator[int]:
        """Hold `pixels` of the budget for the block; waits at most wait_seconds for room.

        Raises:
            DecodeBusy: there was no room within wait_seconds; nothing is held.
        """
        ticket = object()
        with self._ready:
            deadline = time.monotonic() + self.wait_seconds
            waiter = (ticket, max(1, int(pixels)))
            self._queue.append(waiter)
            try:
                while (turn := self._turn(waiter)) is None:
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._ready.wait(left):
                        if (turn := self._turn(waiter)) is not None:
                            break  # room came with the deadline
                        raise DecodeBusy(
                            "The server is busy opening other large photos; please try again in a few seconds.",
                            retry_after=max(1, round(self.wait_seconds)),
                        )
                cost, passed = turn
                self.in_use += cost
                self.passing += cost if passed else 0
                self.peak = max(self.peak, self.in_use)
            finally:
                self._queue.remove(waiter)
                self._ready.notify_all()  # the next in line may fit now
        try:
            yield cost
        finally:
            with self._ready:
                self.in_use -= cost
                self.passing -= cost if passed else 0
                self._ready.notify_all()

    def _turn(self, waiter: tuple[object, int]) -> tuple[int, bool] | None:
        """(cost, passed the queue) if this waiter may go now, else None (caller holds the lock)."""
        cost = min(waiter[1], self.capacity)
        if self.in_use + cost > self.capacity:
            return None
        if self._queue[0] is waiter:
            return cost, False
        head = min(self._queue[0][1], self.capacity)
        small = cost <= self.capacity // 16 and self.passing + cost <= self.capacity // 4
        # The head would not fit even with no small decode running: passing it delays nothing.
        return (cost, True) if small and (self.in_use - self.passing) + head > self.capacity else None


# The one budget of this process: every decode_image call draws on it.
DECODE_BUDGET = DecodeBudget()


def configure_decode_budget(settings) -> None:
    """Size this process's decode budget from FOODCLF_DECODE_BUDGET_MP and FOODCLF_DECODE_WAIT_S.

    Also makes freed decodes go back to the operating system (see return_large_frees).
    """
    DECODE_BUDGET.configure(settings.decode_budget_pixels, settings.decode_wait_s)
    return_large_frees()


# glibc's mallopt parameter number (malloc.h); 1 MiB: every image buffer is larger.
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_BYTES = 1024 * 1024
_large_frees_returned = False


def return_large_frees() -> bool:
    """Have glibc map every allocation of 1 MiB or more on its own, so freeing it returns it to the OS.

    By default glibc raises that threshold after the first large free, and Pillow's image blocks
    then come from per-thread heaps that keep freed memory: the budget bounds what decodes hold,
    but the process's resident size would still creep up to the budget times the number of decoding
    threads (measured with bench/soak.py: +1.05 GB at 24 clients, +0.24 GB with this). A no-op
    where the C library is not glibc.

    Returns:
        Whether the setting is in force.
    """
    global _large_frees_returned
    if not _large_frees_returned:
        try:
            libc = ctypes.CDLL(None)
            _large_frees_returned = bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES))
        except (OSError, AttributeError):  # not glibc (macOS, musl without mallopt): nothing to tune
            _large_frees_returned = False
    return _large_frees_returned


def load_image(
    source: ImageSource,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    name: str | None = None,
    side: int = MODEL_SIDE,
    phash: bool = False,
) -> LoadedImage:
    """Open a photo for the model: an upright RGB image, or a clear refusal.

    Args:
        source: a path, the file's bytes, or a binary file object (e.g. Streamlit's upload).
        max_bytes: files larger than this are refused before they are read in full.
        max_pixels: images with more pixels are refused before they are decoded.
        name: the display name to keep (defaults to the path's or file object's name).
        side: the shorter side the caller needs at least (a model's resize); a JPEG four times as large or
            more is decoded at the smallest of the decoder's scales that keeps twice it.

    Returns:
        A LoadedImage whose `image` is RGB with EXIF orientation applied, at the model's scale
        (see decode_image).

    Raises:
        ImageRejected: (or a subclass) with a message a moderator can act on.
        DecodeBusy: the process's decode budget stayed full for FOODCLF_DECODE_WAIT_S.
    """
    data, source_name = read_source(source, max_bytes)
    name = display_name(name) if name else source_name
    return decode_image(data, name=name, max_pixels=max_pixels, side=side, phash=phash)


def decode_image(
    data: bytes,
    *,
    name: str = "photo",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    budget: DecodeBudget | None = None,
    side: int = MODEL_SIDE,
    phash: bool = False,
) -> LoadedImage:
    """Decode bytes already read: the one decode of every path (see load_image for the checks made).

    The pixels are drawn from `budget` (default: the process's DECODE_BUDGET) while they are
    decoded; the image returned has its shorter side at most MODEL_SIDE, so what outlives the
    call is small whatever the file's size.
    """
    if not data:
        raise ImageRejected("The file is empty.")
    budget = DECODE_BUDGET if budget is None else budget
    image = _open_checked(data, max_pixels)
    fmt = image.format
    full_size = image.size
    try:
        kept = max(1, min(2 * side, MODEL_SIDE))  # what the model's own resize shrinks from cleanly
        if fmt in ("JPEG", "MPO") and min(full_size) >= 2 * kept:
            image.draft("RGB", (kept, kept))  # the decoder's own 1/2, 1/4 or 1/8 scale, both sides >= kept
        with budget.reserve(decode_cost(image)):
            image.load()
            upright = _upright(image)
            rotated = upright.size != image.size and upright.size == image.size[::-1]
            width, height = full_size[::-1] if rotated else full_size
            rgb = _model_scale(_to_rgb(upright))
            del upright
    except (ImageRejected, DecodeBusy):
        raise
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, Image.DecompressionBombError):
        # Pillow says "image file is truncated", "broken data stream", ... all mean the same to a person.
        raise ImageRejected("The image is truncated or corrupt; please upload the complete file.") from None
    finally:
        image.close()
    return LoadedImage(
        image=rgb,
        content_id=content_id(data),
        data=data,
        format=fmt,
        file_name=name,
        width=width,
        height=height,
        phash=perceptual_hash(rgb) if phash else "",
    )


def decode_cost(image: Image.Image) -> int:
    """Budget pixels an opened image takes to decode: its pixels, more for modes that need extra copies."""
    pixels = image.size[0] * image.size[1]
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return 3 * pixels  # read as float64 on the way to 8 bits
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La", "CMYK") or "transparency" in image.info:
        return 2 * pixels  # composited onto white: RGBA copies
    return pixels


def model_scale(size: tuple[int, int]) -> tuple[int, int]:
    """The size decode_image gives an image of `size`: shorter side at most MODEL_SIDE, aspect kept."""
    width, height = size
    shorter = min(width, height)
    if shorter <= MODEL_SIDE:
        return size
    return max(1, round(width * MODEL_SIDE / shorter)), max(1, round(height * MODEL_SIDE / shorter))


def _model_scale(image: Image.Image) -> Image.Image:
    """A new RGB image at model_scale (a copy when no resize is needed: the decoded one is closed)."""
    size = model_scale(image.size)
    if size == image.size:
        return image.copy()
    # reducing_gap: a box reduce to about 3x the target first, then bicubic: fast and sharp enough.
    return image.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)


def _open_checked(data: bytes, max_pixels: int) -> Image.Image:
    """Open the header only and refuse what we must not decode."""
    with warnings.catch_warnings():
        # Pillow warns above its own limit; ours (below) is the one that counts.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        _ignore_exif_tag_warnings()  # opening a JPEG reads its EXIF for the resolution
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as err:
            raise ImageTooLarge(_bomb_message(str(err), max_pixels)) from None
        except UnidentifiedImageError:
            kind = _claimed_format(data)
            if kind:
                raise ImageRejected(f"This {kind} file is corrupt or has no pixels, so it cannot be opened.") from None
            raise ImageRejected(
                "This file is not an image we can open; please upload a JPEG, PNG, WebP or GIF photo."
            ) from None
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error):
            raise ImageRejected("The image is truncated or corrupt; please upload the complete file.") from None
    if image.format not in ACCEPTED_FORMATS:
        fmt = image.format or "unknown"
        image.close()
        raise UnsupportedImageType(
            f"This is a {fmt} image; we accept JPEG, PNG, WebP and GIF. Please convert it and upload again."
        )
    width, height = image.size
    if width <= 0 or height <= 0:
        image.close()
        raise ImageRejected(f"The image has no pixels ({width} × {height}).")
    if width * height > max_pixels:
        image.close()
        raise ImageTooLarge(f"The image is {width:,} × {height:,} pixels; the limit is {max_pixels:,} pixels in all.")
    return image


_SIGNATURES = {
    b"\xff\xd8\xff": "JPEG",
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
}


def _claimed_format(data: bytes) -> str | None:
    """The format a file's first bytes claim, to tell 'corrupt image' from 'not an image'."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((fmt for sig, fmt in _SIGNATURES.items() if data.startswith(sig)), None)


def _ignore_exif_tag_warnings() -> None:
    """Inside catch_warnings: drop Pillow's warnings about malformed EXIF (TIFF) tags.

    "Metadata Warning, tag 274 had too many entries", "Tag data larger than file. Skipping tag 282": Pillow
    skips the broken tag and so do we (a broken EXIF block never costs the photo), so for the person running
    `evaluate` or `classify` those lines are noise. Only that module's UserWarnings, only while we read EXIF.
    """
    warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.TiffImagePlugin")


def _upright(image: Image.Image) -> Image.Image:
    """Apply EXIF orientation; a missing or invalid value (0 is common in Food-101) means as stored."""
    with warnings.catch_warnings():
        _ignore_exif_tag_warnings()
        try:
            orientation = image.getexif().get(0x0112, 1)
        except Exception:  # noqa: BLE001  (a broken EXIF block must not cost us the photo itself)
            return image
        if orientation not in (2, 3, 4, 5, 6, 7, 8):
            return image
        try:
            return ImageOps.exif_transpose(image)
        except Exception:  # noqa: BLE001  (likewise: the photo as stored rather than no photo)
            return image


def _to_rgb(image: Image.Image) -> Image.Image:
    """Every mode to 8-bit RGB; transparency is composited onto white."""
    image = _to_srgb(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        image = _high_depth_to_la(image)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _high_depth_to_la(image: Image.Image) -> Image.Image:
    """16-bit or 32-bit grey to 8-bit L (with its transparent value as alpha, if any)."""
    values = np.asarray(image, dtype=np.float64)
    transparent = image.info.get("transparency")
    peak = values.max() if values.size else 0
    scale = 255.0 / 65535.0 if peak > 255 else 1.0
    grey = Image.fromarray(np.clip(values * scale, 0, 255).astype(np.uint8), "L")
    if isinstance(transparent, int):
        alpha = Image.fromarray(np.where(values == transparent, 0, 255).astype(np.uint8), "L")
        grey = Image.merge("LA", (grey, alpha))
    return grey


def _to_srgb(image: Image.Image) -> Image.Image:
    """Honour an embedded colour profile so colours look as the photographer saw them."""
    profile = image.info.get("icc_profile")
    if not profile or image.mode not in ("RGB", "CMYK"):
        return image
    try:
        return ImageCms.profileToProfile(image, io.BytesIO(profile), _SRGB, outputMode="RGB")
    except Exception:  # noqa: BLE001  (a malformed profile: fall back to the raw pixels)
        return image


# A folder walk picks these up (content is checked on load, so a refused TIFF
# gets its reason); other files in the folder, like a README, are not photos.
FOLDER_EXTENSIONS = ACCEPTED_EXTENSIONS + (".tif", ".tiff", ".bmp", ".heic", ".heif", ".avif", ".jfif", ".apng")


def find_images(paths) -> list[Path]:
    """Expand folders into the image files under them (sorted); files named directly are kept."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(
                sorted(
                    p
                    for p in path.rglob("*")
                    if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in FOLDER_EXTENSIONS
                )
            )
        else:
            found.append(path)
    return found


def _too_many_bytes(size: int, limit: int, at_least: bool = False) -> str:
    more = "more than " if at_least else ""
    return f"The file is {more}{_megabytes(size)}; the limit is {_megabytes(limit)}."


def _megabytes(n: int) -> str:
    value = n / 1024 / 1024
    return f"{value:.1f} MB" if value >= 0.95 else f"{max(1, round(n / 1024))} KB"


def _bomb_message(detail: str, max_pixels: int) -> str:
    numbers = re.findall(r"\((\d+) pixels\)", detail)
    claimed = f"{int(numbers[0]):,} pixels" if numbers else "an enormous size"
    return f"The image claims {claimed}; the limit is {max_pixels:,} pixels in all."


ImageFile.LOAD_TRUNCATED_IMAGES = False  # a half photo must be refused, not padded with grey
