"""The frozen evaluation slice and the promotion gate: a worse model is refused unless forced with a reason."""

from __future__ import annotations

import hashlib

import pytest

from db.export_rows import ExportFilters
from factories import fake_result, photo
from foodclf.cli import main
from foodclf.images import decode_image
from foodclf.promotion import (
    GateSettings,
    PromotionRefused,
    activate_model,
    figures,
    in_evaluation_slice,
    judge,
)
from foodclf.training.train import train_model
from tiny_models import build_tiny_vit

COLOURS = {"pizza": (220, 40, 30), "sushi": (30, 200, 60), "not_food": (40, 60, 220)}


def test_the_slice_is_a_stable_share_of_each_label():
    ids = [hashlib.sha256(f"{label}-{n}".encode()).hexdigest() for label in ("a", "b") for n in range(4000)]
    chosen = [cid for cid in ids if in_evaluation_slice(cid)]
    assert 0.13 < len(chosen) / len(ids) < 0.17
    for label_ids in (ids[:4000], ids[4000:]):  # the hash ignores the label, so each label gets its share
        assert 0.12 < sum(map(in_evaluation_slice, label_ids)) / 4000 < 0.18
    assert [in_evaluation_slice(cid) for cid in ids[:50]] == [in_evaluation_slice(cid) for cid in ids[:50]]


def _figures(name, truths, right):
    return figures(name, name, truths, {cid: (truths[cid] if cid in right else "other") for cid in truths})


def test_gate_verdicts():
    truths = {f"p{n}": "pizza" for n in range(20)} | {f"s{n}": "sushi" for n in range(20)}
    champion = _figures("old", truths, set(list(truths)[:36]))  # 36 of 40 right
    better = _figures("new", truths, set(truths))
    assert judge(better, champion).verdict == "better"
    assert judge(champion, champion).verdict == "no_worse"

    # Better overall, but sushi's recall falls from 100 % to 80 % on 20 photos: much worse on a label.
    lopsided = _figures("lop", truths, {f"p{n}" for n in range(20)} | {f"s{n}" for n in range(16)})
    slightly_worse_champion = _figures("old", truths, {f"p{n}" for n in range(14)} | {f"s{n}" for n in range(20)})
    verdict = judge(lopsided, slightly_worse_champion)
    assert verdict.verdict == "worse" and "Sushi: recall falls from 100% to 80%" in verdict.reasons[0]
    assert (verdict.fixed, verdict.broken) == (6, 4)
    # The same drop on a label with too few photos is not enough to refuse.
    assert judge(lopsided, slightly_worse_champion, GateSettings(label_min_photos=21)).verdict == "better"

    worse = _figures("bad", truths, set(list(truths)[:30]))
    result = judge(worse, champion)
    assert result.refused and "accuracy falls from 90.0% to 75.0%" in result.reasons[0]
    rows = {row["figure"]: row for row in result.table()}
    assert rows["accuracy"]["in use"] == 0.9 and rows["accuracy"]["challenger"] == 0.75
    assert rows["recall: Sushi"]["photos"] == 20
    assert "accuracy falls" in result.text()


@pytest.fixture
def decided(session, settings):
    """Twelve reviewed photos of each colour; some fall in the frozen slice."""
    from db.reviews import submit_review
    from foodclf.ingest import store_photo

    for label, (r, g, b) in COLOURS.items():
        for n in range(12):
            loaded = decode_image(photo(color=(r - 3 * n, g + n, b), size=(40 + n, 36)), name=f"{label}-{n}.jpg")
            image = store_photo(
                session, settings, loaded, fake_result("pizza", 0.6), source="upload", added_by="tester"
            )
            action = {"pizza": "confirmed", "not_food": "not_food"}.get(label, "corrected")
            submit_review(
                session,
                image.id,
                action=action,
                final_label=label if action == "corrected" else None,
                reviewer="bob",
                expected_review_id=None,
            )
    session.commit()


@pytest.fixture
def champion(settings, decided, tmp_path):
    report = train_model(settings, ExportFilters(), base=settings.model, out=tmp_path / "good", activate=True)
    assert report.activated and report.comparison["verdict"] == "better"  # than FOODCLF_MODEL, an untrained model
    return report


def test_a_worse_model_is_refused_with_the_table_and_a_forced_switch_is_recorded(settings, champion, tmp_path):
    from db.engine import open_database, session_scope
    from db.trained_models import active_model, find_model, register_model

    worse = build_tiny_vit(tmp_path / "worse", labels=["pizza", "sushi", "not_food"], seed=7)  # untrained
    with session_scope(open_database(settings)) as session:
        challenger = register_model(
            session,
            name="worse",
            path=str(worse),
            base_model="tiny",
            labels=[],
            metrics={},
            train_size=0,
            created_by="eve",
        ).id

    with pytest.raises(PromotionRefused) as refused:
        activate_model(settings, challenger, by="eve")
    comparison = refused.value.comparison
    assert comparison.refused and comparison.champion.accuracy == 1.0 and comparison.challenger.accuracy < 0.9
    assert "frozen evaluation photos" in str(refused.value) and "accuracy" in str(refused.value)
    with session_scope(open_database(settings)) as session:
        assert active_model(session).name == "good"  # nothing switched

    activate_model(settings, challenger, by="eve", force_reason="demo for the team; switching back after")
    with session_scope(open_database(settings)) as session:
        row = find_model(session, challenger)
        assert row.active
        [entry] = row.promotions
        assert entry["forced"] is True and entry["by"] == "eve" and entry["reason"].startswith("demo for the team")
        assert entry["verdict"] == "worse" and entry["comparison"]["table"][0]["figure"] == "accuracy"


def test_train_with_activate_is_gated_too(settings, champion, tmp_path):
    # Trained on the not_food photos and one other label only: it cannot know pizza or sushi both.
    report = train_model(
        settings,
        ExportFilters(labels=("not_food", "sushi")),
        base=settings.model,
        out=tmp_path / "narrow",
        activate=True,
    )
    assert not report.activated and "worse" in report.refused
    assert report.comparison["verdict"] == "worse"
    assert any("Pizza: recall falls" in reason or "accuracy falls" in reason for reason in report.comparison["reasons"])


@pytest.fixture
def env(monkeypatch, settings):
    from foodclf.settings import setting_fields

    for f in setting_fields():
        value = getattr(settings, f.name)
        monkeypatch.setenv(f.metadata["env"], ",".join(value) if isinstance(value, tuple) else str(value))
    monkeypatch.setenv("FOODCLF_REVIEWER", "cli-admin")


def test_cli_activate_refuses_then_forces(env, settings, champion, tmp_path, capsys):
    from db.engine import open_database, session_scope
    from db.trained_models import register_model

    worse = build_tiny_vit(tmp_path / "worse", labels=["pizza", "sushi", "not_food"], seed=7)
    with session_scope(open_database(settings)) as session:
        register_model(
            session,
            name="worse",
            path=str(worse),
            base_model="tiny",
            labels=[],
            metrics={},
            train_size=0,
            created_by="eve",
        )
    assert main(["activate", "worse", "--compare"]) == 0
    assert "worse" in capsys.readouterr().out
    assert main(["activate", "worse"]) == 1
    assert "not switched on" in capsys.readouterr().err
    assert main(["activate", "worse", "--force", "  "]) == 2
    assert main(["activate", "worse", "--force", "a reason"]) == 0
    assert "Switched to worse" in capsys.readouterr().out
