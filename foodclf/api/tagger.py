"""The work behind the endpoints: known photo -> stored answer; new photo -> model, then store.

Runs in worker threads (the endpoints hand it over with run_in_threadpool); the model's
forward pass is serialised by the Classifier's own lock.
"""

from __future__ import annotations

from sqlalchemy import and_

from db.engine import close_database, open_database, session_scope
from db.models import ImageRow, PredictionRow
from db.records import ImageSummary, image_history, image_summary, summary_select, to_summary
from foodclf.api.errors import describe_error
from foodclf.api.uploads import Upload
from foodclf.classifier import ClassificationResult, Classifier
from foodclf.errors import FoodclfError
from foodclf.images import LoadedImage, content_id, decode_image
from foodclf.ingest import store_upload
from foodclf.settings import Settings

SOURCE = "api"


class Tagger:
    """Classifies uploads and records them where the dashboard's review queue finds them."""

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

    def classify_one(self, classifier: Classifier, name: str, data: bytes, top_k: int | None,
                     added_by: str) -> dict:
        """One photo's answer; raises ImageRejected (or a subclass) for a refused file, storing nothing."""
        top_k = self._top_k(top_k)
        known = self.known_answer(content_id(data), classifier, top_k)
        if known is not None:
            return known
        loaded = decode_image(data, name=name, max_pixels=self.settings.max_pixels)
        result = classifier.classify_image(loaded.image, self._stored_top_k(top_k))
        return self._store(loaded, result, top_k, added_by)

    def classify_batch(self, classifier: Classifier, uploads: list[Upload], top_k: int | None,
                       added_by: str) -> list[dict]:
        """One item per upload, in order: known ones from the database, the rest through the batch path."""
        top_k = self._top_k(top_k)
        items: list[dict | None] = [None] * len(uploads)
        places: dict[int, int] = {}  # id() of a source handed to classify_many -> its index

        def fresh():
            for index, upload in enumerate(uploads):
                try:
                    data = upload.read(self.settings.max_upload_bytes)
                except FoodclfError as err:
                    items[index] = _refused(index, upload.file_name, err)
                    continue
                known = self.known_answer(content_id(data), classifier, top_k)
                if known is not None:
                    items[index] = _item(index, upload.file_name, known)
                    continue
                source = (upload.file_name, data)
                places[id(source)] = index
                yield source

        for outcome in classifier.classify_many(fresh(), top_k=self._stored_top_k(top_k)):
            index = places.pop(id(outcome.source))
            name = outcome.source[0]
            if outcome.ok:
                items[index] = _item(index, name, self._store(outcome.loaded, outcome.result, top_k, added_by))
            else:
                items[index] = _refused(index, name, outcome.error)
        return items

    def known_answer(self, cid: str, classifier: Classifier, top_k: int) -> dict | None:
        """The stored answer for a photo already classified by this model (same fingerprint), or None."""
        by_this_model = and_(PredictionRow.image_id == ImageRow.id,
                             PredictionRow.fingerprint == classifier.fingerprint)
        with session_scope(self.engine) as session:
            row = session.execute(
                summary_select(by_this_model, inner=True).where(ImageRow.content_id == cid)
            ).one_or_none()
        if row is None:
            return None
        summary = to_summary(row)
        prediction = {
            "class_scores": summary.scores,
            "highest_probability_class": summary.predicted_label,
            "uncertain": bool(summary.uncertain),
            "model": {"id": summary.model_id, "fingerprint": summary.fingerprint},
        }
        return answer(cid, prediction, top_k, known=True, review=review_of(summary))

    def history(self, cid: str) -> dict | None:
        """A stored photo's predictions and reviews, or None when unknown."""
        with session_scope(self.engine) as session:
            summary = image_summary(session, cid)
            events = image_history(session, cid) if summary is not None else None
        if summary is None:
            return None
        return {
            "id": summary.content_id, "file_name": summary.file_name, "source": summary.source,
            "added_by": summary.added_by, "added_at": summary.added_at, "width": summary.width,
            "height": summary.height, "format": summary.format, "review": review_of(summary),
            "predictions": [_prediction_event(e) for e in events if e["kind"] == "prediction"],
            "reviews": [_review_event(e) for e in events if e["kind"] == "review"],
        }

    def _store(self, loaded: LoadedImage, result: ClassificationResult, top_k: int,
               added_by: str) -> dict:
        # The dashboard's own path: bytes into the image store, image and prediction rows, one commit.
        with session_scope(self.engine) as session:
            store_upload(session, self.settings, loaded, result, source=SOURCE, added_by=added_by)
            summary = image_summary(session, loaded.content_id)
        # A photo stored earlier by another model may already carry a moderator's decision.
        return answer(loaded.content_id, result.to_dict(), top_k, known=False, review=review_of(summary))

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


def review_of(summary: ImageSummary) -> dict | None:
    """The decision in force on a photo, or None while it is unreviewed."""
    if summary.current_review_id is None:
        return None
    return {"label": summary.final_label, "action": summary.action, "reviewer": summary.reviewed_by,
            "at": summary.reviewed_at}


def _prediction_event(event: dict) -> dict:
    return {
        "class_scores": event["scores"], "highest_probability_class": event["label"],
        "uncertain": event["uncertain"], "model": {"id": event["model_id"], "fingerprint": event["fingerprint"]},
        "at": event["at"],
    }


def _review_event(event: dict) -> dict:
    return {"label": event["final_label"], "action": event["action"], "reviewer": event["reviewer"],
            "at": event["at"], "note": event["note"], "current": event["current"]}


def _item(index: int, name: str, result: dict) -> dict:
    return {"index": index, "file_name": name, "result": result, "error": None, "status": 200}


def _refused(index: int, name: str, err: FoodclfError) -> dict:
    status, code = describe_error(err)
    return {"index": index, "file_name": name, "result": None,
            "error": {"code": code, "message": str(err)}, "status": status}
