"""Every refusal the API sends has one shape: {"error": {"code", "message"}}."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from foodclf.errors import (
    DatabaseBusy,
    DecodeBusy,
    FoodclfError,
    ImageRejected,
    ImageTooLarge,
    ModelUnavailable,
    StorageFailed,
    StorageFull,
    UnsupportedImageType,
)

log = logging.getLogger(__name__)

# Most specific first: ImageTooLarge and UnsupportedImageType are ImageRejected too.
STATUS_BY_ERROR = [
    (ImageTooLarge, 413, "image_too_large"),
    (UnsupportedImageType, 415, "unsupported_image_type"),
    (ImageRejected, 400, "image_rejected"),
    (ModelUnavailable, 503, "model_unavailable"),
    (DecodeBusy, 503, "busy"),
    (DatabaseBusy, 503, "database_busy"),  # a StorageFailed: before it
    (StorageFull, 507, "storage_full"),  # likewise
    (StorageFailed, 503, "storage_unavailable"),
]

CODE_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    507: "storage_full",
    422: "invalid_request",
    503: "not_ready",
}


class ApiError(Exception):
    """A refusal decided by the API itself (no token, unknown image, model still loading...)."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code or CODE_BY_STATUS.get(status, "error")
        self.message = message
        self.headers = headers


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def describe_error(err: FoodclfError) -> tuple[int, str]:
    """The HTTP status and error code for a foodclf error."""
    for kind, status, code in STATUS_BY_ERROR:
        if isinstance(err, kind):
            return status, code
    return 400, "rejected"


def install_error_handlers(app: FastAPI) -> None:
    """Turn every exception into the JSON error shape; tracebacks go to the log only."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError) -> JSONResponse:
        return error_response(err.status, err.code, err.message, err.headers)

    @app.exception_handler(FoodclfError)
    async def foodclf_error(request: Request, err: FoodclfError) -> JSONResponse:
        status, code = describe_error(err)
        retry_after = getattr(err, "retry_after", None)  # DecodeBusy, DatabaseBusy: worth trying again soon
        headers = {"Retry-After": str(retry_after)} if retry_after else None
        return error_response(status, code, str(err), headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, err: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", validation_message(err.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        code = CODE_BY_STATUS.get(err.status_code, "error")
        message = str(err.detail)
        if err.status_code == 404 and message == "Not Found":  # the router's: no such endpoint
            message = f"There is no endpoint at {request.url.path}; see /docs for the API."
        elif err.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}; see /docs for the API."
        return error_response(err.status_code, code, message, getattr(err, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> JSONResponse:
        # The client gets no internals; the log gets the traceback.
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "Something went wrong on our side; the error is logged.")


def validation_message(errors) -> str:
    """Pydantic's error list as one sentence naming each bad parameter."""
    parts = []
    for error in errors:
        where = [str(p) for p in error.get("loc", ()) if p not in ("query", "path", "body", "header")]
        parts.append(f"{'.'.join(where) or 'request'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "The request is not valid."
