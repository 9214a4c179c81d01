"""`streamlit run dashboard.py` starts and answers on a loopback port."""

from __future__ import annotations

from server_support import get, running_dashboard


def test_the_dashboard_serves(settings, tmp_path):
    with running_dashboard(settings, tmp_path / "streamlit.log") as base:
        assert get(f"{base}/_stcore/health") == (200, "ok")
        status, page = get(base)
        assert status == 200 and "<noscript>" in page.lower()  # the app's shell
    log = (tmp_path / "streamlit.log").read_text()
    assert "Traceback" not in log
