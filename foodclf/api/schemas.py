"""Response models: what each endpoint returns, as shown at /docs."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, Field


class ClassScore(BaseModel):
    label: str = Field(description="Category name as the model knows it, e.g. apple_pie.")
    score: float = Field(description="Probability from 0 to 1.")


class ModelInfo(BaseModel):
    id: str = Field(description="Hub id or folder of the model.")
    fingerprint: str = Field(description="sha256 of the weights and labels: same weights, same fingerprint.")


class Review(BaseModel):
    label: Optional[str] = Field(None, description="The moderator's category (null for a skip).")
    action: str = Field(description="What the moderator did, e.g. confirmed or corrected.")
    reviewer: Optional[str] = None
    at: Optional[str] = Field(None, description="When, ISO 8601.")


class Classification(BaseModel):
    id: str = Field(description="Content id: the sha256 of the file's bytes.")
    class_scores: list[ClassScore] = Field(description="Highest first; top_k of them.")
    highest_probability_class: str
    uncertain: bool = Field(description="The top score is low or close to the second: review first.")
    model: ModelInfo
    known: bool = Field(description="The photo was already stored; this is the stored prediction.")
    review: Optional[Review] = Field(None, description="The latest moderator review, if any.")


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


class BatchResponse(BaseModel):
    items: list[BatchItem]
    classified: int
    refused: int


class Prediction(BaseModel):
    class_scores: list[ClassScore]
    highest_probability_class: str
    uncertain: Optional[bool] = None
    model: ModelInfo
    at: Optional[str] = None


class ImageHistory(BaseModel):
    id: str
    file_name: Optional[str] = None
    source: Optional[str] = None
    added_by: Optional[str] = None
    added_at: Optional[str] = None
    width: Optional[int] = None
    height: Optional[int] = None
    predictions: list[Prediction]
    reviews: list[Review]


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
