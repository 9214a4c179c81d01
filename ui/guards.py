"""What a page needs before it draws (the database, the model), or a message a person can act on and a stop."""

from __future__ import annotations

import streamlit as st

from foodclf.errors import FoodclfError
from ui import cache
from ui.messages import unexpected


def engine_or_stop():
    """The database engine, or an error a person can act on and the end of this page's run."""
    try:
        return cache.engine()
    except FoodclfError as err:
        st.error(str(err), icon=":material/database:")
    except Exception as err:  # noqa: BLE001
        st.error(unexpected(err, "opening the database"))
    st.stop()


def classifier_or_stop():
    """The loaded classifier (waiting with a spinner), or the reason there is none and the end of the run."""
    try:
        return cache.classifier()
    except FoodclfError as err:
        st.error(str(err), icon=":material/neurology:")
        st.button("Try loading the model again", key="model_retry_page", on_click=cache.reload_model)
    except Exception as err:  # noqa: BLE001
        st.error(unexpected(err, "loading the model"))
    st.stop()
