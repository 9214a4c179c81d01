"""The classifier: output shape and order, batching, fingerprint, zero-shot, uncertainty."""

from __future__ import annotations

import gc
import logging
import math
import weakref
from unittest.mock import ANY

import pytest
import torch

from factories import photo
from foodclf import classifier as classifier_module
from foodclf.classifier import (
    Uncertainty,
    display_label,
    forget_classifiers,
    load_classifier,
    loaded_models,
    pick_precision,
    quiet_transformers,
)
from foodclf.errors import ModelUnavailable
from foodclf.images import load_image
from foodclf.labels import FOOD101_LABELS
from tiny_models import build_tiny_vit

COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (240, 240, 240), (10, 10, 10), (120, 90, 40)]


@pytest.fixture
def images():
    return [load_image(photo(c, size=(40 + 7 * i, 30 + 3 * i))).image for i, c in enumerate(COLOURS)]


@pytest.fixture
def classifier(settings):
    return load_classifier(settings)


def test_scores_are_sorted_dicts_summing_to_one(classifier, images):
    result = classifier.classify([images[0]], top_k=0)[0]
    assert result.class_scores[0] == {"label": ANY, "score": ANY}
    assert all(isinstance(s["label"], str) and isinstance(s["score"], float) for s in result.class_scores)
    assert len(result.class_scores) == 101
    scores = [s["score"] for s in result.class_scores]
    assert scores == sorted(scores, reverse=True)
    assert math.isclose(sum(scores), 1.0, rel_tol=1e-5)
    assert {s["label"] for s in result.class_scores} == set(FOOD101_LABELS)
    assert result.highest_probability_class == result.class_scores[0]["label"]


@pytest.mark.parametrize("top_k, expected", [(1, 1), (5, 5), (500, 101), (0, 101)])
def test_top_k_is_clamped(classifier, images, top_k, expected):
    assert len(classifier.classify_image(images[0], top_k=top_k).class_scores) == expected


def test_default_top_k_comes_from_settings(settings, images):
    assert len(load_classifier(settings.replace(top_k=3)).classify_image(images[0]).class_scores) == 3


def test_a_photo_gets_the_same_answer_in_any_batch(classifier, images):
    alone = [classifier.classify_image(image, top_k=0) for image in images]
    together = classifier.classify(images, top_k=0)
    assert len(together) == len(alone) == len(COLOURS)
    for one, many in zip(alone, together):
        assert one.highest_probability_class == many.highest_probability_class
        batched = {s["label"]: s["score"] for s in many.class_scores}
        for score in one.class_scores:
            assert math.isclose(score["score"], batched[score["label"]], abs_tol=1e-5)


def test_result_names_the_model_and_its_weights(classifier, images, tiny_model_dir):
    result = classifier.classify_image(images[0])
    assert result.model_id == str(tiny_model_dir)
    assert len(result.fingerprint) == 64 and result.fingerprint == classifier.fingerprint
    assert result.to_dict()["model"] == {"id": str(tiny_model_dir), "fingerprint": classifier.fingerprint}


def test_fingerprint_changes_with_the_weights(tmp_path, settings, classifier):
    other = build_tiny_vit(tmp_path / "other", seed=1)
    assert load_classifier(settings, str(other)).fingerprint != classifier.fingerprint
    same = build_tiny_vit(tmp_path / "same", seed=0)
    assert load_classifier(settings, str(same)).fingerprint == classifier.fingerprint


def test_the_model_is_loaded_once_per_process(settings):
    assert load_classifier(settings) is load_classifier(settings)
    first = load_classifier(settings)
    forget_classifiers()
    assert load_classifier(settings) is not first


def test_a_third_model_releases_the_least_recently_used_one(settings, tmp_path):
    forget_classifiers()
    folders = [str(build_tiny_vit(tmp_path / f"model-{i}", seed=i)) for i in range(3)]
    first = load_classifier(settings, folders[0])
    first_weights = weakref.ref(first.model)
    second = load_classifier(settings, folders[1])
    assert load_classifier(settings, folders[0]) is first  # two fit: nothing reloaded
    load_classifier(settings, folders[1])  # now the first is the least recently used
    load_classifier(settings, folders[2])
    assert loaded_models() == [folders[1], folders[2]]
    assert load_classifier(settings, folders[1]) is second
    del first
    gc.collect()
    assert first_weights() is None  # the released model's weights are freed


def test_a_released_model_still_in_use_is_shared_not_loaded_twice(settings, tmp_path, monkeypatch):
    forget_classifiers()
    folders = [str(build_tiny_vit(tmp_path / f"model-{i}", seed=i)) for i in range(3)]
    in_use = load_classifier(settings, folders[0])  # e.g. a request still running with it
    load_classifier(settings, folders[1])
    load_classifier(settings, folders[2])
    assert folders[0] not in loaded_models()
    monkeypatch.setattr(classifier_module, "_load", lambda *a: pytest.fail("loaded a second copy"))
    assert load_classifier(settings, folders[0]).model is in_use.model
    assert len(loaded_models()) == 2


def test_zero_shot_with_a_custom_category_list(settings, tiny_clip_dir, images):
    labels = ("pizza", "green salad", "not food")
    clip = load_classifier(settings.replace(model=str(tiny_clip_dir), zero_shot_labels=labels))
    assert clip.zero_shot and clip.labels == list(labels)
    result = clip.classify_image(images[0], top_k=0)
    assert sorted(s["label"] for s in result.class_scores) == sorted(labels)
    assert math.isclose(sum(s["score"] for s in result.class_scores), 1.0, rel_tol=1e-5)
    together = clip.classify(images[:3], top_k=0)
    assert together[0].highest_probability_class == result.highest_probability_class


def test_zero_shot_defaults_to_food101(settings, tiny_clip_dir, images):
    clip = load_classifier(settings.replace(model=str(tiny_clip_dir)))
    assert clip.labels == FOOD101_LABELS


@pytest.mark.parametrize(
    "scores, uncertain",
    [
        ([0.9, 0.05], False),
        ([0.4, 0.3], True),  # under the threshold
        ([0.55, 0.5], True),  # over it, but too close to the runner-up
        ([1.0], False),
    ],
)
def test_uncertainty(scores, uncertain):
    assert Uncertainty(below=0.5, margin=0.1)(scores) is uncertain


def test_tiny_random_model_is_flagged_uncertain(classifier, images):
    assert classifier.classify_image(images[0]).uncertain  # ~1/101 each: nobody should trust it


def test_threshold_zero_never_flags(settings, images):
    sure = load_classifier(settings.replace(uncertain_below=0.0, uncertain_margin=0.0))
    assert not sure.classify_image(images[0]).uncertain


@pytest.mark.parametrize(
    "raw, shown",
    [
        ("apple_pie", "Apple pie"),
        ("french_fries", "French fries"),
        ("not_food", "Not food"),
        ("pho", "Pho"),
    ],
)
def test_display_label(raw, shown):
    assert display_label(raw) == shown


def test_missing_model_folder_says_what_to_do(settings, tmp_path):
    with pytest.raises(ModelUnavailable, match="FOODCLF_MODEL"):
        load_classifier(settings, str(tmp_path / "no-model-here"))


def test_unreachable_hub_says_how_to_work_offline(settings, monkeypatch):
    monkeypatch.setattr("foodclf.classifier._hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable) as caught:
        load_classifier(settings, "nateraw/food")
    assert "hub" in str(caught.value) and "FOODCLF_MODEL" in str(caught.value)


def test_precision_auto_uses_fp32_without_native_bf16(monkeypatch):
    monkeypatch.setattr("foodclf.classifier.cpu_has_native_bf16", lambda: False)
    assert pick_precision("auto", torch.device("cpu")) == "fp32"
    monkeypatch.setattr("foodclf.classifier.cpu_has_native_bf16", lambda: True)
    assert pick_precision("auto", torch.device("cpu")) == "bf16"
    assert pick_precision("fp32", torch.device("cpu")) == "fp32"


def test_bf16_agrees_with_fp32_on_the_top_label(settings, images):
    fp32 = load_classifier(settings).classify(images, top_k=0)
    bf16 = load_classifier(settings.replace(precision="bf16")).classify(images, top_k=0)
    assert len(fp32) == len(bf16) == len(COLOURS)
    for a, b in zip(fp32, bf16):
        fast = {s["label"]: s["score"] for s in b.class_scores}
        assert math.isclose(a.top_score, fast[a.highest_probability_class], abs_tol=2e-3)
    # The top-1 labels must match wherever fp32's lead is larger than bf16's rounding could undo
    # (the tiny model's scores are close together; a near-tie may legitimately flip).
    clear = [(a, b) for a, b in zip(fp32, bf16) if a.class_scores[0]["score"] - a.class_scores[1]["score"] > 1e-4]
    assert len(clear) >= 4
    assert [a.highest_probability_class for a, _ in clear] == [b.highest_probability_class for _, b in clear]


def test_transformers_note_about_the_torchvision_backend_is_dropped_and_nothing_else():
    # Said on every load of a timm model (Lite0, the starter model, every model trained here): noise.
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("transformers.models.auto.image_processing_auto")
    logger.addHandler(handler)
    try:
        quiet_transformers()
        logger.warning("Requested torchvision backend is not available. Falling back to pil backend.")
        logger.warning("Something a user should read.")
    finally:
        logger.removeHandler(handler)
    assert [record.getMessage() for record in records] == ["Something a user should read."]
