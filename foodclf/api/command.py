"""`foodclf serve`: run the HTTP API with uvicorn (one process, so the model is loaded once)."""

from __future__ import annotations

import argparse
import ipaddress

from foodclf.errors import SettingsError
from foodclf.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; others need FOODCLF_API_TOKENS)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    parser.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"),
                        help="uvicorn's log level (default info)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    check_exposure(args.host, settings)
    import uvicorn

    from foodclf.api.app import create_app

    # One worker: each extra process would load its own copy of the model.
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level,
                server_header=False)
    return 0


def check_exposure(host: str, settings: Settings) -> None:
    """Refuse an open API on an address other machines can reach."""
    if settings.api_tokens or is_loopback(host):
        return
    raise SettingsError(
        f"Refusing to listen on {host} without API tokens: anyone who can reach this machine could "
        "classify photos and fill the review queue. Set FOODCLF_API_TOKENS to one or more "
        "comma-separated secret tokens, or listen on 127.0.0.1 (the default)."
    )


def is_loopback(host: str) -> bool:
    """Whether only this machine can connect: localhost or a loopback IP (127.x, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # another host name may resolve to anything: treat it as exposed
