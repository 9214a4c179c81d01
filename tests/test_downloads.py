"""One-time download links (foodclf.downloads) and the export file they hand out (foodclf.export.build_export)."""

from __future__ import annotations

import os
import time

import pytest

from db.engine import session_scope
from db.export_rows import ExportFilters
from foodclf.audit import audit_events
from foodclf.downloads import Downloads
from foodclf.errors import DownloadGone
from foodclf.export import build_export


class Clock:
    def __init__(self):
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def _file(folder, name="export-a.csv", data=b"x"):
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


def _offer(registry, path, session="s1"):
    return registry.offer(path, file_name="f.csv", mime="text/csv", owner="ana", session=session, claims=None)


def test_a_link_works_once_and_its_token_is_unguessable(tmp_path):
    registry = Downloads()
    path = _file(tmp_path / "exports")
    token = _offer(registry, path)
    assert len(token) >= 43 and token != _offer(registry, _file(tmp_path / "exports", "export-b.csv"), "s2")
    waiting = registry.take(token)
    assert (waiting.path, waiting.owner, waiting.session) == (path, "ana", "s1")
    with pytest.raises(DownloadGone, match="used already"):
        registry.take(token)
    with pytest.raises(DownloadGone):
        registry.take("guess")


def test_an_expired_link_is_refused_and_its_file_removed(tmp_path):
    clock = Clock()
    registry = Downloads(ttl_s=60, clock=clock)
    path = _file(tmp_path / "exports")
    token = _offer(registry, path)
    clock.now += 61
    with pytest.raises(DownloadGone, match="expired"):
        registry.take(token)
    assert not path.exists()


def test_a_sessions_new_file_replaces_its_earlier_one_only(tmp_path):
    registry = Downloads()
    first, other, second = (_file(tmp_path / "exports", f"export-{n}.csv") for n in "abc")
    old = _offer(registry, first, "s1")
    _offer(registry, other, "s2")
    _offer(registry, second, "s1")
    assert not first.exists() and other.exists() and second.exists() and registry.waiting() == 2
    with pytest.raises(DownloadGone):
        registry.take(old)


def test_the_sweep_removes_expired_files_and_strays_a_stopped_process_left(tmp_path):
    clock = Clock()
    registry = Downloads(ttl_s=60, clock=clock)
    folder = tmp_path / "exports"
    stray, fresh = _file(folder, "export-old.zip"), _file(folder, "export-new.zip")
    long_ago = time.time() - 3600
    os.utime(stray, (long_ago, long_ago))
    held = _file(folder, "export-held.csv")
    os.utime(held, (long_ago, long_ago))  # old on disk, but its link is still valid: kept
    _offer(registry, held)  # the offer sweeps its folder
    assert not stray.exists() and fresh.exists() and held.exists()
    clock.now += 61
    assert registry.sweep() == 1 and not held.exists() and registry.waiting() == 0
    assert fresh.exists()  # another process's file, younger than the TTL


def test_withdrawing_a_link_removes_its_file(tmp_path):
    registry = Downloads()
    path = _file(tmp_path / "exports")
    token = _offer(registry, path)
    registry.withdraw(token)
    registry.withdraw(token)  # twice is fine
    assert not path.exists() and registry.waiting() == 0


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "imagefolder"])
def test_a_failed_export_leaves_no_file_and_no_record(engine, settings, make_image, make_review, tmp_path, fmt):
    with session_scope(engine) as session:
        for _ in range(3):
            make_review(session, make_image(session), action="confirmed", label="pizza", reviewer="mod")

    def broken(done, total):
        raise RuntimeError("the disk is full")

    folder = tmp_path / "exports"
    with pytest.raises(RuntimeError):
        build_export(engine, settings.image_dir, fmt, ExportFilters(), actor="ana", folder=folder, progress=broken)
    assert list(folder.iterdir()) == [] and audit_events(engine) == []
    built = build_export(engine, settings.image_dir, fmt, ExportFilters(), actor="ana", folder=folder)
    assert list(folder.iterdir()) == [built.path] and built.size == built.path.stat().st_size > 0
    built.remove()
    assert list(folder.iterdir()) == []
