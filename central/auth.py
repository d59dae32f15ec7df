"""Bearer tokens (JWT HS256), role checks and login throttling (contract §4 "Auth")."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import jwt
from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from pydantic import BaseModel

from central.workflow import Actor
from gridwatch.contract.enums import UserRole

ALGORITHM = "HS256"
TOKEN_URL = "/api/v1/auth/token"  # noqa: S105 (a route, not a secret)

_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 (the OAuth2 token type)


def issue_token(actor: Actor, key: str, ttl_s: int, now: datetime | None = None) -> str:
    """A signed token naming the user and role, valid for `ttl_s` seconds."""
    now = now or datetime.now(UTC)
    claims = {"sub": actor.username, "role": str(actor.role), "iat": now, "exp": now + timedelta(seconds=ttl_s)}
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def decode_token(token: str, key: str) -> Actor | None:
    """The actor of a valid, unexpired token, else None (bad signature, expired, malformed, unknown role)."""
    try:
        claims: dict[str, Any] = jwt.decode(token, key, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]})
        return Actor(username=str(claims["sub"]), role=UserRole(str(claims.get("role"))))
    except (jwt.PyJWTError, ValueError, KeyError):
        return None


class LoginThrottle:
    """At most `limit` failed logins per username per `window_s`; further attempts get 429 until it ages out."""

    def __init__(self, limit: int = 5, window_s: float = 60.0, monotonic: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.window_s = window_s
        self._monotonic = monotonic
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()  # the token route runs in FastAPI's thread pool

    def _recent(self, username: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(username, deque())
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        return failures

    def retry_after(self, username: str) -> float | None:
        """Seconds until `username` may try again, or None if it may try now."""
        now = self._monotonic()
        with self._lock:
            failures = self._recent(username, now)
            if len(failures) < self.limit:
                if not failures:
                    self._failures.pop(username, None)  # keep the map bounded by active attackers
                return None
            return max(1.0, failures[0] + self.window_s - now)

    def failed(self, username: str) -> None:
        now = self._monotonic()
        with self._lock:
            self._recent(username, now).append(now)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(username, None)


def _actor_from(request: Request, token: str | None) -> Actor:
    if not token:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "not authenticated: send Authorization: Bearer <token>", headers=_CHALLENGE
        )
    actor = decode_token(token, request.app.state.settings.secret_key)
    if actor is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid or expired token", headers=_CHALLENGE)
    request.state.actor = actor
    return actor


def _check_role(actor: Actor, roles: tuple[UserRole, ...]) -> Actor:
    if roles and actor.role not in roles:
        allowed = ", ".join(str(r) for r in roles)
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"role '{actor.role}' may not do this (needs one of: {allowed})")
    return actor


def require(*roles: UserRole) -> Callable[..., Awaitable[Actor]]:
    """Dependency: the caller's actor from the Authorization header; 401 without a valid token, 403 for other roles."""

    async def dependency(request: Request, token: Annotated[str | None, Depends(_bearer)]) -> Actor:
        return _check_role(_actor_from(request, token), roles)

    return dependency


def require_or_query(*roles: UserRole) -> Callable[..., Awaitable[Actor]]:
    """Like `require`, but also accepts `?access_token=`: EventSource and <img> cannot send headers."""

    async def dependency(
        request: Request,
        token: Annotated[str | None, Depends(_bearer)],
        access_token: str | None = None,
    ) -> Actor:
        return _check_role(_actor_from(request, token or access_token), roles)

    return dependency


ALL_ROLES: tuple[UserRole, ...] = tuple(UserRole)
AnyUser = Annotated[Actor, Depends(require())]

router = APIRouter(tags=["auth"])


@router.post(
    "/auth/token",
    response_model=Token,
    responses={401: {"description": "wrong username or password"}, 429: {"description": "too many failed logins"}},
)
def login(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Token:
    """Exchange a username and password (OAuth2 password form) for a bearer token valid 12 hours."""
    throttle: LoginThrottle = request.app.state.throttle
    wait = throttle.retry_after(form.username)
    if wait is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many failed logins for '{form.username}'; try again in {wait:.0f} s",
            headers={"Retry-After": str(int(wait + 0.999))},
        )
    actor: Actor | None = request.app.state.service.authenticate(form.username, form.password)
    if actor is None:
        throttle.failed(form.username)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password", headers=_CHALLENGE)
    throttle.succeeded(form.username)
    settings = request.app.state.settings
    return Token(access_token=issue_token(actor, settings.secret_key, settings.token_ttl_s))
