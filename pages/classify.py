"""Classify: upload photos, see what the model says about each, confirm or correct it at once."""

from __future__ import annotations

import functools
import math

import streamlit as st

from foodclf import moderation
from foodclf.images import ACCEPTED_EXTENSIONS
from ui import access, cache, decisions, guards, identity, messages, navigation, photo_card
from ui.uploads import UploadOutcome, classify_uploads

navigation.ensure_routed()  # a page opened first on a fresh server routes through dashboard.py
access.require_page("classify")  # signed in, and a role that includes this page; else a refusal and a stop

OUTCOMES = "classify_outcomes"  # uploader file id -> UploadOutcome, so a rerun never classifies twice
UPLOADER = "classify_upload"
FILE_TYPES = [ext.lstrip(".") for ext in ACCEPTED_EXTENSIONS if ext != ".mpo"]  # jpg jpeg png webp gif


def _refresh(file_id: str, *_) -> None:
    """After a save or a conflict: reload the photo and its history (a decision callback)."""
    outcome: UploadOutcome = st.session_state[OUTCOMES][file_id]
    photo, history = moderation.photo_details(cache.engine(), outcome.photo.image_id)
    if photo is not None:
        outcome.photo, outcome.history = photo, history


def _classify_new(files, engine, reviewer: str) -> None:
    """Classify and store the files not seen yet this session, with a progress bar."""
    classifier = guards.classifier_or_stop()
    outcomes = st.session_state[OUTCOMES]
    bar = st.progress(0.0, text=f"Classifying {len(files)} photo{'s' * (len(files) != 1)}…")
    finished = []

    def step(outcome: UploadOutcome) -> None:
        finished.append(outcome)
        bar.progress(
            len(finished) / len(files), text=f"Classified {len(finished)} of {len(files)}: {outcome.file_name}"
        )

    try:
        results = classify_uploads(
            classifier,
            engine,
            cache.settings(),
            [(f.name, f.getvalue()) for f in files],
            added_by=reviewer,
            progress=step,
        )
    except Exception as err:  # noqa: BLE001  (a moderator sees one line; the log gets the traceback)
        bar.empty()
        st.error(messages.unexpected(err, "classifying uploads"))
        return
    for uploaded, outcome in zip(files, results):
        outcomes[uploaded.file_id] = outcome
    bar.empty()
    cache.clear_stats(new_label=True)  # new photos bring their predicted labels


def _card(file_id: str, outcome: UploadOutcome, labels: list[str]) -> None:
    if not outcome.ok:
        st.error(f"**{outcome.file_name}** was not classified: {outcome.error}", icon=":material/broken_image:")
        return
    photo = outcome.photo
    with st.container(border=True):
        refresh = functools.partial(_refresh, file_id)
        known = (
            (
                f"Already stored on {photo.added_at:%Y-%m-%d} by {photo.added_by}: showing what we know instead "
                "of classifying it again."
            )
            if outcome.known
            else None
        )
        photo_card.photo_card(
            photo,
            key=f"up_{file_id}",
            labels=labels,
            image=outcome.data,
            notice=known,
            on_saved=refresh,
            on_conflict=refresh,
            caption=f"{outcome.file_name} · {photo.width} × {photo.height} px",
        )
        with st.expander(f"History ({len(outcome.history)})", expanded=outcome.known, icon=":material/history:"):
            photo_card.history_table(outcome.history)


st.title("Classify photos")
st.caption("Upload food photos: each is classified, stored for review, and you can confirm or correct it at once.")
reviewer = identity.identity_prompt()
messages.show_flash()
engine = guards.engine_or_stop()
settings = cache.settings()
outcomes = st.session_state.setdefault(OUTCOMES, {})

files = st.file_uploader(
    "Photos (JPEG, PNG, WebP or GIF)",
    type=FILE_TYPES,
    accept_multiple_files=True,
    key=UPLOADER,
    max_upload_size=max(1, min(math.ceil(settings.max_upload_mb), st.get_option("server.maxUploadSize"))),
    disabled=reviewer is None,
    help="Photos you upload are stored with your name and appear in the review queue until decided.",
)
current = {uploaded.file_id: uploaded for uploaded in files or []}
for gone in set(outcomes) - set(current):  # removed from the uploader: forget it here too
    del outcomes[gone]
new = [uploaded for file_id, uploaded in current.items() if file_id not in outcomes]
if new and reviewer:
    _classify_new(new, engine, reviewer)

shown = [(file_id, outcomes[file_id]) for file_id in current if file_id in outcomes]
if not shown:
    st.info(
        "Drop photos above to classify them. Known photos show their history instead of being classified again.",
        icon=":material/add_photo_alternate:",
    )
else:
    refused = sum(not outcome.ok for _, outcome in shown)
    undecided = sum(outcome.ok and outcome.photo.current_review_id is None for _, outcome in shown)
    st.caption(
        f"{len(shown)} photo{'s' * (len(shown) != 1)} · {undecided} without a decision"
        + (f" · {refused} refused" if refused else "")
    )
    labels = cache.known_labels()
    for file_id, outcome in shown:
        _card(file_id, outcome, labels)

decisions.mark_drawn()  # last: the photos drawn above count as on screen from now
