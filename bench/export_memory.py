"""Memory of an export: ROWS decided photos exported as the dashboard exports them, peak RSS per export.

    python bench/export_memory.py [--rows 100000] [--photos N] [--formats csv,jsonl,imagefolder] [--no-old]

Fills a temp SQLite database with ROWS reviewed photos (each with a prediction and a current
decision) and gives the first PHOTOS of them (default: all) a small synthetic JPEG in the image
folder (hard links to 64 distinct ~10 KB photos, so the folder costs no disk; the bytes still go
through the store and into the zip one by one). Then, for each format, in a fresh subprocess each:

- new: `foodclf.export.build_export` into FOODCLF_CACHE_DIR/exports (what the Export page calls),
  a one-time link (`foodclf.downloads.Downloads`, the dashboard's registry class), and the download
  route's response (`foodclf.downloads.file_response`) sent through ASGI to a sink that only hashes
  it (the bytes are checked against the file; a test client would keep the whole body);
- old: the export built in memory as the page did before issue 15 (a BytesIO zip or one joined
  string, then bytes; the page then kept them in session state and Streamlit's media store, which
  is not counted here, so the old figures are a floor).

Peak RSS is the kernel's high-water mark (/proc/self/status VmHWM, reset by writing 5 to
/proc/self/clear_refs once the subprocess has imported everything and opened the database), not
tracemalloc, which misses C allocations. "Extra" is that peak less the RSS just before the export.
Passes (exit 0) when every new export's extra memory is under LIMIT_MB.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image  # noqa: E402
from sqlalchemy import bindparam, insert, update  # noqa: E402

from db.engine import open_database, session_scope  # noqa: E402
from db.export_rows import ExportFilters, export_rows  # noqa: E402
from db.models import ImageRow, PredictionRow, ReviewRow  # noqa: E402
from foodclf import export  # noqa: E402
from foodclf.downloads import Downloads, file_response  # noqa: E402
from foodclf.labels import FOOD101_LABELS  # noqa: E402

SEED = 15
LIMIT_MB = 300  # issue 15: an export of 100,000 photos stays under 300 MB of extra memory
CHUNK = 20_000
DISTINCT_PHOTOS = 64
START = datetime(2026, 8, 1, tzinfo=timezone.utc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="decided photos in the database")
    parser.add_argument("--photos", type=int, help="how many of them have a photo file (default: all)")
    parser.add_argument("--formats", default="csv,jsonl,imagefolder")
    parser.add_argument("--no-old", dest="old", action="store_false", help="skip the old in-memory exports")
    parser.add_argument("--child", nargs=4, metavar=("MODE", "FMT", "URL", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child)))
        return

    work = Path(tempfile.mkdtemp(prefix="foodclf-export-bench-"))
    url = f"sqlite:///{work / 'bench.db'}"
    started = time.perf_counter()
    fill(open_database(url), args.rows)
    photos = args.rows if args.photos is None else args.photos
    make_photos(work / "images", photos)
    print(f"filled {args.rows:,} decided photos ({photos:,} with a file) in {time.perf_counter() - started:.0f} s")
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; work folder {work}\n")

    print("| format | rows | file | new: extra peak RSS | new: s | old: extra peak RSS | old: s | old / new |")
    print("|---|---|---|---|---|---|---|---|")
    failed = False
    for fmt in args.formats.split(","):
        new = run_child("new", fmt, url, work)
        old = run_child("old", fmt, url, work) if args.old else None
        failed |= new["extra_mb"] >= LIMIT_MB
        assert old is None or old["size"] == new["size"] or fmt == "imagefolder", (old, new)
        print(
            f"| {fmt} | {new['rows']:,} | {new['size'] / 1e6:,.0f} MB | **{new['extra_mb']:,.0f} MB** | "
            f"{new['seconds']:.1f} | "
            + (
                f"{old['extra_mb']:,.0f} MB | {old['seconds']:.1f} | {old['extra_mb'] / max(new['extra_mb'], 1):.1f}× |"
                if old
                else "– | – | – |"
            ),
            flush=True,
        )
    print(f"\n{'FAIL' if failed else 'PASS'}: every new export under {LIMIT_MB} MB of extra memory")
    shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failed else 0)


def run_child(mode: str, fmt: str, url: str, work: Path) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, fmt, url, str(work)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{mode} {fmt} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- one export, in its own process --------------------------------------------------------


def measure(mode: str, fmt: str, url: str, work: str) -> dict:
    work_dir = Path(work)
    engine = open_database(url)
    image_dir = str(work_dir / "images")
    export.export_preview(engine, ExportFilters(), 10)  # the page's first query: connections and caches warm
    baseline = _status("VmRSS")
    _reset_peak()
    started = time.perf_counter()
    if mode == "new":
        size, rows = _new(engine, image_dir, fmt, work_dir / "cache")
    else:
        size, rows = _old(engine, image_dir, fmt)
    seconds = time.perf_counter() - started
    peak = _status("VmHWM")
    return {"rows": rows, "size": size, "seconds": seconds, "baseline_mb": baseline, "extra_mb": peak - baseline}


def _new(engine, image_dir: str, fmt: str, cache_dir: Path) -> tuple[int, int]:
    """As the Export page and its download route do it."""
    built = export.build_export(
        engine, image_dir, fmt, ExportFilters(), actor="bench", folder=export.export_folder(cache_dir), total=0
    )
    expected = _sha256(built.path)
    registry = Downloads()
    token = registry.offer(built.path, file_name=built.file_name, mime=built.mime, owner="bench", session="bench")
    status, size, digest = asyncio.run(_get(file_response(registry.take(token))))
    assert status == 200 and size == built.size and digest == expected, (status, size, built.size)
    assert not built.path.exists(), "the response removes the file it sends"
    return size, built.rows


async def _get(app, path: str = "/download") -> tuple[int, int, str]:
    """GET through an ASGI app into a sink that keeps only a hash (a test client would keep the body)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 1),
        "server": ("bench", 80),
    }
    state = {"status": 0, "size": 0, "sent": False}
    digest = hashlib.sha256()

    async def receive():
        if not state["sent"]:
            state["sent"] = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(3600)  # the browser stays connected

    async def send(message):
        if message["type"] == "http.response.start":
            state["status"] = message["status"]
        elif message["type"] == "http.response.body":
            state["size"] += len(message.get("body", b""))
            digest.update(message.get("body", b""))

    await app(scope, receive, send)
    return state["status"], state["size"], digest.hexdigest()


def _old(engine, image_dir: str, fmt: str) -> tuple[int, int]:
    """foodclf.export.build_export as it was before issue 15 (commit a7719b8): the whole file in memory."""
    with session_scope(engine) as session:
        rows = export_rows(session, ExportFilters())
        if fmt == "imagefolder":
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                report = export.write_imagefolder(rows, archive, image_dir=image_dir)
            data, n = buffer.getvalue(), report.written
        else:
            chunks = list(export.csv_chunks(rows) if fmt == "csv" else export.jsonl_chunks(rows))
            n = len(chunks) - (fmt == "csv")
            data = "".join(chunks).encode("utf-8")  # as before: "".join(csv_chunks(rows)).encode("utf-8")
    return len(data), n


def _status(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    """Set VmHWM to the current RSS (Linux 4.0+), so the peak is the export's own."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    assert _status("VmHWM") - _status("VmRSS") < 1, "VmHWM could not be reset"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# ---- the data ------------------------------------------------------------------------------------


def fill(engine, n: int) -> None:
    """N photos, each predicted and decided (confirmed mostly; some corrected, some not food)."""
    rng = random.Random(SEED)
    reviewers = [f"moderator{i:02d}@acme.com" for i in range(20)]
    for first in range(1, n + 1, CHUNK):
        images, predictions, reviews, currents = [], [], [], []
        for i in range(first, min(first + CHUNK, n + 1)):
            added = START + timedelta(seconds=i * 60)
            label, score = rng.choice(FOOD101_LABELS), rng.betavariate(5, 2)
            action = rng.choices(("confirmed", "corrected", "not_food"), (78, 20, 2))[0]
            final = {"confirmed": label, "corrected": rng.choice(FOOD101_LABELS), "not_food": "not_food"}[action]
            at = added + timedelta(hours=rng.random() * 48)
            images.append(
                dict(
                    id=i,
                    content_id=f"{i:064x}",
                    file_name=f"IMG_{i:06d}.jpg",
                    stored_path=f"{i:064x}.jpg",
                    width=160,
                    height=120,
                    format="JPEG",
                    size_bytes=10_000,
                    source="upload",
                    added_by="bench",
                    added_at=added,
                    prediction_id=i,
                    top_label=label,
                    top_score=score,
                )
            )
            predictions.append(
                dict(
                    id=i,
                    image_id=i,
                    model_id="bench",
                    fingerprint="f" * 64,
                    top_label=label,
                    top_score=score,
                    scores=[{"label": label, "score": score}],
                    uncertain=score < 0.5,
                    latency_ms=10.0,
                    created_at=added,
                )
            )
            reviews.append(
                dict(
                    id=i,
                    image_id=i,
                    prediction_id=i,
                    action=action,
                    final_label=final,
                    reviewer=rng.choice(reviewers),
                    created_at=at,
                )
            )
            currents.append(dict(b_id=i, review=i, label=final, action=action, at=at, judged=label))
        with engine.begin() as connection:
            connection.execute(insert(ImageRow), images)
            connection.execute(insert(PredictionRow), predictions)
            connection.execute(insert(ReviewRow), reviews)
            connection.execute(
                update(ImageRow)
                .where(ImageRow.id == _bind("b_id"))
                .values(
                    current_review_id=_bind("review"),
                    current_label=_bind("label"),
                    current_action=_bind("action"),
                    reviewed_at=_bind("at"),
                    judged_label=_bind("judged"),
                ),
                currents,
            )


def _bind(name: str):
    return bindparam(name)


def make_photos(folder: Path, n: int) -> None:
    """Photo i's file for the first n photos: hard links to DISTINCT_PHOTOS small noisy JPEGs."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SEED)
    sources = []
    for k in range(DISTINCT_PHOTOS):
        image = Image.effect_noise((160, 120), 40 + k).convert("RGB")
        image.paste((rng.randrange(256), rng.randrange(256), rng.randrange(256)), (0, 0, 80, 60))
        path = folder / f"source-{k}.jpg"
        image.save(path, "JPEG", quality=90)
        sources.append(path)
    for i in range(1, n + 1):
        os.link(sources[i % DISTINCT_PHOTOS], folder / f"{i:064x}.jpg")


if __name__ == "__main__":
    main()
