"""Chat mode's prompt: a card, a persona, lore, author's note and history become assembly input."""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from kataribe.lore.engine import ActivatedEntry, ActivationResult, ScanInput, activate_entries
from kataribe.lore.model import Lorebook, Position, WorldInfoSettings
from kataribe.lore.results import Generation, MatchSource
from kataribe.lore.timed import LoreTimedState
from kataribe.prompt.assemble import (
    DEFAULT_ORDER,
    AssembledPrompt,
    AssemblyInput,
    Budget,
    DepthInjection,
    HistoryItem,
    Section,
    assemble_prompt,
)
from kataribe.prompt.instruct import InstructTemplate
from kataribe.prompt.macros import MacroContext, MacroVariables, expand_macros

DEFAULT_MAIN_PROMPT = (
    "Write {{char}}'s next reply in a fictional chat between {{char}} and {{user}}. "
    "Stay in character and keep the story moving."
)
DEFAULT_IMPERSONATE_PROMPT = (
    "[Write your next reply from the point of view of {{user}}, using the chat history so far as a "
    "guideline for the writing style of {{user}}. Don't write as {{char}} or system. Don't describe "
    "actions of {{char}}.]"
)
_START = re.compile(r"<START>", re.IGNORECASE)


@dataclass
class CharacterSheet:
    """What the prompt needs of a character card."""

    name: str
    description: str = ""
    personality: str = ""
    scenario: str = ""
    mes_example: str = ""
    system_prompt: str = ""
    post_history_instructions: str = ""
    depth_prompt: str = ""
    """SillyTavern's character note (extensions.depth_prompt)."""
    depth_prompt_depth: int = 4
    depth_prompt_role: str = "system"
    creator_notes: str = ""
    tags: list[str] = field(default_factory=list)
    """For lore entries' character filters."""


@dataclass
class PersonaSheet:
    name: str
    description: str = ""
    position: str = "story_string"
    """'story_string' (in the system prompt), 'at_depth', or 'none'."""
    depth: int = 2
    role: str = "system"


@dataclass
class AuthorNote:
    text: str
    depth: int = 4
    frequency: int = 1
    """Insert every N user turns; 0 never."""
    role: str = "system"


@dataclass
class ChatPromptSettings:
    main_prompt: str = DEFAULT_MAIN_PROMPT
    post_history: str = ""
    order: Sequence[Section] = DEFAULT_ORDER
    disabled: frozenset[Section] = frozenset()
    lore: WorldInfoSettings = field(default_factory=WorldInfoSettings)
    cache_friendly_lore: bool = True
    """Lore that fires on keys (not constant) goes in as one block near the end instead of the
    story string, so the long stable prefix survives when it changes; while it stays the same it
    stays where it was put (see ``LoreAnchor``). Off: SillyTavern's exact positions."""
    history_drop_fraction: float = 0.25
    instruct: InstructTemplate | None = None
    impersonate_prompt: str = DEFAULT_IMPERSONATE_PROMPT


@dataclass(frozen=True)
class LoreAnchor:
    """Where the volatile lore block went last turn: after which message, and what it said.

    A block that has not changed goes back to the same place, so the prompt up to the newest
    messages stays byte-identical and the engine evaluates only what is new. A changed block is
    placed after the newest message (the cheapest place to re-evaluate) and anchored there.
    """

    digest: str
    after_message_id: int | None


@dataclass
class ChatTurnInput:
    speaker: CharacterSheet
    """The character replying ({{char}})."""
    user_name: str
    history: list[HistoryItem]
    """Oldest first, hidden messages already left out."""
    chat_id: str
    characters: list[CharacterSheet] = field(default_factory=list)
    """Cards whose definitions go into the prompt: the speaker alone, or every member when a
    group joins cards. Empty means the speaker alone."""
    persona: PersonaSheet | None = None
    books: list[Lorebook] = field(default_factory=list)
    lore_state: LoreTimedState = field(default_factory=LoreTimedState)
    author_note: AuthorNote | None = None
    variables: MacroVariables = field(default_factory=MacroVariables)
    scenario_override: str | None = None
    now: datetime = field(default_factory=datetime.now)
    last_user_time: datetime | None = None
    group_names: list[str] = field(default_factory=list)
    impersonate: bool = False
    lore_anchor: LoreAnchor | None = None
    generation: Generation = Generation.NORMAL
    """What this turn is, for lore entries' triggers (impersonation says so itself)."""


@dataclass
class ChatPrompt:
    prompt: AssembledPrompt
    lore: ActivationResult
    placements: list[tuple[ActivatedEntry, str]]
    """Where each fired entry went (for the dry run): 'lore_before', 'depth 4', ..."""
    lore_anchor: LoreAnchor | None = None
    """Store this with the chat and pass it back next turn."""


def _macro_context(turn: ChatTurnInput, rng: random.Random) -> MacroContext:
    last_user = next((h.text for h in reversed(turn.history) if h.role == "user"), "")
    last_char = next((h.text for h in reversed(turn.history) if h.role == "assistant"), "")
    speaker = turn.speaker
    return MacroContext(
        user=turn.user_name,
        char=speaker.name,
        persona=turn.persona.description if turn.persona else "",
        description=speaker.description,
        personality=speaker.personality,
        scenario=turn.scenario_override if turn.scenario_override is not None else speaker.scenario,
        mes_examples=speaker.mes_example,
        last_message=turn.history[-1].text if turn.history else "",
        last_user_message=last_user,
        last_char_message=last_char,
        now=turn.now,
        last_user_time=turn.last_user_time,
        chat_id=turn.chat_id,
        variables=turn.variables,
        rng=rng,
        group=", ".join(turn.group_names),
    )


def split_examples(mes_example: str) -> list[str]:
    """A card's example dialogue split into ``<START>`` blocks."""
    blocks = [b.strip() for b in _START.split(mes_example)]
    return [f"<START>\n{b}" for b in blocks if b]


VOLATILE = "volatile block"


class _TextsOnDemand(Mapping[MatchSource, str]):
    """Texts made the first time they are read: most turns have no lore entry that asks for them."""

    def __init__(self, makers: Mapping[MatchSource, Callable[[], str]]) -> None:
        self._makers = makers
        self._made: dict[MatchSource, str] = {}

    def __getitem__(self, source: MatchSource) -> str:
        if source not in self._made:
            self._made[source] = self._makers[source]()
        return self._made[source]

    def __iter__(self) -> Iterator[MatchSource]:
        return iter(self._makers)

    def __len__(self) -> int:
        return len(self._makers)


def _placement(entry: ActivatedEntry, settings: ChatPromptSettings) -> str:
    volatile = settings.cache_friendly_lore and not entry.entry.constant
    if entry.position in (Position.BEFORE_CHAR, Position.AFTER_CHAR) and volatile:
        return VOLATILE
    if entry.position is Position.AT_DEPTH:
        return f"depth {entry.depth}"
    return {
        Position.BEFORE_CHAR: "lore_before",
        Position.AFTER_CHAR: "lore_after",
        Position.AN_TOP: "author_note_top",
        Position.AN_BOTTOM: "author_note_bottom",
        Position.EM_TOP: "examples_top",
        Position.EM_BOTTOM: "examples_bottom",
    }.get(entry.position, "not placed (outlet)")


def build_chat_prompt(
    turn: ChatTurnInput,
    settings: ChatPromptSettings,
    budget: Budget,
    count_tokens: Callable[[str], int],
    *,
    rng: random.Random,
    message_overhead: int = 4,
) -> ChatPrompt:
    ctx = _macro_context(turn, rng)

    def expand(text: str, original: str | None = None) -> str:
        return expand_macros(text, ctx, original=original) if text else ""

    speaker = turn.speaker
    cards = turn.characters or [speaker]
    joined = len(cards) > 1
    expanded: dict[str, str] = {}

    def once(key: str, text: str) -> str:
        """A text the prompt and lore matching both use is expanded once: macros can set variables."""
        if key not in expanded:
            expanded[key] = expand(text)
        return expanded[key]

    def card_field(read: Callable[[CharacterSheet], str], name: str) -> str:
        if not joined:
            return once(name, read(speaker))
        parts = [
            f"{c.name}: {once(name, read(c)) if c is speaker else expand(read(c))}"
            for c in cards
            if read(c).strip()
        ]
        return "\n".join(parts)

    main = (
        expand(speaker.system_prompt, settings.main_prompt)
        if speaker.system_prompt
        else expand(settings.main_prompt)
    )
    post = (
        expand(speaker.post_history_instructions, settings.post_history)
        if speaker.post_history_instructions
        else expand(settings.post_history)
    )
    if turn.impersonate:
        post = "\n".join(p for p in (post, expand(settings.impersonate_prompt)) if p)
    scenario = (
        once("scenario_override", turn.scenario_override)
        if turn.scenario_override is not None
        else card_field(lambda c: c.scenario, "scenario")
    )
    sections: dict[Section, str] = {
        Section.MAIN: main,
        Section.DESCRIPTION: card_field(lambda c: c.description, "description"),
        Section.PERSONALITY: card_field(lambda c: c.personality, "personality"),
        Section.SCENARIO: scenario,
        Section.POST_HISTORY: post,
    }
    injections: list[DepthInjection] = []
    persona = turn.persona
    persona_text = persona.description if persona else ""
    if persona and persona.description.strip():
        if persona.position == "story_string":
            sections[Section.PERSONA] = once("persona", persona_text)
        elif persona.position == "at_depth":
            injections.append(
                DepthInjection(once("persona", persona_text), persona.depth, persona.role, "persona")
            )
    match_text = _TextsOnDemand(
        {
            MatchSource.PERSONA_DESCRIPTION: lambda: once("persona", persona_text),
            MatchSource.CHARACTER_DESCRIPTION: lambda: once("description", speaker.description),
            MatchSource.CHARACTER_PERSONALITY: lambda: once("personality", speaker.personality),
            MatchSource.CHARACTER_DEPTH_PROMPT: lambda: once("depth_prompt", speaker.depth_prompt),
            MatchSource.SCENARIO: lambda: (
                scenario if turn.scenario_override is not None else once("scenario", speaker.scenario)
            ),
            MatchSource.CREATOR_NOTES: lambda: once("creator_notes", speaker.creator_notes),
        }
    )

    lore = activate_entries(
        turn.books,
        ScanInput(
            messages=[f"{h.name}: {h.text}" if h.name else h.text for h in turn.history],
            turn=len(turn.history),
            character_name=speaker.name,
            character_tags=list(speaker.tags),
            generation=Generation.IMPERSONATE if turn.impersonate else turn.generation,
            match_text=match_text,
        ),
        settings.lore,
        state=turn.lore_state,
        count_tokens=count_tokens,
        max_context=budget.max_context,
        rng=rng,
    )
    lore_before: list[str] = []
    lore_after: list[str] = []
    an_top: list[str] = []
    an_bottom: list[str] = []
    em_top: list[str] = []
    em_bottom: list[str] = []
    placements: list[tuple[ActivatedEntry, str]] = []
    buckets = {
        "lore_before": lore_before,
        "lore_after": lore_after,
        "author_note_top": an_top,
        "author_note_bottom": an_bottom,
        "examples_top": em_top,
        "examples_bottom": em_bottom,
    }
    volatile: list[tuple[ActivatedEntry, str]] = []
    for entry in lore.entries:
        where = _placement(entry, settings)
        placements.append((entry, where))
        content = expand(entry.content)
        if not content.strip():
            continue
        if where == VOLATILE:
            volatile.append((entry, content))
        elif where.startswith("depth "):
            depth = int(where.split()[1])
            role = entry.role.value if entry.position is Position.AT_DEPTH else "system"
            injections.append(
                DepthInjection(content, depth, role, f"lore:{entry.book}/{entry.entry.uid}", entry.order)
            )
        elif where in buckets:
            buckets[where].append(content)

    anchor = None
    if volatile:
        # a fixed order, so the same entries always make the same text
        volatile.sort(key=lambda ec: (ec[0].order, ec[0].book, str(ec[0].entry.uid)))
        block = "\n".join(content for _e, content in volatile)
        depth, anchor = _anchor_block(block, turn.history, turn.lore_anchor)
        injections.append(DepthInjection(block, depth, "system", "lore", -1))

    note = turn.author_note
    user_turns = sum(1 for h in turn.history if h.role == "user")
    note_due = note is not None and note.frequency > 0 and user_turns % note.frequency == 0
    note_text = "\n".join(
        p for p in (*an_top, expand(note.text) if note and note_due else "", *an_bottom) if p
    )
    if note_text.strip():
        injections.append(
            DepthInjection(note_text, note.depth if note else 4, note.role if note else "system")
        )
    if speaker.depth_prompt.strip():
        injections.append(
            DepthInjection(
                once("depth_prompt", speaker.depth_prompt),
                speaker.depth_prompt_depth,
                speaker.depth_prompt_role,
                "character_note",
            )
        )

    examples = [*em_top, *[expand(b) for b in split_examples(speaker.mes_example)], *em_bottom]
    data = AssemblyInput(
        sections=sections,
        history=[replace(h) for h in turn.history],
        lore_before=lore_before,
        lore_after=lore_after,
        examples=examples,
        injections=injections,
        order=settings.order,
        disabled=settings.disabled,
        names_in_history=bool(turn.group_names),
    )
    budget = replace(budget, history_drop_fraction=settings.history_drop_fraction)
    prompt = assemble_prompt(
        data, budget, count_tokens, message_overhead=message_overhead, instruct=settings.instruct
    )
    return ChatPrompt(prompt=prompt, lore=lore, placements=placements, lore_anchor=anchor)


def _anchor_block(
    block: str, history: Sequence[HistoryItem], previous: LoreAnchor | None
) -> tuple[int, LoreAnchor]:
    """The depth for the volatile lore block, and the anchor to remember for next turn."""
    digest = hashlib.sha256(block.encode("utf-8")).hexdigest()
    if previous is not None and previous.digest == digest:
        ids = [h.message_id for h in history]
        if previous.after_message_id in ids:
            return len(ids) - 1 - ids.index(previous.after_message_id), previous
    newest = history[-1].message_id if history else None
    return 0, LoreAnchor(digest, newest)
