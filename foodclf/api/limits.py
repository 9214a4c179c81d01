"""A request body cap, enforced before and while the body is read.

Content-Length is checked before anything is read; the body is also counted as it
streams, so a chunked body or a lying header cannot push more than the cap into memory.
"""

from __future__ import annotations

import json
from typing import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from foodclf.api.errors import error_body


class BodyTooLarge(Exception):
    """The body went over its cap while streaming."""


class BodyLimit:
    """ASGI middleware: refuse with 413 any body over its path's cap.

    `limit_for(path)` gives the cap in bytes and the rule to tell the client,
    e.g. "a photo may be at most 10 MB".
    """

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], tuple[int, str]]):
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, rule = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, f"The request is {declared / 1024 / 1024:.1f} MB; {rule}.")
            return
        received = 0
        over = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    raise BodyTooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over:
                # Whatever the app made of the cut body (form parsers turn it into a 400),
                # the client must hear the real reason.
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLarge:
            pass
        except Exception:
            if not over:
                raise
        if over and not started:
            await _refuse(send, f"The request is larger than allowed; {rule}.")


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, message: str) -> None:
    body = json.dumps(error_body("payload_too_large", message)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
