"""Label names: the Food-101 list and how labels are shown to people."""

from __future__ import annotations

import unicodedata

# The 101 classes of Food-101 (Bossard et al., ECCV 2014), as the hub's Food-101 models name them.
FOOD101_LABELS = [
    "apple_pie", "baby_back_ribs", "baklava", "beef_carpaccio", "beef_tartare", "beet_salad", "beignets",
    "bibimbap", "bread_pudding", "breakfast_burrito", "bruschetta", "caesar_salad", "cannoli",
    "caprese_salad", "carrot_cake", "ceviche", "cheese_plate", "cheesecake", "chicken_curry",
    "chicken_quesadilla", "chicken_wings", "chocolate_cake", "chocolate_mousse", "churros", "clam_chowder",
    "club_sandwich", "crab_cakes", "creme_brulee", "croque_madame", "cup_cakes", "deviled_eggs", "donuts",
    "dumplings", "edamame", "eggs_benedict", "escargots", "falafel", "filet_mignon", "fish_and_chips",
    "foie_gras", "french_fries", "french_onion_soup", "french_toast", "fried_calamari", "fried_rice",
    "frozen_yogurt", "garlic_bread", "gnocchi", "greek_salad", "grilled_cheese_sandwich", "grilled_salmon",
    "guacamole", "gyoza", "hamburger", "hot_and_sour_soup", "hot_dog", "huevos_rancheros", "hummus",
    "ice_cream", "lasagna", "lobster_bisque", "lobster_roll_sandwich", "macaroni_and_cheese", "macarons",
    "miso_soup", "mussels", "nachos", "omelette", "onion_rings", "oysters", "pad_thai", "paella",
    "pancakes", "panna_cotta", "peking_duck", "pho", "pizza", "pork_chop", "poutine", "prime_rib",
    "pulled_pork_sandwich", "ramen", "ravioli", "red_velvet_cake", "risotto", "samosa", "sashimi",
    "scallops", "seaweed_salad", "shrimp_and_grits", "spaghetti_bolognese", "spaghetti_carbonara",
    "spring_rolls", "steak", "strawberry_shortcake", "sushi", "tacos", "takoyaki", "tiramisu",
    "tuna_tartare", "waffles",
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
