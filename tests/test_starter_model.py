"""The starter model: built offline from the installed Lite0 weights, food kept, everything else "not food"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from factories import gradient_landscape_image, landscape_path, portrait_path, screenshot_image
from foodclf.classifier import forget_classifiers, load_classifier
from foodclf.cli import main
from foodclf.errors import ModelUnavailable
from foodclf.images import load_image
from foodclf.labels import NOT_FOOD, normalise_label
from foodclf.settings import DEFAULT_MODEL, Settings, load_settings, setting_fields
from foodclf.starter_model import STARTER, ensure_starter_model, starter_model_dir
from shared_data import FOOD_PHOTOS, HOSTILE_IMAGES

OFFLINE_NOTE = "offline: starter model, {n} everyday foods + not food; set FOODCLF_MODEL for Food-101's 101 dishes"


@pytest.fixture(scope="module")
def starter(starter_cache_dir):
    """The starter model through the normal classifier, as FOODCLF_MODEL=starter gives it (loaded once here)."""
    forget_classifiers()
    yield load_classifier(
        Settings(
            model=STARTER,
            cache_dir=str(starter_cache_dir),
            device="cpu",
            precision="fp32",
            engine="torch",
            workers=1,
            batch_size=8,
        )
    )
    forget_classifiers()


def default_model_is_cached() -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(DEFAULT_MODEL, "config.json"), str)


def test_built_offline_from_the_installed_package(settings, starter_cache_dir):
    folder = starter_model_dir(settings.replace(cache_dir=str(starter_cache_dir)))
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "food_gate.json",
        "model.safetensors",
    ]
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "tf_efficientnet_lite0" and len(config["label_names"]) == 1000
    gate = json.loads((folder / "food_gate.json").read_text())
    assert gate["food"]["963"] == "pizza" and gate["food"]["923"] == "other_dish"  # ImageNet's pizza, plate
    assert gate["head"] is None  # the model's own outputs are ImageNet's
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert ensure_starter_model(settings.replace(cache_dir=str(starter_cache_dir))) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp  # built once, then reused


def test_loads_like_any_model_with_food_labels_and_not_food(starter, make_photo):
    assert starter.model_id == STARTER
    assert starter.labels[-1] == NOT_FOOD and {"pizza", "hamburger", "ice_cream", "espresso"} <= set(starter.labels)
    assert all(normalise_label(label) == label for label in starter.labels)
    assert len(set(starter.labels)) == len(starter.labels) == 47
    facts = starter.describe()
    assert facts["note"] == "starter model: 46 everyday foods + not food" and facts["not_food_gate"]
    [result] = starter.classify([load_image(make_photo()).image], top_k=0)
    assert len(result.class_scores) == 47
    assert sum(s["score"] for s in result.class_scores) == pytest.approx(1.0, abs=1e-4)


def _shared(name):
    path = HOSTILE_IMAGES / name
    return pytest.param(path, marks=pytest.mark.skipif(not path.is_file(), reason="shared images are absent"), id=name)


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(portrait_path, id="portrait"),
        pytest.param(landscape_path, id="landscape"),
        pytest.param(screenshot_image, id="screenshot"),
        pytest.param(gradient_landscape_image, id="gradient-landscape"),
        _shared("pillow__hopper.webp"),  # Grace Hopper again, smaller, as Pillow's tests have her
        _shared("pillow__icc_profile_big.jpg"),  # a seashore
    ],
)
def test_a_portrait_a_screenshot_or_a_landscape_is_not_food(starter, source):
    image = source() if callable(source) else source
    image = image if hasattr(image, "convert") else load_image(image).image
    result = starter.classify_image(image, top_k=3)
    assert result.highest_probability_class == NOT_FOOD
    assert result.top_score > 0.8 and not result.uncertain


@pytest.mark.skipif(not FOOD_PHOTOS.is_dir(), reason="the shared food photos are not on this machine")
def test_real_food_photos_come_out_as_food_and_pizza_as_pizza(starter):
    # Measured on all 300 photos: 290 food (96.7 %); pizza 90 of 103. The 75 test photos: 74 food, pizza 24 of 25.
    tops = {}
    for item in starter.classify_many(sorted((FOOD_PHOTOS / "test").rglob("*.jpg")), top_k=1):
        tops.setdefault(item.source.parent.name, []).append(item.result.highest_probability_class)
    assert sum(len(v) for v in tops.values()) == 75
    assert Counter(tops["pizza"])["pizza"] >= 22
    not_food = sum(Counter(v)[NOT_FOOD] for v in tops.values())
    assert not_food <= 4


# --- the offline default ---------------------------------------------------------------------


@pytest.fixture
def no_hub(monkeypatch):
    monkeypatch.setattr("foodclf.classifier._hub_reachable", lambda timeout=3.0: False)
    if default_model_is_cached():
        pytest.skip(f"{DEFAULT_MODEL} is in this machine's hub cache, so it loads offline")
    forget_classifiers()
    yield
    forget_classifiers()


def test_unset_model_offline_gives_the_starter_model_and_says_so(settings, starter_cache_dir, no_hub, caplog):
    unset = settings.replace(model=DEFAULT_MODEL, cache_dir=str(starter_cache_dir))
    assert not unset.model_chosen
    classifier = load_classifier(unset)
    assert classifier.model_id == STARTER
    assert classifier.describe()["note"] == OFFLINE_NOTE.format(n=46)
    assert OFFLINE_NOTE.format(n=46) in caplog.text  # in the logs of the dashboard and the API too


@pytest.mark.parametrize("model", [DEFAULT_MODEL, "someone/no-such-model"])
def test_a_chosen_model_that_cannot_load_still_fails_clearly(settings, starter_cache_dir, no_hub, model):
    chosen = settings.replace(model=model, model_chosen=True, cache_dir=str(starter_cache_dir))
    with pytest.raises(ModelUnavailable, match=f"Could not load the model '{model}' from the Hugging Face hub"):
        load_classifier(chosen)


def test_model_chosen_means_the_variable_was_set():
    assert not load_settings({}).model_chosen
    assert load_settings({"FOODCLF_MODEL": DEFAULT_MODEL}).model_chosen
    assert "model_chosen" not in {f.name for f in setting_fields()}  # not a variable of its own


def _cli(starter_cache_dir, tmp_path, *args, **env):
    environ = {name: value for name, value in os.environ.items() if not name.startswith("FOODCLF_")}
    environ.update(
        HF_HUB_OFFLINE="1",
        HF_HOME=str(tmp_path / "empty-hub-cache"),  # no hub, nothing cached
        FOODCLF_CACHE_DIR=str(starter_cache_dir),
        FOODCLF_DEVICE="cpu",
        FOODCLF_PRECISION="fp32",
        FOODCLF_ENGINE="torch",
        **env,
    )
    return subprocess.run(
        [sys.executable, "-m", "foodclf", "classify", *args], capture_output=True, text=True, timeout=180, env=environ
    )


def test_cli_without_model_or_hub_answers_with_the_starter_model_and_says_so(starter_cache_dir, tmp_path):
    done = _cli(starter_cache_dir, tmp_path, str(portrait_path()))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{portrait_path()}: Not food ")
    assert OFFLINE_NOTE.format(n=46) in done.stderr
    assert "torchvision backend" not in done.stderr  # transformers' note about timm processors is not shown


def test_cli_with_an_unreachable_chosen_model_keeps_the_clear_error(starter_cache_dir, no_hub, monkeypatch, capsys):
    monkeypatch.setenv("FOODCLF_MODEL", DEFAULT_MODEL)
    monkeypatch.setenv("FOODCLF_CACHE_DIR", str(starter_cache_dir))
    assert main(["classify", str(portrait_path())]) == 1
    captured = capsys.readouterr()
    assert f"Could not load the model '{DEFAULT_MODEL}'" in captured.err and "Traceback" not in captured.err
    assert captured.out == ""
