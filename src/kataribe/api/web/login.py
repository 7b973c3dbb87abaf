"""Routes for the browser app's log-in: the page, and opening and closing a session with the key."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import FileResponse, RedirectResponse, Response

from kataribe.api.session import LOGIN_PAGE, SESSION_ROUTE, SessionStore
from kataribe.api.web.router import STATIC
from kataribe.errors import InvalidRequest


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(max_length=4096)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _cookies(request: Request) -> str:
    return request.headers.get("cookie", "")


NO_STORE = {"cache-control": "no-store"}


def login_router(sessions: SessionStore) -> APIRouter:
    router = APIRouter(tags=["Browser app"])

    @router.get(LOGIN_PAGE, include_in_schema=False)
    def login_page(request: Request) -> Response:
        if not sessions.key_required or sessions.logged_in(_cookies(request)):
            return RedirectResponse("/", status_code=303)
        return FileResponse(STATIC / "login.html", media_type="text/html", headers=NO_STORE)

    @router.get(SESSION_ROUTE)
    def session_state(request: Request) -> dict[str, Any]:
        """Whether this server needs the key and whether this browser is logged in."""
        return {"key_required": sessions.key_required, "logged_in": sessions.logged_in(_cookies(request))}

    @router.post(SESSION_ROUTE, status_code=204)
    def log_in(body: LoginBody, request: Request) -> Response:
        """Log the browser in with the API key: sets an HttpOnly, SameSite=Strict session cookie."""
        if not sessions.key_required:
            raise InvalidRequest("This server has no API key, so no log-in is needed.", param="key")
        token = sessions.log_in(body.key, request.client.host if request.client else "")
        cookie = sessions.cookie(token, secure=_secure(request))
        return Response(status_code=204, headers={"set-cookie": cookie, **NO_STORE})

    @router.delete(SESSION_ROUTE, status_code=204)
    def log_out(request: Request) -> Response:
        """Log the browser out: the session ends on the server and the cookie is cleared."""
        sessions.log_out(sessions.token_from(_cookies(request)))
        cookie = sessions.expired_cookie(secure=_secure(request))
        return Response(status_code=204, headers={"set-cookie": cookie, **NO_STORE})

    return router
