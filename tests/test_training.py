"""Training from labelled photos: separable data is learnt, the folder reloads, the cache and registry work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from factories import photo
from foodclf.errors import FoodclfError
from foodclf.training.backbone import Backbone
from foodclf.training.data import data_fingerprint, read_image_folder, stratified_split
from foodclf.training.train import train_model

# Three labels the tiny model can tell apart by colour; not_food is not one of its 101 labels.
COLOURS = {"pizza": (220, 40, 30), "Sushi": (30, 200, 60), "not_food": (40, 60, 220)}


def write_folder(root: Path, per_label: int = 8, offset: int = 0) -> Path:
    """<label>/<n>.jpg: solid colours, each photo a slightly different shade (so a different content id)."""
    for label, (r, g, b) in COLOURS.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for n in range(per_label):
            shade = 3 * n + offset
            (root / label / f"{n}.jpg").write_bytes(photo(color=(r - shade, g + shade % 7, b), size=(40 + n, 36)))
    return root


@pytest.fixture
def photos_dir(tmp_path) -> Path:
    return write_folder(tmp_path / "photos")


def train(settings, source, tiny_model_dir, out, **options):
    return train_model(settings, source, base=str(tiny_model_dir), out=out, **options)


def test_learns_separable_photos_and_saves_a_loadable_folder(settings, photos_dir, tiny_model_dir, tmp_path):
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from foodclf.classifier import forget_classifiers, load_classifier

    calls = []
    report = train(
        settings,
        photos_dir,
        tiny_model_dir,
        tmp_path / "model",
        progress_callback=lambda fraction, message: calls.append((fraction, message)),
    )

    assert report.labels == ["not_food", "pizza", "sushi"]  # "Sushi/" spelled as the base model does
    assert report.new_labels == ["not_food"]
    assert report.validation["accuracy"] == 1.0
    assert report.counts == {
        "train": {"not_food": 6, "pizza": 6, "sushi": 6},
        "validation": {"not_food": 2, "pizza": 2, "sushi": 2},
    }
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0

    assert sorted(p.name for p in report.folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "training.json",
    ]
    assert report.folder.stat().st_mode & 0o777 == 0o755  # readable by a dashboard running as another user
    model = AutoModelForImageClassification.from_pretrained(report.folder, local_files_only=True)
    AutoImageProcessor.from_pretrained(report.folder, local_files_only=True)
    assert model.config.id2label == {0: "not_food", 1: "pizza", 2: "sushi"}
    forget_classifiers()
    classifier = load_classifier(settings.replace(model=str(report.folder)))
    fresh = write_folder(tmp_path / "fresh", per_label=3, offset=1)  # shades not seen in training
    for label, folder in (("not_food", "not_food"), ("pizza", "pizza"), ("sushi", "Sushi")):
        for item in classifier.classify_many(sorted((fresh / folder).iterdir()), top_k=0):
            assert item.result.highest_probability_class == label
            assert len(item.result.class_scores) == 3


def test_model_card_and_training_record(settings, photos_dir, tiny_model_dir, tmp_path):
    report = train(settings, photos_dir, tiny_model_dir, tmp_path / "model", register=False)
    record = json.loads((report.folder / "training.json").read_text())
    photos = read_image_folder(photos_dir).photos
    assert record["base_model"] == str(tiny_model_dir)
    assert record["labels"] == report.labels
    assert record["counts"]["train"]["pizza"] == 6
    assert record["data"]["fingerprint"] == data_fingerprint(photos) == report.data_fingerprint
    assert record["data"]["photos"] == record["data"]["trained_on"] == 24  # refit on all photos
    assert {"learning_rate", "l2", "best_epochs", "seed"} <= set(record["hyperparameters"])
    assert record["validation"]["accuracy"] == 1.0 and record["validation"]["photos"] == 6
    card = (report.folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers\n")
    assert "not_food" in card and "| 100.0% |" in card


def test_second_run_reads_features_from_the_cache(settings, photos_dir, tiny_model_dir, tmp_path, monkeypatch):
    first = train(settings, photos_dir, tiny_model_dir, tmp_path / "one", register=False)
    assert (first.computed, first.cache_hits) == (24, 0)

    forward = []
    original = Backbone.features
    monkeypatch.setattr(
        Backbone, "features", lambda self, pixels: forward.append(len(pixels)) or original(self, pixels)
    )
    (photos_dir / "pizza" / "extra.jpg").write_bytes(photo(color=(200, 50, 50), size=(60, 50)))
    second = train(settings, photos_dir, tiny_model_dir, tmp_path / "two", register=False)

    assert (second.computed, second.cache_hits) == (1, 24)  # only the new photo ran through the network
    assert sum(forward) == 1
    assert second.validation["accuracy"] == 1.0


def test_the_run_is_recorded_in_the_registry(settings, photos_dir, tiny_model_dir, tmp_path):
    from db.engine import open_database, session_scope
    from db.trained_models import active_model, list_models, set_active_model
    from foodclf.model_registry import active_model_name as current_model

    settings = settings.replace(reviewer="alice")
    report = train(settings, photos_dir, tiny_model_dir, tmp_path / "model")
    with session_scope(open_database(settings)) as session:
        (row,) = list_models(session)
        assert row.id == report.registry_id
        assert (row.name, row.path, row.base_model) == ("model", str(report.folder.resolve()), str(tiny_model_dir))
        assert row.labels == ["not_food", "pizza", "sushi"]
        assert row.metrics["validation"]["accuracy"] == 1.0 and "per_class" not in row.metrics["validation"]
        assert (row.train_size, row.created_by, row.active) == (24, "alice", False)
        assert active_model(session) is None
        assert current_model(settings) == settings.model
        set_active_model(session, row.id, actor="test")
    assert current_model(settings) == str(report.folder.resolve())

    # --base current now starts from the trained model, which already knows not_food.
    again = train_model(settings, photos_dir, base="current", out=tmp_path / "again", activate=True)
    assert again.new_labels == [] and again.base == str(report.folder.resolve())
    with session_scope(open_database(settings)) as session:
        assert active_model(session).name == "again"


def test_full_mode_fine_tunes_and_saves_the_same_kind_of_folder(settings, photos_dir, tiny_model_dir, tmp_path):
    from transformers import AutoModelForImageClassification

    report = train(settings, photos_dir, tiny_model_dir, tmp_path / "full", mode="full", epochs=2, register=False)
    assert report.mode == "full" and report.hyperparameters["max_epochs"] == 2
    assert report.validation["photos"] == 6
    model = AutoModelForImageClassification.from_pretrained(report.folder, local_files_only=True)
    assert model.config.num_labels == 3
    # Fine-tuning changed the network itself, not only the new head the linear probe fitted first.
    base = AutoModelForImageClassification.from_pretrained(tiny_model_dir, local_files_only=True).state_dict()
    tuned = model.state_dict()
    body = [name for name in base if not name.startswith("classifier.")]
    assert body and all(name in tuned for name in body)
    changed = [name for name in body if not torch.equal(base[name], tuned[name])]
    assert len(changed) > len(body) // 2, f"only {len(changed)} of {len(body)} body tensors changed"


def test_unreadable_duplicate_and_conflicting_photos_are_left_out_by_name(
    settings, photos_dir, tiny_model_dir, tmp_path
):
    (photos_dir / "pizza" / "notes.jpg").write_bytes(b"this is text, not a photo")
    (photos_dir / "pizza" / "copy.jpg").write_bytes((photos_dir / "pizza" / "0.jpg").read_bytes())
    (photos_dir / "sushi_conflict").mkdir()
    (photos_dir / "not_food" / "both.jpg").write_bytes(photo(color=(1, 2, 3)))
    (photos_dir / "pizza" / "both.jpg").write_bytes(photo(color=(1, 2, 3)))

    report = train(settings, photos_dir, tiny_model_dir, tmp_path / "model", register=False)

    left_out = "\n".join(report.left_out)
    assert "pizza/notes.jpg: This file is not an image" in left_out
    assert "a copy of pizza/0.jpg" in left_out
    assert "labelled not_food, pizza" in left_out
    assert sum(report.counts["train"].values()) + sum(report.counts["validation"].values()) == 24


def test_validation_folder_replaces_the_split(settings, photos_dir, tiny_model_dir, tmp_path):
    val = write_folder(tmp_path / "val", per_label=2, offset=2)
    report = train(settings, photos_dir, tiny_model_dir, tmp_path / "model", val=val, register=False)
    assert report.counts["train"] == {"not_food": 8, "pizza": 8, "sushi": 8}
    assert report.validation["photos"] == 6 and report.validation["accuracy"] == 1.0
    assert report.hyperparameters["refit"] is False


@pytest.mark.parametrize(
    "problem, message",
    [
        ("one label", "at least 2 labels"),
        ("out exists", "exists already"),
        ("empty folder", "no subfolders with photos"),
        ("unknown val label", "no training photos: hot_dog"),
    ],
)
def test_refuses_data_it_cannot_learn_from(settings, photos_dir, tiny_model_dir, tmp_path, problem, message):
    out, val, source = tmp_path / "model", None, photos_dir
    if problem == "one label":
        source = tmp_path / "one"
        (source / "pizza").mkdir(parents=True)
        (source / "pizza" / "a.jpg").write_bytes(photo())
    elif problem == "out exists":
        out.mkdir()
    elif problem == "empty folder":
        source = tmp_path / "empty"
        source.mkdir()
    else:
        val = tmp_path / "val"
        (val / "hot_dog").mkdir(parents=True)
        (val / "hot_dog" / "a.jpg").write_bytes(photo(color=(9, 9, 9)))
    with pytest.raises(FoodclfError, match=message):
        train(settings, source, tiny_model_dir, out, val=val)
    assert not any(p.name.startswith(".model") for p in tmp_path.iterdir())  # no half-written folder left


def test_stratified_split_holds_out_a_share_of_each_label(photos_dir):
    photos = read_image_folder(photos_dir).photos
    train_set, val = stratified_split(photos, 0.25, seed=1)
    assert sorted(p.label for p in val) == ["not_food"] * 2 + ["pizza"] * 2 + ["sushi"] * 2
    assert not {p.content_id for p in train_set} & {p.content_id for p in val}
    again = stratified_split(list(reversed(photos)), 0.25, seed=1)  # file order does not matter
    assert [p.content_id for p in again[1]] == [p.content_id for p in val]
    single = [photos[0]]
    assert stratified_split(single, 0.5) == (single, [])  # a lone photo trains


def test_head_weights_fold_the_standardisation():
    from foodclf.training.head import HeadSettings, fit_head

    torch.manual_seed(0)
    x = torch.randn(60, 5) * torch.tensor([1.0, 10.0, 0.1, 3.0, 1.0]) + 4.0
    y = (x[:, 0] + x[:, 1] / 10 > 4.5).long()
    fit = fit_head(x, y, 2, settings=HeadSettings(max_epochs=200))
    assert fit.epochs == 200
    assert (fit.logits(x).argmax(1) == y).float().mean() > 0.9
