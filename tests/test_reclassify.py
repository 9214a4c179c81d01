"""reclassify: every stored photo gets the model in use's prediction; a killed run resumes, nothing doubles."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from db.engine import open_database, session_scope
from db.models import ImageRow, PredictionRow
from factories import fake_result, photo
from foodclf.cli import main
from foodclf.images import decode_image
from foodclf.reclassify import reclassify


@pytest.fixture
def stored(session, settings):
    """Twelve photos stored with an old model's prediction (a fake fingerprint)."""
    from foodclf.ingest import store_photo

    for n in range(12):
        loaded = decode_image(photo(color=(20 * n, 100, 255 - 20 * n)), name=f"{n}.jpg")
        store_photo(session, settings, loaded, fake_result("pizza", 0.6), source="folder", added_by="t")
    session.commit()


def predictions_by(settings, fingerprint) -> list[int]:
    with session_scope(open_database(settings)) as session:
        return list(session.scalars(select(PredictionRow.image_id).where(PredictionRow.fingerprint == fingerprint)))


def test_a_killed_run_resumes_without_duplicates(settings, stored):
    from foodclf.classifier import load_classifier

    classifier = load_classifier(settings)
    walked = []

    def kill_after_a_page(n):
        walked.append(n)
        if sum(walked) == 7:
            raise KeyboardInterrupt  # as Ctrl-C in the middle of the second page

    with pytest.raises(KeyboardInterrupt):
        reclassify(settings, classifier=classifier, page=5, on_photo=kill_after_a_page)
    assert sorted(predictions_by(settings, classifier.fingerprint)) == [1, 2, 3, 4, 5]  # the first page only

    report = reclassify(settings, classifier=classifier, page=5)
    assert (report.photos, report.already, report.classified, report.failed) == (12, 5, 7, [])
    assert sorted(predictions_by(settings, classifier.fingerprint)) == list(range(1, 13))
    again = reclassify(settings, classifier=classifier, page=5)
    assert (again.classified, again.already) == (0, 12)
    with session_scope(open_database(settings)) as session:
        assert session.scalar(select(func.count()).select_from(PredictionRow)) == 24  # old + new, once each
        images = session.scalars(select(ImageRow)).all()
        # Each photo's latest prediction is now the model in use's: the queue and stats follow it.
        assert {session.get(PredictionRow, i.prediction_id).fingerprint for i in images} == {classifier.fingerprint}


def test_a_missing_file_is_reported_and_the_rest_classified(settings, stored, env, capsys):
    from pathlib import Path

    next(Path(settings.image_dir).glob("*.jpg")).unlink()
    assert main(["reclassify", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["classified"] == 11 and len(report["failed"]) == 1


@pytest.fixture
def env(monkeypatch, settings):
    from foodclf.settings import setting_fields

    for f in setting_fields():
        value = getattr(settings, f.name)
        monkeypatch.setenv(f.metadata["env"], ",".join(value) if isinstance(value, tuple) else str(value))
