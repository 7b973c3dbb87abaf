"""SillyTavern-compatible ``{{macro}}`` expansion: names, time, random picks, dice and chat variables."""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

from kataribe.prompt.macro_variables import (
    GLOBAL_VARIABLE_MACROS,
    MAX_VARIABLE_CHARS,
    VARIABLE_MACROS,
    VariableMacro,
    format_js_number,
    js_number,
)

__all__ = [
    "MAX_DICE_COUNT",
    "MAX_DICE_SIDES",
    "MAX_NESTING",
    "MAX_PRODUCED_CHARS",
    "MAX_REPEAT",
    "MAX_VARIABLE_CHARS",
    "MacroContext",
    "MacroVariables",
    "expand_macros",
    "format_js_number",
    "humanize_duration",
    "js_number",
]

MAX_NESTING = 32
MAX_DICE_COUNT = 1000
MAX_DICE_SIDES = 1_000_000
MAX_REPEAT = 1000  # {{newline::n}} and {{space::n}}
# Macros may copy variables and arguments; capping what they produce keeps a hostile text from
# doubling a variable a thousand times into gigabytes.
MAX_PRODUCED_CHARS = 4_000_000

# fmt: off
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# fmt: on

_TOKEN = re.compile(r"\{\{(?!\{)|\}\}|<(?:user|bot|char|group|charifnotgroup)>", re.IGNORECASE)
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_TIME_UTC = re.compile(r"\s*time_utc([+-][0-9]{1,2})\s*", re.IGNORECASE)
_UTC_OFFSET = re.compile(r"utc([+-][0-9]{1,2})", re.IGNORECASE)
_DICE = re.compile(r"([0-9]*)[dD]([0-9]+)(?:([+-])([0-9]+))?")
_TRIM_MARKER = re.compile(r"\{\{trim\}\}", re.IGNORECASE)


@dataclass
class MacroVariables:
    """Chat-local and global variables; the variable macros mutate these dicts in place."""

    local: dict[str, str] = field(default_factory=dict)
    global_: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MacroContext:
    """Everything a macro can read. Values are inserted as given: expand card fields first, as ST does."""

    user: str
    char: str
    persona: str
    description: str
    personality: str
    scenario: str
    mes_examples: str
    last_message: str
    last_user_message: str
    last_char_message: str
    now: datetime
    last_user_time: datetime | None
    chat_id: str
    variables: MacroVariables
    rng: random.Random
    group: str = ""
    model: str = ""


def expand_macros(text: str, ctx: MacroContext, *, original: str | None = None) -> str:
    """Expand SillyTavern macros in ``text``, left to right and inside-out; unknown macros stay as written.

    ``original`` is what ``{{original}}`` stands for (the text this one overrides); it is expanded with
    the same context, inserted at the first ``{{original}}`` only, and empty at later ones.
    """
    if not text:
        return ""
    return _Expansion(ctx, original, scope="").run(text)


@dataclass
class _Frame:
    start: int
    # (True, text as written) or (False, text a nested macro produced): only written text separates args
    chunks: list[tuple[bool, str]] = field(default_factory=list)


@dataclass(frozen=True)
class _Call:
    name: str
    args: list[str]
    offset: int
    source: str


class _Expansion:
    """One expansion run: a stack of open macros over a single left-to-right scan (no recursion)."""

    def __init__(self, ctx: MacroContext, original: str | None, scope: str) -> None:
        self.ctx = ctx
        self.original = original
        self.scope = scope
        self.produced = 0

    def run(self, text: str) -> str:
        if "{{" not in text and "<" not in text:
            return text
        out: list[str] = []
        stack: list[_Frame] = []
        overflow = 0  # braces past MAX_NESTING are kept as text, paired so they do not close outer macros
        pos = 0
        for match in _TOKEN.finditer(text):
            self._append(stack, out, True, text[pos : match.start()])
            pos = match.end()
            token = match.group()
            if token == "{{":
                if len(stack) >= MAX_NESTING:
                    overflow += 1
                    self._append(stack, out, True, token)
                else:
                    stack.append(_Frame(match.start()))
            elif token == "}}":
                if overflow:
                    overflow -= 1
                    self._append(stack, out, True, token)
                elif not stack:
                    out.append(token)
                else:
                    frame = stack.pop()
                    result = self._close(frame, text[frame.start : match.end()])
                    self._append(stack, out, False, result)
            else:
                self._append(stack, out, False, self._legacy_marker(token))
        self._append(stack, out, True, text[pos:])
        while stack:  # unclosed macros are plain text; the complete macros inside them stay expanded
            frame = stack.pop()
            self._append(stack, out, True, "{{" + "".join(t for _, t in frame.chunks))
        return _apply_trim("".join(out))

    @staticmethod
    def _append(stack: list[_Frame], out: list[str], written: bool, piece: str) -> None:
        if not piece:
            return
        if stack:
            stack[-1].chunks.append((written, piece))
        else:
            out.append(piece)

    def _legacy_marker(self, token: str) -> str:
        name = token[1:-1].lower()
        if name == "user":
            return self.ctx.user
        if name in ("bot", "char"):
            return self.ctx.char
        return self.ctx.group or self.ctx.char

    def _close(self, frame: _Frame, source: str) -> str:
        call = _parse_call(frame.chunks, frame.start, source)
        handler = _HANDLERS.get(call.name) if call is not None else None
        result = handler(self, call) if handler is not None and call is not None else None
        if result is None:  # unknown or refused: kept as written, with the macros inside it expanded
            return "{{" + "".join(t for _, t in frame.chunks) + "}}"
        if self.produced + len(result) > MAX_PRODUCED_CHARS:
            return source
        self.produced += len(result)
        return result


def _parse_call(chunks: list[tuple[bool, str]], offset: int, source: str) -> _Call | None:
    """Name and arguments of a closed macro, or None when it is not macro syntax ST would resolve."""
    if not chunks or not chunks[0][0]:
        return None
    head = chunks[0][1]
    later = chunks[1:]
    stripped = head.lstrip()
    if stripped.startswith("//"):
        return _Call("//", [], offset, source)
    utc = _TIME_UTC.fullmatch(head) if not later else None
    if utc:  # ST's legacy {{time_UTC+2}} spelling of {{time::UTC+2}}
        return _Call("time", ["UTC" + utc.group(1)], offset, source)
    ident = _IDENTIFIER.match(head, len(head) - len(stripped))
    if ident is None:
        return None
    name = ident.group().lower()
    rest = head[ident.end() :]
    if not rest.strip() and not later:
        return _Call(name, [], offset, source)
    if not rest or not (rest[0] == ":" or rest[0].isspace()):
        return None
    rest = rest.lstrip()
    if rest.startswith("::") or not rest.startswith(":"):
        pieces: list[list[str]] = [[]]
        for written, text in [(True, rest.removeprefix("::")), *later]:
            if not written:
                pieces[-1].append(text)
                continue
            first, *others = text.split("::")
            pieces[-1].append(first)
            pieces.extend([other] for other in others)
        return _Call(name, ["".join(p).strip() for p in pieces], offset, source)
    # A single colon (legacy {{random:a,b}}, {{roll:1d6}}) makes everything after it one argument.
    single = rest[1:] + "".join(t for _, t in later)
    return _Call(name, [single.strip()], offset, source)


def _apply_trim(text: str) -> str:
    """Remove each ``{{trim}}`` with the line breaks around it, as ST's post-processing does."""
    if "{{" not in text:
        return text
    pieces: list[str] = []
    cursor = 0
    for match in _TRIM_MARKER.finditer(text):
        start, end = match.start(), match.end()
        while start > cursor and text[start - 1] == "\n":
            start -= 2 if start - 1 > cursor and text[start - 2] == "\r" else 1
        while end < len(text) and (text[end] == "\n" or text.startswith("\r\n", end)):
            end += 1 if text[end] == "\n" else 2
        pieces.append(text[cursor:start])
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)


# --- handlers: each returns the replacement text, or None to leave the macro as written ---------------

_Handler = Callable[[_Expansion, _Call], str | None]


def _field(read: Callable[[MacroContext], str]) -> _Handler:
    def handler(exp: _Expansion, call: _Call) -> str | None:
        return read(exp.ctx) if not call.args else None

    return handler


def _original(exp: _Expansion, call: _Call) -> str | None:
    if exp.original is None or call.args:
        return None
    text, exp.original = exp.original, ""
    return _Expansion(exp.ctx, None, scope=exp.scope + "/original").run(text) if text else ""


def _repeat(unit: str) -> _Handler:
    def handler(exp: _Expansion, call: _Call) -> str | None:
        if not call.args:
            return unit
        count = call.args[0]
        if len(call.args) > 1 or not (count.isascii() and count.isdigit()):
            return None
        if len(count) > 6 or int(count) > MAX_REPEAT:
            return None
        return unit * int(count)

    return handler


def _constant(value: str) -> _Handler:
    return lambda exp, call: value if not call.args else None


def _time(exp: _Expansion, call: _Call) -> str | None:
    now = exp.ctx.now
    if call.args:
        offset = _UTC_OFFSET.fullmatch(call.args[0]) if len(call.args) == 1 else None
        if offset is None or abs(int(offset.group(1))) > 14:
            return None
        aware = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
        try:
            now = aware.astimezone(timezone(timedelta(hours=int(offset.group(1)))))
        except (OverflowError, ValueError):
            return None
    return f"{(now.hour % 12) or 12}:{now.minute:02d} {'PM' if now.hour >= 12 else 'AM'}"


def _clock(render: Callable[[datetime], str]) -> _Handler:
    return lambda exp, call: render(exp.ctx.now) if not call.args else None


def _idle_duration(exp: _Expansion, call: _Call) -> str | None:
    if call.args:
        return None
    since = exp.ctx.last_user_time
    if since is None:
        return "just now"
    try:
        return humanize_duration(_naive_utc(exp.ctx.now) - _naive_utc(since))
    except (OverflowError, ValueError):
        return "just now"


def _naive_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)


def humanize_duration(delta: timedelta) -> str:
    """Moment.js ``duration.humanize()`` in English: "a few seconds", "5 minutes", "a day", "2 years"."""
    seconds_exact = abs(delta.total_seconds())

    def rounded(value: float) -> int:  # JS Math.round: halves go up
        return math.floor(value + 0.5)

    seconds = rounded(seconds_exact)
    minutes = rounded(seconds_exact / 60)
    hours = rounded(seconds_exact / 3600)
    days = rounded(seconds_exact / 86400)
    months = rounded(seconds_exact / 86400 * 4800 / 146097)
    years = rounded(seconds_exact / 86400 * 400 / 146097)
    steps: tuple[tuple[bool, str], ...] = (
        (seconds < 45, "a few seconds"),
        (minutes <= 1, "a minute"),
        (minutes < 45, f"{minutes} minutes"),
        (hours <= 1, "an hour"),
        (hours < 22, f"{hours} hours"),
        (days <= 1, "a day"),
        (days < 26, f"{days} days"),
        (months <= 1, "a month"),
        (months < 11, f"{months} months"),
        (years <= 1, "a year"),
    )
    return next((text for matched, text in steps if matched), f"{years} years")


def _choices(args: list[str]) -> list[str]:
    if len(args) != 1:
        return args
    listed = args[0]
    if "::" in listed:
        return [item.strip() for item in listed.split("::")]
    # ST's comma form: "\," keeps a comma inside an item
    kept = "\x00\x1fcomma\x1f\x00"
    return [item.strip().replace(kept, ",") for item in listed.replace("\\,", kept).split(",")]


def _random(exp: _Expansion, call: _Call) -> str | None:
    choices = _choices(call.args)
    return choices[exp.ctx.rng.randrange(len(choices))] if choices else ""


def _pick(exp: _Expansion, call: _Call) -> str | None:
    choices = _choices(call.args)
    if not choices:
        return ""
    # A stable digest (not Python's salted hash()) so the same chat, place and options pick the same
    # item on every expansion and in every process.
    seed = "\x1f".join((exp.ctx.chat_id, exp.scope, str(call.offset), call.source))
    digest = hashlib.sha256(seed.encode("utf-8", "surrogatepass")).digest()
    return choices[int.from_bytes(digest[:8], "big") % len(choices)]


def _roll(exp: _Expansion, call: _Call) -> str | None:
    if len(call.args) != 1:
        return None
    formula = call.args[0]
    if formula.isascii() and formula.isdigit():
        formula = "1d" + formula
    dice = _DICE.fullmatch(formula)
    if dice is None:
        return ""  # ST renders an invalid formula as nothing
    count_text, sides_text, sign, bonus_text = dice.groups()
    if len(count_text) > 9 or len(sides_text) > 9 or len(bonus_text or "") > 9:
        return None
    count, sides = int(count_text or "1"), int(sides_text)
    if count == 0 or sides == 0:
        return ""
    if count > MAX_DICE_COUNT or sides > MAX_DICE_SIDES:
        return None  # refuse absurd dice rather than spend seconds rolling them
    total = sum(exp.ctx.rng.randint(1, sides) for _ in range(count))
    bonus = int(bonus_text or "0")
    return str(total - bonus if sign == "-" else total + bonus)


def _variable_handlers(
    macros: dict[str, VariableMacro], pick_store: Callable[[MacroVariables], dict[str, str]]
) -> dict[str, _Handler]:
    def bind(macro: VariableMacro) -> _Handler:
        return lambda exp, call: macro(pick_store(exp.ctx.variables), call.args)

    return {name: bind(macro) for name, macro in macros.items()}


_HANDLERS: dict[str, _Handler] = {
    "user": _field(lambda c: c.user),
    "char": _field(lambda c: c.char),
    "persona": _field(lambda c: c.persona),
    "description": _field(lambda c: c.description),
    "personality": _field(lambda c: c.personality),
    "scenario": _field(lambda c: c.scenario),
    "mesexamples": _field(lambda c: c.mes_examples),
    "mesexamplesraw": _field(lambda c: c.mes_examples),
    "lastmessage": _field(lambda c: c.last_message),
    "lastusermessage": _field(lambda c: c.last_user_message),
    "lastcharmessage": _field(lambda c: c.last_char_message),
    "group": _field(lambda c: c.group or c.char),
    "charifnotgroup": _field(lambda c: c.group or c.char),
    "model": _field(lambda c: c.model),
    "original": _original,
    "newline": _repeat("\n"),
    "space": _repeat(" "),
    "noop": _constant(""),
    "trim": _constant("{{trim}}"),  # removed with its surrounding line breaks after expansion
    "//": lambda exp, call: "",
    "time": _time,
    "date": _clock(lambda now: f"{_MONTHS[now.month - 1]} {now.day}, {now.year}"),
    "weekday": _clock(lambda now: _WEEKDAYS[now.weekday()]),
    "isotime": _clock(lambda now: f"{now.hour:02d}:{now.minute:02d}"),
    "isodate": _clock(lambda now: f"{now.year:04d}-{now.month:02d}-{now.day:02d}"),
    "idle_duration": _idle_duration,
    "random": _random,
    "pick": _pick,
    "roll": _roll,
    **_variable_handlers(VARIABLE_MACROS, lambda v: v.local),
    **_variable_handlers(GLOBAL_VARIABLE_MACROS, lambda v: v.global_),
}
