"""The endpoints: thin, each reads its input, hands the work to api.photos in a thread, answers."""

from __future__ import annotations

from typing import Annotated, Optional

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from foodclf.api import schemas  # the module, not the package
from foodclf.api.auth import reader, require_token, tagger
from foodclf.api.errors import ApiError
from foodclf.api.uploads import BATCH_BODY_DOC, SINGLE_BODY_DOC, batch_uploads, single_upload
from foodclf.labels import display_label
from foodclf.tokens import Caller

ERRORS = {status: {"model": schemas.ErrorResponse} for status in (401, 403, 422, 503)}
UPLOAD_ERRORS = {status: {"model": schemas.ErrorResponse} for status in (400, 401, 403, 413, 415, 422, 503)}

TopK = Annotated[
    Optional[int], Query(ge=0, le=10_000, description="Categories per photo; 0: all; default FOODCLF_TOP_K.")
]
ContentId = Annotated[str, Path(pattern="^[0-9a-f]{64}$", description="Content id (sha256 hex of the file).")]

health = APIRouter(tags=["health"])
v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_token)], responses=ERRORS)


@health.get("/healthz", response_model=schemas.Health)
async def healthz() -> dict:
    """The process is up (the model may still be loading)."""
    return {"status": "ok"}


@health.get("/readyz", response_model=schemas.Ready, responses={503: {"model": schemas.ErrorResponse}})
async def readyz(request: Request) -> dict:
    """Ready to classify: the model is loaded. 503 until then."""
    classifier = request.app.state.model.get()
    return {"status": "ready", "model": classifier.describe()}


@v1.post("/classify", response_model=schemas.Classification, responses=UPLOAD_ERRORS, openapi_extra=SINGLE_BODY_DOC)
async def classify(request: Request, top_k: TopK = None, caller: Caller = Depends(tagger)) -> dict:
    """Classify one photo (multipart field `file`, or the raw body with an image Content-Type) and store it
    for review. A photo already stored is answered from the database, without running the model."""
    state = request.app.state
    classifier = state.model.get()  # 503 before the body is read
    try:
        name, data = await single_upload(request, state.settings.max_upload_bytes)
    finally:
        await request.close()  # the multipart parser's temporary files
    return await run_in_threadpool(state.photos.classify_one, classifier, name, data, top_k, caller.name)


@v1.post("/classify/batch", response_model=schemas.BatchResponse, responses=UPLOAD_ERRORS, openapi_extra=BATCH_BODY_DOC)
async def classify_batch(
    request: Request, response: Response, top_k: TopK = None, caller: Caller = Depends(tagger)
) -> dict:
    """Classify several photos (multipart fields `files`); a refused photo gets its error in its item.

    When any photo was refused because the server was busy, the response carries `Retry-After`
    (the longest of the items' `retry_after_s`), as a single request's 503 would.
    """
    state = request.app.state
    classifier = state.model.get()
    try:
        uploads = await batch_uploads(request)
        items = await run_in_threadpool(state.photos.classify_batch, classifier, uploads, top_k, caller.name)
    finally:
        await request.close()  # the multipart parser's temporary files
    refused = sum(item["error"] is not None for item in items)
    waits = [item["retry_after_s"] for item in items if item["retry_after_s"]]
    if waits:
        response.headers["Retry-After"] = str(max(waits))
    return {"items": items, "classified": len(items) - refused, "refused": refused}


@v1.get("/images/{content_id}", response_model=schemas.ImageHistory)
def image_history(request: Request, content_id: ContentId, caller: Caller = Depends(reader)) -> dict:
    """A stored photo's predictions and reviews, oldest first (a reader token)."""
    history = request.app.state.photos.history(content_id)
    if history is None:
        raise ApiError(404, f"No stored photo has the id {content_id}.")
    return history


@v1.get("/images/{content_id}/similar", response_model=schemas.SimilarPhotos)
def similar_photos(
    request: Request,
    content_id: ContentId,
    k: Annotated[int, Query(ge=1, le=100, description="How many similar photos.")] = 5,
    caller: Caller = Depends(reader),
) -> dict:
    """The k stored photos most like this one (by the embeddings of the model that made its latest prediction),
    most alike first, with their current labels (a reader token)."""
    similar = request.app.state.photos.similar(content_id, k)
    if similar is None:
        raise ApiError(404, f"No stored photo has the id {content_id}.")
    return similar


@v1.get("/labels", response_model=schemas.Labels)
async def labels(request: Request) -> dict:
    """The active model's categories (any token)."""
    classifier = request.app.state.model.get()
    return {
        "model": {"id": classifier.model_id, "fingerprint": classifier.fingerprint},
        "labels": [{"label": label, "display": display_label(label)} for label in classifier.labels],
    }
