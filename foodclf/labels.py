"""Label and reviewer names: the Food-101 list, how labels are stored, cleaned and shown to people."""

from __future__ import annotations

import re
import unicodedata
from typing import Optional

from foodclf.errors import UnknownCategory

LABEL_LENGTH = 100  # longest stored category name
NAME_LENGTH = 100  # longest stored reviewer (or model) name
_LABEL = re.compile(r"\w+")  # after normalise_label: letters, digits, underscores; safe as a folder name

# The 101 classes of Food-101 (Bossard et al., ECCV 2014), as the hub's Food-101 models name them.
FOOD101_LABELS = [
    "apple_pie",
    "baby_back_ribs",
    "baklava",
    "beef_carpaccio",
    "beef_tartare",
    "beet_salad",
    "beignets",
    "bibimbap",
    "bread_pudding",
    "breakfast_burrito",
    "bruschetta",
    "caesar_salad",
    "cannoli",
    "caprese_salad",
    "carrot_cake",
    "ceviche",
    "cheese_plate",
    "cheesecake",
    "chicken_curry",
    "chicken_quesadilla",
    "chicken_wings",
    "chocolate_cake",
    "chocolate_mousse",
    "churros",
    "clam_chowder",
    "club_sandwich",
    "crab_cakes",
    "creme_brulee",
    "croque_madame",
    "cup_cakes",
    "deviled_eggs",
    "donuts",
    "dumplings",
    "edamame",
    "eggs_benedict",
    "escargots",
    "falafel",
    "filet_mignon",
    "fish_and_chips",
    "foie_gras",
    "french_fries",
    "french_onion_soup",
    "french_toast",
    "fried_calamari",
    "fried_rice",
    "frozen_yogurt",
    "garlic_bread",
    "gnocchi",
    "greek_salad",
    "grilled_cheese_sandwich",
    "grilled_salmon",
    "guacamole",
    "gyoza",
    "hamburger",
    "hot_and_sour_soup",
    "hot_dog",
    "huevos_rancheros",
    "hummus",
    "ice_cream",
    "lasagna",
    "lobster_bisque",
    "lobster_roll_sandwich",
    "macaroni_and_cheese",
    "macarons",
    "miso_soup",
    "mussels",
    "nachos",
    "omelette",
    "onion_rings",
    "oysters",
    "pad_thai",
    "paella",
    "pancakes",
    "panna_cotta",
    "peking_duck",
    "pho",
    "pizza",
    "pork_chop",
    "poutine",
    "prime_rib",
    "pulled_pork_sandwich",
    "ramen",
    "ravioli",
    "red_velvet_cake",
    "risotto",
    "samosa",
    "sashimi",
    "scallops",
    "seaweed_salad",
    "shrimp_and_grits",
    "spaghetti_bolognese",
    "spaghetti_carbonara",
    "spring_rolls",
    "steak",
    "strawberry_shortcake",
    "sushi",
    "tacos",
    "takoyaki",
    "tiramisu",
    "tuna_tartare",
    "waffles",
]

# Stored for an image a moderator marks as not showing food.
NOT_FOOD = "not_food"


def display_label(label: str) -> str:
    """How a stored label is shown: "apple_pie" -> "Apple pie"."""
    words = label.replace("_", " ").replace("-", " ").split()
    text = " ".join(words)
    return text[:1].upper() + text[1:] if text else label


def normalise_label(text: str) -> str:
    """How a label typed by a person is stored: "Apple Pie " -> "apple_pie"."""
    # NFKC first: a decomposed accent (macOS input) or fullwidth letters must give the same label.
    text = unicodedata.normalize("NFKC", text).lower()
    return "_".join(unicodedata.normalize("NFC", text).replace("-", " ").split())


def match_key(label: str) -> str:
    """A key that ignores case, spaces and underscores, to match folder names to model labels."""
    return "".join(ch for ch in label.lower() if ch.isalnum())


def clean_label(text: Optional[str]) -> str:
    """A category typed by a moderator, as stored: "Apple Pie " -> "apple_pie"; refuses empty or odd names.

    Raises:
        UnknownCategory: the name is empty, too long, or has characters a category cannot hold.
    """
    label = normalise_label(text or "")
    error = None
    if not label.strip("_"):
        error = "Pick or type a category for this photo."
    elif len(label) > LABEL_LENGTH:
        error = f"A category name can be at most {LABEL_LENGTH} characters."
    elif not _LABEL.fullmatch(label):
        odd = "".join(sorted({ch for ch in label if not re.fullmatch(r"\w", ch)}))
        error = f"Use only letters, digits, spaces and hyphens in a category name (not {odd!r})."
    if error:
        raise UnknownCategory(error)
    return label


def model_label(label: str) -> str:
    """A model's own label in stored form; characters a folder name cannot hold become underscores."""
    return re.sub(r"\W+", "_", normalise_label(label)).strip("_")[:LABEL_LENGTH] or "unlabelled"


def clean_reviewer_name(text: Optional[str]) -> str:
    """A person's name as stored: NFC, no control or invisible characters, single spaces, at most 100 characters.

    May return "" (nothing visible was typed); whoever needs a name refuses that.
    """
    text = unicodedata.normalize("NFC", text or "")
    # Tabs and newlines separate words; other control and format characters (zero-width space...)
    # must not make a name out of nothing.
    text = "".join(" " if ch.isspace() else ch for ch in text if ch.isspace() or unicodedata.category(ch)[0] != "C")
    return " ".join(text.split())[:NAME_LENGTH]
