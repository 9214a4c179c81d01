"""Soak test of the HTTP API: CLIENTS concurrent clients for SECONDS against a real `python -m foodclf serve`.

Each client sends, in a seeded random mix: real food photos, each kind of hostile file, 40-megapixel
PNGs (6300 x 6300 of one colour: a ~120 KB upload that decodes to 120 MB), bodies over the upload
limit, wrong tokens, and batches. Every photo carries a fresh nonce (a JPEG comment or a PNG text
chunk), so the server decodes it instead of answering from the database.

Prints requests/s, p50/p99 latency, the status counts of each kind and the server's peak RSS
(sampled from /proc every 50 ms). Passes (exit 0) when: no 5xx other than 503 "busy" (decode
budget exhausted), every broken file refused with its 4xx (400 corrupt, 413 too large, 415 wrong
format), no connection errors, and peak RSS under idle + RSS_LIMIT_MB.

    python bench/soak.py                       # 24 clients, 60 s, the tiny model built here
    python bench/soak.py --model data/models/x --clients 24 --seconds 60
    python bench/soak.py --budget-mp 100000    # no budget to speak of: see the memory grow
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import random
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections import Counter, defaultdict
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# ---- config (command-line flags override) ----
CLIENTS = 24
SECONDS = 60.0
RSS_LIMIT_MB = 1536  # pass: peak RSS under idle + this
SEED = 0
ABORT_RSS_MB = 8000  # the server is killed past this: a run without a budget must not take the host down
TOKEN = "soak-token"
# Share of each kind of request (weights).
MIX = {"photo": 40, "png40mp": 20, "hostile": 20, "oversized": 4, "bad_token": 6, "batch": 10}
PNG_SIDE = 6300  # 39.7 MP: just under the default FOODCLF_MAX_PIXELS
SHARED_DATA = Path(os.environ.get("FOODCLF_SHARED_DATA") or ROOT.parent / "shared" / "data")


# ---- payloads ----


def jpeg(color, size=(320, 240)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def real_photos() -> list[bytes]:
    """Food-101 photos from the shared data when present, else generated JPEGs."""
    paths = sorted((SHARED_DATA / "food-photos" / "pizza_steak_sushi").glob("*/*/*.jpg"))
    if paths:
        return [p.read_bytes() for p in paths[:200]]
    rng = random.Random(SEED)
    return [jpeg((rng.randrange(256), rng.randrange(256), rng.randrange(256)), (480, 360)) for _ in range(40)]


def with_jpeg_nonce(data: bytes) -> bytes:
    """The same JPEG with a comment segment after SOI: new bytes (a new content id), same pixels."""
    comment = uuid.uuid4().hex.encode()
    return data[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + data[2:]


def with_png_nonce(data: bytes) -> bytes:
    """The same PNG with a tEXt chunk before IEND."""
    body = b"tEXt" + b"nonce\x00" + uuid.uuid4().hex.encode()
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    return data[:-12] + chunk + data[-12:]


def big_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (PNG_SIDE, PNG_SIDE), (180, 90, 40)).save(buffer, "PNG")
    return buffer.getvalue()


def bomb_png(width=100_000, height=100_000) -> bytes:
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
        + chunk(b"IEND", b"")
    )


def hostile_files(photo: bytes) -> list[tuple[str, bytes, int]]:
    """(name, bytes, expected status): generated ones, and the shared hostile images as the loader judges them."""
    from foodclf.api.errors import describe_error
    from foodclf.errors import FoodclfError
    from foodclf.images import decode_image

    tiff = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(tiff, "TIFF")
    files = [
        ("empty.jpg", b"", 400),
        ("truncated.jpg", photo[: len(photo) // 2], 400),
        ("notes.jpg", b"these are my notes, not a photo\n" * 20, 400),
        ("broken.png", b"\x89PNG\r\n\x1a\n" + os.urandom(72), 400),
        ("bomb.png", bomb_png(), 413),
        ("scan.tif", tiff.getvalue(), 415),
    ]
    for path in sorted((SHARED_DATA / "hostile-images").glob("*")):
        data = path.read_bytes()
        try:
            decode_image(data)
            expected = 200
        except FoodclfError as err:
            expected = describe_error(err)[0]
        files.append((path.name, data, expected))
    return files


def multipart(files: list[tuple[str, bytes]], field: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, data in files:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


# ---- the server ----


def build_tiny_model(folder: Path) -> Path:
    """A 2-layer ViT on 32 px images (as the tests use): the load is on decoding, not on the model."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    from foodclf.labels import FOOD101_LABELS

    torch.manual_seed(0)
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        num_channels=3,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        id2label=dict(enumerate(FOOD101_LABELS)),
        label2id={label: i for i, label in enumerate(FOOD101_LABELS)},
    )
    ViTForImageClassification(config).eval().save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(work: Path, model: str, port: int, budget_mp: float | None, wait_s: float | None):
    env = {name: value for name, value in os.environ.items() if not name.startswith("FOODCLF_")}
    env.update(
        {
            "FOODCLF_MODEL": model,
            "FOODCLF_DATABASE_URL": f"sqlite:///{work / 'soak.db'}",
            "FOODCLF_IMAGE_DIR": str(work / "images"),
            "FOODCLF_MODEL_DIR": str(work / "models"),
            "FOODCLF_API_TOKENS": TOKEN,
            "FOODCLF_DEVICE": "cpu",
        }
    )
    if budget_mp is not None:
        env["FOODCLF_DECODE_BUDGET_MP"] = str(budget_mp)
    if wait_s is not None:
        env["FOODCLF_DECODE_WAIT_S"] = str(wait_s)
    log = open(work / "server.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "foodclf", "serve", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"soak: the server exited with {server.returncode}:\n{(work / 'server.log').read_text()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return server
        except OSError:
            pass
        time.sleep(0.2)
    server.kill()
    raise SystemExit("soak: the server was not ready within 180 s")


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


class RssMonitor(threading.Thread):
    """Samples the server's RSS; kills it past abort_mb, so a runaway server cannot take the host down."""

    def __init__(self, pid: int, abort_mb: float):
        super().__init__(daemon=True)
        self.pid, self.abort_mb, self.peak, self.stop, self.aborted = pid, abort_mb, 0.0, threading.Event(), False

    def run(self):
        while not self.stop.wait(0.05):
            try:
                self.peak = max(self.peak, rss_mb(self.pid))
            except OSError:
                return
            if self.peak > self.abort_mb:
                self.aborted = True
                os.kill(self.pid, 9)
                return


# ---- the clients ----


class Client(threading.Thread):
    def __init__(self, n: int, port: int, until: float, payloads: dict, results: list, lock: threading.Lock):
        super().__init__(daemon=True)
        self.rng = random.Random(SEED * 1000 + n)
        self.port, self.until, self.payloads, self.results, self.lock = port, until, payloads, results, lock
        self.conn = None

    def run(self):
        kinds, weights = zip(*MIX.items())
        while time.monotonic() < self.until:
            kind = self.rng.choices(kinds, weights)[0]
            started = time.monotonic()
            try:
                outcome = getattr(self, kind)()
            except OSError as err:
                self.conn = None
                outcome = (kind, "connection_error", None, type(err).__name__)
            with self.lock:
                self.results.append((*outcome, time.monotonic() - started))

    def post(self, path, body, content_type, token=TOKEN, name="photo"):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        headers = {
            "Content-Type": content_type,
            "Authorization": f"Bearer {token}",
            "Content-Disposition": f'attachment; filename="{name}"',
        }
        try:
            self.conn.request("POST", path, body=body, headers=headers)
            response = self.conn.getresponse()
            payload = response.read()
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self.conn = None
            raise
        if response.getheader("connection", "").lower() == "close":
            self.conn.close()
            self.conn = None
        return response.status, payload, response

    def photo(self):
        status, _, response = self.post(
            "/v1/classify", with_jpeg_nonce(self.rng.choice(self.payloads["photos"])), "image/jpeg"
        )
        return "photo", status, {200, 503}, response.getheader("retry-after")

    def png40mp(self):
        status, _, response = self.post(
            "/v1/classify", with_png_nonce(self.payloads["png"]), "image/png", name="big.png"
        )
        return "png40mp", status, {200, 503}, response.getheader("retry-after")

    def hostile(self):
        name, data, expected = self.rng.choice(self.payloads["hostile"])
        status, _, _ = self.post("/v1/classify", data, "application/octet-stream", name=name)
        return f"hostile:{name}", status, {expected, 503} if expected == 200 else {expected}, None

    def bad_token(self):
        status, _, _ = self.post(
            "/v1/classify", with_jpeg_nonce(self.payloads["photos"][0]), "image/jpeg", token="wrong-" + uuid.uuid4().hex
        )
        return "bad_token", status, {401}, None

    def batch(self):
        chosen = [("a.jpg", with_jpeg_nonce(self.rng.choice(self.payloads["photos"]))) for _ in range(3)]
        body, content_type = multipart(chosen + [("broken.jpg", b"not a photo at all")], "files")
        status, payload, _ = self.post("/v1/classify/batch", body, content_type)
        if status == 200:
            items = [item["status"] for item in json.loads(payload)["items"]]
            ok = all(s in (200, 503) for s in items[:3]) and items[3] == 400
            return "batch", 200 if ok else f"items {items}", {200}, None
        return "batch", status, {200}, None

    def oversized(self):
        """11 MB declared and sent on a fresh connection: the server must answer 413 from the header."""
        size = 11 * 1024 * 1024
        with socket.create_connection(("127.0.0.1", self.port), timeout=60) as conn:
            conn.sendall(
                (
                    f"POST /v1/classify HTTP/1.1\r\nHost: soak\r\nAuthorization: Bearer {TOKEN}\r\n"
                    f"Content-Type: image/jpeg\r\nContent-Length: {size}\r\n\r\n"
                ).encode()
            )
            chunk = b"\xff" * 65536
            try:
                for _ in range(size // len(chunk)):
                    conn.sendall(chunk)
            except OSError:
                pass  # the server answered and closed early: that is the point
            line = conn.makefile("rb").readline().decode()
        return "oversized", int(line.split()[1]) if line else "no answer", {413}, None


# ---- the run ----


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--rss-limit-mb", type=float, default=RSS_LIMIT_MB)
    parser.add_argument("--model", help="model folder to serve (default: a tiny ViT built here)")
    parser.add_argument("--budget-mp", type=float, help="FOODCLF_DECODE_BUDGET_MP for the server")
    parser.add_argument("--wait-s", type=float, help="FOODCLF_DECODE_WAIT_S for the server")
    parser.add_argument(
        "--abort-rss-mb",
        type=float,
        default=ABORT_RSS_MB,
        help="kill the server if its RSS passes this (protects a shared machine)",
    )
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="foodclf-soak-") as tmp:
        work = Path(tmp)
        model = args.model or str(build_tiny_model(work / "tiny-model"))
        photos = real_photos()
        payloads = {"photos": photos, "png": big_png(), "hostile": hostile_files(photos[0])}
        port = free_port()
        server = start_server(work, model, port, args.budget_mp, args.wait_s)
        try:
            for data in photos[:3]:  # warm up: the first forward pass allocates the model's buffers
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                conn.request(
                    "POST",
                    "/v1/classify",
                    body=with_jpeg_nonce(data),
                    headers={"Content-Type": "image/jpeg", "Authorization": f"Bearer {TOKEN}"},
                )
                conn.getresponse().read()
            time.sleep(1)
            idle = rss_mb(server.pid)
            monitor = RssMonitor(server.pid, args.abort_rss_mb)
            monitor.start()
            results: list = []
            lock = threading.Lock()
            started = time.monotonic()
            clients = [Client(n, port, started + args.seconds, payloads, results, lock) for n in range(args.clients)]
            for client in clients:
                client.start()
            for client in clients:
                client.join()
            elapsed = time.monotonic() - started
            monitor.stop.set()
            monitor.join()
            peak = max(monitor.peak, rss_mb(server.pid))
            hwm = rss_mb(server.pid, "VmHWM")
            alive = server.poll() is None
            aborted = monitor.aborted
        finally:
            server.terminate()
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        log = (work / "server.log").read_text(errors="replace")
    return report(args, results, elapsed, idle, peak, hwm, alive, log, aborted)


def report(args, results, elapsed, idle, peak, hwm, alive, log, aborted=False) -> int:
    counts: dict[str, Counter] = defaultdict(Counter)
    latencies = [r[4] for r in results]
    failures = Counter()
    busy_without_retry_after = 0
    for kind, status, expected, retry_after, _ in results:
        group = "hostile" if kind.startswith("hostile:") else kind
        counts[group][status] += 1
        if status not in expected:
            failures[f"{kind}: {status}"] += 1
        if status == 503 and not retry_after and kind in ("photo", "png40mp"):
            busy_without_retry_after += 1
    fivexx = sum(n for c in counts.values() for s, n in c.items() if isinstance(s, int) and s >= 500 and s != 503)
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    figures = {
        "clients": args.clients,
        "seconds": round(elapsed, 1),
        "requests": len(results),
        "requests_per_s": round(len(results) / elapsed, 1),
        "p50_ms": round(quantiles[49] * 1000),
        "p99_ms": round(quantiles[98] * 1000),
        "status": {kind: dict(sorted(((str(s), n) for s, n in c.items()))) for kind, c in sorted(counts.items())},
        "idle_rss_mb": round(idle),
        "peak_rss_mb": round(peak),
        "vm_hwm_mb": round(hwm),
        "rss_limit_mb": args.rss_limit_mb,
        "unexpected": dict(failures),
        "other_5xx": fivexx,
        "busy_without_retry_after": busy_without_retry_after,
        "server_alive": alive,
        "aborted_at_rss_mb": args.abort_rss_mb if aborted else None,
        "tracebacks_in_log": log.count("Traceback"),
    }
    problems = []
    if fivexx:
        problems.append(f"{fivexx} responses were 5xx other than 503")
    if failures:
        problems.append(f"unexpected answers: {dict(failures)}")
    if busy_without_retry_after:
        problems.append(f"{busy_without_retry_after} 503s without Retry-After")
    if peak >= idle + args.rss_limit_mb:
        problems.append(f"peak RSS {peak:.0f} MB is not under idle {idle:.0f} MB + {args.rss_limit_mb:.0f} MB")
    if aborted:
        problems.append(f"the server passed {args.abort_rss_mb:.0f} MB and was killed")
    elif not alive:
        problems.append("the server died")
    if figures["tracebacks_in_log"]:
        problems.append("the server logged tracebacks")
    figures["passed"] = not problems
    figures["problems"] = problems

    print(
        f"soak: {args.clients} clients for {elapsed:.0f} s: {len(results)} requests, "
        f"{figures['requests_per_s']} req/s, p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms"
    )
    for kind, c in sorted(counts.items()):
        print(f"  {kind:<10} " + ", ".join(f"{s}: {n}" for s, n in sorted(c.items(), key=lambda x: str(x[0]))))
    print(
        f"  server RSS: idle {idle:.0f} MB, peak {peak:.0f} MB (VmHWM {hwm:.0f} MB), "
        f"limit idle + {args.rss_limit_mb:.0f} MB"
    )
    print("soak: PASS" if not problems else "soak: FAIL: " + "; ".join(problems))
    if args.json:
        print(json.dumps(figures))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
