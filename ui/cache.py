"""Cached handles every page shares: settings, the classifier, the database engine, statistics.

`st.cache_resource` keeps one model and one engine per server process (shared by every
moderator); figures use `st.cache_data` with a short TTL and are cleared after each save.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date
from typing import Optional

import streamlit as st

from db.engine import open_database
from foodclf import agreement, export, guidelines, insights, jobs, model_registry, moderation, thumbnails, trends
from foodclf.classifier import Classifier, forget_classifiers, load_classifier
from foodclf.errors import ModelUnavailable
from foodclf.images import configure_decode_budget
from foodclf.settings import Settings, load_settings

log = logging.getLogger("foodclf.dashboard")

STATS_TTL = 60  # seconds: fresh enough for product staff, cheap at a million rows


def settings() -> Settings:
    """This process's settings (load_settings is the one place that reads the environment)."""
    settings = load_settings()
    configure_decode_budget(settings)  # every upload's decode in this server draws on it
    return settings


# ---- the database ---------------------------------------------------------------------------


@st.cache_resource(show_spinner="Opening the database…")
def _engine(database_url: str):
    return open_database(database_url)  # also brings the schema up to date


def engine():
    """The engine for FOODCLF_DATABASE_URL, opened (and migrated) once per process.

    Raises:
        FoodclfError: the database cannot be opened or upgraded.
    """
    return _engine(settings().database_url)


# ---- the classifier -------------------------------------------------------------------------


@st.cache_resource(show_spinner=False, max_entries=2)  # as foodclf.classifier.KEEP_MODELS: no pile-up
def _model_load(model: str, _settings: Settings) -> Future:
    """Start loading the model in a thread, once per process: pages that don't need it stay usable."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="foodclf-model-load")
    future = pool.submit(load_classifier, _settings, model)
    pool.shutdown(wait=False)  # the thread ends when the load does
    return future


@st.cache_data(ttl=STATS_TTL, show_spinner=False)
def _active_model_name(database_url: str, default_model: str, _settings: Settings) -> str:
    # Keyed by the two settings it reads; a TTL, so a model activated from the CLI is picked up too.
    return model_registry.active_model_name(_settings)


UNKNOWN_MODEL = (
    "The database cannot say which model is in use, so nothing is classified until it can (classifying "
    "with another model would store its answers as the team's). The details are in the server log."
)


def model_name() -> str:
    """The model in use: the active trained model, else FOODCLF_MODEL.

    Raises:
        ModelUnavailable: the database cannot be read; never a silent guess at the model.
    """
    current = settings()
    try:
        return _active_model_name(current.database_url, current.model, current)
    except Exception as err:  # noqa: BLE001  (any database failure: said and logged, never guessed past)
        log.error("cannot read the active model from %s", current.database_url, exc_info=err)
        raise ModelUnavailable(UNKNOWN_MODEL) from err


def classifier(wait: bool = True) -> Optional[Classifier]:
    """The shared classifier; with wait=False, None while it is still loading.

    Raises:
        ModelUnavailable: the model cannot be loaded (the message says how to fix it).
    """
    future = _model_load(model_name(), settings())
    if not future.done():
        if not wait:
            return None
        with st.spinner("Loading the model — only the first time after the server starts…"):
            return future.result()
    return future.result()


def model_is_loading() -> bool:
    """True while the first load is still running (False when there is no model to wait for)."""
    try:
        name = model_name()
    except ModelUnavailable:
        return False  # classifier() says why
    return not _model_load(name, settings()).done()


def reload_model() -> None:
    """Forget the loaded model (after switching the active one, or to retry a failed load)."""
    forget_classifiers()
    _model_load.clear()
    _active_model_name.clear()


# ---- figures, cleared after each save -------------------------------------------------------


@st.cache_data(ttl=STATS_TTL, show_spinner="Counting…")
def stats(database_url: str, since: Optional[date], until: Optional[date]) -> dict:
    """Every figure of the Stats page for a date range (see foodclf.insights.stats_report)."""
    return insights.stats_report(_engine(database_url), since=since, until=until)


@st.cache_data(ttl=STATS_TTL, show_spinner=False)
def agreement_report(database_url: str, since: Optional[date], until: Optional[date]) -> dict:
    """Agreement between moderators over the second opinions given in the range (foodclf.agreement)."""
    return agreement.agreement_report(_engine(database_url), since=since, until=until)


@st.cache_data(ttl=STATS_TTL, show_spinner=False)
def week_trends(database_url: str, until: date) -> dict:
    """This week against the weeks before, up to `until` (see foodclf.trends.trends_report)."""
    config = settings()
    return trends.trends_report(
        _engine(database_url),
        until=until,
        below=config.uncertain_below,
        margin=config.uncertain_margin,
        limits=trends.DriftLimits(config.drift_uncertain_rise, config.drift_confidence_drop),
    )


@st.cache_data(ttl=STATS_TTL, show_spinner=False)
def labels(database_url: str, model_labels: tuple[str, ...]) -> list[str]:
    """Every category a moderator may pick (see foodclf.moderation.known_labels)."""
    return moderation.known_labels(_engine(database_url), list(model_labels))


@st.cache_data(ttl=STATS_TTL, show_spinner="Counting…")
def export_counts(database_url: str, filters: export.ExportFilters) -> dict[str, int]:
    """Rows per final label an export would hold."""
    return export.export_label_counts(_engine(database_url), filters)


@st.cache_data(ttl=STATS_TTL, show_spinner=False)
def decided_labels(database_url: str) -> dict[str, int]:
    """Photos per decided label (see foodclf.export.decided_labels)."""
    return export.decided_labels(_engine(database_url))


@st.cache_data(ttl=STATS_TTL, show_spinner=False)
def guideline(database_url: str, label: str) -> Optional[guidelines.Guide]:
    """A category's guideline (see foodclf.guidelines); cleared when an admin saves one."""
    return guidelines.read_guideline(_engine(database_url), label)


def clear_stats(new_label: bool = False) -> None:
    """Forget cached figures after a decision, so Stats and Export show it at once.

    The label list is only recounted when a correction may have added a label: at a million
    photos that count is the slow part.
    """
    stats.clear()
    export_counts.clear()
    decided_labels.clear()
    if new_label:
        labels.clear()


def known_labels() -> list[str]:
    """Every category a moderator may pick; the model's labels join once it has loaded."""
    try:
        loaded = classifier(wait=False)
    except Exception:  # noqa: BLE001  (no model: stored labels are still worth offering)
        loaded = None
    return labels(settings().database_url, tuple(loaded.labels) if loaded else ())


# ---- long runs ------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def training_job() -> jobs.BackgroundJob:
    """The server's one training run: it goes on across pages and sessions, and everyone sees it."""
    return jobs.BackgroundJob("foodclf-training")


# ---- photos ---------------------------------------------------------------------------------


@st.cache_data(max_entries=4000, show_spinner=False)
def thumbnail(image_dir: str, stored_path: str, size: int = 160) -> Optional[bytes]:
    """A stored photo's JPEG thumbnail (stored paths are content ids, so no expiry is needed)."""
    return thumbnails.stored_thumbnail(image_dir, stored_path, size)


def thumbnail_url(image_dir: str, stored_path: str, size: int = 160) -> Optional[str]:
    """The thumbnail as a data URL, for a table's image column."""
    return thumbnails.data_url(thumbnail(image_dir, stored_path, size))
