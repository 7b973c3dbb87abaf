"""World Info activation: which lore entries fire for a chat turn, in SillyTavern's order, and why."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from enum import IntEnum

from kataribe.lore.entry_options import blocked_by
from kataribe.lore.groups import filter_inclusion_groups
from kataribe.lore.matching import KeyCompiler
from kataribe.lore.model import (
    MAX_SCAN_DEPTH,
    InsertionStrategy,
    Lorebook,
    WorldInfoSettings,
)
from kataribe.lore.results import ActivatedEntry, ActivationResult, ScanInput, SkippedEntry, SkipReason
from kataribe.lore.scanning import (
    EntryScan,
    ScanText,
    book_depth,
    book_recursive,
    decorator_keys_reason,
    first_primary,
    group_score,
    has_keys,
    plain_hits,
    prepare_scan,
    prepare_scans,
    primary_probes,
    secondary_reason,
)
from kataribe.lore.timed import LoreTimedState, TurnTimers, delayed, timers_at

__all__ = [
    "ActivatedEntry",
    "ActivationResult",
    "ScanInput",
    "SkipReason",
    "SkippedEntry",
    "activate_entries",
    "token_budget",
]


class _Pass(IntEnum):
    NONE = 0
    INITIAL = 1
    RECURSION = 2
    MIN_ACTIVATIONS = 3


def token_budget(settings: WorldInfoSettings, max_context: int) -> int:
    """SillyTavern's budget: a share of the context (at least 1 token), capped when a cap is set."""
    budget = math.floor(settings.budget_percent * max(0, max_context) / 100 + 0.5) or 1
    if settings.budget_cap > 0:
        budget = min(budget, settings.budget_cap)
    return budget


def activate_entries(
    books: Sequence[Lorebook],
    scan: ScanInput,
    settings: WorldInfoSettings,
    *,
    state: LoreTimedState,
    count_tokens: Callable[[str], int],
    max_context: int,
    rng: random.Random,
) -> ActivationResult:
    """Finds the entries that fire for this turn.

    Pure: the inputs are not changed and the new timers are in the result. ``rng`` drives the
    probability and inclusion-group rolls; ``count_tokens`` measures entries for the budget.
    """
    return _Activation(books, scan, settings, state, count_tokens, max_context, rng).run()


class _Activation:
    def __init__(
        self,
        books: Sequence[Lorebook],
        scan: ScanInput,
        settings: WorldInfoSettings,
        state: LoreTimedState,
        count_tokens: Callable[[str], int],
        max_context: int,
        rng: random.Random,
    ) -> None:
        self.settings = settings
        self.turn = scan.turn
        self.count_tokens = count_tokens
        self.rng = rng
        self.text = ScanText(scan.messages, scan.extra_scan_text, scan.match_text)
        self.compiler = KeyCompiler()
        self.budget = token_budget(settings, max_context)
        self.books = books
        timed = frozenset(state.sticky) | frozenset(state.cooldown)
        self.scans, self.plain = prepare_scans(books, settings, self.compiler, timed)
        for prepared in self.scans:  # plain keyword entries have no triggers or character filter
            if prepared.options.gated:
                prepared.blocked = blocked_by(prepared.options, scan)
        self.plain_seen: dict[int, int] = {}  # depth -> recursion items the plain entries were checked with
        by_key = {s.key: s.entry for s in self.scans if s.key in timed} if timed else {}
        self.timers: TurnTimers = timers_at(state, scan.turn, by_key)
        self.activated: dict[int, tuple[EntryScan, str]] = {}  # id -> (scan, reason), in firing order
        self.failed_probability: set[int] = set()
        self.skipped: list[SkippedEntry] = []
        self.reported: set[int] = set()
        self.tokens_used = 0
        self.book_tokens: dict[int, int] = {}
        self.overflowed = False
        self.skew = 0
        self.pass_items = 0  # recursion items scanned in the current pass

    def rank(self, scan: EntryScan) -> tuple[int, ...]:
        """Priority: higher order first; across books as the insertion strategy says."""
        if self.settings.insertion_strategy is InsertionStrategy.EVENLY:
            return (-scan.entry.order, scan.book_index, scan.index)
        return (scan.book_index, -scan.entry.order, scan.index)

    def run(self) -> ActivationResult:
        any_recursive = any(book_recursive(b, self.settings) for b in self.books)
        levels = sorted({s.entry.recursion_delay_level for s in self.scans if s.entry.delay_until_recursion})
        level = levels.pop(0) if levels else 0
        scan_pass = _Pass.INITIAL
        steps = 0
        while scan_pass:
            if self.settings.max_recursion_steps and steps >= self.settings.max_recursion_steps:
                break
            steps += 1
            accepted = self._fire(self._find(scan_pass, level))
            for_recursion = [s for s in accepted if not s.entry.prevent_recursion]
            next_pass = _Pass.NONE
            more = for_recursion or (scan_pass is _Pass.MIN_ACTIVATIONS and self.text.recursion)
            if any_recursive and not self.overflowed and more:
                next_pass = _Pass.RECURSION
            if not next_pass and not self.overflowed and self._wants_wider_window():
                next_pass = _Pass.MIN_ACTIVATIONS
                self.skew += 1
            if not next_pass and levels:
                next_pass, level = _Pass.RECURSION, levels.pop(0)
            scan_pass = next_pass
            if scan_pass:
                for accepted_scan in for_recursion:
                    if accepted_scan.content:
                        self.text.add_recursion(accepted_scan.entry.label, accepted_scan.content)
        return self._result()

    def _wants_wider_window(self) -> bool:
        """Min activations: widen the window by one message while too few entries fired.

        SillyTavern checks the limit before widening and so scans one message past it; this
        stops at the limit (``min_activations_depth_max``, else the whole chat).
        """
        settings = self.settings
        if not settings.min_activations or len(self.activated) >= settings.min_activations:
            return False
        limit = min(settings.min_activations_depth_max or MAX_SCAN_DEPTH, self.text.count, MAX_SCAN_DEPTH)
        return settings.scan_depth + self.skew < limit

    def _find(self, scan_pass: _Pass, level: int) -> list[tuple[EntryScan, str]]:
        """Entries whose conditions hold in this pass, with the reason (SillyTavern's cascade)."""
        found: list[tuple[EntryScan, str]] = []
        activated, failed = self.activated, self.failed_probability
        sticky_timers, cooling = self.timers.sticky, self.timers.cooldown
        timed = bool(sticky_timers or cooling)
        recursing = scan_pass is _Pass.RECURSION
        self.pass_items = 0 if scan_pass is _Pass.MIN_ACTIVATIONS else len(self.text.recursion)
        for scan in self.scans:
            ident = id(scan)
            if ident in activated or ident in failed:
                continue
            if scan.blocked is not None:  # SillyTavern checks this before anything else
                if scan_pass is _Pass.INITIAL:
                    self._report_suppressed(scan, *scan.blocked)
                continue
            entry, decorators = scan.entry, scan.decorators
            sticky = timed and scan.key in sticky_timers
            if entry.delay or decorators.any or (timed and scan.key in cooling):
                suppressed = self._suppressed(scan, sticky)
                if suppressed is not None:
                    if scan_pass is _Pass.INITIAL:
                        self._report_suppressed(scan, *suppressed)
                    continue
            if entry.delay_until_recursion and not sticky:
                delay_level = entry.recursion_delay_level
                if delay_level and (not recursing or delay_level > level):
                    continue
            if recursing and not sticky:
                # as in SillyTavern, exclude_recursion only counts where recursion is on; a book that
                # does not recurse still lets its delayed entries fire in their level's pass
                if scan.recursive and entry.exclude_recursion:
                    continue
                if not scan.recursive and not entry.delay_until_recursion:
                    continue
            if decorators.activate:
                found.append((scan, "@@activate decorator"))
            elif decorators.dont_activate:
                continue
            elif entry.constant:
                found.append((scan, "constant"))
            elif sticky:
                found.append((scan, _turns("sticky", self.timers.sticky[scan.key].turns_left(self.turn))))
            elif has_keys(scan):
                reason = self._match(scan, scan_pass)
                if reason is not None:
                    found.append((scan, reason))
        return found + self._find_plain(scan_pass)

    def _find_plain(self, scan_pass: _Pass) -> list[tuple[EntryScan, str]]:
        """Plain keyword entries: one text per book, and only the text new since their last check.

        An entry whose key is found is fully prepared and joins the others for good.
        """
        items = self.pass_items
        found: list[tuple[EntryScan, str]] = []
        checked: dict[int, int] = {}
        for book_index, book in enumerate(self.books):
            entries = self.plain[book_index]
            if not entries or (scan_pass is _Pass.RECURSION and not book_recursive(book, self.settings)):
                continue
            depth = max(0, min(book_depth(book, self.settings) + self.skew, MAX_SCAN_DEPTH))
            seen = self.plain_seen.get(depth)
            if seen is not None and seen <= items:
                if seen == items:
                    continue
                hay = self.text.recursion_since(seen, items)
            else:
                hay = self.text.haystack(depth, items)
            checked[depth] = items
            hits = plain_hits(entries, hay)
            if not hits:
                continue
            hit_ids = {id(h) for h in hits}
            self.plain[book_index] = [p for p in entries if id(p) not in hit_ids]
            for entry, index, _ in hits:
                scan = prepare_scan(entry, book, book_index, index, self.settings, self.compiler)
                self.scans.append(scan)
                reason = self._match(scan, scan_pass)
                if reason is not None:
                    found.append((scan, reason))
        self.plain_seen.update(checked)
        return found

    def _suppressed(self, scan: EntryScan, sticky: bool) -> tuple[SkipReason, str] | None:
        entry, decorators, turn = scan.entry, scan.decorators, self.turn
        if delayed(entry, turn):
            return SkipReason.DELAY, f"delay: waits for message {entry.delay}"
        if not sticky and scan.key in self.timers.cooldown:
            return SkipReason.COOLDOWN, _turns("cooldown", self.timers.cooldown[scan.key].turns_left(turn))
        after, every = decorators.activate_only_after, decorators.activate_only_every
        if after is not None and turn < after:
            return SkipReason.DELAY, f"@@activate_only_after {after}"
        if every is not None and turn % every:
            return SkipReason.DELAY, f"@@activate_only_every {every}"
        return None

    def _report_suppressed(self, scan: EntryScan, reason: SkipReason, detail: str) -> None:
        # only entries that would otherwise have fired are worth showing
        entry = scan.entry
        would_fire = entry.constant or scan.decorators.activate or scan.key in self.timers.sticky
        if would_fire or (has_keys(scan) and self._match(scan, _Pass.INITIAL) is not None):
            self._skip(scan, reason, detail)

    def _match(self, scan: EntryScan, scan_pass: _Pass) -> str | None:
        """Keys: a primary one, then the selective logic over the secondary ones, then V3's."""
        depth = scan.depth(self.skew)
        items = 0 if scan_pass is _Pass.MIN_ACTIVATIONS else len(self.text.recursion)  # ST leaves it out
        seen = scan.seen
        if seen is not None and seen[0] == depth and not scan.primary_hit and seen[1] <= items:
            if seen[1] == items:
                return None
            scan.seen = (depth, items)
            if first_primary(scan, self.text.recursion_since(seen[1], items)) is None:
                return None
        scan.seen = (depth, items)
        hay = self.text.haystack(depth, items, scan.sources)
        key = first_primary(scan, hay)
        scan.primary_hit = key is not None
        if key is None:
            return None
        entry = scan.entry
        probe = next((p for p in primary_probes(scan, self.compiler) if p.key == key), None)
        where = "in the scanned text"
        if probe is not None:
            where = self.text.locate(probe, depth, items, scan.sources)
        reason = f"key '{key}' {where}"
        if entry.selective and entry.secondary_keys:
            secondary = secondary_reason(scan, self.compiler, hay)
            if secondary is None:
                return None
            reason += f", {secondary}"
        if scan.decorators.any:
            extra = decorator_keys_reason(scan, self.compiler, hay)
            if extra is None:
                return None
            reason += extra
        if scan_pass is _Pass.MIN_ACTIVATIONS:
            reason += f" (window widened to {depth} messages for min activations)"
        return reason

    def _fire(self, found: list[tuple[EntryScan, str]]) -> list[EntryScan]:
        """Groups, probability, budget; sticky entries first, then by priority (SillyTavern's order)."""
        timers = self.timers
        reasons = {id(s): r for s, r in found}
        ordered = sorted((s for s, _ in found), key=lambda s: (s.key not in timers.sticky, self.rank(s)))
        kept, losers = filter_inclusion_groups(
            ordered,
            [s for s, _ in self.activated.values()],
            is_sticky=lambda s: s.key in timers.sticky,
            score=lambda s: group_score(
                s, self.compiler, self.text.haystack(s.depth(self.skew), self.pass_items, s.sources)
            ),
            scoring_by_default=self.settings.use_group_scoring,
            rng=self.rng,
        )
        for loser, why in losers:
            self._skip(loser, SkipReason.GROUP, why)
        accepted = []
        for scan in kept:
            entry = scan.entry
            ignore_budget = scan.options.ignore_budget  # fires over the budget, but still counts in it
            if self.overflowed and not ignore_budget:
                self._skip(scan, SkipReason.BUDGET, "")
                continue
            rolls = entry.use_probability and entry.probability < 100 and scan.key not in timers.sticky
            if rolls and self.rng.random() * 100 > entry.probability:
                self.failed_probability.add(id(scan))
                self._skip(scan, SkipReason.PROBABILITY, f"lost its {entry.probability}% roll")
                continue
            cost = max(0, self.count_tokens(scan.content))
            reason = reasons[id(scan)]
            over = self.overflowed or self.tokens_used + cost >= self.budget
            if over and not ignore_budget:  # SillyTavern stops on reaching the budget
                self.overflowed = True
                self._skip(scan, SkipReason.BUDGET, "")
                continue
            book_budget = scan.book.token_budget
            book_used = self.book_tokens.get(id(scan.book), 0)
            book_full = book_budget is not None and book_used + cost > book_budget
            if book_full and not ignore_budget:
                detail = f"book '{scan.book.name}' budget of {book_budget} tokens is full"
                self._skip(scan, SkipReason.BOOK_BUDGET, detail)
                continue
            if over or book_full:
                reason += ", over the budget (ignoreBudget)"
            self.tokens_used += cost
            self.book_tokens[id(scan.book)] = book_used + cost
            self.activated[id(scan)] = (scan, reason)
            accepted.append(scan)
        return accepted

    def _skip(self, scan: EntryScan, reason: SkipReason, detail: str) -> None:
        if id(scan) in self.reported:
            return
        self.reported.add(id(scan))
        if reason is SkipReason.BUDGET:
            detail = f"the World Info budget of {self.budget} tokens is full"
        self.skipped.append(SkippedEntry(scan.book.name, scan.entry, reason, detail))

    def _refused_keys(self) -> list[tuple[EntryScan, str]]:
        """Entries with a key regex that was not run, each with the first such key and why."""
        out = []
        for scan in self.scans:
            probes = (*scan.probes, *(scan.secondary or ()), *(scan.additional or ()), *(scan.exclude or ()))
            probe = next((p for p in probes if p.refused is not None), None)
            if probe is not None:
                out.append((scan, f"key '{probe.key}' {probe.refused}"))
        return out

    def _result(self) -> ActivationResult:
        for scan, why in self._refused_keys():
            if id(scan) in self.activated:
                fired_scan, reason = self.activated[id(scan)]
                self.activated[id(scan)] = (fired_scan, f"{reason} (not used: {why})")
            else:
                self._skip(scan, SkipReason.REGEX_KEY, why)
        fired = list(self.activated.values())
        for scan, _ in fired:
            self.timers.record_activation(scan.key, scan.entry)
        # SillyTavern sorts by order, highest first, then prepends each into its position's list:
        # lower order ends up first (farther from the chat) and equal orders come out reversed.
        fired.sort(key=lambda item: -item[0].entry.order)
        fired.reverse()
        return ActivationResult(
            entries=[_activated(scan, reason) for scan, reason in fired],
            skipped=self.skipped,
            state=self.timers.next_state(),
            tokens_used=self.tokens_used,
            budget=self.budget,
        )


def _turns(what: str, left: int) -> str:
    return f"{what} ({left} turn{'' if left == 1 else 's'} left)"


def _activated(scan: EntryScan, reason: str) -> ActivatedEntry:
    entry, decorators = scan.entry, scan.decorators
    position, depth = decorators.placement(entry.position, entry.depth)
    return ActivatedEntry(
        book=scan.book.name,
        entry=entry,
        content=scan.content,
        position=position,
        depth=max(0, depth),
        role=decorators.role or entry.role,
        order=entry.order,
        reason=reason,
    )
