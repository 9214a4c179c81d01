"""Where the shared real photos are: FOODCLF_SHARED_DATA, else ../shared/data beside the checkout.

Tests that use them skip cleanly when the folder is absent (a user's checkout has none).
"""

from __future__ import annotations

import os
from pathlib import Path

SHARED_DATA = Path(os.environ.get("FOODCLF_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
FOOD_PHOTOS = SHARED_DATA / "food-photos" / "pizza_steak_sushi"
HOSTILE_IMAGES = SHARED_DATA / "hostile-images"
