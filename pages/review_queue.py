"""Review queue: the moderators' main screen. Least confident photos first, one at a time or as a grid."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from db.queue import QueueFilters
from foodclf import moderation
from foodclf.errors import FoodclfError
from foodclf.labels import display_label
from foodclf.moderation import Decision
from ui import access, cache, dates, decisions, guards, identity, messages, navigation, photo_card, similar

navigation.ensure_routed()  # a page opened first on a fresh server routes through dashboard.py
access.require_page("review")  # signed in, and a role that includes this page; else a refusal and a stop

SKIPPED = "queue_skipped"  # image ids skipped this session: the queue moves past them
FOCUS = "queue_focus"  # an image shown before the queue's next (after an undo or a conflict)
MODE = "queue_mode"
GRID_VERSION = "queue_grid_version"  # a new editor key clears its ticks after a save
GRID_ALL = "queue_grid_all"
GRID_SIZE = "queue_grid_size"
ORDER = "q_order"  # the queue strategy: a key of moderation.QUEUE_ORDERS
ROW_HEIGHT = 88  # px: a thumbnail big enough to judge a dish by
ONE, GRID = "One at a time", "Grid"
SOURCES = {None: "Any source", "upload": "Uploaded here", "folder": "Folder ingest", "api": "API"}


# ---- callbacks (run before the next script run) ---------------------------------------------


def _after_decision(saved: moderation.Saved) -> None:
    if saved.action == "skipped":
        st.session_state[SKIPPED].add(saved.summary.image_id)
    st.session_state[FOCUS] = None  # the next photo comes up by itself


def _after_conflict(photo) -> None:
    st.session_state[FOCUS] = photo.image_id  # show it again, as it is now, to judge again


def _undo() -> None:
    reviewer = identity.acting_as("decide")  # checked again at the click: a refusal is flashed
    if reviewer is None:
        return
    try:
        undone = moderation.undo_last(cache.engine(), reviewer)
    except FoodclfError as err:  # ReviewConflict: someone decided since; theirs stands
        messages.flash("warning", str(err))
        return
    except Exception as err:  # noqa: BLE001
        messages.flash("error", messages.unexpected(err, "undoing a decision"))
        return
    if undone is None:
        messages.flash("info", "Nothing of yours to undo.")
        return
    cache.clear_stats()
    st.session_state[SKIPPED].discard(undone.summary.image_id)
    st.session_state[FOCUS] = undone.summary.image_id
    messages.flash("success", f"Undone: {moderation.describe(undone)}. The photo is back for you to judge.")


def _leave_focus() -> None:
    st.session_state[FOCUS] = None


def _show_skipped_again() -> None:
    st.session_state[SKIPPED] = set()


def _confirm_ticked(photos: list, editor_key: str) -> None:
    """Confirm every ticked row of the grid; conflicts are reported, the rest are saved."""
    reviewer = identity.acting_as("decide")  # checked again at the click: a refusal is flashed
    if reviewer is None:
        return
    edits = st.session_state.get(editor_key, {}).get("edited_rows", {})
    default = st.session_state.get(GRID_ALL, False)
    ticked = [photo for row, photo in enumerate(photos) if edits.get(row, {}).get("confirm", default)]
    saved, conflicts = 0, []
    for photo in ticked:
        try:
            moderation.save_decision(cache.engine(), photo, Decision("confirmed"), reviewer=reviewer)
            saved += 1
        except FoodclfError as err:
            conflicts.append(f"{photo.file_name}: {err}")
        except Exception as err:  # noqa: BLE001
            conflicts.append(f"{photo.file_name}: {messages.unexpected(err, 'confirming from the grid')}")
    cache.clear_stats()
    st.session_state[GRID_VERSION] += 1
    st.session_state[GRID_ALL] = False
    if saved:
        messages.flash("success", f"Confirmed {saved} photo{'s' * (saved != 1)}")
    if conflicts:
        messages.flash("warning", "Not saved:\n\n" + "\n\n".join(f"- {line}" for line in conflicts))


def _tick_all(value: bool) -> None:
    st.session_state[GRID_ALL] = value
    st.session_state[GRID_VERSION] += 1


# ---- drawing --------------------------------------------------------------------------------


def _filters(labels: list[str]) -> QueueFilters:
    with st.expander("Filters", icon=":material/filter_list:"):
        cols = st.columns([1.2, 1.2, 1.7, 0.9])  # the date range needs ~240 px for "yyyy-mm-dd – yyyy-mm-dd"
        label = cols[0].selectbox(
            "Predicted category",
            labels,
            index=None,
            key="q_label",
            format_func=display_label,
            placeholder="Any category",
        )
        low, high = cols[1].slider("Confidence", 0.0, 1.0, (0.0, 1.0), step=0.05, key="q_score", format="percent")
        since, until = dates.date_range(
            cols[2].date_input("Added between", value=(), key="q_dates", format="YYYY-MM-DD")
        )
        source = cols[3].selectbox("Source", list(SOURCES), key="q_source", format_func=SOURCES.get)
        st.selectbox("Show first", list(moderation.QUEUE_ORDERS), key=ORDER, format_func=moderation.QUEUE_ORDERS.get)
    return QueueFilters(
        predicted_label=label,
        min_score=low if low > 0 else None,
        max_score=high if high < 1 else None,
        since=since,
        until=until,
        source=source,
    )


def _one_at_a_time(engine, filters: QueueFilters, labels: list[str]) -> None:
    focus = st.session_state[FOCUS]
    photo = moderation.refresh(engine, focus) if focus is not None else None
    if photo is None:
        photo = moderation.next_in_queue(
            engine,
            filters,
            exclude=frozenset(st.session_state[SKIPPED]),
            order=st.session_state.get(ORDER, "least_confident"),
        )
    if photo is None:
        _empty_state(filters)
        return
    with st.container(border=True):
        added = photo.added_at.strftime("%Y-%m-%d")
        right = photo_card.photo_card(
            photo,
            key=f"q_{photo.image_id}",
            labels=labels,
            on_saved=_after_decision,
            on_conflict=_after_conflict,
            shortcuts=True,
            caption=f"{photo.file_name} · added {added} by {photo.added_by} · {SOURCES.get(photo.source)}",
        )
        with right:
            similar.near_duplicate_notice(
                photo, key=f"q_{photo.image_id}", on_saved=_after_decision, on_conflict=_after_conflict
            )
        if focus is not None:
            right.button(
                "Back to the queue", key="leave_focus", on_click=_leave_focus, icon=":material/undo:", type="tertiary"
            )
    similar.similar_panel(photo, key=f"q_{photo.image_id}")
    st.caption(
        "Keys: **Y** confirm · **1–5** a candidate · **N** not food · **S** skip · **D** as its near-duplicate · "
        "**U** undo · **/** search categories · **?** all keys"
    )


def _grid(engine, filters: QueueFilters, size: int) -> None:
    photos = moderation.queue_page(
        engine,
        filters,
        limit=size,
        exclude=frozenset(st.session_state[SKIPPED]),
        order=st.session_state.get(ORDER, "least_confident"),
    )
    if not photos:
        _empty_state(filters)
        return
    image_dir = cache.settings().image_dir
    table = pd.DataFrame(
        {
            "photo": [cache.thumbnail_url(image_dir, p.stored_path) for p in photos],
            "predicted": [display_label(p.predicted_label or "") for p in photos],
            "confidence": [p.predicted_score or 0.0 for p in photos],
            "uncertain": [bool(p.uncertain) for p in photos],
            "file": [p.file_name for p in photos],
            "confirm": [st.session_state[GRID_ALL]] * len(photos),
        }
    )
    editor_key = f"queue_grid_{st.session_state[GRID_VERSION]}"
    edited = st.data_editor(
        table,
        key=editor_key,
        hide_index=True,
        width="stretch",
        row_height=ROW_HEIGHT,
        height=40 + ROW_HEIGHT * min(len(table), 8),
        disabled=["photo", "predicted", "confidence", "uncertain", "file"],
        column_config={
            "photo": st.column_config.ImageColumn("Photo", width="small"),
            "predicted": st.column_config.TextColumn("Model's answer"),
            "confidence": st.column_config.ProgressColumn("Confidence", format="percent", min_value=0, max_value=1),
            "uncertain": st.column_config.CheckboxColumn("Uncertain"),
            "file": st.column_config.TextColumn("File"),
            "confirm": st.column_config.CheckboxColumn("Confirm?", help="Tick the photos whose answer is right."),
        },
    )
    ticked = int(edited["confirm"].sum())
    disabled = identity.current_reviewer() is None or ticked == 0
    cols = st.columns([1.4, 1, 1, 2.6])
    cols[0].button(
        f"Confirm {ticked} ticked",
        key="grid_confirm",
        type="primary",
        icon=":material/done_all:",
        disabled=disabled,
        on_click=_confirm_ticked,
        args=(photos, editor_key),
        width="stretch",
    )
    cols[1].button("Tick all", key="grid_all", on_click=_tick_all, args=(True,), width="stretch")
    cols[2].button("Clear", key="grid_none", on_click=_tick_all, args=(False,), width="stretch")


def _empty_state(filters: QueueFilters) -> None:
    skipped = len(st.session_state[SKIPPED])
    if filters != QueueFilters():
        st.info("No unreviewed photos match these filters. Widen them to see more.", icon=":material/filter_list:")
    else:
        st.success("Queue is empty — nothing to review.", icon=":material/task_alt:")
    if skipped:
        st.button(
            f"Show the {skipped} photo{'s' * (skipped != 1)} you skipped again",
            key="unskip",
            on_click=_show_skipped_again,
        )


st.session_state.setdefault(SKIPPED, set())
st.session_state.setdefault(FOCUS, None)
st.session_state.setdefault(GRID_VERSION, 0)
st.session_state.setdefault(GRID_ALL, False)

st.title("Review queue")
reviewer = identity.identity_prompt()
messages.show_flash()
engine = guards.engine_or_stop()
labels = cache.known_labels()
filters = _filters(labels)

left = moderation.queue_count(engine, filters, order=st.session_state.get(ORDER, "least_confident"))
# One row that wraps: on a phone the count and the view share a line, so the photo comes up sooner.
top = st.container(horizontal=True, vertical_alignment="center", horizontal_alignment="distribute")
skipped = len(st.session_state[SKIPPED])
top.metric(
    "Left to review",
    f"{left:,}",
    border=True,
    width="content",
    help=f"{skipped} of them skipped by you this session." if skipped else None,
)
mode = top.segmented_control("View", [ONE, GRID], default=ONE, key=MODE, label_visibility="collapsed")
size = None
if mode == GRID:  # None (the toggle clicked off) means one at a time
    size = top.selectbox("Photos per page", [12, 24, 48, 96], index=1, key=GRID_SIZE, width=160)
elif skipped:
    top.caption(f"{skipped} skipped by you this session", width="content")
top.button(
    "Undo my last",
    key="undo",
    icon=":material/undo:",
    on_click=_undo,
    shortcut="U",
    disabled=reviewer is None,
    width="content",
)

if size is not None:
    _grid(engine, filters, size)
else:
    _one_at_a_time(engine, filters, labels)

decisions.mark_drawn()  # last: the photos drawn above count as on screen from now
