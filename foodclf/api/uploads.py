"""Reading photos out of a request: a multipart field, or the raw body with an image type."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import BinaryIO

from fastapi import Request
from starlette.datastructures import UploadFile

from foodclf.api.errors import ApiError
from foodclf.images import display_name, read_source

# A batch holds at most this many files; more would hold the model (and its lock) too long.
MAX_BATCH_FILES = 16
# Room for multipart boundaries and part headers around the photo bytes.
MULTIPART_OVERHEAD = 64 * 1024
# Raw bodies: any image type (the bytes are sniffed, so image/tiff gets its own 415 reason),
# or the generic binary type many HTTP clients send.
RAW_TYPES = ("image/", "application/octet-stream")

# What /docs shows for the upload endpoints, which read the body themselves (after the token check).
SINGLE_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                },
            },
            "image/*": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
BATCH_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {
                            "type": "array",
                            "maxItems": MAX_BATCH_FILES,
                            "items": {"type": "string", "format": "binary"},
                        }
                    },
                },
            },
        },
    }
}


@dataclass
class Upload:
    """One uploaded file, not yet read: its display name and a binary file object."""

    file_name: str
    file: BinaryIO

    def read(self, max_bytes: int) -> bytes:
        """The bytes, refusing a file over max_bytes (ImageTooLarge) without reading it all."""
        return read_source(self.file, max_bytes)[0]


async def single_upload(request: Request, max_bytes: int) -> tuple[str, bytes]:
    """The one photo of a /v1/classify request: (display name, bytes)."""
    content_type = _media_type(request)
    if content_type == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=8)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(422, "Send the photo in a multipart field named 'file'.")
        return display_name(upload.filename), await _read(upload, max_bytes)
    if not content_type.startswith(RAW_TYPES):
        got = content_type or "no Content-Type"
        raise ApiError(
            415,
            f"Send the photo as a multipart field named 'file', or as the raw body with an image/* "
            f"Content-Type (this request has {got}).",
        )
    body = await request.body()
    return _raw_name(request), read_source(body, max_bytes)[0]


async def batch_uploads(request: Request) -> list[Upload]:
    """The photos of a /v1/classify/batch request, in order; each is read later, in a worker thread."""
    if _media_type(request) != "multipart/form-data":
        raise ApiError(415, "Send the photos as multipart/form-data, one field named 'files' per photo.")
    form = await request.form(max_files=MAX_BATCH_FILES, max_fields=8)
    uploads = [item for item in form.getlist("files") if isinstance(item, UploadFile)]
    if not uploads:
        raise ApiError(422, "Send the photos in multipart fields named 'files' (one per photo).")
    return [Upload(display_name(item.filename), item.file) for item in uploads]


async def _read(upload: UploadFile, max_bytes: int) -> bytes:
    # One byte over the limit is enough to know the file is too large.
    data = await upload.read(max_bytes + 1)
    return read_source(data, max_bytes)[0]


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _raw_name(request: Request) -> str:
    """A raw body's file name, from Content-Disposition if the client sent one."""
    match = re.search(r'filename="?([^";]+)"?', request.headers.get("content-disposition", ""))
    return display_name(match.group(1) if match else None)
