"""The scanned text of one activation call and each entry's key check against it, kept cheap.

Recursion passes only add text, so an entry whose primary keys missed before is checked again
only against the text added since; a wider window (min activations) means a full check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kataribe.lore.decorators import NO_DECORATORS, split_decorators
from kataribe.lore.entry_options import (
    MATCH_FIELDS,
    NO_OPTIONS,
    SOURCE_LABELS,
    EntryOptions,
    entry_options,
)
from kataribe.lore.groups import group_names
from kataribe.lore.matching import Haystack, KeyCompiler, KeyProbe
from kataribe.lore.model import MAX_SCAN_DEPTH, Lorebook, LoreEntry, SelectiveLogic, WorldInfoSettings
from kataribe.lore.results import MatchSource, SkipReason
from kataribe.lore.timed import EffectKey, effect_key

Needles = tuple[str, ...]  # lower-cased plain keys
PlainEntry = tuple[LoreEntry, int, Needles]  # (entry, its index in the book, needles)
Sources = tuple[MatchSource, ...]
MARK = "\x01"  # SillyTavern's segment marker: a non-word character, so whole words stop at it
JOINER = "\n" + MARK


class ScanText:
    """Chat windows by depth (newest message first, as SillyTavern), the match sources an entry
    asks for, injections, recursion buffer."""

    def __init__(
        self, messages: Sequence[str], extra: Sequence[str], sources: Mapping[MatchSource, str] | None = None
    ) -> None:
        self.messages = [m.strip() for m in reversed(messages)]
        self.count = len(messages)
        self.extras = [t for t in extra if t]
        self.sources: Mapping[MatchSource, str] = sources or {}  # read only when an entry asks
        self.recursion: list[tuple[str, str]] = []  # (label of the entry, its content)
        self._chat: dict[int, tuple[str, str]] = {}
        self._source_text: dict[Sources, str] = {}
        self._haystacks: dict[tuple[int, int, Sources], Haystack] = {}
        self._deltas: dict[tuple[int, int], Haystack] = {}
        self._pieces: tuple[list[Haystack], list[Haystack]] | None = None  # for locate()
        self._extras = "".join(JOINER + t for t in self.extras)
        self._extras_low = self._extras.lower()

    def add_recursion(self, label: str, content: str) -> None:
        self.recursion.append((label, content))

    def haystack(self, depth: int, recursion_items: int, sources: Sources = ()) -> Haystack:
        """The window of ``depth`` messages, the match sources, the injections and the first
        recursion items (SillyTavern's order)."""
        key = (depth, recursion_items, sources)
        cached = self._haystacks.get(key)
        if cached is not None:
            return cached
        if depth <= 0:  # SillyTavern scans nothing at all at depth 0
            hay = Haystack("", "")
        else:
            chat = self._chat.get(depth)
            if chat is None:
                raw = MARK + JOINER.join(self.messages[:depth])
                chat = self._chat[depth] = (raw, raw.lower())
            tail = "".join(JOINER + c for _, c in self.recursion[:recursion_items])
            if sources:
                text = self._source_text.get(sources)
                if text is None:
                    texts = (self.sources.get(s) for s in sources)
                    text = self._source_text[sources] = "".join(JOINER + t for t in texts if t)
                tail = text + self._extras + tail
                hay = Haystack(chat[0] + tail, chat[1] + tail.lower())
            else:
                hay = Haystack(chat[0] + self._extras + tail, chat[1] + self._extras_low + tail.lower())
        self._haystacks[key] = hay
        return hay

    def recursion_since(self, start: int, end: int) -> Haystack:
        """Only the recursion text added between two passes."""
        cached = self._deltas.get((start, end))
        if cached is None:
            cached = self._deltas[(start, end)] = Haystack.of(
                "".join(JOINER + c for _, c in self.recursion[start:end])
            )
        return cached

    def locate(self, probe: KeyProbe, depth: int, recursion_items: int, sources: Sources = ()) -> str:
        """Where a matched key was found, in words, for the dry-run view."""
        if self._pieces is None:
            self._pieces = (
                [Haystack.of(MARK + m) for m in self.messages],
                [Haystack.of(MARK + t) for t in self.extras],
            )
        messages, extras = self._pieces
        for offset, message in enumerate(messages[: max(0, depth)]):
            if probe.found_in(message):
                return f"in message {self.count - 1 - offset}"
        for source in sources:
            text = self.sources.get(source)
            if text and depth > 0 and probe.found_in(Haystack.of(MARK + text)):
                return f"in {SOURCE_LABELS[source]} ({MATCH_FIELDS[source][0]})"
        for index, extra in enumerate(extras):
            if probe.found_in(extra):
                return f"in extra scan text {index}"
        for label, text in self.recursion[:recursion_items]:
            if probe.found_in(Haystack.of(MARK + text)):
                return f"via recursion from '{label}'"
        return "in the scanned text"


class EntryScan:
    """One entry prepared for scanning: options resolved, primary keys compiled, last check kept."""

    __slots__ = (
        "_groups",
        "_key",
        "additional",
        "base_depth",
        "blocked",
        "book",
        "book_index",
        "case_sensitive",
        "content",
        "decorators",
        "entry",
        "exclude",
        "fixed_depth",
        "index",
        "needles",
        "options",
        "primary_hit",
        "probes",
        "recursive",
        "secondary",
        "seen",
        "whole_words",
    )

    def __init__(
        self, entry: LoreEntry, book: Lorebook, book_index: int, index: int, options: EntryOptions
    ) -> None:
        self.entry = entry
        self.book = book
        self.book_index = book_index
        self.index = index
        self.options = options
        self.blocked: tuple[SkipReason, str] | None = None  # why it may not fire in this generation
        # fast path for plain keys in any case, anywhere: the keys lower-cased
        self.needles: Needles | None = None
        self.probes: tuple[KeyProbe, ...] = ()
        self.secondary: tuple[KeyProbe, ...] | None = None
        self.additional: tuple[KeyProbe, ...] | None = None
        self.exclude: tuple[KeyProbe, ...] | None = None
        self.seen: tuple[int, int] | None = None  # (depth, recursion items) of the last key check
        self.primary_hit = False
        self._key: EffectKey | None = None
        self._groups: tuple[str, ...] | None = None
        if entry.content.startswith("@@"):
            self.decorators, self.content = split_decorators(entry.content)
        else:
            self.decorators, self.content = NO_DECORATORS, entry.content

    @property
    def key(self) -> EffectKey:
        if self._key is None:
            self._key = effect_key(self.book.name, self.entry.uid)
        return self._key

    @property
    def groups(self) -> tuple[str, ...]:
        if self._groups is None:
            self._groups = group_names(self.entry.group) if self.entry.group else ()
        return self._groups

    @property
    def sources(self) -> Sources:
        return self.options.match_sources

    def depth(self, skew: int) -> int:
        depth = self.fixed_depth if self.fixed_depth is not None else self.base_depth + skew
        return max(0, min(depth, MAX_SCAN_DEPTH))

    fixed_depth: int | None  # the entry's own scan depth (field or decorator): never widened
    base_depth: int  # the book's or the global depth, widened by min activations
    recursive: bool
    case_sensitive: bool
    whole_words: bool


def prepare_scans(
    books: Sequence[Lorebook],
    settings: WorldInfoSettings,
    compiler: KeyCompiler,
    timed: frozenset[EffectKey],
) -> tuple[list[EntryScan], list[list[PlainEntry]]]:
    """Splits the enabled entries: full preparation for those with anything special, and a
    compact form, book by book, for plain keyword entries (most of a big lorebook)."""
    scans: list[EntryScan] = []
    plain: list[list[PlainEntry]] = []
    plain_ok = not (settings.case_sensitive or settings.match_whole_words)
    for book_index, book in enumerate(books):
        book_plain: list[PlainEntry] = []
        plain.append(book_plain)
        for index, entry in enumerate(book.entries):
            if entry.disabled:
                continue
            options = entry_options(entry) if entry.extensions else NO_OPTIONS
            needles = None
            if plain_ok and not (
                entry.constant
                or entry.case_sensitive
                or entry.match_whole_words
                or entry.use_regex
                or entry.delay
                or entry.delay_until_recursion
                or entry.exclude_recursion
                or entry.scan_depth is not None
                or entry.content.startswith("@@")
                or (timed and effect_key(book.name, entry.uid) in timed)
                or (options is not NO_OPTIONS and (options.gated or bool(options.match_sources)))
            ):
                needles = _needles(entry.keys)
            if needles is None:
                scans.append(prepare_scan(entry, book, book_index, index, settings, compiler, options))
            elif needles:
                book_plain.append((entry, index, needles))
    return scans, plain


def prepare_scan(
    entry: LoreEntry,
    book: Lorebook,
    book_index: int,
    index: int,
    settings: WorldInfoSettings,
    compiler: KeyCompiler,
    options: EntryOptions | None = None,
) -> EntryScan:
    scan = EntryScan(entry, book, book_index, index, entry_options(entry) if options is None else options)
    case = settings.case_sensitive if entry.case_sensitive is None else entry.case_sensitive
    whole = settings.match_whole_words if entry.match_whole_words is None else entry.match_whole_words
    scan.case_sensitive, scan.whole_words = case, whole
    scan.base_depth = book_depth(book, settings)
    scan.recursive = book_recursive(book, settings)
    scan.fixed_depth = entry.scan_depth if entry.scan_depth is not None else scan.decorators.scan_depth
    if not (case or whole or entry.use_regex):
        scan.needles = _needles(entry.keys)
    if scan.needles is None:
        scan.probes = compile_keys(compiler, entry.keys, scan)
    return scan


def book_depth(book: Lorebook, settings: WorldInfoSettings) -> int:
    return settings.scan_depth if book.scan_depth is None else book.scan_depth


def book_recursive(book: Lorebook, settings: WorldInfoSettings) -> bool:
    return settings.recursive if book.recursive_scanning is None else book.recursive_scanning


def plain_hits(entries: list[PlainEntry], hay: Haystack) -> list[PlainEntry]:
    """The plain entries with a key in the text (the hot loop of a big lorebook).

    A key can only be in the text if its first and last three characters are: two set lookups
    rule most keys out without searching.
    """
    low, grams = hay.low, hay.grams
    hits = []
    for plain in entries:
        for needle in plain[2]:
            if needle[:3] in grams and needle[-3:] in grams and needle in low:
                hits.append(plain)
                break
    return hits


def _needles(keys: Sequence[str]) -> Needles | None:
    """Plain keys lower-cased, blank ones left out; None if one may be a regex."""
    needles = [k.strip().lower() for k in keys]
    for needle in needles:
        if not needle or needle[0] == "/":
            if any(n[:1] == "/" for n in needles):
                return None
            return tuple(n for n in needles if n)
    return tuple(needles)


def compile_keys(compiler: KeyCompiler, keys: Sequence[str], scan: EntryScan) -> tuple[KeyProbe, ...]:
    probes = (
        compiler.compile(
            k,
            case_sensitive=scan.case_sensitive,
            whole_words=scan.whole_words,
            use_regex=scan.entry.use_regex,
        )
        for k in keys
    )
    return tuple(p for p in probes if p is not None)


def has_keys(scan: EntryScan) -> bool:
    return bool(scan.needles or scan.probes)


def first_primary(scan: EntryScan, hay: Haystack) -> str | None:
    """The first primary key found, as written in the entry, or None."""
    if scan.needles is not None:
        low, grams = hay.low, hay.grams
        for needle in scan.needles:
            if needle[:3] in grams and needle[-3:] in grams and needle in low:
                return next(k.strip() for k in scan.entry.keys if k.strip().lower() == needle)
        return None
    for probe in scan.probes:
        if probe.found_in(hay):
            return probe.key
    return None


def primary_probes(scan: EntryScan, compiler: KeyCompiler) -> tuple[KeyProbe, ...]:
    if scan.needles is not None and not scan.probes:
        scan.probes = compile_keys(compiler, scan.entry.keys, scan)
    return scan.probes


def secondary_probes(scan: EntryScan, compiler: KeyCompiler) -> tuple[KeyProbe, ...]:
    if scan.secondary is None:
        scan.secondary = compile_keys(compiler, scan.entry.secondary_keys, scan)
    return scan.secondary


def secondary_reason(scan: EntryScan, compiler: KeyCompiler, hay: Haystack) -> str | None:
    """SillyTavern's selective logic over the secondary keys; the reason, or None when it fails.

    Empty secondary keys count as not found, as in SillyTavern.
    """
    probes = secondary_probes(scan, compiler)
    blank = len(probes) < len(scan.entry.secondary_keys)
    logic = scan.entry.selective_logic
    if logic is SelectiveLogic.AND_ANY:
        hit = next((p for p in probes if p.found_in(hay)), None)
        return None if hit is None else f"secondary key '{hit.key}'"
    if logic is SelectiveLogic.NOT_ALL:
        miss = next((p for p in probes if not p.found_in(hay)), None)
        if miss is not None:
            return f"secondary key '{miss.key}' absent (NOT ALL)"
        return "a secondary key absent (NOT ALL)" if blank else None
    if logic is SelectiveLogic.NOT_ANY:
        return None if any(p.found_in(hay) for p in probes) else "no secondary key present (NOT ANY)"
    if blank:
        return None
    return "all secondary keys (AND ALL)" if all(p.found_in(hay) for p in probes) else None


def decorator_keys_reason(scan: EntryScan, compiler: KeyCompiler, hay: Haystack) -> str | None:
    """V3 ``@@additional_keys`` (one must be present) and ``@@exclude_keys`` (none may be)."""
    decorators, reason = scan.decorators, ""
    if decorators.additional_keys:
        if scan.additional is None:
            scan.additional = compile_keys(compiler, decorators.additional_keys, scan)
        extra = next((p for p in scan.additional if p.found_in(hay)), None)
        if extra is None:
            return None
        reason = f", additional key '{extra.key}'"
    if decorators.exclude_keys:
        if scan.exclude is None:
            scan.exclude = compile_keys(compiler, decorators.exclude_keys, scan)
        if any(p.found_in(hay) for p in scan.exclude):
            return None
    return reason


def group_score(scan: EntryScan, compiler: KeyCompiler, hay: Haystack) -> int:
    """SillyTavern's group score: keys found; secondary ones count only for the AND logics."""
    entry = scan.entry
    if not entry.keys:
        return 0
    primary = sum(1 for p in primary_probes(scan, compiler) if p.found_in(hay))
    if not entry.secondary_keys:
        return primary
    secondary = sum(1 for p in secondary_probes(scan, compiler) if p.found_in(hay))
    if entry.selective_logic is SelectiveLogic.AND_ANY:
        return primary + secondary
    if entry.selective_logic is SelectiveLogic.AND_ALL and secondary == len(entry.secondary_keys):
        return primary + secondary
    return primary
