"""Bearer tokens from FOODCLF_API_TOKENS, compared in constant time."""

from __future__ import annotations

import hmac

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from foodclf.api.errors import ApiError

# auto_error=False: a missing header gets our JSON 401, not FastAPI's own 403/401 shape.
# Declared as a security scheme so /docs offers an "Authorize" button.
bearer = HTTPBearer(auto_error=False, description="A token from FOODCLF_API_TOKENS.")

# Recorded as who added a photo when no tokens are configured (loopback-only service).
OPEN_ACCESS_NAME = "api"


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


async def require_token(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> str:
    """Dependency: the caller's recorded name, or a 401 when the token is missing or wrong."""
    tokens = request.app.state.settings.api_tokens
    if not tokens:
        return OPEN_ACCESS_NAME
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise ApiError(
            401,
            "Send the header 'Authorization: Bearer <token>' with a token from FOODCLF_API_TOKENS.",
            headers=challenge,
        )
    name = token_name(tokens, credentials.credentials)
    if name is None:
        raise ApiError(401, "This API token is not valid; ask the administrator for a current one.", headers=challenge)
    return name
