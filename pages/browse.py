"""Browse: every stored photo as a thumbnail gallery, filtered, with a detail view and its full history."""

from __future__ import annotations

import streamlit as st

from db.queue import BrowseFilters
from foodclf import moderation
from foodclf.labels import display_label
from ui import access, cache, dates, decisions, guards, messages, navigation, photo_card, similar

navigation.ensure_routed()  # a page opened first on a fresh server routes through dashboard.py
access.require_page("browse")  # signed in, and a role that includes this page; else a refusal and a stop

SELECTED = "browse_selected"  # the image id whose details are open
CURSORS = "browse_cursors"  # the `after` cursor of each page visited, so "Newer" can step back
FILTER_KEY = "browse_filter_key"  # the filters the cursors belong to
PAGE_SIZE = 24
COLUMNS = 6
STATUS = {None: "All photos", False: "Not reviewed yet", True: "Reviewed"}
BADGES = {
    "confirmed": ":green-badge[:material/check: Confirmed]",
    "corrected": ":violet-badge[→ {label}]",
    "not_food": ":gray-badge[Not food]",
    None: ":orange-badge[To review]",
}


def _select(image_id) -> None:
    st.session_state[SELECTED] = image_id


def _page(step: int, next_after=None) -> None:
    cursors = st.session_state[CURSORS]
    if step > 0:
        cursors.append(next_after)
    elif len(cursors) > 1:
        cursors.pop()


def _filters(labels: list[str]) -> BrowseFilters:
    with st.expander("Filters", icon=":material/filter_list:", expanded=True):
        cols = st.columns([1.1, 1.1, 0.9, 1.6])  # the date range needs ~240 px for "yyyy-mm-dd – yyyy-mm-dd"
        predicted = cols[0].selectbox(
            "Predicted category",
            labels,
            index=None,
            key="b_predicted",
            format_func=display_label,
            placeholder="Any category",
        )
        final = cols[1].selectbox(
            "Decided category", labels, index=None, key="b_final", format_func=display_label, placeholder="Any category"
        )
        reviewed = cols[2].selectbox("Status", list(STATUS), key="b_status", format_func=STATUS.get)
        since, until = dates.date_range(
            cols[3].date_input("Added between", value=(), key="b_dates", format="YYYY-MM-DD")
        )
    return BrowseFilters(predicted_label=predicted, final_label=final, reviewed=reviewed, since=since, until=until)


def _details(engine, image_id: int, labels: list[str]) -> None:
    photo, events = moderation.photo_details(engine, image_id)
    if photo is None:
        st.session_state[SELECTED] = None
        return
    with st.container(border=True):
        head = st.columns([6, 1], vertical_alignment="center")
        head[0].subheader(photo.file_name, anchor=False)
        head[1].button(
            "Close", key="detail_close", icon=":material/close:", on_click=_select, args=(None,), width="stretch"
        )
        photo_card.photo_card(
            photo,
            key=f"b_{photo.image_id}",
            labels=labels,
            max_height=480,
            caption=f"{photo.width} × {photo.height} px · {photo.format} · added "
            f"{photo.added_at:%Y-%m-%d %H:%M} UTC by {photo.added_by} ({photo.source})  \n"
            f"Content id `{photo.content_id[:16]}…`",
        )
        similar.similar_panel(photo, key=f"b_{photo.image_id}")
        st.markdown("**History**")
        photo_card.history_table(events)


def _tile(photo, image_dir: str) -> None:
    with st.container(border=True):
        thumb = cache.thumbnail(image_dir, photo.stored_path, 320)
        if thumb is not None:
            st.image(thumb, width="stretch")
        else:
            st.caption(":material/hide_image: file missing")
        score = f" · {photo.predicted_score:.0%}" if photo.predicted_score is not None else ""
        st.markdown(f"**{display_label(photo.predicted_label or '?')}**{score}")
        badge = BADGES.get(photo.action, BADGES[None])
        st.markdown(badge.format(label=display_label(photo.final_label or "")))
        st.button(
            "Details",
            key=f"open_{photo.image_id}",
            on_click=_select,
            args=(photo.image_id,),
            type="tertiary",
            icon=":material/open_in_full:",
        )


st.session_state.setdefault(SELECTED, None)
st.session_state.setdefault(CURSORS, [None])

st.title("Browse photos")
messages.show_flash()
engine = guards.engine_or_stop()
labels = cache.known_labels()
filters = _filters(labels)
if st.session_state.get(FILTER_KEY) != filters:  # new filters start at page 1
    st.session_state[FILTER_KEY] = filters
    st.session_state[CURSORS] = [None]

if st.session_state[SELECTED] is not None:
    _details(engine, st.session_state[SELECTED], labels)

cursors = st.session_state[CURSORS]
photos, next_after, total = moderation.browse_page(engine, filters, after=cursors[-1], limit=PAGE_SIZE)
if not photos:
    if total == 0 and filters == BrowseFilters():
        st.info(
            "No photos stored yet. Upload some on the Classify page or run `python -m foodclf ingest DIR`.",
            icon=":material/photo_library:",
        )
    else:
        st.info("No photos match these filters.", icon=":material/filter_list:")
else:
    first = (len(cursors) - 1) * PAGE_SIZE + 1
    st.caption(f"Photos {first:,}–{first + len(photos) - 1:,} of {total:,}, newest first")
    image_dir = cache.settings().image_dir
    for start in range(0, len(photos), COLUMNS):
        for col, photo in zip(st.columns(COLUMNS), photos[start : start + COLUMNS]):
            with col:
                _tile(photo, image_dir)
    pager = st.columns([1, 1, 4])
    pager[0].button(
        "Newer",
        key="page_newer",
        icon=":material/chevron_left:",
        disabled=len(cursors) == 1,
        on_click=_page,
        args=(-1,),
        width="stretch",
    )
    pager[1].button(
        "Older",
        key="page_older",
        icon=":material/chevron_right:",
        disabled=next_after is None,
        on_click=_page,
        args=(1, next_after),
        width="stretch",
    )

decisions.mark_drawn()  # last: the photos drawn above count as on screen from now
