"""The short soak: bench/soak.py with 6 clients for 8 s against a real `python -m foodclf serve`.

Pass criteria as the full run's (no 5xx but 503 busy, every broken file its 4xx, no connection
errors), with a memory bound small enough to fail without the decode budget: measured on 2 cores,
6 clients push the server +0.2 GB with the default budget and +0.56 GB with FOODCLF_DECODE_BUDGET_MP
set huge (bench/README.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RSS_LIMIT_MB = 400


def test_six_clients_with_40_megapixel_pngs_stay_within_bounds(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "soak.py"),
            "--clients",
            "6",
            "--seconds",
            "8",
            "--rss-limit-mb",
            str(RSS_LIMIT_MB),
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["passed"], (figures["problems"], done.stdout[-3000:])
    assert done.returncode == 0
    assert figures["other_5xx"] == 0 and figures["unexpected"] == {} and figures["server_alive"]
    assert figures["peak_rss_mb"] < figures["idle_rss_mb"] + RSS_LIMIT_MB
    # Every kind of request was exercised, and the hostile files were refused with their 4xx.
    assert {"photo", "png40mp", "hostile", "bad_token", "batch"} <= set(figures["status"])
    assert set(figures["status"]["hostile"]) & {"400", "413", "415"}
