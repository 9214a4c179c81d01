"""The work behind the endpoints, adapting the one ingest path (foodclf.ingest) to API answers.

Runs in worker threads (the endpoints hand it over with run_in_threadpool); the model's
forward pass is serialised by the Classifier's own lock.
"""

from __future__ import annotations

from db.engine import close_database, open_database, session_scope
from db.records import ImageSummary, image_history, image_summary
from foodclf import moderation
from foodclf.api.errors import describe_error
from foodclf.api.uploads import Upload
from foodclf.classifier import Classifier
from foodclf.errors import FoodclfError
from foodclf.ingest import IngestOutcome, ingest_in_order
from foodclf.settings import Settings

SOURCE = "api"


class Photos:
    """The API's photos: classified and stored through the one ingest path, read back with their history."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._engine = None

    @property
    def engine(self):
        # Opened on first use (and migrated to the latest schema), so /healthz never waits on it.
        if self._engine is None:
            self._engine = open_database(self.settings.database_url)
        return self._engine

    def close(self) -> None:
        """Release database connections (at shutdown)."""
        if self._engine is not None:
            close_database(self.settings.database_url)
            self._engine = None

    def classify_one(self, classifier: Classifier, name: str, data: bytes, top_k: int | None, added_by: str) -> dict:
        """One photo's answer; raises the refusal (ImageRejected or a subclass), storing nothing."""
        top_k = self._top_k(top_k)
        [outcome] = self._ingest(classifier, [(name, data)], top_k, added_by)
        if not outcome.ok:
            raise outcome.error
        return self._answer(outcome, top_k)

    def classify_batch(
        self, classifier: Classifier, uploads: list[Upload], top_k: int | None, added_by: str
    ) -> list[dict]:
        """One item per upload, in order: known ones from the database, the rest through the model."""
        top_k = self._top_k(top_k)
        outcomes = self._ingest(classifier, [(upload.file_name, upload.file) for upload in uploads], top_k, added_by)
        return [
            _item(o.index, o.name, self._answer(o, top_k)) if o.ok else _refused(o.index, o.name, o.error)
            for o in outcomes
        ]

    def history(self, cid: str) -> dict | None:
        """A stored photo's predictions and reviews, or None when unknown."""
        with session_scope(self.engine) as session:
            summary = image_summary(session, cid)
            events = image_history(session, cid) if summary is not None else None
        if summary is None:
            return None
        return {
            "id": summary.content_id,
            "file_name": summary.file_name,
            "source": summary.source,
            "added_by": summary.added_by,
            "added_at": summary.added_at,
            "width": summary.width,
            "height": summary.height,
            "format": summary.format,
            "review": review_of(summary),
            "predictions": [_prediction_event(e) for e in events if e["kind"] == "prediction"],
            "reviews": [_review_event(e) for e in events if e["kind"] == "review"],
        }

    def similar(self, cid: str, k: int) -> dict | None:
        """A stored photo's k most similar stored photos with their labels, or None when the photo is unknown."""
        with session_scope(self.engine) as session:
            summary = image_summary(session, cid)
        if summary is None:
            return None
        neighbours = moderation.similar_photos(self.engine, summary, k)
        return {
            "id": summary.content_id,
            "fingerprint": summary.fingerprint,
            "indexed": neighbours is not None,
            "similar": [
                {
                    "id": n.photo.content_id,
                    "score": n.score,
                    "label": n.photo.final_label or n.photo.predicted_label,
                    "predicted_label": n.photo.predicted_label,
                    "review": review_of(n.photo),
                }
                for n in neighbours or []
            ],
        }

    def _ingest(self, classifier: Classifier, photos: list, top_k: int, added_by: str) -> list[IngestOutcome]:
        return ingest_in_order(
            self.engine,
            self.settings,
            classifier,
            photos,
            source=SOURCE,
            added_by=added_by,
            top_k=self._stored_top_k(top_k),
        )

    def _answer(self, outcome: IngestOutcome, top_k: int) -> dict:
        photo = outcome.photo
        if outcome.status == "stored":
            prediction = outcome.result.to_dict()
        else:  # known: as this model classified it before, without running it again
            prediction = {
                "class_scores": photo.scores,
                "highest_probability_class": photo.predicted_label,
                "uncertain": bool(photo.uncertain),
                "model": {"id": photo.model_id, "fingerprint": photo.fingerprint},
            }
        # A photo stored earlier by another model may already carry a moderator's decision.
        body = answer(outcome.content_id, prediction, top_k, known=outcome.status == "known", review=review_of(photo))
        return {**body, "near_duplicates": list(outcome.near_duplicates)}

    def _top_k(self, top_k: int | None) -> int:
        return self.settings.top_k if top_k is None else top_k

    def _stored_top_k(self, top_k: int) -> int:
        # The stored prediction serves the dashboard and later API calls too: keep at least
        # FOODCLF_TOP_K scores whatever this caller asked for (0 means all, and wins).
        if top_k == 0 or self.settings.top_k == 0:
            return 0
        return max(top_k, self.settings.top_k)


def answer(cid: str, prediction: dict, top_k: int, *, known: bool, review: dict | None) -> dict:
    """The /v1/classify response body, with the scores cut to what the caller asked for (0: all)."""
    scores = prediction["class_scores"]
    if top_k:
        scores = scores[:top_k]
    return {"id": cid, **prediction, "class_scores": scores, "known": known, "review": review}


def review_of(summary: ImageSummary | None) -> dict | None:
    """The decision in force on a photo, or None while it is unreviewed."""
    if summary is None or summary.current_review_id is None:
        return None
    return {
        "label": summary.final_label,
        "action": summary.action,
        "reviewer": summary.reviewed_by,
        "at": summary.reviewed_at,
    }


def _prediction_event(event: dict) -> dict:
    return {
        "class_scores": event["scores"],
        "highest_probability_class": event["label"],
        "uncertain": event["uncertain"],
        "model": {"id": event["model_id"], "fingerprint": event["fingerprint"]},
        "at": event["at"],
    }


def _review_event(event: dict) -> dict:
    return {
        "label": event["final_label"],
        "action": event["action"],
        "reviewer": event["reviewer"],
        "at": event["at"],
        "note": event["note"],
        "current": event["current"],
    }


def _item(index: int, name: str, result: dict) -> dict:
    return {"index": index, "file_name": name, "result": result, "error": None, "status": 200, "retry_after_s": None}


def _refused(index: int, name: str, err: FoodclfError) -> dict:
    status, code = describe_error(err)
    return {
        "index": index,
        "file_name": name,
        "result": None,
        "error": {"code": code, "message": str(err)},
        "status": status,
        # As the single path's Retry-After: a busy refusal (decode budget, database) is worth sending again.
        "retry_after_s": getattr(err, "retry_after", None),
    }
