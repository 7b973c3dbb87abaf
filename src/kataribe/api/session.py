"""Browser log-in with the API key: random session tokens in memory, the cookie, a wrong-key throttle."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque

from kataribe.errors import TooManyAttempts, Unauthorized

SESSION_DAYS = 30
MAX_SESSIONS = 1000
LOGIN_PAGE = "/login"
SESSION_ROUTE = "/api/session"
PUBLIC_PATHS = frozenset(
    {
        LOGIN_PAGE,
        SESSION_ROUTE,
        "/static/js/login.js",
        "/static/js/i18n.js",
        "/static/app.css",
        "/static/css/login.css",
        "/static/icon.svg",
        "/static/i18n/en.json",
        "/static/i18n/ja.json",
    }
)
"""What the log-in page needs; open without the key (no user data in any of it)."""


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class LoginThrottle:
    """At most ``limit`` wrong keys per client address in ``window`` seconds."""

    def __init__(self, limit: int = 10, window: float = 300.0) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}

    def check(self, client: str) -> None:
        now = time.monotonic()
        recent = self._failures.get(client)
        while recent and now - recent[0] > self.window:
            recent.popleft()
        if recent is not None and len(recent) >= self.limit:
            wait = int(self.window - (now - recent[0])) + 1
            raise TooManyAttempts(f"Too many wrong keys from this address. Try again in {wait} s.")

    def failed(self, client: str) -> None:
        if len(self._failures) > 10_000:
            self._failures.clear()  # a flood of addresses must not grow memory without end
        self._failures.setdefault(client, deque()).append(time.monotonic())


class SessionStore:
    """Sessions opened by typing the API key on the log-in page. The cookie holds a random token,
    never the key; only its hash is kept, in memory, so a restart logs browsers out."""

    def __init__(self, api_key: str | None, *, port: int) -> None:
        self.api_key = api_key.encode() if api_key else None
        self.cookie_name = f"kataribe_session_{port}"  # cookies ignore ports: one name per server
        self.max_age = SESSION_DAYS * 86400
        self.throttle = LoginThrottle()
        self._sessions: OrderedDict[bytes, float] = OrderedDict()

    @property
    def key_required(self) -> bool:
        return self.api_key is not None

    def key_matches(self, candidate: bytes) -> bool:
        return self.api_key is not None and hmac.compare_digest(candidate, self.api_key)

    def log_in(self, key: str, client: str) -> str:
        """A new session token for the right key; Unauthorized (and a throttle step) otherwise."""
        self.throttle.check(client)
        if not self.key_matches(key.strip().encode()):
            self.throttle.failed(client)
            raise Unauthorized("Wrong key. Type the API key the server was started with.")
        token = secrets.token_urlsafe(32)
        self._sessions[_digest(token)] = time.time() + self.max_age
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return token

    def valid(self, token: str | None) -> bool:
        if not token:
            return False
        digest = _digest(token)
        expires = self._sessions.get(digest)
        if expires is None:
            return False
        if expires < time.time():
            del self._sessions[digest]
            return False
        return True

    def logged_in(self, cookie_header: str) -> bool:
        """Whether a ``Cookie`` header carries a live session of this server."""
        return self.valid(self.token_from(cookie_header))

    def log_out(self, token: str | None) -> None:
        if token:
            self._sessions.pop(_digest(token), None)

    def token_from(self, cookie_header: str) -> str | None:
        """This server's session token in a ``Cookie`` header, if any."""
        for part in cookie_header.split(";"):
            name, sep, value = part.strip().partition("=")
            if sep and name == self.cookie_name:
                return value.strip('"')
        return None

    def cookie(self, token: str, *, secure: bool) -> str:
        """The ``Set-Cookie`` value: HttpOnly, SameSite=Strict, Secure over https."""
        return self._cookie(token, self.max_age, secure)

    def expired_cookie(self, *, secure: bool) -> str:
        return self._cookie("", 0, secure)

    def _cookie(self, value: str, max_age: int, secure: bool) -> str:
        parts = [f"{self.cookie_name}={value}", "Path=/", f"Max-Age={max_age}", "HttpOnly", "SameSite=Strict"]
        if secure:
            parts.append("Secure")
        return "; ".join(parts)
