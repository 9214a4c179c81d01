"""Hands a finished export to the browser without holding it: a one-time link, served by the dashboard's server.

dashboard.py mounts `routes()` on the server `streamlit run` starts (st.App); the Export page
`offer`s each file it builds and shows the link. A GET of the link streams the file from disk in
chunks and removes it; the link works once, for foodclf.downloads.LINK_TTL_S, and only while the
page that prepared it is open, for a person who may still export (checked again at the click).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import streamlit as st
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from streamlit import runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

from db.engine import open_database
from foodclf import access, audit
from foodclf.downloads import Downloads, Waiting, file_response, refusal
from foodclf.errors import DownloadGone
from foodclf.export import ExportFile, export_folder
from foodclf.settings import Settings, load_settings
from ui import identity

log = logging.getLogger("foodclf.dashboard")

PATH = "/foodclf/download/{token}"  # outside Streamlit's reserved /_stcore/, /media/, /component/, /static/
REGISTRY = Downloads()  # this server process's links (one process serves every session)
CLOSED = (
    "This download belongs to an Export page that is no longer open (closed, reloaded or signed out). "
    "Open the Export page and prepare the file again."
)
EXPIRED = "Your sign-in has expired: sign in again, then prepare the export again."


@dataclass(frozen=True)
class Link:
    """A prepared export as the page shows it: where to fetch it, and what it holds."""

    url: str
    token: str
    file_name: str
    size: int
    rows: int
    missing: tuple[str, ...]


def folder() -> Path:
    """Where exports are written while they wait (FOODCLF_CACHE_DIR/exports)."""
    return export_folder(load_settings().cache_dir)


def offer(built: ExportFile, owner: str) -> Link:
    """Give a finished export a one-time link for this session and the signed-in person (the file is the link's now)."""
    ctx = get_script_run_ctx()
    token = REGISTRY.offer(
        built.path,
        file_name=built.file_name,
        mime=built.mime,
        owner=owner,
        session=ctx.session_id if ctx is not None else "",
        claims=identity.signed_in_claims(),
    )
    return Link(url_for(token), token, built.file_name, built.size, built.rows, built.missing)


def withdraw(link: Link) -> None:
    """Drop a link that the page no longer shows, and its file."""
    REGISTRY.withdraw(link.token)


def url_for(token: str) -> str:
    """The link's path on this server (under server.baseUrlPath when one is set)."""
    return _base() + PATH.format(token=token)


def routes(*, session_open: Callable[[str], bool] | None = None) -> list[Route]:
    """The download route for st.App(routes=...).

    Args:
        session_open: whether a dashboard session is still connected (default: ask Streamlit's runtime);
            tests pass their own.
    """
    is_open = session_open or _session_open

    def download(request: Request) -> Response:  # a plain function: Starlette runs it in a worker thread
        try:
            waiting = REGISTRY.take(request.path_params["token"])
        except DownloadGone as err:
            return refusal(404, str(err))
        refused = _refusal(waiting, is_open, load_settings())
        if refused is not None:
            waiting.path.unlink(missing_ok=True)
            return refusal(403, refused)
        return file_response(waiting)

    return [Route(_base() + PATH, download, methods=["GET"], name="foodclf-download")]


def _refusal(waiting: Waiting, session_open: Callable[[str], bool], settings: Settings) -> str | None:
    """Why this request may not have the file, or None. The person's role is checked again now."""
    if not session_open(waiting.session):
        return CLOSED
    if waiting.claims is None:
        return None  # no sign-in configured: the person at this machine, admin (the server serves loopback only)
    if access.session_expired(waiting.claims, settings):
        return EXPIRED
    person = access.identity_from_claims(waiting.claims, settings)
    if person.may("export"):
        return None
    try:
        audit.record(
            open_database(settings.database_url),
            person.name,
            "role_denied",
            act="export",
            role=person.role.label if person.role else None,
            groups=list(person.groups),
        )
    except Exception:  # noqa: BLE001  (the refusal stands even if it cannot be recorded)
        log.exception("could not record a refused download in the audit trail")
    return access.refusal(person, "export")


def _session_open(session_id: str) -> bool:
    return bool(session_id) and runtime.exists() and runtime.get_instance().is_active_session(session_id)


def _base() -> str:
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}" if base else ""
