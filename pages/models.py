"""Models: the models trained from moderators' reviews, which one is in use, and switching to another."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from foodclf import model_registry, promotion
from foodclf.engines import ENGINE_NAMES
from foodclf.errors import FoodclfError
from foodclf.export import ExportFilters
from foodclf.labels import display_label
from foodclf.training.train import TRAINING_BASES, train_from_reviews
from ui import access, cache, dates, guards, identity, messages, navigation

navigation.ensure_routed()  # a page opened first on a fresh server routes through dashboard.py
access.require_page("models")  # signed in, and a role that includes this page; else a refusal and a stop

BASE = 0  # the selectbox's value for "no trained model: FOODCLF_MODEL"
COMPARED = "m_compared"  # (model choice, Comparison) last measured against the model in use
CHOICE = "m_choice"  # the "Model for new photos" picker's key
MODES = {"head": "Head only (a CPU, minutes)", "full": "Every layer (needs a GPU)"}


def _switch(choice: int, force: bool = False) -> None:
    """Activate the chosen model through the promotion gate; drop the loaded one, so the next classification uses it."""
    actor = identity.acting_as("activate")  # checked again at the click: a stale page gets a refusal
    if actor is None:
        return
    reason = st.session_state.get("m_reason") if force else None
    try:
        promotion.activate_model(cache.settings(), None if choice == BASE else choice, force_reason=reason, by=actor)
    except promotion.PromotionRefused as err:
        st.session_state[COMPARED] = (choice, err.comparison)
        messages.flash(
            "warning",
            "Not switched: it is worse than the model in use on the frozen evaluation "
            "photos (see the comparison below).",
        )
        return
    except FoodclfError as err:
        messages.flash("error", str(err))
        return
    except Exception as err:  # noqa: BLE001
        messages.flash("error", messages.unexpected(err, "switching the model"))
        return
    cache.reload_model()
    # The picker is a keyed widget: it keeps its old value unless told, and the page below (the
    # picker, Switch, "Use this model") must agree with the model now in use on this very run.
    st.session_state[CHOICE] = choice
    messages.flash("success", "Switched: new photos are classified by the chosen model.")


def _in_use(models: list[model_registry.TrainedModelInfo]) -> None:
    active = next((m for m in models if m.active), None)
    with st.container(border=True):
        if active is None:
            st.markdown(f":material/neurology: In use: **{cache.settings().model}** (FOODCLF_MODEL)")
        else:
            st.markdown(
                f":material/neurology: In use: **{active.name}**, trained {active.created_at:%Y-%m-%d} "
                f"by {active.created_by} on {active.train_size:,} photos, {len(active.labels)} labels"
            )
        loaded = None
        try:
            loaded = cache.classifier(wait=False)
        except FoodclfError as err:
            st.error(str(err))
        if loaded is not None:
            st.caption(
                f"Loaded: `{loaded.model_id}` · fingerprint `{loaded.short_fingerprint}` · "
                f"{len(loaded.labels)} labels · {loaded.device} · {loaded.precision} · "
                f"{ENGINE_NAMES[loaded.engine.name]} (prepared in {loaded.engine.prepare_seconds:.1f} s)"
            )


def _registry(models: list[model_registry.TrainedModelInfo]) -> None:
    st.subheader("Trained models", anchor=False)
    if not models:
        st.info(
            "No trained models yet. Train one from the moderators' reviews below, or with "
            "`python -m foodclf train --from-db`.",
            icon=":material/model_training:",
        )
        return
    percent = dict(format="percent", min_value=0.0, max_value=1.0)
    st.dataframe(
        pd.DataFrame(model_registry.metrics_table(models)),
        hide_index=True,
        width="stretch",
        column_config={
            "active": st.column_config.CheckboxColumn("In use", width="small"),
            "name": st.column_config.TextColumn("Model"),
            "labels": st.column_config.NumberColumn("Labels", width="small"),
            "trained on": st.column_config.NumberColumn("Photos", width="small"),
            "base": st.column_config.TextColumn("Base"),
            "by": st.column_config.TextColumn("By"),
            "accuracy": st.column_config.ProgressColumn("Accuracy", **percent),
            "top5 accuracy": st.column_config.ProgressColumn("Top-5 accuracy", **percent),
            "macro f1": st.column_config.ProgressColumn("Macro F1", **percent),
            "created": st.column_config.DatetimeColumn("Created (UTC)", format="YYYY-MM-DD HH:mm"),
        },
    )
    names = {BASE: f"No trained model: {cache.settings().model} (FOODCLF_MODEL)"}
    names.update({m.id: f"{m.name} ({len(m.labels)} labels)" for m in models})
    active = next((m.id for m in models if m.active), BASE)
    cols = st.columns([3, 1], vertical_alignment="bottom")
    choice = cols[0].selectbox(
        "Model for new photos", list(names), index=list(names).index(active), format_func=names.get, key=CHOICE
    )
    cols[1].button(
        "Switch",
        key="m_switch",
        type="primary",
        icon=":material/swap_horiz:",
        disabled=choice == active,
        on_click=_switch,
        args=(choice,),
        width="stretch",
    )
    if choice != active:
        _comparison(choice, next((m.path for m in models if m.id == choice), cache.settings().model))
    chosen = next((m for m in models if m.id == choice), None)
    chart = model_registry.reliability_chart(chosen) if chosen else []
    if chart:
        calibration = chosen.metrics["calibration"]
        st.caption(
            f"Scores as probabilities: calibration error {calibration['ece_before']:.1%} before temperature "
            f"scaling, {calibration['ece_after']:.1%} after (T = {calibration['temperature']:.2f})."
        )
        st.line_chart(
            pd.DataFrame(chart), x="confidence", y=["perfect", "accuracy before", "accuracy after"], height=220
        )


def _comparison(choice: int, path: str) -> None:
    """The chosen model beside the one in use on the frozen evaluation photos, and a forced switch if refused."""
    compared = st.session_state.get(COMPARED)
    if compared is None or compared[0] != choice:
        if st.button("Compare with the model in use", key="m_compare", icon=":material/compare_arrows:"):
            with st.spinner("Classifying the frozen evaluation photos with both models..."):
                st.session_state[COMPARED] = compared = (choice, promotion.compare_models(cache.settings(), path))
        else:
            return
    comparison = compared[1]
    st.caption(
        f"On {comparison.photos} photos of the frozen evaluation slice (never trained on): "
        f"{comparison.verdict.replace('_', ' ')}. " + " ".join(f"{r}." for r in comparison.reasons)
    )
    if comparison.photos:
        st.dataframe(pd.DataFrame(comparison.table()), hide_index=True, key="m_table")
    if comparison.refused:
        reason = st.text_input("Why switch anyway? (kept with the model)", key="m_reason")
        st.button(
            "Switch anyway", key="m_force", disabled=not (reason or "").strip(), on_click=_switch, args=(choice, True)
        )


def _start(filters: ExportFilters, base: str, mode: str, activate: bool) -> None:
    reviewer = identity.acting_as("train")  # checked again at the click: a stale page gets a refusal
    if reviewer is None:
        return
    settings = cache.settings().replace(reviewer=reviewer)  # recorded as who trained it
    started = cache.training_job().start(
        train_from_reviews,
        settings,
        filters,
        base=base,
        mode=mode,
        activate=activate,
        started_by=reviewer,
    )
    if not started:
        messages.flash("warning", "A training run is already going on; wait for it to finish.")


def _dismiss() -> None:
    cache.training_job().clear()


@st.fragment(run_every=1.0)
def _training_progress() -> None:
    # Polls once a second while a run goes on, then redraws the page with its outcome.
    state = cache.training_job().state
    if not state.running:
        if state.result and state.result.get("activated"):
            cache.reload_model()
        st.rerun(scope="app")
    st.progress(state.fraction, text=state.message)
    minutes, seconds = divmod(int(time.time() - state.started_at), 60)
    st.caption(
        f"Started by {state.started_by} {minutes} min {seconds:02d} s ago. You can leave this page: "
        "the run goes on, and everyone sees it here."
    )


def _outcome(state, active_id) -> None:
    if state.error:
        st.error(f"Training did not finish: {state.error}", icon=":material/model_training:")
        st.button("Dismiss", key="t_dismiss", on_click=_dismiss)
        return
    result = state.result
    figures = result["validation"]
    measured = (
        f" Held-out photos: accuracy {figures['accuracy']:.1%}, macro F1 {figures['macro_f1']:.1%}."
        if "accuracy" in figures
        else " There were too few photos to hold some out for a measurement."
    )
    st.success(
        f"Trained **{result['name']}** on {result['photos']:,} photos, {result['labels']} labels, in "
        f"{result['seconds']:.0f} s.{measured}",
        icon=":material/verified:",
    )
    if result.get("refused"):
        st.warning(result["refused"], icon=":material/block:")
    if result["new_labels"]:
        st.caption(
            "New labels the base model did not know: "
            + ", ".join(display_label(label) for label in result["new_labels"])
        )
    cols = st.columns([1, 1, 3])
    if result["registry_id"] != active_id:  # not offered once it is in use, however it got there
        cols[0].button(
            "Use this model",
            key="t_use",
            type="primary",
            on_click=_switch,
            args=(result["registry_id"],),
            width="stretch",
        )
    cols[1].button("Dismiss", key="t_dismiss", on_click=_dismiss, width="stretch")


def _training(active_id) -> None:
    st.subheader("Train a new model", anchor=False)
    state = cache.training_job().state
    if state.running:
        with st.container(border=True):
            _training_progress()
        return
    if state.finished:
        _outcome(state, active_id)
    reviewer = identity.identity_prompt()
    database_url = cache.settings().database_url
    decided = cache.decided_labels(database_url)
    with st.container(border=True):
        cols = st.columns([1.6, 1])
        base = cols[0].radio("Start from", list(TRAINING_BASES), key="t_base", format_func=TRAINING_BASES.get)
        mode = cols[1].radio("Train", list(MODES), key="t_mode", format_func=MODES.get)
        cols = st.columns([1.5, 2, 1], vertical_alignment="bottom")  # room for the whole date range
        since, until = dates.date_range(
            cols[0].date_input("Decisions made between", value=(), key="t_dates", format="YYYY-MM-DD")
        )
        chosen = cols[1].multiselect(
            "Categories",
            sorted(decided, key=str.casefold),
            key="t_labels",
            format_func=display_label,
            placeholder="All decided categories",
        )
        activate = cols[2].toggle(
            "Use it when done", key="t_activate", help="Off: compare its figures first, then switch above."
        )
        filters = ExportFilters(since=since, until=until, labels=tuple(chosen))
        counts = decided if filters == ExportFilters() else cache.export_counts(database_url, filters)
        photos = sum(counts.values())
        st.caption(
            f"Learns from {photos:,} reviewed photos in {len(counts)} categories (each photo's current "
            "decision); a fifth of each category is held out to measure the new model."
        )
        if len(counts) < 2:
            st.warning(
                "Training needs reviewed photos of at least 2 categories. Review more photos, or widen the filters.",
                icon=":material/rate_review:",
            )
        st.button(
            "Start training",
            key="t_start",
            type="primary",
            icon=":material/model_training:",
            disabled=reviewer is None or len(counts) < 2,
            on_click=_start,
            args=(filters, base, mode, activate),
        )


st.title("Models")
st.caption("Each model trained from the moderators' decisions, measured on held-out photos.")
messages.show_flash()
engine = guards.engine_or_stop()
models = model_registry.trained_models(engine)
_in_use(models)
_registry(models)
_training(next((m.id for m in models if m.active), None))
