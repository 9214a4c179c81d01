"""Response models: what each endpoint returns, as shown at /docs."""

from __future__ import annotations

from datetime import datetime
from typing import Optional

from pydantic import BaseModel, Field


class ClassScore(BaseModel):
    label: str = Field(description="Category name as the model knows it, e.g. apple_pie.")
    score: float = Field(description="Probability from 0 to 1.")


class ModelInfo(BaseModel):
    id: str = Field(description="Hub id or folder of the model.")
    fingerprint: str = Field(description="sha256 of the weights and labels: same weights, same fingerprint.")


class Review(BaseModel):
    label: Optional[str] = Field(None, description="The moderator's category (null for a skip or an undo).")
    action: str = Field(description="confirmed, corrected or not_food (history also shows skipped and undone).")
    reviewer: Optional[str] = None
    at: Optional[datetime] = Field(None, description="When, UTC.")


class ReviewEvent(Review):
    note: Optional[str] = None
    current: bool = Field(description="This is the decision in force.")


class Classification(BaseModel):
    id: str = Field(description="Content id: the sha256 of the file's bytes.")
    class_scores: list[ClassScore] = Field(description="Highest first; top_k of them.")
    highest_probability_class: str
    uncertain: bool = Field(description="The top score is low or close to the second: review first.")
    model: ModelInfo
    known: bool = Field(description="The photo was already stored; this is the stored prediction.")
    review: Optional[Review] = Field(None, description="The latest moderator review, if any.")
    near_duplicates: list[str] = Field(
        default_factory=list,
        description="Content ids of other stored photos that look the same (a resized or re-encoded copy), "
        "nearest first.",
    )


class SimilarPhoto(BaseModel):
    id: str = Field(description="Content id of the similar photo.")
    score: float = Field(description="Cosine similarity of the two photos' embeddings, up to 1.")
    label: Optional[str] = Field(description="Its current label: the moderator's if decided, else the model's.")
    predicted_label: Optional[str] = Field(description="The model's top category for it.")
    review: Optional[Review] = Field(None, description="The decision in force on it, if any.")


class SimilarPhotos(BaseModel):
    id: str
    fingerprint: Optional[str] = Field(description="The model whose embeddings were compared.")
    indexed: bool = Field(
        description="False when that model has no embedding of this photo yet (run `foodclf reclassify`)."
    )
    similar: list[SimilarPhoto] = Field(description="Most alike first.")


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. image_too_large.")
    message: str = Field(description="What went wrong and what to do, for a person.")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class BatchItem(BaseModel):
    """One file of a batch: a classification, or the error that refused it."""

    index: int = Field(description="Position of the file in the request, from 0.")
    file_name: str
    result: Optional[Classification] = None
    error: Optional[ErrorDetail] = None
    status: int = Field(description="The HTTP status this file alone would have got.")
    retry_after_s: Optional[int] = Field(
        None,
        description="Refused because the server was busy (503): seconds to wait before sending this file again, "
        "as the Retry-After header of a single request. Null otherwise.",
    )


class BatchResponse(BaseModel):
    items: list[BatchItem]
    classified: int
    refused: int


class Prediction(BaseModel):
    class_scores: list[ClassScore] = Field(description="As stored, highest first.")
    highest_probability_class: str
    uncertain: bool
    model: ModelInfo
    at: datetime


class ImageHistory(BaseModel):
    id: str
    file_name: str
    source: str = Field(description="upload (dashboard), folder (foodclf ingest) or api.")
    added_by: str
    added_at: datetime
    width: int
    height: int
    format: str
    review: Optional[Review] = Field(None, description="The decision in force, if any.")
    predictions: list[Prediction] = Field(description="Oldest first; one per model.")
    reviews: list[ReviewEvent] = Field(description="Every decision, oldest first, undone ones included.")


class Label(BaseModel):
    label: str
    display: str = Field(description="How the dashboard shows it, e.g. Apple pie.")


class Labels(BaseModel):
    model: ModelInfo
    labels: list[Label]


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    model: dict
