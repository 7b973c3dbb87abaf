"""Per-chat timed effects (sticky, cooldown, delay) with SillyTavern's arithmetic."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kataribe.lore.jsonvalues import BadValue, as_bool, as_int, as_object, as_str
from kataribe.lore.model import LoreDataError, LoreEntry

EffectKey = tuple[str, str]  # (book name, entry uid as text)
MAX_EFFECTS = 100_000


def effect_key(book: str, uid: int | str) -> EffectKey:
    return (book, str(uid))


@dataclass(frozen=True, slots=True)
class TimedEffect:
    """Active for turns in ``(start, end)``; set at turn ``start``.

    A ``protected`` effect survives a regeneration of its own turn (a cooldown that began when
    a sticky effect ended).
    """

    start: int
    end: int
    protected: bool = False

    def turns_left(self, turn: int) -> int:
        return self.end - turn


@dataclass(frozen=True, slots=True)
class LoreTimedState:
    """The timed effects of one chat. Stored per chat; ``activate_entries`` returns a new one."""

    sticky: Mapping[EffectKey, TimedEffect] = field(default_factory=dict)
    cooldown: Mapping[EffectKey, TimedEffect] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        def dump(effects: Mapping[EffectKey, TimedEffect]) -> list[dict[str, Any]]:
            return [
                {"book": b, "uid": u, "start": e.start, "end": e.end, "protected": e.protected}
                for (b, u), e in effects.items()
            ]

        return {"sticky": dump(self.sticky), "cooldown": dump(self.cooldown)}

    @classmethod
    def from_dict(cls, data: object) -> LoreTimedState:
        try:
            obj = as_object(data)
            return cls(sticky=_load(obj.get("sticky")), cooldown=_load(obj.get("cooldown")))
        except BadValue as exc:
            raise LoreDataError(
                f"The chat's lore timers are malformed: {exc}. Clear them to start the timers afresh."
            ) from None


def _load(items: object) -> dict[EffectKey, TimedEffect]:
    if items is None:
        return {}
    if not isinstance(items, list):
        raise BadValue("timed effects must be a list")
    if len(items) > MAX_EFFECTS:
        raise BadValue(f"{len(items)} timed effects, more than the limit of {MAX_EFFECTS}")
    effects: dict[EffectKey, TimedEffect] = {}
    for item in items:
        obj = as_object(item)
        key = (as_str(obj.get("book"), limit=1_000), as_str(obj.get("uid"), limit=1_000))
        effects[key] = TimedEffect(
            start=as_int(obj.get("start")),
            end=as_int(obj.get("end")),
            protected=as_bool(obj.get("protected")),
        )
    return effects


@dataclass(slots=True)
class TurnTimers:
    """The timers as seen at one turn: what is active now, and what carries on to the next state."""

    turn: int
    sticky: dict[EffectKey, TimedEffect]
    cooldown: dict[EffectKey, TimedEffect]
    carried_sticky: dict[EffectKey, TimedEffect]
    carried_cooldown: dict[EffectKey, TimedEffect]

    def is_sticky(self, key: EffectKey) -> bool:
        return key in self.sticky

    def is_cooling(self, key: EffectKey) -> bool:
        return key in self.cooldown

    def record_activation(self, key: EffectKey, entry: LoreEntry) -> None:
        """Starts sticky and cooldown timers for an entry that fired this turn (unless running)."""
        for length, carried in ((entry.sticky, self.carried_sticky), (entry.cooldown, self.carried_cooldown)):
            if length and length > 0 and key not in carried:
                carried[key] = TimedEffect(start=self.turn, end=self.turn + length)

    def next_state(self) -> LoreTimedState:
        return LoreTimedState(sticky=dict(self.carried_sticky), cooldown=dict(self.carried_cooldown))


def timers_at(state: LoreTimedState, turn: int, entries: Mapping[EffectKey, LoreEntry]) -> TurnTimers:
    """Applies SillyTavern's checkTimedEffects: expire, drop stale, start cooldowns after sticky."""
    timers = TurnTimers(turn, {}, {}, {}, dict(state.cooldown))
    for key, effect in state.sticky.items():
        if _keep(key, effect, turn, entries, "sticky", timers.carried_sticky, timers.sticky):
            continue
        entry = entries.get(key)
        if entry is not None and entry.sticky and turn >= effect.end and (entry.cooldown or 0) > 0:
            # the cooldown starts when the sticky period ends, and survives a regeneration
            timers.carried_cooldown[key] = TimedEffect(
                start=turn, end=turn + (entry.cooldown or 0), protected=True
            )
    for key, effect in list(timers.carried_cooldown.items()):
        del timers.carried_cooldown[key]
        _keep(key, effect, turn, entries, "cooldown", timers.carried_cooldown, timers.cooldown)
    return timers


def _keep(
    key: EffectKey,
    effect: TimedEffect,
    turn: int,
    entries: Mapping[EffectKey, LoreEntry],
    kind: str,
    carried: dict[EffectKey, TimedEffect],
    active: dict[EffectKey, TimedEffect],
) -> bool:
    """Carries ``effect`` on when it still runs; True when it is active this turn."""
    if turn <= effect.start and not effect.protected:
        return False  # the chat went back (regenerate, swipe, deleted messages): start afresh
    entry = entries.get(key)
    if entry is None:
        if turn < effect.end:
            carried[key] = effect  # its book may be absent from this call; keep until it would end
        return False
    length = entry.sticky if kind == "sticky" else entry.cooldown
    if not length or turn >= effect.end:
        return False
    carried[key] = effect
    active[key] = effect
    return True


def delayed(entry: LoreEntry, turn: int) -> bool:
    """SillyTavern's delay: the entry cannot fire before the chat has ``delay`` messages."""
    return bool(entry.delay) and turn < (entry.delay or 0)


def entries_by_key(books: Iterable[tuple[str, Iterable[LoreEntry]]]) -> dict[EffectKey, LoreEntry]:
    return {effect_key(name, e.uid): e for name, entries in books for e in entries}
