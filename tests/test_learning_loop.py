"""The learning loop: retraining from the current model keeps its labels and what it knew, and learns new ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from db.export_rows import ExportFilters
from factories import fake_result, photo
from foodclf.images import decode_image
from foodclf.promotion import in_evaluation_slice
from foodclf.training.train import train_model
from tiny_models import build_tiny_timm

OLD = {"pizza": (220, 40, 30), "steak": (40, 60, 220)}
NEW = {"sushi": (30, 200, 60), "not_food": (235, 235, 235)}


def shade(colour, n: int, offset: int = 0):
    r, g, b = colour
    step = 3 * n + offset
    return (max(0, r - step), min(255, g + step % 7), max(0, b - step % 5))


def write_folder(root: Path, colours: dict, per_label: int = 8, offset: int = 0) -> Path:
    for label, colour in colours.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for n in range(per_label):
            (root / label / f"{n}.jpg").write_bytes(photo(color=shade(colour, n, offset), size=(40 + n, 36)))
    return root


def store(session, settings, colour, n: int, offset: int, label="pizza"):
    """Store one generated photo as if the current model had classified it."""
    from foodclf.ingest import store_photo

    loaded = decode_image(photo(color=shade(colour, n, offset), size=(44 + n % 5, 38)), name=f"{label}-{n}.jpg")
    return store_photo(session, settings, loaded, fake_result(label, 0.6), source="upload", added_by="tester")


def review(session, image, label: str):
    from db.reviews import submit_review

    action = "not_food" if label == "not_food" else "corrected"
    submit_review(
        session, image.id, action=action, final_label=label, reviewer="bob", expected_review_id=image.current_review_id
    )


def accuracy(settings, model: str, colours: dict, offset: int) -> float:
    """Share of fresh shades (never trained on) of each colour the model labels right."""
    from foodclf.classifier import forget_classifiers, load_classifier

    forget_classifiers()
    classifier = load_classifier(settings, model)
    right = total = 0
    for label, colour in colours.items():
        images = [decode_image(photo(color=shade(colour, n, offset), size=(41 + n, 37))).image for n in range(6)]
        right += sum(r.highest_probability_class == label for r in classifier.classify(images))
        total += len(images)
    return right / total


@pytest.fixture
def current(settings, tmp_path):
    """A pizza-and-steak model trained from a folder on a tiny timm network, registered and in use."""
    base = build_tiny_timm(tmp_path / "tiny-timm", labels=("tench", "goldfish", "shark"))
    old = train_model(
        settings, write_folder(tmp_path / "old-photos", OLD), base=str(base), out=tmp_path / "old-model", activate=True
    )
    assert old.activated and old.labels == ["pizza", "steak"]
    return old


def teach_new_dishes(session, settings, per_label: int = 10, old_unreviewed: int = 0):
    """Moderators label photos of the new dishes only; photos of the old ones stay unreviewed."""
    for label, colour in NEW.items():
        for n in range(per_label):
            review(session, store(session, settings, colour, n, 1), label)
    for label, colour in OLD.items():
        for n in range(old_unreviewed):
            store(session, settings, colour, n, 2, label)
    session.commit()


def test_retrain_from_the_current_timm_model_keeps_its_labels_and_adds_new_ones(settings, session, current, tmp_path):
    """Issue #12: "lost its labels" on a timm model; now the label set is the union, and it reloads."""
    from transformers import AutoModelForImageClassification

    teach_new_dishes(session, settings)
    # One old dish reviewed too: any mix of old and new labels works.
    review(session, store(session, settings, OLD["pizza"], 20, 3), "pizza")
    session.commit()
    report = train_model(settings, ExportFilters(), base="current", out=tmp_path / "next")

    assert report.labels == ["not_food", "pizza", "steak", "sushi"]
    assert report.kept_labels == ["pizza", "steak"] and report.new_labels == ["not_food", "sushi"]
    model = AutoModelForImageClassification.from_pretrained(report.folder, local_files_only=True)
    assert [model.config.id2label[i] for i in range(4)] == report.labels
    record = json.loads((report.folder / "training.json").read_text())
    assert record["kept"]["replayed"] == 16  # the 2 x 8 photos the current model learnt from
    assert record["training_source"]["folders"] == [str((tmp_path / "old-photos").resolve())]
    assert record["training_source"]["database"][0]["only_corrected"] is False
    assert accuracy(settings, str(report.folder), {**OLD, **NEW}, offset=5) == 1.0


@pytest.mark.parametrize("replay", [True, False], ids=["replay", "distillation-only"])
def test_old_dishes_are_not_forgotten_when_no_review_shows_them(settings, session, current, tmp_path, replay):
    """Reviews hold only new dishes. Replay of the old training photos keeps the old ones; without them
    (the folder is gone), the teacher's scores on the unreviewed stored photos still do."""
    import shutil

    before = accuracy(settings, str(current.folder), OLD, offset=5)
    teach_new_dishes(session, settings, old_unreviewed=8)
    if not replay:
        shutil.rmtree(tmp_path / "old-photos")
    report = train_model(settings, ExportFilters(), base="current", out=tmp_path / "next")

    assert report.replayed == (16 if replay else 0)
    assert report.distilled > 0
    assert any("is gone" in line for line in report.left_out) != replay
    after = accuracy(settings, str(report.folder), OLD, offset=5)
    assert before == 1.0 and after >= before - 0.1, (before, after)
    assert accuracy(settings, str(report.folder), NEW, offset=5) >= 0.9


def test_without_keeping_the_old_labels_are_lost(settings, session, current, tmp_path):
    """The control: the same reviews, learnt from the base network alone, know nothing of pizza and steak."""
    teach_new_dishes(session, settings, old_unreviewed=8)
    report = train_model(settings, ExportFilters(), base="current", out=tmp_path / "next", keep_labels=False)
    assert report.labels == ["not_food", "sushi"]
    assert accuracy(settings, str(report.folder), OLD, offset=5) == 0.0


def test_the_frozen_evaluation_slice_never_enters_training(settings, session, current, tmp_path, monkeypatch):
    from foodclf.training import features

    teach_new_dishes(session, settings, per_label=20, old_unreviewed=6)
    frozen = {image_cid for image_cid in _stored_ids(session) if in_evaluation_slice(image_cid)}
    assert frozen, "the generated photos should put some in the slice"
    seen = set()
    original = features.extract_features

    def spy(backbone, photos, *args, **kwargs):
        seen.update(p.content_id for p in photos)
        return original(backbone, photos, *args, **kwargs)

    monkeypatch.setattr("foodclf.training.train.extract_features", spy)
    report = train_model(settings, ExportFilters(), base="current", out=tmp_path / "next")
    assert seen and not seen & frozen  # neither trained on nor distilled on
    reviewed_frozen = frozen & set(report.evaluation)
    assert reviewed_frozen and report.comparison["photos"] == len(reviewed_frozen)


def _stored_ids(session) -> list[str]:
    from sqlalchemy import select

    from db.models import ImageRow

    return list(session.scalars(select(ImageRow.content_id)))


def test_distillation_alone_teaches_old_labels_from_unlabelled_photos():
    """Features of 4 dishes: only the 2 new ones have labels. The teacher's scores on unlabelled photos
    are all the head learns the 2 old ones from; without them it never predicts an old dish."""
    import torch

    from foodclf.training.head import HeadSettings, fit_head
    from foodclf.training.keep import KeepSettings, Teacher, distillation

    torch.manual_seed(0)
    centres = torch.randn(4, 16) * 3

    def sample(c, n):
        return centres[c] + torch.randn(n, 16), torch.full((n,), c)

    old_x = torch.cat([sample(0, 40)[0], sample(1, 40)[0]])
    old_y = torch.cat([torch.zeros(40), torch.ones(40)]).long()
    teacher_fit = fit_head(old_x, old_y, 2, settings=HeadSettings(max_epochs=200))
    teacher = Teacher(["pizza", "steak"], teacher_fit.weight, teacher_fit.bias)
    labels = ["not_food", "pizza", "steak", "sushi"]  # old dishes are columns 1, 2; new are 0 and 3
    (x2, _), (x3, _) = sample(2, 30), sample(3, 30)
    train_x, train_y = torch.cat([x2, x3]), torch.tensor([3] * 30 + [0] * 30)
    unlabelled = torch.cat([sample(c, 25)[0] for c in range(4)])
    test = {c: sample(c, 50)[0] for c in range(4)}
    expected = {0: 1, 1: 2, 2: 3, 3: 0}  # cluster -> column

    def accuracy(fit, cluster):
        return float((fit.logits(test[cluster]).argmax(1) == expected[cluster]).float().mean())

    distill = distillation(
        teacher, unlabelled, labels, train_x, train_y, torch.zeros(100, dtype=torch.bool), KeepSettings()
    )
    kept = fit_head(train_x, train_y, 4, settings=HeadSettings(max_epochs=200), distill=distill)
    plain = fit_head(train_x, train_y, 4, settings=HeadSettings(max_epochs=200))

    assert min(accuracy(kept, c) for c in range(4)) >= 0.9, [accuracy(kept, c) for c in range(4)]
    assert accuracy(plain, 0) == accuracy(plain, 1) == 0.0
    assert distill.old_only[:50].float().mean() > 0.8  # old-dish photos are taken to be old...
    assert distill.old_only[50:].float().mean() < 0.2  # ...new-dish photos are not
