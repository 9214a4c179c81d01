"""`streamlit run dashboard.py` starts and answers on a loopback port, with the export download route mounted."""

from __future__ import annotations

import urllib.error

import pytest

from server_support import get, running_dashboard


def test_the_dashboard_serves(settings, tmp_path):
    with running_dashboard(settings, tmp_path / "streamlit.log") as base:
        assert get(f"{base}/_stcore/health") == (200, "ok")
        status, page = get(base)
        assert status == 200 and "<noscript>" in page.lower()  # the app's shell
        # dashboard.py's st.App serves the export downloads: a made-up link gets the route's own refusal
        # (Streamlit alone would answer the app's shell with a 200).
        with pytest.raises(urllib.error.HTTPError) as refused:
            get(f"{base}/foodclf/download/made-up-token")
        assert refused.value.code == 404
        assert "prepare the file again" in refused.value.read().decode("utf-8")
    log = (tmp_path / "streamlit.log").read_text()
    assert "Traceback" not in log
