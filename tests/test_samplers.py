"""DRY, XTC, top-n-sigma, dynamic temperature and Mirostat on the real model, through the embedded engine."""

from __future__ import annotations

from dataclasses import replace

import httpx
import openai
import pytest
from openai import OpenAI

from kataribe.engine.base import GenerationDone, GenerationRequest, SamplingParams, TextDelta
from kataribe.engine.llamacpp import EmbeddedEngine
from kataribe.errors import InvalidRequest
from tests.conftest import LiveServer
from tests.sse import iter_sse

GREEDY = SamplingParams(temperature=0)
WARM = SamplingParams(temperature=1.5, top_k=0, top_p=1.0, min_p=0.0, seed=11)
COUNTING = "Count with me: 1 2 3 4 5, 1 2 3 4 5, 1 2 3 4 5, 1 2 3 4 5, 1 2 3"


def text_of(engine: EmbeddedEngine, sampling: SamplingParams, prompt: str = COUNTING, n: int = 16) -> str:
    out: list[str] = []
    done = None
    for event in engine.generate(
        GenerationRequest(prompt=prompt, max_tokens=n, sampling=sampling, ban_eos=True)
    ):
        if isinstance(event, TextDelta):
            out.append(event.text)
        else:
            done = event
    assert isinstance(done, GenerationDone) and done.finish_reason == "length", done
    return "".join(out)


def test_dry_breaks_a_repetition_that_greedy_decoding_follows(engine: EmbeddedEngine) -> None:
    plain = text_of(engine, GREEDY)
    assert plain.startswith(" 4 5"), plain  # the model continues the pattern
    dry = text_of(engine, replace(GREEDY, dry_multiplier=3.0, dry_allowed_length=2))
    assert "1 2 3" in plain and "1 2 3" not in dry, (plain, dry)
    # a sequence breaker in every gap stops DRY from seeing one long repeat
    spaced = text_of(engine, replace(GREEDY, dry_multiplier=3.0, dry_sequence_breakers=[" "]))
    assert spaced == plain


def test_dry_with_a_zero_window_is_off(engine: EmbeddedEngine) -> None:
    plain = text_of(engine, GREEDY)
    assert text_of(engine, replace(GREEDY, dry_multiplier=3.0, dry_penalty_last_n=0)) == plain


def test_top_n_sigma_this_narrow_is_greedy_even_when_hot(engine: EmbeddedEngine) -> None:
    plain = text_of(engine, GREEDY, "The capital of France is", 8)
    hot = replace(WARM, temperature=3.0)
    assert text_of(engine, hot, "The capital of France is", 8) != plain
    assert text_of(engine, replace(hot, top_n_sigma=0.001), "The capital of France is", 8) == plain


def test_xtc_removes_the_top_choices_so_the_text_changes(engine: EmbeddedEngine) -> None:
    prompt = "The capital of France is"
    base = replace(WARM, temperature=0.3)
    cold = text_of(engine, base, prompt, 8)
    xtc = replace(base, xtc_probability=1.0, xtc_threshold=0.05)
    first, again = text_of(engine, xtc, prompt, 8), text_of(engine, xtc, prompt, 8)
    assert first == again  # seeded: XTC's own coin is seeded too
    assert first != cold


@pytest.mark.parametrize(
    "settings",
    [
        {"dynatemp_range": 1.0, "dynatemp_exponent": 1.5},
        {"mirostat": 1, "mirostat_tau": 3.0},
        {"mirostat": 2, "mirostat_tau": 3.0, "mirostat_eta": 0.2},
    ],
    ids=["dynatemp", "mirostat1", "mirostat2"],
)
def test_each_sampler_runs_and_a_seed_repeats_it(engine: EmbeddedEngine, settings: dict[str, float]) -> None:
    sampling = replace(WARM, **settings)
    first = text_of(engine, sampling, "Once upon a time", 12)
    assert first.strip()
    assert text_of(engine, sampling, "Once upon a time", 12) == first
    assert text_of(engine, replace(sampling, seed=12), "Once upon a time", 12) != first


@pytest.mark.parametrize(
    ("settings", "param"),
    [
        ({"dry_multiplier": -1}, "dry_multiplier"),
        ({"dry_base": 0.5}, "dry_base"),
        ({"dry_allowed_length": 0}, "dry_allowed_length"),
        ({"dry_penalty_last_n": -2}, "dry_penalty_last_n"),
        ({"dry_sequence_breakers": [""]}, "dry_sequence_breakers"),
        ({"dry_sequence_breakers": ["x" * 41]}, "dry_sequence_breakers"),
        ({"xtc_probability": 1.5}, "xtc_probability"),
        ({"top_n_sigma": 0}, "top_n_sigma"),
        ({"mirostat": 3}, "mirostat"),
        ({"mirostat_eta": 0}, "mirostat_eta"),
        ({"dynatemp_range": -0.5}, "dynatemp_range"),
    ],
)
def test_bad_sampler_values_are_refused_naming_the_field(
    engine: EmbeddedEngine, settings: dict[str, object], param: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        text_of(engine, replace(GREEDY, **settings))  # type: ignore[arg-type]
    assert refused.value.param == param


# -- over HTTP: the names SillyTavern sends to llama-server (OpenAI route) and to KoboldCpp ---------


def test_openai_route_takes_llama_servers_sampler_names(server: LiveServer, engine: EmbeddedEngine) -> None:
    client = OpenAI(base_url=server.url + "/v1", api_key="not-needed", max_retries=0)

    def complete(**extra: object) -> str:
        reply = client.completions.create(
            model="", prompt=COUNTING, max_tokens=16, temperature=0, extra_body={"ignore_eos": True, **extra}
        )
        return reply.choices[0].text

    dry = {"dry_multiplier": 3.0, "dry_allowed_length": 2}
    assert complete() == text_of(engine, GREEDY)
    assert complete(**dry) == text_of(engine, replace(GREEDY, **dry)) != complete()
    # SillyTavern sends the breakers JSON-encoded
    spaced = complete(**dry, dry_sequence_breakers='[" "]')
    assert spaced == complete()
    with pytest.raises(openai.BadRequestError) as refused:
        complete(dry_base=0.5)
    assert "dry_base" in str(refused.value)


def test_kobold_route_takes_koboldcpps_sampler_names_and_defaults(
    server: LiveServer, engine: EmbeddedEngine
) -> None:
    def generate(**extra: object) -> str:
        body = {"prompt": COUNTING, "max_length": 16, "temperature": 0, "ban_eos_token": True, **extra}
        r = httpx.post(server.url + "/api/v1/generate", json=body, timeout=120)
        assert r.status_code == 200, r.text
        return str(r.json()["results"][0]["text"])

    # KoboldCpp: no breakers unless sent, a 320-token window
    kobold_dry = replace(GREEDY, dry_multiplier=3.0, dry_sequence_breakers=[], dry_penalty_last_n=320)
    assert generate(dry_multiplier=3.0) == text_of(engine, kobold_dry) != generate()
    assert generate(nsigma=0.001, temperature=3.0, top_k=0, top_p=1, sampler_seed=2) == text_of(
        engine, GREEDY
    )
    r = httpx.post(server.url + "/api/v1/generate", json={"prompt": "x", "mirostat": 5}, timeout=60)
    assert r.status_code == 400 and "mirostat" in r.text


# -- per chat and in presets ---------------------------------------------------------------------------


def test_a_chats_sampler_settings_and_presets_carry_the_role_play_samplers(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url + "/api", timeout=120) as api:
        character = api.post("/characters", json={"name": "Counter", "first_mes": "1 2 3 1 2 3 1 2 3"}).json()
        chat = api.post("/chats", json={"character_id": character["id"]}).json()
        sampler = {
            "temperature": 0,
            "dry_multiplier": 2.0,
            "dry_sequence_breakers": ["\n"],
            "top_n_sigma": 1.0,
        }
        r = api.patch(f"/chats/{chat['id']}", json={"settings": {"max_tokens": 4, "sampler": sampler}})
        assert r.status_code == 200, r.text
        assert r.json()["settings"]["sampler"] == sampler

        for bad, param in (
            ({"mirostat": 3}, "mirostat"),
            ({"dry_sequence_breakers": "\n"}, "dry_sequence_breakers"),
        ):
            refused = api.patch(f"/chats/{chat['id']}", json={"settings": {"sampler": bad}})
            assert refused.status_code == 400 and param in refused.text, refused.text
        assert api.get(f"/chats/{chat['id']}").json()["settings"]["sampler"] == sampler  # nothing lost

        with api.stream("POST", f"/chats/{chat['id']}/messages", json={"text": "Go on."}) as stream:
            assert stream.status_code == 200
            events = list(iter_sse(stream))
        reply = events[-2][1]  # the stored message, before "done"
        used = reply["meta"]["sampler"]
        assert used["dry_multiplier"] == 2.0 and used["dry_sequence_breakers"] == ["\n"]
        assert used["top_n_sigma"] == 1.0 and used["mirostat"] == 0

        preset = api.post(
            "/presets",
            json={
                "kind": "sampler",
                "name": "Anti-loop",
                "data": {"dry_multiplier": 0.8, "xtc_probability": 0.5},
            },
        )
        assert preset.status_code == 201, preset.text
        api.post(f"/presets/{preset.json()['id']}/apply", json={"chat_id": chat["id"]})
        merged = api.get(f"/chats/{chat['id']}").json()["settings"]["sampler"]
        assert merged["dry_multiplier"] == 0.8 and merged["xtc_probability"] == 0.5
        assert merged["dry_sequence_breakers"] == ["\n"]  # kept from the chat
        bad = api.post("/presets", json={"kind": "sampler", "name": "x", "data": {"top_n_sigma": 0}})
        assert bad.status_code == 400 and "top_n_sigma" in bad.text


# -- banned strings (KoboldCpp's banned_tokens, SillyTavern's "banned strings") ----------------------


def stream_of(engine: EmbeddedEngine, sampling: SamplingParams, prompt: str, n: int) -> tuple[list[str], str]:
    deltas: list[str] = []
    done = None
    for event in engine.generate(GenerationRequest(prompt=prompt, max_tokens=n, sampling=sampling)):
        if isinstance(event, TextDelta):
            deltas.append(event.text)
        else:
            done = event
    assert isinstance(done, GenerationDone) and done.finish_reason in ("length", "stop"), done
    assert "".join(deltas) == done.text  # what was streamed is what was kept
    return deltas, done.text


@pytest.mark.parametrize("banned", [["Paris"], ["paris"], ["PARIS", "unrelated phrase"]])
def test_a_banned_phrase_never_appears_and_the_reply_goes_on(
    engine: EmbeddedEngine, banned: list[str]
) -> None:
    prompt = "The capital of France is"
    assert "Paris" in text_of(engine, GREEDY, prompt, 12)
    _deltas, text = stream_of(engine, replace(GREEDY, banned_strings=banned), prompt, 24)
    assert "paris" not in text.lower() and len(text.split()) > 5, text


def test_a_phrase_spread_over_several_tokens_is_banned_and_the_text_before_it_kept(
    engine: EmbeddedEngine,
) -> None:
    prompt = "The capital of France is"
    plain = text_of(engine, GREEDY, prompt, 24)
    phrase = "The United States"  # several tokens, later in the greedy reply
    assert phrase in plain
    _deltas, text = stream_of(engine, replace(GREEDY, banned_strings=[phrase.lower()]), prompt, 24)
    assert phrase.lower() not in text.lower()
    assert text.startswith(plain[: plain.index(phrase)])  # everything before the phrase is kept as it was


def test_japanese_phrases_are_banned_without_breaking_a_character(engine: EmbeddedEngine) -> None:
    prompt = "日本の首都は"
    plain = text_of(engine, GREEDY, prompt, 16)
    assert "アプリ" in plain
    _deltas, text = stream_of(engine, replace(GREEDY, banned_strings=["アプリ"]), prompt, 16)
    assert "アプリ" not in text and text.strip()
    assert "\ufffd" not in text[:-1]  # only a character cut by max_tokens may end as U+FFFD


def test_banned_strings_with_a_grammar_or_bad_values_are_refused(engine: EmbeddedEngine) -> None:
    with pytest.raises(InvalidRequest, match="grammar") as refused:
        engine.generate(
            GenerationRequest(
                prompt="x", grammar='root ::= "a"', sampling=SamplingParams(banned_strings=["b"])
            )
        )
    assert refused.value.param == "banned_strings"
    with pytest.raises(InvalidRequest) as too_long:
        text_of(engine, replace(GREEDY, banned_strings=["x" * 201]))
    assert too_long.value.param == "banned_strings"


def test_banned_strings_over_http_by_each_routes_names(server: LiveServer) -> None:
    prompt, body = "The capital of France is", {"max_tokens": 16, "temperature": 0}
    client = OpenAI(base_url=server.url + "/v1", api_key="not-needed", max_retries=0)
    for extra in ({"banned_strings": ["Paris"]}, {"banned_tokens": ["paris"]}):
        reply = client.completions.create(model="", prompt=prompt, extra_body=extra, **body)  # type: ignore[arg-type]
        assert "paris" not in reply.choices[0].text.lower() and reply.choices[0].text.strip()
    for field in ("banned_tokens", "banned_strings"):  # KoboldCpp's name and SillyTavern's
        kobold = {"prompt": prompt, "max_length": 16, "temperature": 0, field: ["Paris"]}
        r = httpx.post(server.url + "/api/v1/generate", json=kobold, timeout=120)
        assert r.status_code == 200 and "paris" not in r.json()["results"][0]["text"].lower(), r.text
    refused = httpx.post(
        server.url + "/v1/completions",
        json={"prompt": "x", "banned_strings": ["y"], "grammar": 'root ::= "a"'},
        timeout=60,
    )
    assert refused.status_code == 400 and "banned_strings" in refused.text
