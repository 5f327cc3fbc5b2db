"""Who is calling: `Authorization: Bearer rb_...` checked against the API tokens.

    @router.get("/tips")
    def list_tips(token: Annotated[ApiToken, Depends(require_role(Role.MARKETING))]) -> ...

The admin role passes every check. The session factory comes from `app.state.sessions`, which
the composition root sets.
"""

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from api.errors import ApiError
from api.tokens import ApiToken, Role, authenticate

_bearer = HTTPBearer(auto_error=False, description="an API token: `ringback token create`")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def require_role(*roles: Role | str) -> Callable[..., ApiToken]:
    """A dependency that returns the caller's token if it is live and has one of `roles`
    (or is an admin's); 401 without a usable token, 403 for another role. An unknown role
    name is a ValueError at once, when the route is defined."""
    if not roles:
        raise ValueError("require_role needs at least one role")
    allowed = frozenset(Role(role) for role in roles) | {Role.ADMIN}

    def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> ApiToken:
        if credentials is None:
            raise ApiError(
                401, "unauthorized", "send an API token: Authorization: Bearer <token>",
                _CHALLENGE,
            )
        sessions: sessionmaker[Session] = request.app.state.sessions
        with sessions() as session:
            token = authenticate(session, credentials.credentials)
        if token is None:
            raise ApiError(401, "unauthorized", "the API token is unknown or revoked", _CHALLENGE)
        if token.role not in allowed:
            needed = " or ".join(sorted(allowed))
            raise ApiError(403, "forbidden", f"this needs the role {needed}, not {token.role}")
        return token

    return dependency
