"""Key matching with SillyTavern's rules: substrings, whole words, ``/regex/flags`` keys."""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from dataclasses import dataclass

from kataribe.lore.safe_regex import KeyRegex, RefusedRegex, RegexBudget, RegexTimedOut, compile_key_regex

_ASCII_WORD = frozenset(string.ascii_letters + string.digits + "_")
_REGEX_KEY = re.compile(r"/(.+?)/([gimsuy]*)", re.S)
_UNESCAPED_SLASH = re.compile(r"(?:^|[^\\])/")
_REGEX_META = frozenset(".^$*+?()[]{}|\\")


class Haystack:
    """Scanned text, as written and lower-cased once (case-insensitive keys use the latter).

    ``grams`` holds every piece of one to three characters of the lower-cased text: a key can
    only be in the text if its first and last three characters are, which rules most keys out
    with two set lookups instead of a search.
    """

    __slots__ = ("_grams", "_utf8", "low", "raw")

    def __init__(self, raw: str, low: str) -> None:
        self.raw = raw
        self.low = low
        self._grams: frozenset[str] | None = None
        self._utf8: bytes | None = None

    @classmethod
    def of(cls, text: str) -> Haystack:
        return cls(text, text.lower())

    @property
    def grams(self) -> frozenset[str]:
        if self._grams is None:
            low = self.low
            triples = {low[i : i + 3] for i in range(len(low) - 2)}
            # every pair but the last starts a triple, so the pairs come from the (fewer) triples
            pairs = {t[:2] for t in triples}
            pairs.add(low[-2:])
            self._grams = frozenset(triples | pairs | set(low))
        return self._grams

    @property
    def utf8(self) -> bytes:
        """The text as written, in UTF-8 (what RE2 searches), encoded once."""
        if self._utf8 is None:
            self._utf8 = self.raw.encode("utf-8", "surrogatepass")
        return self._utf8


class KeyProbe:
    """One compiled key; ``key`` is the key as written, for reasons shown to people.

    ``refused`` says why a regex key is not run (from the start, or since it ran out of time).
    """

    __slots__ = ("key", "refused")

    def __init__(self, key: str) -> None:
        self.key = key
        self.refused: str | None = None

    def found_in(self, hay: Haystack) -> bool:
        raise NotImplementedError


def _gram(text: str) -> str:
    """Three characters any text containing ``text`` must contain once lower-cased, or ``""``.

    ASCII only: lower-casing other scripts can depend on context (Greek final sigma).
    """
    return text[:3].lower() if len(text) >= 3 and text[:3].isascii() else ""


class _Substring(KeyProbe):
    __slots__ = ("case_sensitive", "gram", "needle")

    def __init__(self, key: str, needle: str, case_sensitive: bool) -> None:
        super().__init__(key)
        self.needle = needle
        self.case_sensitive = case_sensitive
        self.gram = _gram(needle)

    def found_in(self, hay: Haystack) -> bool:
        if self.gram and self.gram not in hay.grams:
            return False
        return self.needle in (hay.raw if self.case_sensitive else hay.low)


class _WholeWord(_Substring):
    """SillyTavern's ``(?:^|\\W)key(?:$|\\W)`` with JavaScript's ASCII-only ``\\W``.

    Any non-ASCII character counts as a boundary there, so a Japanese key inside Japanese text
    still matches; this keeps that behaviour.
    """

    __slots__ = ()

    def found_in(self, hay: Haystack) -> bool:
        if self.gram and self.gram not in hay.grams:
            return False
        text = hay.raw if self.case_sensitive else hay.low
        needle = self.needle
        size = len(needle)
        start = text.find(needle)
        while start != -1:
            end = start + size
            if (start == 0 or text[start - 1] not in _ASCII_WORD) and (
                end == len(text) or text[end] not in _ASCII_WORD
            ):
                return True
            start = text.find(needle, start + 1)
        return False


class _Regex(KeyProbe):
    __slots__ = ("budget", "gram", "regex")

    def __init__(self, key: str, pattern: str, regex: KeyRegex, budget: RegexBudget) -> None:
        super().__init__(key)
        self.regex = regex
        self.budget = budget
        self.gram = _gram(literal_prefix(pattern))

    def found_in(self, hay: Haystack) -> bool:
        if self.refused is not None or (self.gram and self.gram not in hay.grams):
            return False
        if self.regex.linear:
            return self.regex.search_utf8(hay.utf8)
        try:
            return self.regex.search_text(hay.raw, self.budget)
        except RegexTimedOut as exc:  # left out for the rest of this activation
            self.refused = exc.reason
            return False


class _Refused(KeyProbe):
    """A key regex that is not run (never matches); ``refused`` says why."""

    __slots__ = ()

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(key)
        self.refused = reason

    def found_in(self, hay: Haystack) -> bool:
        return False


def split_regex_key(key: str) -> tuple[str, str] | None:
    """``(pattern, flags)`` when the key is SillyTavern's ``/pattern/flags`` form, else ``None``.

    As in SillyTavern, every ``/`` inside the pattern must be escaped, otherwise the key is
    plain text; only the first ``\\/`` is unescaped.
    """
    match = _REGEX_KEY.fullmatch(key)
    if match is None:
        return None
    pattern, flags = match.group(1), match.group(2)
    if _UNESCAPED_SLASH.search(pattern):
        return None
    return pattern.replace("\\/", "/", 1), flags


def literal_prefix(pattern: str) -> str:
    """The plain text every match of ``pattern`` starts with ("" when unsure), to rule texts out fast."""
    depth = 0
    for _at, char in _outside_classes(pattern):  # a top-level alternative could start with anything
        if char in "()":
            depth += 1 if char == "(" else -1
        elif char == "|" and depth == 0:
            return ""
    prefix = ""
    for index, char in enumerate(pattern):
        if not (char.isalnum() or char in " _-'\",:;!&%@#~`<>=") or char in _REGEX_META:
            if char in "?*{":  # the character before is optional
                prefix = prefix[:-1]
            return prefix
        prefix = pattern[: index + 1]
    return prefix


def _outside_classes(pattern: str) -> Iterator[tuple[int, str]]:
    """(index, character) of a regex source's syntax: escapes and ``[...]`` classes are skipped."""
    in_class, i = False, 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        else:
            yield i, char
        i += 1


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """What the lorebook editor shows for one key: why it is refused, or that it runs time-limited."""

    key: str
    refused: str | None
    time_limited: bool


def check_key(key: str, *, use_regex: bool = False, case_sensitive: bool = False) -> KeyCheck:
    """How a key will be run, without scanning anything (the editor asks as keys are typed)."""
    key = key.strip()
    regex = split_regex_key(key)
    if regex is not None:
        compiled = compile_key_regex(*regex)
    elif use_regex and not _REGEX_META.isdisjoint(key):
        compiled = compile_key_regex(key, "" if case_sensitive else "i")
        if isinstance(compiled, RefusedRegex) and compiled.invalid:
            return KeyCheck(key, None, False)  # matched as plain text
    else:
        return KeyCheck(key, None, False)
    if isinstance(compiled, RefusedRegex):
        return KeyCheck(key, compiled.reason, False)
    return KeyCheck(key, None, not compiled.linear)


class KeyCompiler:
    """Compiles keys once per activation call; identical keys with identical options share a probe.

    Its ``budget`` bounds the time the activation spends in key regexes that need backtracking.
    """

    def __init__(self) -> None:
        self._cache: dict[tuple[str, bool, bool, bool], KeyProbe | None] = {}
        self.budget = RegexBudget()

    def compile(
        self, key: str, *, case_sensitive: bool, whole_words: bool, use_regex: bool = False
    ) -> KeyProbe | None:
        """A probe for ``key``, or ``None`` for an empty key (which never matches)."""
        cache_key = (key, case_sensitive, whole_words, use_regex)
        if cache_key in self._cache:
            return self._cache[cache_key]
        probe = self._build(key.strip(), case_sensitive, whole_words, use_regex)
        self._cache[cache_key] = probe
        return probe

    def _build(self, key: str, case_sensitive: bool, whole_words: bool, use_regex: bool) -> KeyProbe | None:
        if not key:
            return None
        regex = split_regex_key(key)
        if regex is not None:
            compiled = compile_key_regex(*regex)
            if isinstance(compiled, RefusedRegex):
                return _Refused(key, compiled.reason)
            return _Regex(key, regex[0], compiled, self.budget)
        if use_regex and not _REGEX_META.isdisjoint(key):
            # V3 use_regex: the key is a bare pattern. SillyTavern writes use_regex=true on every
            # entry it exports, so a key that is not a valid pattern is matched as plain text.
            compiled = compile_key_regex(key, "" if case_sensitive else "i")
            if isinstance(compiled, KeyRegex):
                return _Regex(key, key, compiled, self.budget)
            if not compiled.invalid:
                return _Refused(key, compiled.reason)
        needle = key if case_sensitive else key.lower()
        if whole_words and len(needle.split()) == 1:
            return _WholeWord(key, needle, case_sensitive)
        return _Substring(key, needle, case_sensitive)
