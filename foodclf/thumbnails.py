"""Small previews of stored photos, for galleries and the queue's grid."""

from __future__ import annotations

import base64
import io
from typing import Optional

from PIL import Image, ImageOps

from foodclf.errors import FoodclfError
from foodclf.images import decode_image
from foodclf.store import open_store


def thumbnail_bytes(data: bytes, size: int = 160) -> bytes:
    """A `size`-pixel square JPEG, centre-cropped, upright and RGB (decoded as safely as for the model).

    Square, so a gallery's tiles line up whatever the photos' shapes.
    """
    image = ImageOps.fit(decode_image(data).image, (size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=82, optimize=True)
    return buffer.getvalue()


def stored_thumbnail(image_dir: str, stored_path: str, size: int = 160) -> Optional[bytes]:
    """A stored photo's thumbnail; None if its file (or object) is missing or unreadable."""
    try:
        return thumbnail_bytes(open_store(image_dir).read(stored_path), size)
    except (FoodclfError, ValueError, OSError):
        return None


def data_url(jpeg: Optional[bytes]) -> Optional[str]:
    """`data:image/jpeg;base64,...` for a table's image column (None stays None)."""
    return None if jpeg is None else "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
