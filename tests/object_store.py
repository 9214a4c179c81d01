"""A real S3 API on loopback for the object-store tests: moto's server (`moto_server`) in a subprocess.

The tests reach it as any deployment reaches S3: through the standard AWS variables (endpoint,
credentials, region), which s3fs's client reads; FOODCLF_IMAGE_DIR is an `s3://bucket/prefix` URL.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import s3fs

from server_support import free_port

START_TIMEOUT = 60  # seconds for moto's server to answer


class MotoServer:
    """moto_server on a free loopback port; buckets are made fresh for each test."""

    def __init__(self):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        executable = Path(sys.executable).with_name("moto_server")
        self.process = subprocess.Popen(
            [str(executable), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._buckets = itertools.count(1)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=2).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto_server did not start on port {self.port}") from None
                time.sleep(0.2)

    def __repr__(self) -> str:
        return f"MotoServer({self.endpoint!r})"

    def environment(self) -> dict[str, str]:
        """The AWS variables that point an S3 client (s3fs, boto3) at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def new_bucket(self, prefix: str = "photos") -> str:
        """An empty bucket's `s3://bucket/prefix` URL."""
        bucket = f"foodclf-test-{os.getpid()}-{next(self._buckets)}"
        request = urllib.request.Request(f"{self.endpoint}/{bucket}", method="PUT")
        urllib.request.urlopen(request, timeout=10).close()
        return f"s3://{bucket}/{prefix}"

    def keys(self, url: str) -> list[str]:
        """The object keys under an `s3://bucket/prefix` URL, read with a fresh client (no cache)."""
        fs = s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False)
        return sorted(fs.find(url.removeprefix("s3://")))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
