"""KoboldCpp's instruct placeholders: the tags are cut from the model's own chat template."""

from __future__ import annotations

import pytest

from kataribe.engine.base import ChatMessage
from kataribe.engine.chat_template import ChatTemplate
from kataribe.engine.instruct_tags import (
    ALPACA,
    InstructText,
    RenderChat,
    derive_instruct_tags,
    replace_instruct_placeholders,
)
from kataribe.engine.llamacpp import EmbeddedEngine

LLAMA3 = (
    "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
GEMMA = (  # refuses a system message, as Gemma's template does
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('No system role') }}"
    "{% endif %}{% for message in messages %}{% if message['role'] == 'assistant' %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + "
    "message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)


def as_written(template: ChatTemplate) -> RenderChat:
    """The template without the engine's reshaping, as KoboldServing derives tags from it."""
    return lambda messages, add_generation_prompt: template.render(
        messages, add_generation_prompt, reshape=False
    )


def hosted_lite(prompt: str, memory: str = "") -> InstructText:
    return InstructText(memory=memory, prompt=prompt, stop=["{{[INPUT]}}", "{{[OUTPUT]}}"])


def test_smollm2_chatml_tags_give_the_templates_own_conversation(engine: EmbeddedEngine) -> None:
    tags = derive_instruct_tags(engine.render_chat)
    assert (tags.user_start, tags.assistant_start) == ("<|im_start|>user\n", "<|im_start|>assistant\n")
    assert tags.user_end == tags.assistant_end == tags.system_end == "<|im_end|>\n"
    out = replace_instruct_placeholders(
        hosted_lite("{{[INPUT]}}Hi.{{[OUTPUT]}}Hello!{{[INPUT]}}Bye.{{[OUTPUT]}}"), tags
    )
    history = [ChatMessage("user", "Hi."), ChatMessage("assistant", "Hello!"), ChatMessage("user", "Bye.")]
    # SmolLM2's template adds its own default system turn in front; the rest is identical
    assert engine.render_chat(history).endswith(out.prompt)
    assert out.prompt.startswith("<|im_start|>user\nHi.<|im_end|>")
    assert out.stop == ["<|im_start|>user", "<|im_start|>assistant"]


def test_end_forms_and_system_follow_the_template(engine: EmbeddedEngine) -> None:
    tags = derive_instruct_tags(engine.render_chat)
    out = replace_instruct_placeholders(
        InstructText(
            memory="{{[SYSTEM]}}Be kind.{{[SYSTEM_END]}}",
            prompt="{{[INPUT]}}Hi.{{[INPUT_END]}}{{[OUTPUT]}}",
            stop=["{{[INPUT_END]}}", "\nUser:", "{{[OUTPUT_END]}}"],
        ),
        tags,
    )
    rendered = engine.render_chat([ChatMessage("system", "Be kind."), ChatMessage("user", "Hi.")])
    assert out.memory + out.prompt == rendered
    assert out.stop == ["<|im_end|>", "\nUser:", "<|im_end|>"]


def test_first_input_in_memory_only_opens_a_turn() -> None:
    tags = derive_instruct_tags(
        ChatTemplate(LLAMA3, bos="<|begin_of_text|>", eos="<|eot_id|>", eos_id=0).render
    )
    out = replace_instruct_placeholders(hosted_lite("Go on.{{[OUTPUT]}}", memory="{{[INPUT]}}Story:"), tags)
    assert out.memory == "<|start_header_id|>user<|end_header_id|>\n\nStory:"
    assert out.prompt == "Go on.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    assert tags.system_start == "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"


def test_a_template_without_a_system_role_lends_the_user_tags() -> None:
    tags = derive_instruct_tags(as_written(ChatTemplate(GEMMA, bos="<bos>", eos="<eos>", eos_id=1)))
    assert tags.user_start == tags.system_start == "<start_of_turn>user\n"
    assert tags.assistant_start == "<start_of_turn>model\n" and tags.assistant_end == "<end_of_turn>\n"
    out = replace_instruct_placeholders(hosted_lite("{{[INPUT]}}Hi.{{[OUTPUT]}}"), tags)
    assert out.prompt == "<start_of_turn>user\nHi.<end_of_turn>\n<start_of_turn>model\n"


@pytest.mark.parametrize(
    "template", ["{{ 'nothing' }}", "{% for m in messages %}{{ m.content[:3] }}{% endfor %}"]
)
def test_a_template_that_drops_the_markers_falls_back_to_koboldcpps_default(template: str) -> None:
    assert derive_instruct_tags(as_written(ChatTemplate(template, bos="", eos="", eos_id=0))) == ALPACA
