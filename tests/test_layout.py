"""Architecture rules the code must keep."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def python_files(*folders):
    return [p for folder in folders for p in (ROOT / folder).rglob("*.py")]


def test_only_dashboard_and_pages_import_streamlit():
    offenders = [str(p.relative_to(ROOT)) for p in python_files("foodclf", "db", "bench") if "streamlit" in imports(p)]
    assert offenders == []


def test_pages_hold_no_sql_and_no_model_code():
    offenders = []
    for page in python_files("pages") + [ROOT / "dashboard.py"]:
        if not page.exists():
            continue
        used = imports(page)
        if used & {"sqlalchemy", "torch", "transformers", "sqlite3"} or re.search(r"\bselect\(", page.read_text()):
            offenders.append(str(page.relative_to(ROOT)))
    assert offenders == []


def test_only_settings_reads_the_environment():
    offenders = []
    for path in python_files("foodclf", "db", "pages") + [ROOT / "dashboard.py"]:
        if path.name == "settings.py" or not path.exists():
            continue
        if re.search(r"os\.environ|os\.getenv", path.read_text()):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_dashboard_routes_every_page():
    # st.navigation turns off pages/ discovery: a page file it does not list is unreachable.
    dashboard = ROOT / "dashboard.py"
    source = dashboard.read_text() if dashboard.exists() else ""
    pages = sorted(p.name for p in (ROOT / "pages").glob("*.py") if not p.name.startswith("_"))
    assert [name for name in pages if f'"pages/{name}"' not in source] == []
