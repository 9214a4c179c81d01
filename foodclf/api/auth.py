"""Bearer tokens: FOODCLF_API_TOKENS (every role) and tokens stored hashed in the database (one role each).

Stored tokens are made with `python -m foodclf tokens create --name NAME --role tagger|reader`.
A token is never logged: refusals say what to do, not what was sent.
"""

from __future__ import annotations

import hmac

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from foodclf import tokens
from foodclf.api.errors import ApiError
from foodclf.tokens import Caller

# auto_error=False: a missing header gets our JSON 401, not FastAPI's own 403/401 shape.
# Declared as a security scheme so /docs offers an "Authorize" button.
bearer = HTTPBearer(
    auto_error=False, description="A token from `python -m foodclf tokens create`, or from FOODCLF_API_TOKENS."
)

# Recorded as who added a photo when no tokens are configured (loopback-only service).
OPEN_ACCESS_NAME = "api"
EVERY_ROLE = frozenset(tokens.ROLES)
WHAT_ROLE_ALLOWS = {"tagger": "classify and store photos", "reader": "read stored images and labels"}


def token_name(tokens: tuple[str, ...], presented: str) -> str | None:
    """The recorded name of the configured token matching `presented`, or None.

    Every token is compared, with hmac.compare_digest, so the time taken says nothing
    about which token nearly matched. The name is "api-token-N" (N from 1, the
    token's place in FOODCLF_API_TOKENS): the token itself is never stored.
    """
    supplied = presented.encode()
    match = None
    for number, token in enumerate(tokens, start=1):
        if hmac.compare_digest(token.encode(), supplied) and match is None:
            match = f"api-token-{number}"
    return match


def _identify(request: Request, presented: str | None) -> Caller | None:
    """The caller, or None when a token is needed and this one (or none) does not do."""
    settings = request.app.state.settings
    engine = request.app.state.photos.engine
    if presented is not None:
        name = token_name(settings.api_tokens, presented)
        if name is not None:
            return Caller(name, EVERY_ROLE)
        return tokens.check_token(engine, presented)
    if not settings.api_tokens and not tokens.stored_tokens_exist(engine):
        return Caller(OPEN_ACCESS_NAME, EVERY_ROLE)  # no tokens anywhere: loopback only (see check_exposure)
    return None


async def require_token(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Caller:
    """Dependency: the caller (recorded name and roles), or a 401 when the token is missing, wrong or revoked."""
    # FastAPI runs this once per request, though the router and the route's role check both depend on it.
    presented = credentials.credentials if credentials is not None else None
    caller = await run_in_threadpool(_identify, request, presented)
    if caller is None:
        challenge = {"WWW-Authenticate": "Bearer"}
        if presented is None:
            raise ApiError(
                401,
                "Send the header 'Authorization: Bearer <token>' with a token an admin gave you.",
                headers=challenge,
            )
        raise ApiError(401, "This API token is not valid; ask the administrator for a current one.", headers=challenge)
    return caller


def require_role(role: str):
    """Dependency factory: the caller, or a 403 when their token's role does not include `role`."""
    if role not in EVERY_ROLE:
        raise ValueError(f"role: expected one of {', '.join(sorted(EVERY_ROLE))}, not {role!r}")

    async def check(caller: Caller = Depends(require_token)) -> Caller:
        if role not in caller.roles:
            raise ApiError(
                403,
                f"This token's role does not allow this: a {role} token can {WHAT_ROLE_ALLOWS[role]}; "
                "ask the administrator for one.",
            )
        return caller

    return check


tagger = require_role("tagger")
reader = require_role("reader")
