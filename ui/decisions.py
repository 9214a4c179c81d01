"""The decision buttons for one photo, and what happens when one is pressed."""

from __future__ import annotations

import json
import time
from typing import Callable, Optional

import pandas as pd
import streamlit as st

from db.records import ImageSummary
from foodclf import moderation
from foodclf.errors import FoodclfError, ReviewConflict
from foodclf.labels import NOT_FOOD, display_label, model_label
from foodclf.moderation import Decision, Saved
from ui import cache
from ui.guidelines import guideline_note
from ui.identity import acting_as, current_reviewer
from ui.messages import flash, unexpected

CONFLICTS = "conflicts"  # image id -> the ReviewConflict message, shown on that photo once
CORRECTION_ERRORS = "correction_errors"  # controls key -> why a correction was not saved, shown by its button once
SHOWN_AT = "decision_shown_at"  # (controls key, image id, review id drawn with) -> time.monotonic() first on screen
DRAWING = "decision_drawing"  # the views this run draws, timed by mark_drawn() when it ends
SHOWN_KEPT = 200  # views remembered per session; older ones are forgotten
# Seconds a photo must have been on screen before a decision on it counts. The next photo can be
# drawn within ~50 ms of a click, and a double click's second click comes up to ~0.4-0.5 s after
# the first: without this it would decide on a photo nobody has looked at. No one judges a photo
# faster than this.
REACTION_S = 0.5
# The same guard in the browser, where the times are exact (the server sees a click only after its
# network and run queue): for REACTION_S after a new photo appears, a click on a button or a
# shortcut key is dropped before Streamlit sees it. The event's own timeStamp is when the person
# acted, even if the page was too busy to handle it at once.
_GUARD_JS = """<script>
(() => {
  const guard = window.foodclfGuard || (window.foodclfGuard = {seen: {}, changed: -1e9});
  const view = %(view)s;
  if (!(view in guard.seen)) guard.changed = guard.seen[view] = performance.now();
  if (guard.installed) return;
  guard.installed = true;
  const tooSoon = (event) => event.timeStamp - guard.changed < %(ms)d;
  const drop = (event) => {
    guard.dropped = (guard.dropped || 0) + 1;
    event.stopImmediatePropagation();
    event.preventDefault();
  };
  window.addEventListener("click", (event) => {
    if (tooSoon(event) && event.target.closest("button")) drop(event);
  }, true);
  window.addEventListener("keydown", (event) => {
    const typing = event.target.closest("input, textarea, [contenteditable=true]");
    const plain = event.key.length === 1 && !event.ctrlKey && !event.metaKey && !event.altKey;
    if (tooSoon(event) && plain && !typing) drop(event);
  }, true);
})();
</script>"""
LAST_DECISION = "decision_last_at"  # time.monotonic() of this session's latest decision callback
# Callbacks of one browser message run back to back (a few ms apart); a key pressed as the page
# changes can reach the old photo's button and the new one's in one message: the later is dropped.
SAME_INPUT_S = 0.05


OnSaved = Callable[[Saved], None]
OnConflict = Callable[[ImageSummary], None]


def decision_buttons(
    key: str,
    photo: ImageSummary,
    *,
    on_saved: Optional[OnSaved] = None,
    on_conflict: Optional[OnConflict] = None,
    shortcuts: bool = False,
) -> None:
    """Confirm / Not food / Skip for one photo; each saves at once.

    The buttons use callbacks, which run before the next script run: a page redraws with the
    decision already saved (the queue advances at once instead of flashing the old photo).
    A person whose role does not include decisions (a viewer) gets no buttons at all.
    A page that draws these calls mark_drawn() as its last line, so a click on a photo just shown
    can be told apart.
    """
    if current_reviewer() is None:
        st.caption(":material/visibility: Read only: your role does not include recording decisions.")
        return
    disabled = not photo.scores
    top = photo.predicted_label or ""
    _remember_drawn(key, photo)
    # Bound now, as drawn: a click queued while the page reruns still means this photo in this state.
    context = (key, photo, on_saved, on_conflict)
    st.button(
        f"Confirm: {display_label(top)}" if top else "Confirm",
        key=f"{key}_confirm",
        type="primary",
        icon=":material/check:",
        disabled=disabled,
        on_click=_decide,
        args=(Decision("confirmed"), *context),
        shortcut="Y" if shortcuts else None,
        width="stretch",
    )
    # Side by side even on a phone: short labels, and the row stays right under the photo.
    buttons = st.columns(2, wrap=False)
    buttons[0].button(
        "Not food",
        key=f"{key}_not_food",
        icon=":material/no_food:",
        disabled=disabled,
        on_click=_decide,
        args=(Decision("not_food", NOT_FOOD), *context),
        shortcut="N" if shortcuts else None,
        width="stretch",
    )
    buttons[1].button(
        "Skip",
        key=f"{key}_skip",
        icon=":material/skip_next:",
        disabled=disabled,
        on_click=_decide,
        args=(Decision("skipped"), *context),
        shortcut="S" if shortcuts else None,
        width="stretch",
        help="Saved as skipped: the photo stays in the queue for someone else.",
    )
    if shortcuts:
        candidate_buttons(key, photo, context[2:])
        st.html(_KEYS_JS, unsafe_allow_javascript=True)
        if st.button("All keys", key=f"{key}_keys", icon=":material/keyboard:", type="tertiary"):
            keys_dialog()
    guideline_note(model_label(top) if top else None)  # how to tell the model's answer apart


CANDIDATE_KEYS = "12345"
# The keys Streamlit's shortcuts cannot take ("/" and "?" are not letters or digits), in the browser:
# "/" puts the cursor in the category search, "?" opens the list of keys. Installed once per page;
# nothing fires while the moderator types in a field, or with a modifier held (browser shortcuts).
_KEYS_JS = """<script>
(() => {
  if (window.foodclfKeys) return;
  window.foodclfKeys = true;
  window.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest("input, textarea, select, [contenteditable=true]")) return;
    if (event.key === "/") {
      const search = document.querySelector('input[aria-label="Correct to"]');
      if (search && !search.disabled) { event.preventDefault(); search.focus(); search.click(); }
    } else if (event.key === "?") {
      const open = [...document.querySelectorAll("button")].find((b) => b.innerText.trim().endsWith("All keys"));
      if (open) { event.preventDefault(); open.click(); }
    }
  });
})();
</script>"""
KEYS = [
    ("Y", "Confirm the model's answer"),
    ("1 – 5", "Choose that candidate (1 is the model's answer; the others save a correction)"),
    ("N", "Not food"),
    ("S", "Skip: the photo stays in the queue for someone else"),
    ("D", "The decision in force on a near-duplicate of this photo (offered when there is one)"),
    ("U", "Undo your last decision"),
    ("/", "Search every category (then Enter to pick, and Save correction)"),
    ("?", "This list"),
]


def candidate_buttons(key: str, photo: ImageSummary, callbacks: tuple) -> None:
    """The model's top five candidates as buttons, keys 1 to 5: one key saves that label.

    The first is the model's answer (saved as confirmed); any other saves a correction to it.
    """
    candidates = moderation.candidates(photo, len(CANDIDATE_KEYS))
    if not candidates:
        return
    st.caption("Or choose a candidate:")
    # A row that wraps: each button as wide as its whole name (long dish names are never cut off).
    row = st.container(horizontal=True, gap="small")
    for rank, label in enumerate(candidates):
        row.button(
            display_label(label),
            key=f"{key}_pick{rank + 1}",
            on_click=_decide,
            args=(moderation.correction(label, None), key, photo, *callbacks),
            shortcut=CANDIDATE_KEYS[rank],
            help=f"Key {CANDIDATE_KEYS[rank]}: save {display_label(label)}"
            + (" (the model's answer)" if rank == 0 else " as the correction"),
        )


@st.dialog("Keys")
def keys_dialog() -> None:
    """Every key of the review queue (opened by "?" or the All keys button)."""
    st.table(pd.DataFrame(KEYS, columns=["Key", "What it does"]).set_index("Key"))
    st.caption("Keys do nothing while you type in a field. A key pressed as a new photo appears is ignored.")


def decision_button(
    key: str,
    photo: ImageSummary,
    decision: Decision,
    text: str,
    *,
    on_saved: Optional[OnSaved] = None,
    on_conflict: Optional[OnConflict] = None,
    shortcut: Optional[str] = None,
    icon: Optional[str] = None,
) -> None:
    """One more button that saves `decision` on the photo as drawn, with the same guards as the others."""
    if current_reviewer() is None:
        return
    _remember_drawn(key, photo)
    st.button(
        text,
        key=f"{key}_{decision.action}_{decision.label}",
        icon=icon,
        on_click=_decide,
        args=(decision, key, photo, on_saved, on_conflict),
        shortcut=shortcut,
        width="stretch",
    )


def browser_guard(key: str, photo: ImageSummary) -> None:
    """The browser's half of the reaction-time guard for this view of the photo (see _GUARD_JS).

    Draw it before the photo and its buttons: the browser then starts timing the new photo before
    its buttons can be clicked. Its element is empty; put it in a container without gaps.
    """
    if REACTION_S > 0:
        view = json.dumps("/".join(map(str, _view(key, photo))))
        st.html(_GUARD_JS % {"view": view, "ms": int(REACTION_S * 1000)}, unsafe_allow_javascript=True)


def correction_controls(
    key: str,
    photo: ImageSummary,
    *,
    labels: list[str],
    on_saved: Optional[OnSaved] = None,
    on_conflict: Optional[OnConflict] = None,
) -> None:
    """Correct to a known category or a new one; a missing category is said right here, by the button."""
    if current_reviewer() is None:  # a viewer: decision_buttons said it is read only
        return
    disabled = not photo.scores
    st.selectbox(
        "Correct to",
        [label for label in labels if label != NOT_FOOD] + [NOT_FOOD],
        index=None,
        key=f"{key}_label",
        format_func=display_label,
        placeholder="Search every known category…",
        disabled=disabled,
    )
    guideline_note(st.session_state.get(f"{key}_label"))  # the picked category's guideline, before saving
    st.text_input("…or a new category", key=f"{key}_new", placeholder="e.g. Bao buns", disabled=disabled, max_chars=100)
    st.button(
        "Save correction",
        key=f"{key}_correct",
        icon=":material/edit:",
        disabled=disabled,
        width="stretch",
        on_click=_correct,
        args=(key, photo, on_saved, on_conflict),
    )
    problem = st.session_state.get(CORRECTION_ERRORS, {}).pop(key, None)
    if problem:
        st.error(problem, icon=":material/edit_off:")


def _view(key: str, photo: ImageSummary) -> tuple:
    """A photo in the state it was drawn in: the same photo after a new decision is a new view."""
    return (key, photo.image_id, photo.current_review_id)


def _remember_drawn(key: str, photo: ImageSummary) -> None:
    """Note that this run draws this view; mark_drawn() times it once the whole page is out."""
    if _view(key, photo) not in st.session_state.setdefault(SHOWN_AT, {}):
        st.session_state.setdefault(DRAWING, set()).add(_view(key, photo))


def mark_drawn() -> None:
    """The page's last line: the photos this run drew are on screen from now (first time only).

    Timed at the end of the run, not where the buttons are drawn: the browser shows the page as it
    arrives, and a click made while the run still goes on is handled only after it. A run cut short
    by that click never gets here, so its photos count as not yet seen.
    """
    shown = st.session_state.setdefault(SHOWN_AT, {})
    now = time.monotonic()
    for view in st.session_state.pop(DRAWING, set()):
        shown.setdefault(view, now)
    for old in list(shown)[:-SHOWN_KEPT]:  # dicts keep insertion order: the oldest go first
        del shown[old]


def _too_soon(key: str, photo: ImageSummary) -> bool:
    """True (with a notice) when this view of the photo has been on screen for less than REACTION_S."""
    if REACTION_S <= 0:
        return False
    view = _view(key, photo)
    shown = st.session_state.get(SHOWN_AT, {}).get(view)
    if shown is None and view not in st.session_state.get(DRAWING, set()):
        return False  # drawn by a page that does not time its photos: nothing to go by
    seen = 0.0 if shown is None else time.monotonic() - shown
    if seen >= REACTION_S:
        return False
    flash(
        "notice",
        f"Not saved: that click or key came {seen:.1f} s after this photo appeared, too soon to be meant "
        "for it. Look, then decide.",
    )
    return True


def _correct(key: str, photo: ImageSummary, on_saved, on_conflict) -> None:
    """The Correct button's callback: validate the chosen or typed category, then save."""
    try:
        decision = moderation.correction(st.session_state.get(f"{key}_label"), st.session_state.get(f"{key}_new"))
    except FoodclfError as err:  # UnknownCategory: said beside the button, where the moderator looks
        st.session_state.setdefault(CORRECTION_ERRORS, {})[key] = str(err)
        return
    _decide(decision, key, photo, on_saved, on_conflict)


def _decide(decision: Decision, key: str, photo: ImageSummary, on_saved, on_conflict) -> None:
    """Save one decision on the photo as drawn (a button callback); the outcome is flashed.

    Ignored: a decision on a photo shown for less than REACTION_S (the second click of a double
    click landing on the next photo), a second button reached by the same input, and the same
    decision again by the same person (saved once). A conflict is kept for its photo.
    """
    reviewer = acting_as("decide")  # checked again at the click, whatever the page showed; refusals are flashed
    if reviewer is None:
        return
    now, last = time.monotonic(), st.session_state.get(LAST_DECISION)
    st.session_state[LAST_DECISION] = now
    if last is not None and now - last < SAME_INPUT_S:
        return  # the same key press, reaching a second button
    if _too_soon(key, photo):
        return
    try:
        saved = moderation.save_decision(
            cache.engine(),
            photo,
            decision,
            reviewer=reviewer,
            second_opinion_share=cache.settings().second_opinion_share,
        )
    except ReviewConflict as err:
        st.session_state.setdefault(CONFLICTS, {})[photo.image_id] = str(err)
        if on_conflict is not None:
            on_conflict(photo)
        return
    except FoodclfError as err:
        flash("error", str(err))
        return
    except Exception as err:  # noqa: BLE001
        flash("error", unexpected(err, "saving a decision"))
        return
    if saved.repeat:  # a double click or a key pressed twice: the first one was saved and shown
        return
    cache.clear_stats(new_label=saved.action == "corrected")
    flash("success", moderation.describe(saved))
    if on_saved is not None:
        on_saved(saved)


def conflict_notice(photo: ImageSummary) -> None:
    """Show, once, that someone else decided on this photo first."""
    message = st.session_state.get(CONFLICTS, {}).pop(photo.image_id, None)
    if message:
        st.warning(message + " Its current state is shown below; decide again to replace it.", icon=":material/group:")
