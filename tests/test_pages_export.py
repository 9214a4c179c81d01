"""The Export page: filters, the preview and counts, and each format's file, fetched through its one-time link."""

from __future__ import annotations

import csv
import io
import json
import time
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from db.engine import session_scope
from db.export_rows import EXPORT_COLUMNS, ExportFilters
from db.models import AuditEvent, ImageRow
from foodclf.downloads import Downloads
from foodclf.export import build_export
from foodclf.store import ImageStore
from pages_support import GROUPS, clear_streamlit_caches, run, seed_photo, seed_review, sign_in, texts
from ui import downloads

PAGE = "export.py"


class Clock:
    """A clock the test moves (links expire after the registry's TTL)."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def links(monkeypatch):
    """This test's own link registry on a clock it moves, and a client of the download route.

    The route is the one dashboard.py mounts; `open_sessions` says which dashboard sessions are still
    connected (the real server asks Streamlit's runtime; AppTest has none).
    """
    clock = Clock()
    registry = Downloads(clock=clock)
    monkeypatch.setattr(downloads, "REGISTRY", registry)
    open_sessions = {"all": True}
    app = Starlette(routes=downloads.routes(session_open=lambda session: open_sessions["all"]))
    with TestClient(app) as client:
        yield client, registry, clock, open_sessions


def _waiting_files(dashboard) -> list[Path]:
    folder = downloads.folder()
    return sorted(folder.iterdir()) if folder.exists() else []


def _seed(dashboard) -> dict[str, int]:
    ids = {
        name: seed_photo(dashboard, label, score, color)
        for name, label, score, color in [
            ("a", "pizza", 0.9, (200, 40, 40)),
            ("b", "pizza", 0.5, (180, 60, 40)),
            ("c", "sushi", 0.4, (40, 200, 40)),
            ("d", "steak", 0.7, (40, 40, 200)),
        ]
    }
    seed_review(dashboard, ids["a"], "confirmed", "Alice")
    seed_review(dashboard, ids["b"], "corrected", "Bob", label="Flat bread")
    seed_review(dashboard, ids["c"], "not_food", "Bob")
    return ids  # d is unreviewed: never exported


def _build(at) -> downloads.Link:
    at.button(key="e_build").click()
    run(at)
    (_, link) = at.session_state["export_ready"]
    [button] = at.get("link_button")
    assert button.proto.label.startswith(f"Download {link.file_name}") and button.proto.url == link.url
    assert not at.get("download_button")  # nothing is sent through the websocket or held in the session
    return link


def _fetch(client, link: downloads.Link) -> bytes:
    response = client.get(link.url)
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"] == f'attachment; filename="{link.file_name}"'
    assert int(response.headers["content-length"]) == link.size == len(response.content)
    return response.content


def _direct(dashboard, tmp_path, fmt, filters: ExportFilters | None = None) -> bytes:
    """The same export straight from foodclf.export.build_export, the function the page calls."""
    built = build_export(
        dashboard.engine,
        dashboard.settings.image_dir,
        fmt,
        filters or ExportFilters(),
        actor="test",
        folder=tmp_path / "direct",
    )
    data = built.path.read_bytes()
    built.remove()
    return data


def test_preview_counts_and_csv(dashboard, links, tmp_path):
    client, registry, _, _ = links
    _seed(dashboard)
    at = run(dashboard.app(PAGE))
    assert {m.label: m.value for m in at.metric}["Rows"] == "3"
    preview = at.dataframe[0].value
    assert list(preview["final_label"]) == ["pizza", "flat_bread", "not_food"]
    link = _build(at)
    assert link.file_name.endswith(".csv") and link.url.startswith("/foodclf/download/")
    assert len(_waiting_files(dashboard)) == 1  # on disk, in FOODCLF_CACHE_DIR/exports, until fetched
    data = _fetch(client, link)
    assert data == _direct(dashboard, tmp_path, "csv")  # the exact bytes of the export function
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    assert [(r["final_label"], r["action"], r["reviewer"]) for r in rows] == [
        ("pizza", "confirmed", "Alice"),
        ("flat_bread", "corrected", "Bob"),
        ("not_food", "not_food", "Bob"),
    ]
    assert _waiting_files(dashboard) == [] and registry.waiting() == 0  # sent once, then removed
    again = client.get(link.url)
    assert again.status_code == 404 and "expired or was used already" in again.text
    with session_scope(dashboard.engine) as session:  # the page's export is on record, as before
        [event] = session.scalars(select(AuditEvent).where(AuditEvent.action == "export", AuditEvent.actor != "test"))
        assert (event.actor, event.detail["rows"], event.detail["file"]) == ("local-admin", 3, link.file_name)


def test_only_corrections_as_jsonl(dashboard, links, tmp_path):
    client, _, _, _ = links
    _seed(dashboard)
    at = run(dashboard.app(PAGE))
    at.radio(key="e_format").set_value("jsonl")
    at.toggle(key="e_corrected").set_value(True)
    run(at)
    assert {m.label: m.value for m in at.metric}["Rows"] == "2"
    data = _fetch(client, _build(at))
    assert data == _direct(dashboard, tmp_path, "jsonl", ExportFilters(only_corrected=True))
    records = [json.loads(line) for line in data.decode("utf-8").splitlines()]
    assert [r["final_label"] for r in records] == ["flat_bread", "not_food"]
    assert records[0]["predicted_label"] == "pizza" and records[0]["predicted_score"] == 0.5


def test_image_folder_zip_for_chosen_labels(dashboard, links, tmp_path):
    client, _, _, _ = links
    ids = _seed(dashboard)
    at = run(dashboard.app(PAGE))
    at.radio(key="e_format").set_value("imagefolder")
    at.multiselect(key="e_labels").set_value(["pizza", "flat_bread"])
    run(at)
    link = _build(at)
    assert link.rows == 2 and not link.missing
    response = client.get(link.url)
    assert response.headers["content-type"] == "application/zip"
    direct = _direct(dashboard, tmp_path, "imagefolder", ExportFilters(labels=("pizza", "flat_bread")))
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive, zipfile.ZipFile(io.BytesIO(direct)) as same:
        names = sorted(archive.namelist())
        metadata = list(csv.DictReader(io.StringIO(archive.read("metadata.csv").decode("utf-8"))))
        exported = {r["label"]: archive.read(r["file_name"]) for r in metadata}
        # The zip's members are the export function's, byte for byte (the zip itself differs by its timestamps).
        assert {n: archive.read(n) for n in names} == {n: same.read(n) for n in sorted(same.namelist())}
    assert len(names) == 3 and names[-1] == "pizza/" + names[-1].split("/")[1]
    assert sorted(r["label"] for r in metadata) == ["flat_bread", "pizza"]
    assert all(r["file_name"] in names for r in metadata)
    # Every exported photo is byte for byte the one stored for its decision.
    store = ImageStore(dashboard.settings.image_dir)
    with session_scope(dashboard.engine) as session:
        stored = {
            label: store.read(session.get(ImageRow, ids[key]).stored_path)
            for key, label in (("a", "pizza"), ("b", "flat_bread"))
        }
    assert exported == stored and stored["pizza"] != stored["flat_bread"]


def test_changing_the_choice_drops_the_built_file(dashboard, links):
    client, registry, _, _ = links
    _seed(dashboard)
    at = run(dashboard.app(PAGE))
    link = _build(at)
    at.toggle(key="e_corrected").set_value(True)
    run(at)
    assert not at.get("link_button")
    assert _waiting_files(dashboard) == [] and registry.waiting() == 0  # withdrawn with its file
    assert client.get(link.url).status_code == 404


def test_a_new_export_replaces_the_sessions_earlier_file(dashboard, links):
    client, registry, _, _ = links
    _seed(dashboard)
    at = run(dashboard.app(PAGE))
    first = _build(at)
    second = _build(at)
    assert first.token != second.token and registry.waiting() == 1 and len(_waiting_files(dashboard)) == 1
    assert client.get(first.url).status_code == 404
    assert client.get(second.url).status_code == 200


def test_a_wrong_or_expired_link_is_refused_and_its_file_removed(dashboard, links):
    client, registry, clock, _ = links
    _seed(dashboard)
    at = run(dashboard.app(PAGE))
    link = _build(at)
    for wrong in ("x", link.token[:-1], link.token.upper(), link.token + "a"):
        response = client.get(f"/foodclf/download/{wrong}")
        assert response.status_code == 404 and "prepare the file again" in response.text
    clock.now += registry.ttl_s + 1  # the link was not used in time
    response = client.get(link.url)
    assert response.status_code == 404 and "expired or was used already" in response.text
    assert _waiting_files(dashboard) == []


def test_expired_files_are_swept_even_without_a_click(dashboard, links):
    _, registry, clock, _ = links
    _seed(dashboard)
    _build(run(dashboard.app(PAGE)))
    clock.now += registry.ttl_s + 1
    assert registry.sweep() == 1  # what the sweeper thread does every minute
    assert _waiting_files(dashboard) == [] and registry.waiting() == 0


def test_a_link_works_only_while_its_page_is_open(dashboard, links):
    client, _, _, open_sessions = links
    _seed(dashboard)
    link = _build(run(dashboard.app(PAGE)))
    open_sessions["all"] = False  # the tab was closed (or signed out) before the click
    response = client.get(link.url)
    assert response.status_code == 403 and "no longer open" in response.text
    assert _waiting_files(dashboard) == []
    assert client.get(link.url).status_code == 404  # spent


def test_the_role_is_checked_again_when_the_link_is_used(dashboard, links, monkeypatch):
    """An admin prepares a file, then is no longer an admin when the link is used: refused, and on record."""
    client, _, _, _ = links
    _seed(dashboard)
    at = run(sign_in(dashboard.app(PAGE), "lee@acme.com", "admin"))
    demoted = _build(at)
    # lee's group is now mapped to moderators, no longer to admins
    monkeypatch.setenv("FOODCLF_ADMIN_GROUPS", "someone-else")
    monkeypatch.setenv("FOODCLF_MODERATOR_GROUPS", GROUPS["admin"])
    response = client.get(demoted.url)
    assert response.status_code == 403 and response.text.startswith("Your role (moderator) does not include exporting")
    assert _waiting_files(dashboard) == []
    with session_scope(dashboard.engine) as session:
        [denied] = session.scalars(select(AuditEvent).where(AuditEvent.action == "role_denied"))
        assert (denied.actor, denied.detail["act"]) == ("lee@acme.com", "export")


def test_a_sign_in_that_expired_since_cannot_use_its_link(dashboard, links, monkeypatch):
    client, _, _, _ = links
    _seed(dashboard)
    monkeypatch.setenv("FOODCLF_SESSION_HOURS", "1")
    at = run(sign_in(dashboard.app(PAGE), "lee@acme.com", "admin", iat=time.time() - 50 * 60))
    link = _build(at)
    monkeypatch.setenv("FOODCLF_SESSION_HOURS", "0.5")  # as if the 50 minutes were over the hour
    response = client.get(link.url)
    assert response.status_code == 403 and "sign-in has expired" in response.text
    assert _waiting_files(dashboard) == []


def test_a_non_admin_gets_no_link(dashboard, links):
    client, registry, _, _ = links
    _seed(dashboard)
    for role in ("viewer", "moderator"):
        at = run(sign_in(dashboard.app(PAGE), f"{role}@acme.com", role))
        assert not at.button and not at.get("link_button") and "export_ready" not in at.session_state
    assert registry.waiting() == 0 and _waiting_files(dashboard) == []


def test_nothing_to_export(dashboard):
    at = run(dashboard.app(PAGE))
    assert any("No reviews yet" in text for text in texts(at.info))
    _seed(dashboard)
    clear_streamlit_caches()  # counts are cached for a minute; decisions made elsewhere show after that
    at = run(dashboard.app(PAGE))
    at.multiselect(key="e_labels").set_value(["not_food"])
    at.toggle(key="e_corrected").set_value(True)
    run(at)
    assert {m.label: m.value for m in at.metric}["Rows"] == "1"


def test_the_preview_shows_who_decided_what_first(dashboard):
    """Action and reviewer were hidden behind a horizontal scroll, after the content id and scores."""
    _seed(dashboard)
    at = run(dashboard.app(PAGE))
    shown = list(at.dataframe[0].proto.column_order)
    assert shown[:4] == ["file_name", "final_label", "action", "reviewer"]
    assert sorted(shown) == sorted(EXPORT_COLUMNS)  # every column still there, the long id last
    assert shown[-1] == "content_id"
