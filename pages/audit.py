"""Audit log: every sensitive act (exports, training, model switches, undo, refusals, API tokens), filtered."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from foodclf import audit
from ui import access, dates, guards, messages, navigation

navigation.ensure_routed()  # a page opened first on a fresh server routes through dashboard.py
access.require_page("audit")  # admins only; else a refusal and a stop

LIMIT = 1000  # rows shown; `python -m foodclf audit` prints them all
ACTION_WORDS = {
    "export": "Export",
    "training_started": "Training started",
    "training_finished": "Training finished",
    "training_failed": "Training failed",
    "model_activated": "Model switched",
    "undo": "Undo",
    "role_denied": "Refused (role)",
    "token_created": "API token created",
    "token_revoked": "API token revoked",
}

st.title("Audit log")
st.caption("Sensitive acts, newest first. Rows are only ever added; nobody can edit or delete them.")
messages.show_flash()
engine = guards.engine_or_stop()

cols = st.columns([1.3, 1.3, 1.4])
since, until = dates.date_range(cols[0].date_input("Between (UTC)", value=(), key="a_dates", format="YYYY-MM-DD"))
action = cols[1].selectbox(
    "Act", list(ACTION_WORDS), index=None, key="a_action", format_func=ACTION_WORDS.get, placeholder="Any act"
)
actor = cols[2].selectbox("Who", audit.audit_actors(engine), index=None, key="a_actor", placeholder="Anyone")

try:
    events = audit.audit_events(engine, since=since, until=until, actor=actor, action=action, limit=LIMIT + 1)
except Exception as err:  # noqa: BLE001
    st.error(messages.unexpected(err, "reading the audit log"))
    st.stop()
if not events:
    st.info("Nothing recorded for these filters.", icon=":material/policy:")
    st.stop()
shown = events[:LIMIT]
st.caption(
    f"{len(shown):,} act{'s' * (len(shown) != 1)}"
    + (f" (the newest {LIMIT:,}; narrow the filters or use `python -m foodclf audit`)" if len(events) > LIMIT else "")
)
st.dataframe(
    pd.DataFrame(
        {
            "when": [e["at"] for e in shown],
            "who": [e["actor"] for e in shown],
            "act": [ACTION_WORDS.get(e["action"], e["action"]) for e in shown],
            "details": [audit.describe_detail(e["detail"]) for e in shown],
        }
    ),
    hide_index=True,
    width="stretch",
    key="a_table",
    column_config={
        "when": st.column_config.DatetimeColumn("When (UTC)", format="YYYY-MM-DD HH:mm:ss"),
        "who": st.column_config.TextColumn("Who"),
        "act": st.column_config.TextColumn("Act"),
        "details": st.column_config.TextColumn("Details", width="large"),
    },
)
