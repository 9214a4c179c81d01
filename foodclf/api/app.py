"""The FastAPI application factory: settings in, app out (tests pass their own Settings)."""

from __future__ import annotations

import copy
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from foodclf.api.errors import install_error_handlers
from foodclf.api.limits import BodyLimit
from foodclf.api.loader import ModelSlot
from foodclf.api.photos import Photos
from foodclf.api.routes import health, v1
from foodclf.api.uploads import MAX_BATCH_FILES, MULTIPART_OVERHEAD
from foodclf.classifier import Classifier
from foodclf.errors import SettingsError
from foodclf.images import configure_decode_budget
from foodclf.settings import Settings, is_loopback
from foodclf.store import open_store

DESCRIPTION = """Tags food photos with the active model and stores each photo and prediction
in the moderators' review queue, exactly as a dashboard upload is.

Send `Authorization: Bearer <token>` with every `/v1` call: a token made with
`python -m foodclf tokens create --name NAME --role tagger|reader` (a tagger classifies and stores
photos, a reader reads images and labels), or one from `FOODCLF_API_TOKENS` (both).
Errors are `{"error": {"code": ..., "message": ...}}`."""

# Bodies of other endpoints: none expected; a small cap stops anyone parking data on us.
OTHER_BODY_LIMIT = 64 * 1024


def create_app(settings: Settings, classifier: Classifier | None = None) -> FastAPI:
    """Build the API.

    Args:
        settings: model, database, image folder, limits and tokens.
        classifier: an already loaded model (tests). None loads the active model (the
            active trained model, else settings.model) in a background thread at startup,
            follows later activations, and /readyz answers 503 until the first load is in.

    Returns:
        The ASGI application (serve it with uvicorn, or wrap it in FastAPI's TestClient).
    """
    configure_decode_budget(settings)  # every upload's decode draws on it; a full budget answers 503
    model = ModelSlot(classifier)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        open_store(settings.image_dir).remove_leftovers()  # half-written photos of a killed server
        model.start_loading(settings)
        yield
        model.stop()
        app.state.photos.close()

    app = FastAPI(
        title="foodclf", summary="What food is in this photo?", description=DESCRIPTION, version="1", lifespan=lifespan
    )
    app.state.settings = settings
    app.state.model = model
    app.state.photos = Photos(settings)
    app.add_middleware(BodyLimit, limit_for=body_limits(settings))
    install_error_handlers(app)
    app.include_router(health)
    app.include_router(v1)
    return app


def body_limits(settings: Settings):
    """The per-path body cap and the rule a refused client is told."""
    photo_mb = f"{settings.max_upload_mb:g} MB"
    caps = {
        "/v1/classify": (settings.max_upload_bytes + MULTIPART_OVERHEAD, f"a photo may be at most {photo_mb}"),
        "/v1/classify/batch": (
            MAX_BATCH_FILES * (settings.max_upload_bytes + MULTIPART_OVERHEAD),
            f"a batch may hold at most {MAX_BATCH_FILES} photos of at most {photo_mb} each",
        ),
    }
    other = (OTHER_BODY_LIMIT, "this endpoint takes no request body")

    def limit_for(path: str) -> tuple[int, str]:
        return caps.get(path.rstrip("/"), other)

    return limit_for


def check_exposure(host: str, settings: Settings, *, stored_tokens: bool = False) -> None:
    """Refuse an open API on an address other machines can reach.

    Args:
        stored_tokens: whether the database holds tokens (`python -m foodclf tokens create`).

    Raises:
        SettingsError: the address is not loopback and no API token is configured.
    """
    if settings.api_tokens or stored_tokens or is_loopback(host):
        return
    raise SettingsError(
        f"Refusing to listen on {host} without API tokens: anyone who can reach this machine could "
        "classify photos and fill the review queue. Create one with `python -m foodclf tokens create "
        "--name NAME --role tagger`, or set FOODCLF_API_TOKENS to one or more comma-separated secret "
        "tokens, or listen on 127.0.0.1 (the default)."
    )


class HideQueryStrings(logging.Filter):
    """Access-log lines without query strings: a client that puts a token in the URL must not get it logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str) and "?" in args[2]:
            # uvicorn's access record: (client, method, path with query, HTTP version, status)
            record.args = (*args[:2], args[2].split("?", 1)[0] + "?…", *args[3:])
        return True


def log_config() -> dict:
    """uvicorn's logging, with query strings left out of the access log."""
    from uvicorn.config import LOGGING_CONFIG  # only `serve` runs uvicorn: the others start without it

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["hide_query"] = {"()": HideQueryStrings}
    config["handlers"]["access"]["filters"] = ["hide_query"]
    return config
