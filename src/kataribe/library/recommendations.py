"""The recommended-models list (shipped JSON or the user's edited copy): load, validate, filter."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, cast, get_args

from kataribe.errors import InvalidRequest

Use = Literal["chat", "novel", "adventure"]
Censorship = Literal["sfw", "nsfw", "uncensored"]
ModelKind = Literal["base", "instruct"]

USES: tuple[Use, ...] = get_args(Use)
CENSORSHIP_LEVELS: tuple[Censorship, ...] = get_args(Censorship)
MODEL_KINDS: tuple[ModelKind, ...] = get_args(ModelKind)
KNOWN_PROMPT_TEMPLATES = ("chatml", "mistral", "llama3", "vicuna", "alpaca", "phi4", "gemma", "raw")
"""Names the shipped file uses ("raw": no template, plain continuation). Others are accepted."""

SHIPPED_FILE = "recommendations.json"
MAX_FILE_BYTES = 1024 * 1024
MAX_ENTRIES = 500

_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,79}")
_REPO_PART = r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}"
_REPO = re.compile(rf"{_REPO_PART}/{_REPO_PART}")
_LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}")
_PARAMETERS = re.compile(r"([1-9][0-9]{0,2}x)?[0-9]{1,5}(\.[0-9]{1,3})?[BMK]")
_QUANT = re.compile(r"[A-Za-z0-9_]{1,24}")
_TEMPLATE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MIN_CONTEXT, _MAX_CONTEXT = 128, 1 << 22
_FIX = "Correct the file, or delete it to use the shipped list."

_REQUIRED = (
    "id",
    "name",
    "hf_repo",
    "use",
    "languages",
    "censorship",
    "kind",
    "parameters",
    "suggested_quant",
    "suggested_context",
    "prompt_template",
)
_OPTIONAL = ("base_model", "notes", "verified")


class RecommendationsError(InvalidRequest):
    """The recommendations file cannot be used; the message names the entry and field."""


@dataclass(frozen=True)
class Recommendation:
    id: str
    name: str
    hf_repo: str
    """The Hugging Face repository that holds the GGUF files."""
    base_model: str | None
    use: tuple[Use, ...]
    languages: tuple[str, ...]
    censorship: Censorship
    kind: ModelKind
    parameters: str
    suggested_quant: str
    suggested_context: int
    prompt_template: str
    notes: str = ""
    verified: bool = True
    """False when the repository ids could not be confirmed to exist."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Keys this version does not know, kept so that a round trip loses nothing."""

    def to_dict(self) -> dict[str, Any]:
        known: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "hf_repo": self.hf_repo,
            "base_model": self.base_model,
            "use": list(self.use),
            "languages": list(self.languages),
            "censorship": self.censorship,
            "kind": self.kind,
            "parameters": self.parameters,
            "suggested_quant": self.suggested_quant,
            "suggested_context": self.suggested_context,
            "prompt_template": self.prompt_template,
            "notes": self.notes,
            "verified": self.verified,
        }
        return {**known, **{k: v for k, v in self.extra.items() if k not in known}}


class _Entry:
    """Reads one entry's fields, raising errors that say which entry and field are wrong."""

    def __init__(self, raw: dict[str, Any], index: int, source: str) -> None:
        self.raw = raw
        ident = raw.get("id")
        label = f"entry {index + 1}" + (
            f" ({ident!r})" if isinstance(ident, str) and len(ident) <= 80 else ""
        )
        self.where = f"{source}, {label}"

    def fail(self, key: str, problem: str) -> RecommendationsError:
        return RecommendationsError(
            f"{self.where}, field '{key}': {problem}. {_FIX}",
            param=key,
        )

    def text(self, key: str, pattern: re.Pattern[str] | None = None, limit: int = 200) -> str:
        value = self.raw.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"expected non-empty text, got {_shown(value)}")
        if len(value) > limit:
            raise self.fail(key, f"text is {len(value)} characters long; at most {limit} are allowed")
        if pattern is not None and not pattern.fullmatch(value):
            raise self.fail(key, f"{_shown(value)} is not a valid value here")
        if pattern is None and key != "notes" and _CONTROL.search(value):
            raise self.fail(key, "contains control characters")
        return value

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        value = self.raw.get(key)
        if value not in allowed:
            raise self.fail(key, f"expected one of {', '.join(allowed)}, got {_shown(value)}")
        return cast(str, value)

    def strings(self, key: str, check: Any, describe: str, limit: int = 20) -> tuple[str, ...]:
        value = self.raw.get(key)
        if not isinstance(value, list) or not value:
            raise self.fail(key, f"expected a non-empty list of {describe}, got {_shown(value)}")
        if len(value) > limit:
            raise self.fail(key, f"the list has {len(value)} items; at most {limit} are allowed")
        for item in value:
            if not isinstance(item, str) or not check(item):
                raise self.fail(key, f"expected a list of {describe}; {_shown(item)} is not one")
        if len(set(value)) != len(value):
            raise self.fail(key, "the list repeats an item")
        return tuple(value)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _parse_entry(raw: Any, index: int, source: str) -> Recommendation:
    if not isinstance(raw, dict):
        raise RecommendationsError(
            f"{source}, entry {index + 1}: expected an object with the model's fields, got {_shown(raw)}."
        )
    entry = _Entry(raw, index, source)
    missing = [key for key in _REQUIRED if key not in raw]
    if missing:
        raise entry.fail(missing[0], "this required field is missing")
    context = raw["suggested_context"]
    if (
        not isinstance(context, int)
        or isinstance(context, bool)
        or not _MIN_CONTEXT <= context <= _MAX_CONTEXT
    ):
        raise entry.fail(
            "suggested_context",
            f"expected a whole number of tokens from {_MIN_CONTEXT} to {_MAX_CONTEXT}, got {_shown(context)}",
        )
    base_model = raw.get("base_model")
    if base_model is not None:
        base_model = entry.text("base_model", _REPO)
    notes = raw.get("notes", "")
    if notes != "":
        notes = entry.text("notes", limit=4000)
    verified = raw.get("verified", True)
    if not isinstance(verified, bool):
        raise entry.fail("verified", f"expected true or false, got {_shown(verified)}")
    return Recommendation(
        id=entry.text("id", _ID),
        name=entry.text("name"),
        hf_repo=entry.text("hf_repo", _REPO),
        base_model=base_model,
        use=cast(tuple[Use, ...], entry.strings("use", USES.__contains__, "uses (chat, novel, adventure)")),
        languages=entry.strings("languages", _LANGUAGE.fullmatch, "language codes such as 'ja'"),
        censorship=cast(Censorship, entry.choice("censorship", CENSORSHIP_LEVELS)),
        kind=cast(ModelKind, entry.choice("kind", MODEL_KINDS)),
        parameters=entry.text("parameters", _PARAMETERS),
        suggested_quant=entry.text("suggested_quant", _QUANT),
        suggested_context=context,
        prompt_template=entry.text("prompt_template", _TEMPLATE),
        notes=notes,
        verified=verified,
        extra={k: v for k, v in raw.items() if k not in _REQUIRED and k not in _OPTIONAL},
    )


def _reject_constant(name: str) -> Any:
    raise RecommendationsError(f"The recommendations file holds {name}, which is not valid JSON. {_FIX}")


def parse_recommendations(data: bytes | str, *, source: str = SHIPPED_FILE) -> list[Recommendation]:
    """Validate a recommendations document: ``{"models": [...]}`` plus any other top-level keys."""
    if len(data) > MAX_FILE_BYTES:
        raise RecommendationsError(
            f"{source} is larger than {MAX_FILE_BYTES // 1024} KiB; it cannot be a model list."
        )
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
        document = json.loads(text, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise RecommendationsError(f"{source} is not UTF-8 text; save it as UTF-8.") from exc
    except json.JSONDecodeError as exc:
        raise RecommendationsError(
            f"{source} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}). {_FIX}"
        ) from exc
    except RecursionError as exc:
        raise RecommendationsError(f"{source} is nested too deeply to be a model list.") from exc
    models = document.get("models") if isinstance(document, dict) else None
    if not isinstance(models, list):
        raise RecommendationsError(f'{source} must be a JSON object with a "models" list.')
    if len(models) > MAX_ENTRIES:
        raise RecommendationsError(f"{source} lists {len(models)} models; at most {MAX_ENTRIES} are allowed.")
    items = [_parse_entry(raw, index, source) for index, raw in enumerate(models)]
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        if item.id in seen:
            raise RecommendationsError(
                f"{source}, entry {index + 1} ({item.id!r}), field 'id': entry {seen[item.id] + 1} "
                "already uses this id. Give each model its own id.",
                param="id",
            )
        seen[item.id] = index
    return items


def load_recommendations(path: Path | None = None) -> list[Recommendation]:
    """The shipped list, or the user's copy at ``path`` (the app passes data_dir/recommendations.json)."""
    if path is None:
        data = resources.files("kataribe.library").joinpath(SHIPPED_FILE).read_bytes()
        return parse_recommendations(data, source=f"the shipped {SHIPPED_FILE}")
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise RecommendationsError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    return parse_recommendations(data, source=str(path))


def recommendations_to_json(items: Iterable[Recommendation]) -> str:
    """The document ``parse_recommendations`` reads back unchanged, unknown keys included."""
    return json.dumps(
        {"version": 1, "models": [item.to_dict() for item in items]}, ensure_ascii=False, indent=2
    )


def filter_recommendations(
    items: Iterable[Recommendation],
    use: str | None = None,
    language: str | None = None,
    censorship: str | None = None,
) -> list[Recommendation]:
    """Entries for ``use``, written for ``language`` (primary subtag: 'ja' matches 'ja-JP') at
    exactly the ``censorship`` level. An unknown filter value is an error, not an empty list."""
    if use is not None and use not in USES:
        raise InvalidRequest(f"use must be one of {', '.join(USES)}; got {_shown(use)}.", param="use")
    if censorship is not None and censorship not in CENSORSHIP_LEVELS:
        raise InvalidRequest(
            f"censorship must be one of {', '.join(CENSORSHIP_LEVELS)}; got {_shown(censorship)}.",
            param="censorship",
        )
    wanted = language.strip().lower().split("-")[0] if language is not None else None
    return [
        item
        for item in items
        if (use is None or use in item.use)
        and (wanted is None or any(lang.lower().split("-")[0] == wanted for lang in item.languages))
        and (censorship is None or item.censorship == censorship)
    ]
