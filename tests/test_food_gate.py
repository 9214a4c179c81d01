"""The not-food gate: its arithmetic, its files, and that a model trained on the Lite0 backbone keeps it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from factories import photo, portrait_path
from foodclf.classifier import forget_classifiers, load_classifier
from foodclf.errors import ModelUnavailable
from foodclf.food_gate import GATE_NAME, GATE_WEIGHTS, FoodGate, load_food_gate
from foodclf.images import load_image
from foodclf.labels import NOT_FOOD
from foodclf.training.train import train_model

PIZZA, PLATE, DOG = 963, 923, 207  # ImageNet class numbers


def gate(**changes) -> FoodGate:
    options = dict(food={PIZZA: "pizza", PLATE: "other_dish"}, temperature=1.0, food_prior=0.0)
    return FoodGate(**{**options, **changes})


def imagenet_logits(**by_class) -> torch.Tensor:
    logits = torch.full((1, 1000), -20.0)
    for index, value in by_class.items():
        logits[0, int(index.lstrip("c"))] = value
    return logits


def test_starter_scores_sum_imagenet_classes_into_labels():
    scores = gate().probabilities(imagenet_logits(c963=2.0, c923=1.0, c207=1.0))
    assert gate().labels == ["pizza", "other_dish", NOT_FOOD]
    # pizza, plate (counted as a dish) and a dog (not food); the 997 other classes are near zero.
    assert scores[0].tolist() == pytest.approx(torch.tensor([2.0, 1.0, 1.0]).softmax(-1).tolist(), abs=1e-5)


def test_food_prior_and_temperature_move_mass_towards_food():
    logits = imagenet_logits(c963=1.0, c207=1.0)
    plain = gate().probabilities(logits)[0, -1]
    assert plain == pytest.approx(0.5, abs=1e-4)
    assert gate(food_prior=1.0).probabilities(logits)[0, -1] < plain
    sharper = gate(temperature=0.5).probabilities(imagenet_logits(c963=2.0, c207=1.0))[0, -1]
    assert sharper < gate().probabilities(imagenet_logits(c963=2.0, c207=1.0))[0, -1]


@pytest.mark.parametrize(
    "dish_labels, expected",
    [
        (("pizza", "steak"), ["pizza", "steak", NOT_FOOD]),
        (("not_food", "pizza"), ["not_food", "pizza"]),  # a model that learnt not_food itself: the gate adds to it
    ],
)
def test_gated_dishes_share_what_the_gate_leaves_to_food(dish_labels, expected):
    g = gate(dish_labels=dish_labels)
    dish_logits = torch.tensor([[2.0, 0.0]])
    logits = torch.cat([dish_logits, imagenet_logits(c963=1.0, c207=1.0)], dim=-1)  # p(not food) = 0.5
    scores = g.probabilities(logits)[0]
    own = dish_logits.softmax(-1)[0].tolist()
    assert g.labels == expected
    assert scores.sum() == pytest.approx(1.0, abs=1e-5)
    if NOT_FOOD in dish_labels:
        assert scores.tolist() == pytest.approx([own[0] * 0.5 + 0.5, own[1] * 0.5], abs=1e-4)
    else:
        assert scores.tolist() == pytest.approx([own[0] * 0.5, own[1] * 0.5, 0.5], abs=1e-4)


def test_saved_gate_reloads_with_its_head(tmp_path):
    weight, bias = torch.randn(1000, 8), torch.randn(1000)
    saved = gate(weight=weight, bias=bias, head_module="classifier")
    saved.save(tmp_path)
    loaded = load_food_gate(tmp_path, ["a", "b"])
    assert loaded.fingerprint() == saved.fingerprint() and loaded.dish_labels == ("a", "b")
    assert torch.equal(loaded.weight, weight) and loaded.head_module == "classifier"
    assert load_food_gate(tmp_path / "elsewhere", ["a"]) is None


@pytest.mark.parametrize("damage", ["{not json", '{"format": "something-else/9"}', '{"format": "foodclf-food-gate/1"}'])
def test_a_damaged_gate_file_is_one_clear_message(tmp_path, damage):
    (tmp_path / GATE_NAME).write_text(damage)
    with pytest.raises(ModelUnavailable, match=f"not-food gate in {tmp_path}.*delete {GATE_NAME}"):
        load_food_gate(tmp_path, ["a"] * 1000)


# --- a model trained on the Lite0 backbone keeps the gate -------------------------------------


def dish_folder(root: Path) -> Path:
    """Two 'dishes' the new head tells apart by colour (6 photos each)."""
    for label, colour in (("pizza", (210, 60, 30)), ("steak", (110, 60, 40))):
        (root / label).mkdir(parents=True)
        for n in range(6):
            (root / label / f"{n}.jpg").write_bytes(photo((colour[0] - 4 * n, colour[1] + n, colour[2]), size=(96, 80)))
    return root


def test_a_lite0_model_keeps_the_gate_and_a_portrait_is_not_food(settings, tmp_path):
    from transformers import AutoModelForImageClassification

    report = train_model(settings, dish_folder(tmp_path / "photos"), out=tmp_path / "two-dishes", register=False)
    folder = report.folder
    assert {GATE_NAME, GATE_WEIGHTS} <= {p.name for p in folder.iterdir()}
    record = json.loads((folder / "training.json").read_text())
    assert record["food_gate"]["imagenet_food_classes"] == 65
    assert "## Not-food gate" in (folder / "README.md").read_text()
    # Loaded with transformers alone it is a plain two-label classifier.
    plain = AutoModelForImageClassification.from_pretrained(folder, local_files_only=True)
    assert plain.config.id2label == {0: "pizza", 1: "steak"}

    forget_classifiers()
    classifier = load_classifier(settings.replace(model=str(folder)))
    assert classifier.labels == ["pizza", "steak", NOT_FOOD] and classifier.describe()["not_food_gate"]
    portrait = load_image(portrait_path()).image
    result = classifier.classify_image(portrait, top_k=0)
    assert result.highest_probability_class == NOT_FOOD and result.top_score > 0.9
    assert sum(s["score"] for s in result.class_scores) == pytest.approx(1.0, abs=1e-4)

    # The gate is what does it: without its files the same model calls the portrait a dish.
    ungated = tmp_path / "ungated"
    shutil.copytree(folder, ungated)
    (ungated / GATE_NAME).unlink()
    (ungated / GATE_WEIGHTS).unlink()
    bare = load_classifier(settings.replace(model=str(ungated)))
    assert bare.classify_image(portrait).highest_probability_class in ("pizza", "steak")
    assert bare.fingerprint != classifier.fingerprint
    forget_classifiers()


def test_a_fine_tuned_lite0_keeps_no_gate(settings, tmp_path):
    """Full mode moves the features the gate's ImageNet head reads (on the shared photos it then called 7 of
    test/'s 25 pizzas not food), so a fine-tuned model is saved without it."""
    report = train_model(
        settings, dish_folder(tmp_path / "photos"), out=tmp_path / "tuned", mode="full", epochs=1, register=False
    )
    assert not {GATE_NAME, GATE_WEIGHTS} & {p.name for p in report.folder.iterdir()}
    assert json.loads((report.folder / "training.json").read_text())["food_gate"] is None
    forget_classifiers()
    classifier = load_classifier(settings.replace(model=str(report.folder)))
    assert classifier.labels == ["pizza", "steak"] and not classifier.describe()["not_food_gate"]
    forget_classifiers()
