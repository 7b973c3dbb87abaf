"""Chat-mode prompt building: card fields with macros, persona, lore placement, author's note."""

from __future__ import annotations

import random

from kataribe.lore.model import Lorebook, LoreEntry, Position
from kataribe.prompt.assemble import Budget, HistoryItem
from kataribe.prompt.chat import (
    AuthorNote,
    CharacterSheet,
    ChatPromptSettings,
    ChatTurnInput,
    PersonaSheet,
    build_chat_prompt,
    split_examples,
)


def words(text: str) -> int:
    return len(text.split())


SERA = CharacterSheet(
    name="Seraphina",
    description="{{char}} guards the forest for {{user}}.",
    personality="kind",
    scenario="A glade.",
    mes_example="<START>\n{{user}}: hi\n{{char}}: hello\n<START>\n{{user}}: bye\n{{char}}: farewell",
    system_prompt="{{original}} Write vividly.",
)
BOOK = Lorebook(
    name="Eldoria",
    entries=[
        LoreEntry(uid=1, keys=["castle"], content="The castle of {{char}} is old.", order=10),
        LoreEntry(uid=2, keys=[], content="Magic is rare.", constant=True, order=5),
        LoreEntry(uid=3, keys=["moon"], content="The moon is red.", position=Position.AT_DEPTH, depth=1),
        LoreEntry(uid=4, keys=["dragon"], content="A dragon sleeps below.", order=20),
    ],
)


def turn(history: list[HistoryItem], **kw: object) -> ChatTurnInput:
    return ChatTurnInput(speaker=SERA, user_name="Kai", history=history, chat_id="c1", books=[BOOK], **kw)  # type: ignore[arg-type]


def build(t: ChatTurnInput, settings: ChatPromptSettings | None = None):  # type: ignore[no-untyped-def]
    return build_chat_prompt(
        t, settings or ChatPromptSettings(), Budget(2000, 200), words, rng=random.Random(1)
    )


def test_card_fields_macros_and_original() -> None:
    out = build(turn([HistoryItem("user", "hello", "Kai")]))
    system = out.prompt.messages[0].content
    assert system.startswith("Write Seraphina's next reply in a fictional chat between Seraphina and Kai.")
    assert "Write vividly." in system  # card system_prompt with {{original}} = the global main prompt
    assert "Seraphina guards the forest for Kai." in system
    assert "<START>\nKai: hi\nSeraphina: hello" in system


def test_constant_lore_stays_in_the_story_string_and_keyed_lore_goes_near_the_end() -> None:
    out = build(turn([HistoryItem("user", "Tell me about the castle and the moon", "Kai")]))
    system = out.prompt.messages[0].content
    assert "Magic is rare." in system
    assert "The castle" not in system  # keyed: moved near the end (cache-friendly layout)
    contents = [m.content for m in out.prompt.messages]
    assert "The castle of Seraphina is old." in contents
    newest = contents.index("Tell me about the castle and the moon")
    assert contents.index("The moon is red.") == newest - 1  # at depth 1: before the newest message
    assert contents[-1] == "The castle of Seraphina is old."  # the keyed block: after it, anchored there
    where = {e.entry.uid: w for e, w in out.placements}
    assert where == {2: "lore_before", 1: "volatile block", 3: "depth 1"}
    assert out.lore_anchor is not None
    exact = build(
        turn([HistoryItem("user", "the castle", "Kai")]), ChatPromptSettings(cache_friendly_lore=False)
    )
    assert "The castle of Seraphina is old." in exact.prompt.messages[0].content


def test_persona_positions_and_author_note_frequency() -> None:
    hist = [
        HistoryItem("user", "a", "Kai"),
        HistoryItem("assistant", "b", "Seraphina"),
        HistoryItem("user", "c", "Kai"),
    ]
    persona = PersonaSheet("Kai", "{{user}} is a traveller.")
    out = build(turn(hist, persona=persona, author_note=AuthorNote("[Mood: calm]", depth=1, frequency=2)))
    assert "Kai is a traveller." in out.prompt.messages[0].content
    assert [m.content for m in out.prompt.messages][-2] == "[Mood: calm]"  # 2 user turns: due, depth 1
    odd = build(turn(hist[:1], author_note=AuthorNote("[Mood: calm]", frequency=2)))
    assert all(m.content != "[Mood: calm]" for m in odd.prompt.messages)
    deep = build(turn(hist, persona=PersonaSheet("Kai", "Kai is tall.", position="at_depth", depth=0)))
    assert deep.prompt.messages[-1].content == "Kai is tall."


def test_group_join_lists_every_card_and_names_history() -> None:
    bob = CharacterSheet(name="Bob", description="A smith.")
    hist = [HistoryItem("user", "hi all", "Kai"), HistoryItem("assistant", "Hello!", "Bob")]
    out = build(turn(hist, characters=[SERA, bob], group_names=["Seraphina", "Bob"]))
    system = out.prompt.messages[0].content
    assert "Seraphina: Seraphina guards" in system and "Bob: A smith." in system
    assert out.prompt.messages[-1].content == "Bob: Hello!"


def test_impersonation_adds_the_instruction_last() -> None:
    out = build(turn([HistoryItem("user", "hi", "Kai")], impersonate=True))
    assert "point of view of Kai" in out.prompt.messages[-1].content


def test_split_examples() -> None:
    assert split_examples("<START>\na\n<start>\nb\n") == ["<START>\na", "<START>\nb"]
    assert split_examples("") == []


def test_unchanged_lore_block_stays_where_it_was_put() -> None:
    hist = [HistoryItem("user", "the castle", "Kai", 1)]
    first = build(turn(hist))
    assert first.lore_anchor is not None and first.lore_anchor.after_message_id == 1
    hist += [
        HistoryItem("assistant", "It is old.", "Seraphina", 2),
        HistoryItem("user", "and the castle?", "Kai", 3),
    ]
    second = build(turn(hist, lore_anchor=first.lore_anchor))
    contents = [m.content for m in second.prompt.messages]
    # same block: still right after message 1, so everything before the new messages is unchanged
    assert contents.index("The castle of Seraphina is old.") == contents.index("the castle") + 1
    assert second.lore_anchor == first.lore_anchor
    changed = build(
        turn(
            [*hist, HistoryItem("user", "the castle and its dragon", "Kai", 4)], lore_anchor=first.lore_anchor
        )
    )
    # a changed block goes after the newest message and is anchored there
    assert changed.prompt.messages[-1].content == "The castle of Seraphina is old.\nA dragon sleeps below."
    assert changed.lore_anchor is not None and changed.lore_anchor.after_message_id == 4
