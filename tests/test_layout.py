"""Architecture rules the code must keep."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import grimp

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


PROJECT = ("foodclf", "db", "ui")


def test_only_the_dashboard_imports_streamlit():
    """dashboard.py, pages/ and their helper package ui/ draw; foodclf/ and db/ never do."""
    offenders = [str(p.relative_to(ROOT)) for p in python_files("foodclf", "db", "bench") if "streamlit" in imports(p)]
    assert offenders == []


def test_pages_holds_pages_only():
    """Before st.navigation first runs, Streamlit lists every file in pages/ as a page: no helpers there."""
    folder = ROOT / "pages"
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".py" and (p.name.startswith("_"))) == []
    assert [p.name for p in folder.iterdir() if p.is_dir() and p.name != "__pycache__"] == []


def test_no_import_cycles_between_modules():
    """Counting imports inside functions: a cycle means two modules that cannot be read apart."""
    graph = grimp.build_graph(*PROJECT, cache_dir=None)
    modules = sorted(graph.modules)
    edges = {m: {i for i in graph.find_modules_directly_imported_by(m) if i in graph.modules} for m in modules}
    # A package's __init__ imports nothing of its own here, so edges to a package are real module imports.
    cycles = [group for group in _strongly_connected(edges) if len(group) > 1]
    assert cycles == []


def test_no_project_imports_inside_functions():
    """Imports of foodclf, db or ui sit at the top of a module, where the layers can be checked."""
    offenders = []
    for path in python_files(*PROJECT):
        tree = ast.parse(path.read_text(), filename=str(path))
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                module = node.module if isinstance(node, ast.ImportFrom) else None
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [module or ""]
                if isinstance(node, (ast.Import, ast.ImportFrom)) and any(n.split(".")[0] in PROJECT for n in names):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the groups of modules that import each other, directly or not."""
    index, low, on_stack, stack, groups, counter = {}, {}, set(), [], [], [0]
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    groups.append(sorted(group))
            elif child not in index:
                index[child] = low[child] = counter[0]
                counter[0] += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(edges[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return groups


def test_cycle_finder_finds_a_cycle():
    """The cycle test above can fail: a two-module loop and a three-module loop are found."""
    groups = _strongly_connected({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}})
    assert sorted(g for g in groups if len(g) > 1) == [["a", "b"], ["c", "d", "e"]]


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
    for path in python_files("foodclf", "db", "ui", "pages") + [ROOT / "dashboard.py"]:
        if path.name == "settings.py" or not path.exists():
            continue
        if re.search(r"os\.environ|os\.getenv", path.read_text()):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_dashboard_routes_every_page():
    # st.navigation turns off pages/ discovery: a page file it does not list is unreachable.
    source = (ROOT / "ui" / "navigation.py").read_text()
    pages = sorted(p.name for p in (ROOT / "pages").glob("*.py") if not p.name.startswith("_"))
    assert [name for name in pages if f'"pages/{name}"' not in source] == []


def test_every_page_routes_through_the_dashboard_when_opened_first():
    """On a fresh server a page opened by URL runs alone until st.navigation has run: each reroutes."""
    missing = [p.name for p in (ROOT / "pages").glob("*.py") if "navigation.ensure_routed()" not in p.read_text()]
    assert missing == []
