"""Key matching with SillyTavern's rules: substrings, whole words, ``/regex/flags`` keys."""

from __future__ import annotations

import re
import string
from collections.abc import Iterator

MAX_REGEX_KEY_CHARS = 1_000
_ASCII_WORD = frozenset(string.ascii_letters + string.digits + "_")
_REGEX_KEY = re.compile(r"/(.+?)/([gimsuy]*)", re.S)
_UNESCAPED_SLASH = re.compile(r"(?:^|[^\\])/")
_REGEX_META = frozenset(".^$*+?()[]{}|\\")
_JS_NAMED_GROUP = re.compile(r"\(\?<(?![=!])")
_JS_BACKREF = re.compile(r"\\k<([A-Za-z_][A-Za-z0-9_]*)>")


class Haystack:
    """Scanned text, as written and lower-cased once (case-insensitive keys use the latter).

    ``grams`` holds every piece of one to three characters of the lower-cased text: a key can
    only be in the text if its first and last three characters are, which rules most keys out
    with two set lookups instead of a search.
    """

    __slots__ = ("_grams", "low", "raw")

    def __init__(self, raw: str, low: str) -> None:
        self.raw = raw
        self.low = low
        self._grams: frozenset[str] | None = None

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


class KeyProbe:
    """One compiled key; ``key`` is the key as written, for reasons shown to people."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key

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
    __slots__ = ("gram", "pattern", "sticky")

    def __init__(self, key: str, pattern: re.Pattern[str], sticky: bool) -> None:
        super().__init__(key)
        self.pattern = pattern
        self.sticky = sticky
        self.gram = _gram(literal_prefix(pattern.pattern))

    def found_in(self, hay: Haystack) -> bool:
        if self.gram and self.gram not in hay.grams:
            return False
        if self.sticky:  # JavaScript's y flag: test() only matches at lastIndex 0
            return self.pattern.match(hay.raw) is not None
        return self.pattern.search(hay.raw) is not None


class _Never(KeyProbe):
    __slots__ = ()

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


def compile_js_regex(pattern: str, flags: str) -> tuple[re.Pattern[str], bool] | None:
    """A JavaScript regex as a Python one, plus its sticky flag; ``None`` when it cannot be used.

    Patterns that are too long or nest unbounded quantifiers (``(a+)+``, the usual catastrophic
    backtracking shape) are refused: Python's ``re`` has no timeout.
    """
    if len(flags) != len(set(flags)) or len(pattern) > MAX_REGEX_KEY_CHARS or has_nested_quantifier(pattern):
        return None
    options = 0
    if "i" in flags:
        options |= re.IGNORECASE
    if "s" in flags:
        options |= re.DOTALL
    if "m" in flags:
        options |= re.MULTILINE
    translated = _JS_BACKREF.sub(r"(?P=\1)", _JS_NAMED_GROUP.sub("(?P<", pattern)).replace("[^]", r"[\s\S]")
    try:
        return re.compile(translated, options), "y" in flags
    except (re.error, OverflowError, RecursionError, ValueError):
        return None


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


def has_nested_quantifier(pattern: str) -> bool:
    """True when a group holding an unbounded quantifier is itself repeated."""
    stack: list[bool] = [False]  # per open group: does it hold an unbounded quantifier?
    for i, char in _outside_classes(pattern):
        if char == "(":
            stack.append(False)
        elif char == ")" and len(stack) > 1:
            inner = stack.pop()
            following = pattern[i + 1 : i + 2]
            if inner and following in ("*", "+", "{"):
                return True
            stack[-1] = stack[-1] or inner or following in ("*", "+")
        elif char in "*+" or (char == "{" and re.match(r"\{\d*,\}", pattern[i:])):
            stack[-1] = True
    return False


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


class KeyCompiler:
    """Compiles keys once per activation call; identical keys with identical options share a probe."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, bool, bool, bool], KeyProbe | None] = {}

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

    @staticmethod
    def _build(key: str, case_sensitive: bool, whole_words: bool, use_regex: bool) -> KeyProbe | None:
        if not key:
            return None
        regex = split_regex_key(key)
        if regex is not None:
            compiled = compile_js_regex(*regex)
            return _Never(key) if compiled is None else _Regex(key, *compiled)
        if use_regex and not _REGEX_META.isdisjoint(key):
            # V3 use_regex: the key is a bare pattern. SillyTavern writes use_regex=true on every
            # entry it exports, so a key that is not a valid pattern is matched as plain text.
            compiled = compile_js_regex(key, "" if case_sensitive else "i")
            if compiled is not None:
                return _Regex(key, *compiled)
        needle = key if case_sensitive else key.lower()
        if whole_words and len(needle.split()) == 1:
            return _WholeWord(key, needle, case_sensitive)
        return _Substring(key, needle, case_sensitive)
