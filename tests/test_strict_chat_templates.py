"""Strict chat templates (Mistral's and Gemma's real texts, which raise unless user and assistant
alternate) and SillyTavern's Chat Completion shape [system, system, system, assistant, user, ...]."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from kataribe.engine.base import ChatMessage
from kataribe.engine.chat_normalize import (
    EMPTY_USER_FIRST,
    LEADING_SYSTEM_INTO_USER,
    MERGED_SAME_ROLE,
    SYSTEM_INTO_USER,
    alternate_roles,
    fold_leading_system,
)
from kataribe.engine.chat_template import ChatTemplate
from kataribe.engine.llamacpp import EmbeddedConfig, EmbeddedEngine
from kataribe.errors import InvalidRequest
from tests.conftest import LiveServer, serve

# Mistral-7B-Instruct-v0.3's template (its tool-call branches left out): an optional system message,
# then strict user/assistant alternation.
MISTRAL_V3 = (
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] %}"
    "{%- set loop_messages = messages[1:] %}{%- else %}{%- set loop_messages = messages %}{%- endif %}"
    "{%- set ns = namespace() %}{%- set ns.index = 0 %}"
    "{%- for message in loop_messages %}"
    "{%- if (message['role'] == 'user') != (ns.index % 2 == 0) %}"
    "{{- raise_exception('After the optional system message, conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{%- endif %}{%- set ns.index = ns.index + 1 %}{%- endfor %}"
    "{{- bos_token }}{%- for message in loop_messages %}"
    "{%- if message['role'] == 'user' %}"
    "{%- if loop.last and system_message is defined %}"
    "{{- '[INST] ' + system_message + '\\n\\n' + message['content'] + '[/INST]' }}"
    "{%- else %}{{- '[INST] ' + message['content'] + '[/INST]' }}{%- endif %}"
    "{%- elif message['role'] == 'assistant' %}{{- ' ' + message['content']|trim + eos_token }}"
    "{%- else %}{{- raise_exception('Only user and assistant roles are supported, with the exception "
    "of an initial optional system message!') }}{%- endif %}{%- endfor %}"
)

# gemma-2-it's template: no system role at all, strict alternation.
GEMMA_2 = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}"
)

# What SillyTavern's Chat Completion source sends: main prompt, character card, scenario as three
# system messages, the greeting as an assistant message, then the chat.
ST_CHAT = [
    {"role": "system", "content": "Write Seraphina's next reply in a fictional chat."},
    {"role": "system", "content": "Seraphina is a gentle forest guardian."},
    {"role": "system", "content": "[Start a new Chat]"},
    {"role": "assistant", "content": "*You wake in a glade.* Are you hurt, traveller?"},
    {"role": "user", "content": "I think I am fine. Where am I?"},
]


def messages(raw: list[dict[str, str]]) -> list[ChatMessage]:
    return [ChatMessage(m["role"], m["content"]) for m in raw]


def template(text: str) -> ChatTemplate:
    return ChatTemplate(text, bos="<s>", eos="</s>", eos_id=2)


def test_st_shape_becomes_one_system_then_alternating_turns() -> None:
    result = alternate_roles(messages(ST_CHAT))
    assert [m.role for m in result.messages] == ["system", "user", "assistant", "user"]
    assert result.messages[0].content.count("\n\n") == 2  # the three system messages, in order
    assert result.messages[1].content == ""
    assert result.changes == (MERGED_SAME_ROLE, EMPTY_USER_FIRST)


def test_a_system_note_in_the_middle_joins_the_user_turn_where_it_stands() -> None:
    raw = [ChatMessage("user", "a"), ChatMessage("assistant", "b"), ChatMessage("system", "note")]
    raw.append(ChatMessage("user", "c"))
    result = alternate_roles(raw)
    assert [(m.role, m.content) for m in result.messages] == [
        ("user", "a"),
        ("assistant", "b"),
        ("user", "note\n\nc"),
    ]
    assert set(result.changes) == {SYSTEM_INTO_USER, MERGED_SAME_ROLE}
    folded = fold_leading_system(alternate_roles(messages(ST_CHAT)))
    assert folded is not None
    assert folded.messages[0].role == "user" and folded.messages[0].content.startswith("Write Seraphina")
    assert folded.changes[-1] == LEADING_SYSTEM_INTO_USER


def test_alternating_messages_are_left_alone() -> None:
    raw = [ChatMessage("system", "s"), ChatMessage("user", "u"), ChatMessage("assistant", "a")]
    assert alternate_roles(raw).changes == ()
    assert template(MISTRAL_V3).render_noting(raw).normalized == ()


def test_mistral_keeps_the_system_message_gemma_folds_it() -> None:
    with pytest.raises(Exception, match="alternate"):  # the real template refuses ST's shape as sent
        template(MISTRAL_V3)._apply(messages(ST_CHAT), True)
    mistral = template(MISTRAL_V3).render_noting(messages(ST_CHAT))
    assert mistral.normalized == (MERGED_SAME_ROLE, EMPTY_USER_FIRST)
    assert "forest guardian" in mistral.text and mistral.text.endswith("Where am I?[/INST]")
    gemma = template(GEMMA_2).render_noting(messages(ST_CHAT))
    assert gemma.normalized[-1] == LEADING_SYSTEM_INTO_USER
    assert gemma.text.startswith("<s><start_of_turn>user\nWrite Seraphina")
    assert gemma.text.endswith("<start_of_turn>model\n")


def test_a_list_no_reshaping_can_fix_is_still_a_400() -> None:
    raw = [*messages(ST_CHAT), ChatMessage("tool", "42")]
    with pytest.raises(InvalidRequest, match="rejected") as err:
        template(MISTRAL_V3).render_noting(raw)
    assert err.value.param == "messages"


@pytest.fixture(scope="module", params=["mistral", "gemma"])
def strict_server(
    request: pytest.FixtureRequest, model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, LiveServer]]:
    """The real model with a strict template as its chat template override, behind a live server."""
    text = MISTRAL_V3 if request.param == "mistral" else GEMMA_2
    engine = EmbeddedEngine(
        EmbeddedConfig(model_path=model_path, n_ctx=2048, n_threads=2, kv_cache_ram_mb=64, chat_template=text)
    )
    live = serve(engine, tmp_path_factory.mktemp("strict"))
    yield request.param, live
    live.stop()
    engine.close()


def test_sillytavern_chat_completion_shape_is_answered_and_says_it_was_reshaped(
    strict_server: tuple[str, LiveServer],
) -> None:
    name, live = strict_server
    client = OpenAI(base_url=live.url + "/v1", api_key="x", max_retries=0)
    model = client.models.list().data[0].id
    body: dict[str, Any] = {"model": model, "messages": ST_CHAT, "max_tokens": 6, "temperature": 0}
    reply = client.chat.completions.create(**body)
    # answered (a sampled reply may end at once, so its text is not asserted on)
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage is not None and reply.usage.prompt_tokens > 50
    timings = (reply.model_extra or {})["timings"]
    assert MERGED_SAME_ROLE in timings["messages_normalized"]
    with client.chat.completions.create(**body, stream=True) as chunks:
        finals = [c.model_extra or {} for c in chunks if c.choices and c.choices[0].finish_reason]
    assert EMPTY_USER_FIRST in finals[-1]["timings"]["messages_normalized"]
    tool = httpx.post(
        live.url + "/v1/chat/completions",
        json={"messages": [*ST_CHAT, {"role": "tool", "content": "42"}], "max_tokens": 4},
        timeout=60,
    )
    if name == "mistral":  # it refuses any role but user and assistant, however reshaped
        assert tool.status_code == 400 and tool.json()["error"]["param"] == "messages"
    else:  # Gemma writes any other role as it is
        assert tool.status_code == 200
