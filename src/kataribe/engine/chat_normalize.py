"""Message lists reshaped for strict chat templates (Mistral's and Gemma's insist that user and
assistant alternate): what to retry with after a template rejected what the client sent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kataribe.engine.base import ChatMessage

MERGED_SAME_ROLE = "merged_consecutive_roles"
SYSTEM_INTO_USER = "system_folded_into_user"
EMPTY_USER_FIRST = "empty_user_before_assistant"
LEADING_SYSTEM_INTO_USER = "leading_system_folded_into_user"

JOINER = "\n\n"


@dataclass(frozen=True)
class Normalized:
    """The reshaped messages and the name of every change made (empty when nothing changed)."""

    messages: list[ChatMessage]
    changes: tuple[str, ...]


def alternate_roles(messages: Sequence[ChatMessage]) -> Normalized:
    """One leading system message at most, then user and assistant turns that alternate, starting
    with a user turn: system messages after the start join the user turn they stand in (their
    place in the conversation is kept), consecutive messages of one role become one message, and
    an empty user turn goes before a leading assistant message (SillyTavern's greeting)."""
    changes: list[str] = []
    head: list[ChatMessage] = []
    rest = list(messages)
    while rest and rest[0].role == "system":
        head.append(rest.pop(0))
    if len(head) > 1:
        changes.append(MERGED_SAME_ROLE)
    system = [ChatMessage("system", JOINER.join(m.content for m in head))] if head else []
    body: list[ChatMessage] = []
    for message in rest:
        if message.role == "system":
            if SYSTEM_INTO_USER not in changes:
                changes.append(SYSTEM_INTO_USER)
            message = ChatMessage("user", message.content)
        if body and body[-1].role == message.role:
            if MERGED_SAME_ROLE not in changes:
                changes.append(MERGED_SAME_ROLE)
            last = body[-1]
            body[-1] = ChatMessage(last.role, _join(last.content, message.content), last.name)
        else:
            body.append(message)
    if body and body[0].role == "assistant":
        changes.append(EMPTY_USER_FIRST)
        body.insert(0, ChatMessage("user", ""))
    return Normalized(system + body, tuple(changes))


def fold_leading_system(normalized: Normalized) -> Normalized | None:
    """For templates with no system role at all (Gemma 2): the system text opens the first user
    turn. None when there is no system message to fold."""
    messages = normalized.messages
    if not messages or messages[0].role != "system":
        return None
    system, rest = messages[0], messages[1:]
    if rest and rest[0].role == "user":
        first = rest[0]
        rest = [ChatMessage("user", _join(system.content, first.content), first.name), *rest[1:]]
    else:
        rest = [ChatMessage("user", system.content), *rest]
    return Normalized(rest, (*normalized.changes, LEADING_SYSTEM_INTO_USER))


def _join(first: str, second: str) -> str:
    return JOINER.join(part for part in (first, second) if part)
