"""Lorebook key regexes run safely: on RE2 (linear time) when it can, else with a time limit.

A key regex comes from whoever wrote a card or a lorebook, and Python's ``re`` can take forever
on patterns such as ``(.|\\s)*QQQ`` or ``(a|aa)+``. RE2 never backtracks, so any pattern it
compiles runs in time linear in the text. It lacks lookaround and backreferences, which
SillyTavern users do write; those patterns run on the ``regex`` package, each search with a
timeout and all of them together within a budget per activation (``RegexBudget``). Patterns RE2
refuses for their size (``(a{1,100}){1,100}``) are refused here too, with a reason.

JavaScript's syntax and flags (``i``, ``s``, ``m``, ``u``, ``g``, ``y``) are translated: ``.``
stops at JavaScript's four line terminators, ``\\s`` is JavaScript's (Unicode) white space, ``$``
without ``m`` is the end of the text, ``\\uXXXX``/``\\u{X}``/``\\cX`` escapes, named groups and
``\\k<name>`` backreferences, ``[^]``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

import re2
import regex

MAX_REGEX_KEY_CHARS = 1_000
# The regex package checks its timeout now and then, and on a busy machine a search can run about
# twice as long: small numbers keep a turn with hostile keys well under a second.
SEARCH_TIMEOUT_S = 0.01  # one search of a pattern that needs backtracking
SCAN_BUDGET_S = 0.1  # all such searches of one activation (one chat turn, one dry run)
# RE2's memory for one pattern (program and DFA cache; past it RE2 still runs, in linear time, on
# its slower NFA), and how many compiled patterns are kept: at most 1 GiB whatever the cards hold.
RE2_MAX_MEM = 1024 * 1024
KEPT_PATTERNS = 1024

_JS_SPACE = r"\t\n\x0b\f\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_JS_SPACE_RE2 = (
    r"\t\n\x0b\f\r \x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}\x{feff}"
)
_JS_DOT = r"[^\n\r\u2028\u2029]"
_JS_DOT_RE2 = r"[^\n\r\x{2028}\x{2029}]"
_HEX = frozenset("0123456789abcdefABCDEF")


class RegexTimedOut(Exception):
    """A backtracking search ran past its timeout or the scan's budget; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RegexBudget:
    """The time one activation may still spend in searches that need backtracking."""

    __slots__ = ("left",)

    def __init__(self, seconds: float = SCAN_BUDGET_S) -> None:
        self.left = seconds


@dataclass(frozen=True, slots=True)
class RefusedRegex:
    """A key regex that is not run. ``invalid``: not a regex at all (as opposed to unsafe)."""

    reason: str
    invalid: bool


class KeyRegex:
    """A compiled key regex. ``linear`` ones search UTF-8 bytes on RE2; the others search text
    with a timeout and may raise ``RegexTimedOut``."""

    __slots__ = ("_backtracking", "_linear", "sticky")

    def __init__(
        self, linear: re2._Regexp | None, backtracking: regex.Pattern[str] | None, sticky: bool
    ) -> None:
        self._linear = linear
        self._backtracking = backtracking
        self.sticky = sticky  # JavaScript's y flag: test() only matches at lastIndex 0

    @property
    def linear(self) -> bool:
        return self._linear is not None

    def search_utf8(self, data: bytes) -> bool:
        assert self._linear is not None
        if self.sticky:
            return self._linear.match(data) is not None
        return self._linear.search(data) is not None

    def search_text(self, text: str, budget: RegexBudget) -> bool:
        assert self._backtracking is not None
        if budget.left <= 0:
            raise RegexTimedOut(
                f"not run: this scan's {_ms(SCAN_BUDGET_S)} for regexes that need backtracking was used up"
            )
        limit = min(SEARCH_TIMEOUT_S, budget.left)
        start = time.perf_counter()
        try:
            find = self._backtracking.match if self.sticky else self._backtracking.search
            return find(text, timeout=limit) is not None
        except TimeoutError:
            raise RegexTimedOut(
                f"stopped after {_ms(limit)} on this text (lookaround or backreferences need backtracking)"
            ) from None
        finally:
            budget.left -= time.perf_counter() - start


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000)} ms"


@lru_cache(maxsize=KEPT_PATTERNS)
def compile_key_regex(pattern: str, flags: str) -> KeyRegex | RefusedRegex:
    """A JavaScript ``/pattern/flags`` key, ready to search, or why it is not run.

    Compiled patterns are kept (they are immutable): a chat turn compiles nothing it compiled before.
    """
    if len(flags) != len(set(flags)) or not set(flags) <= set("gimsuy"):
        return RefusedRegex(f"the flags '{flags}' are not valid", invalid=True)
    if len(pattern) > MAX_REGEX_KEY_CHARS:
        return RefusedRegex(f"the pattern is longer than {MAX_REGEX_KEY_CHARS} characters", invalid=False)
    inline = "".join(f for f in "ims" if f in flags)
    prefix = f"(?{inline})" if inline else ""
    sticky = "y" in flags
    try:
        translated = _translate(pattern, dotall="s" in flags, multiline="m" in flags, for_re2=True)
        options = re2.Options()
        options.log_errors = False
        options.never_capture = True
        options.max_mem = RE2_MAX_MEM
        return KeyRegex(re2.compile(prefix + translated, options), None, sticky)
    except (re2.error, ValueError) as exc:
        re2_error = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
    try:
        fallback = _translate(pattern, dotall="s" in flags, multiline="m" in flags, for_re2=False)
        compiled = regex.compile(prefix + fallback)
    except (regex.error, ValueError, OverflowError, RecursionError) as exc:
        return RefusedRegex(f"not a valid regular expression ({exc})", invalid=True)
    if not needs_backtracking(pattern):
        return RefusedRegex(f"cannot be run in linear time ({re2_error})", invalid=False)
    return KeyRegex(None, compiled, sticky)


def needs_backtracking(pattern: str) -> bool:
    """Lookaround or a backreference: what RE2 cannot run."""
    for _index, text in _tokens(pattern):
        if text in ("(?=", "(?!", "(?<=", "(?<!") or text.startswith("\\k<"):
            return True
        if len(text) == 2 and text[0] == "\\" and text[1] in "123456789":
            return True
    return False


def _translate(pattern: str, *, dotall: bool, multiline: bool, for_re2: bool) -> str:
    """JavaScript regex syntax as RE2's (``for_re2``) or the ``regex`` package's."""
    out: list[str] = []
    in_class = False
    for _index, text in _tokens(pattern):
        if in_class:
            if text == "]":
                in_class = False
            elif text == "\\s":
                text = _JS_SPACE_RE2 if for_re2 else _JS_SPACE
            elif text == "\\b":  # a backspace inside a class
                text = _code_point(8, for_re2)
            else:
                text = _escape(text, for_re2)
            out.append(text)
            continue
        if text == "[^]":
            text = "(?s:.)"
        elif text == "[]":  # JavaScript's empty class matches nothing
            text = r"[^\x00-\x{10ffff}]" if for_re2 else "(?!)"
        elif text in ("[", "[^"):
            in_class = True
        elif text == "." and not dotall:
            text = _JS_DOT_RE2 if for_re2 else _JS_DOT
        elif text == "$" and not multiline:
            text = r"\z" if for_re2 else r"\Z"
        elif text == "\\s":
            text = f"[{_JS_SPACE_RE2 if for_re2 else _JS_SPACE}]"
        elif text == "\\S":
            text = f"[^{_JS_SPACE_RE2 if for_re2 else _JS_SPACE}]"
        elif text.startswith("(?<") and text not in ("(?<=", "(?<!"):
            text = "(?P<"
        elif text.startswith("\\k<"):
            text = f"(?P={text[3:-1]})"
        else:
            text = _escape(text, for_re2)
        out.append(text)
    return "".join(out)


def _escape(text: str, for_re2: bool) -> str:
    """JavaScript's character escapes (``\\uXXXX``, ``\\u{X}``, ``\\cX``, ``\\/``) as the engine's."""
    if not text.startswith("\\") or len(text) == 1:
        return text
    kind = text[1]
    if kind == "/":
        return "/"
    if kind == "u" and len(text) > 2:
        code = int(text[3:-1] if text[2] == "{" else text[2:], 16)
        return _code_point(code, for_re2)
    if kind == "c" and len(text) == 3:
        return _code_point(ord(text[2]) % 32, for_re2)
    return text


def _code_point(code: int, for_re2: bool) -> str:
    if code > 0x10FFFF:
        raise ValueError(f"\\u{{{code:x}}} is beyond Unicode")
    return f"\\x{{{code:x}}}" if for_re2 else f"\\U{code:08x}"


def _tokens(pattern: str) -> list[tuple[int, str]]:
    """The pattern as (index, piece): escapes, group openers and class openers as one piece each."""
    pieces: list[tuple[int, str]] = []
    i, size = 0, len(pattern)
    in_class = False
    while i < size:
        char = pattern[i]
        if char == "\\" and i + 1 < size:
            nxt = pattern[i + 1]
            end = i + 2
            if nxt == "u" and pattern[end : end + 1] == "{":
                close = pattern.find("}", end)
                if close != -1 and all(c in _HEX for c in pattern[end + 1 : close]) and close > end + 1:
                    end = close + 1
            elif (
                nxt == "u"
                and len(pattern[end : end + 4]) == 4
                and all(c in _HEX for c in pattern[end : end + 4])
            ):
                end += 4
            elif nxt == "c" and pattern[end : end + 1].isascii() and pattern[end : end + 1].isalpha():
                end += 1
            elif nxt == "k" and pattern[end : end + 1] == "<" and ">" in pattern[end:]:
                end = pattern.index(">", end) + 1
            pieces.append((i, pattern[i:end]))
            i = end
            continue
        if in_class:
            in_class = char != "]"
            pieces.append((i, char))
            i += 1
            continue
        if char == "[":
            whole = next((c for c in ("[^]", "[]") if pattern.startswith(c, i)), None)
            if whole is not None:  # JavaScript closes a class at its first "]"
                pieces.append((i, whole))
                i += len(whole)
                continue
            opener = "[^" if pattern.startswith("[^", i) else "["
            pieces.append((i, opener))
            i += len(opener)
            in_class = True
            continue
        if char == "(" and pattern.startswith("(?", i):
            for opener in ("(?<=", "(?<!", "(?=", "(?!"):
                if pattern.startswith(opener, i):
                    pieces.append((i, opener))
                    i += len(opener)
                    break
            else:
                if pattern.startswith("(?<", i):
                    pieces.append((i, "(?<"))
                    i += 3
                else:
                    pieces.append((i, "("))
                    i += 1
            continue
        pieces.append((i, char))
        i += 1
    return pieces
