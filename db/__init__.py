"""The feedback store: photos, predictions, moderators' decisions, statistics and export.

Query functions take a Session and never commit; frame the unit of work yourself:

    engine = open_database(settings)
    with session_scope(engine) as session:
        submit_review(session, image_id, action="confirmed", reviewer="alice", expected_review_id=None)
"""

from db.engine import close_database, open_database, session_scope, upgrade_database
from db.export import (
    EXPORT_COLUMNS, ExportRow, export_counts, export_rows, write_csv, write_imagefolder, write_jsonl,
)
from db.labels import known_labels
from db.models import ImageRow, PredictionRow, ReviewRow, TrainedModel
from db.queue import Page, browse_images, count_images, count_queue, review_queue
from db.records import (
    ImageSummary, find_image, image_history, image_summary, record_image, record_prediction,
)
from db.registry import active_model, list_models, register_model, set_active_model
from db.reviews import submit_review, undo_last_review

__all__ = [
    "EXPORT_COLUMNS", "ExportRow", "ImageRow", "ImageSummary", "Page", "PredictionRow", "ReviewRow",
    "TrainedModel", "active_model", "browse_images", "close_database", "count_images", "count_queue",
    "export_counts", "export_rows", "find_image", "image_history", "image_summary", "known_labels",
    "list_models", "open_database", "record_image", "record_prediction", "register_model", "review_queue",
    "session_scope",
    "set_active_model", "submit_review", "undo_last_review", "upgrade_database", "write_csv",
    "write_imagefolder", "write_jsonl",
]
