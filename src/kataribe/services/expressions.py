"""Character expressions: sprite sets (zip import), and picking a message's emotion with the loaded LLM."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from kataribe.engine.base import ChatMessage, Engine, GenerationRequest, SamplingParams
from kataribe.errors import InvalidRequest, KataribeError
from kataribe.formats.safezip import SafeZip, ZipLimits
from kataribe.services.context import RoleplayContext
from kataribe.store.assets import remember_asset, sniff_mime
from kataribe.store.chats import ChatRepository
from kataribe.store.errors import NotFound
from kataribe.store.models import Character, CharacterAsset, Message

# SillyTavern's default expression set (the 28 GoEmotions labels its classifier knows).
EXPRESSION_LABELS: tuple[str, ...] = (
    "admiration",
    "amusement",
    "anger",
    "annoyance",
    "approval",
    "caring",
    "confusion",
    "curiosity",
    "desire",
    "disappointment",
    "disapproval",
    "disgust",
    "embarrassment",
    "excitement",
    "fear",
    "gratitude",
    "grief",
    "joy",
    "love",
    "nervousness",
    "neutral",
    "optimism",
    "pride",
    "realization",
    "relief",
    "remorse",
    "sadness",
    "surprise",
)
FALLBACK_LABEL = "neutral"
MAX_LABEL_CHARS = 64
CLASSIFY_TEXT_CHARS = 2000  # the end of a long reply says most about the mood it ends in

MIB = 1024 * 1024
MAX_SPRITE_ZIP_BYTES = 64 * MIB
MAX_SPRITE_MEMBERS = 500
MAX_SPRITE_BYTES = 16 * MIB
MAX_SPRITE_TOTAL_BYTES = 256 * MIB
SPRITE_ZIP_LIMITS = ZipLimits(
    max_bytes=MAX_SPRITE_ZIP_BYTES,
    max_members=MAX_SPRITE_MEMBERS,
    max_total=MAX_SPRITE_TOTAL_BYTES,
    max_member=MAX_SPRITE_BYTES,
    ratio_min_bytes=64 * 1024,
)
_IMAGE_EXTS = frozenset({"png", "webp", "gif", "jpg", "jpeg"})
# Files that archivers add on their own; they are skipped, not refused.
_ARCHIVER_NOISE = ("__MACOSX/", ".DS_Store", "Thumbs.db", "desktop.ini")


class SpriteZipError(InvalidRequest):
    """A sprite zip is unusable or unsafe."""

    def __init__(self, message: str) -> None:
        super().__init__(message, param="file", code="bad_sprite_zip")


@dataclass(frozen=True)
class SpriteFile:
    label: str
    data: bytes
    mime: str


# -- classification ---------------------------------------------------------------------------------


def expression_choices(sprite_labels: Sequence[str]) -> list[str]:
    """The labels to classify over: a character's own sprite labels (plus the fallback) when it has
    sprites, since a label without a picture shows nothing; otherwise SillyTavern's default set."""
    own = sorted({label for label in sprite_labels if label})
    if not own:
        return list(EXPRESSION_LABELS)
    return own if FALLBACK_LABEL in own else [*own, FALLBACK_LABEL]


def _fallback(labels: Sequence[str]) -> str:
    return FALLBACK_LABEL if FALLBACK_LABEL in labels or not labels else labels[0]


def classification_request(text: str, labels: Sequence[str]) -> GenerationRequest:
    """A grammar-constrained request whose only possible answer is {"emotion": <one of labels>}."""
    excerpt = text[-CLASSIFY_TEXT_CHARS:]
    system = (
        "You read a passage from a role-play story and name the emotion the speaker shows. "
        f"Answer with JSON only, using one of these emotions: {', '.join(labels)}."
    )
    longest = max((len(label) for label in labels), default=0)
    return GenerationRequest(
        messages=[
            ChatMessage(role="system", content=system),
            ChatMessage(role="user", content=f"Passage:\n{excerpt}\n\nWhich emotion fits best?"),
        ],
        json_schema={
            "type": "object",
            "properties": {"emotion": {"enum": list(labels)}},
            "required": ["emotion"],
        },
        # 24 tokens hold {"emotion": "disappointment"}; long custom labels need room to finish the JSON.
        max_tokens=max(24, 12 + longest),
        sampling=SamplingParams(temperature=0.0, seed=0),
        label="expression",
    )


def parse_classification(text: str, labels: Sequence[str]) -> str:
    try:
        answer = json.loads(text)
    except ValueError:
        return _fallback(labels)
    emotion = answer.get("emotion") if isinstance(answer, dict) else None
    return emotion if isinstance(emotion, str) and emotion in labels else _fallback(labels)


def classify_expression(engine: Engine, text: str, labels: Sequence[str]) -> str:
    """One of ``labels`` for ``text``, chosen by the loaded model; "neutral" (or the first label) when
    the text is empty or the model fails. Blocks until done: call it from a worker thread."""
    choices = [label for label in dict.fromkeys(labels) if isinstance(label, str) and label]
    if not choices:
        return FALLBACK_LABEL
    if len(choices) == 1 or not text.strip():
        return _fallback(choices)
    try:
        done = engine.generate(classification_request(text, choices)).collect()
    except (KataribeError, RuntimeError, ValueError):
        return _fallback(choices)
    if done.error is not None:
        return _fallback(choices)
    return parse_classification(done.text, choices)


# -- sprite zips ------------------------------------------------------------------------------------


def sprite_label_of(member_name: str) -> str | None:
    """``Seraphina/Joy.PNG`` -> ``joy``; None for a file that is not named like an image."""
    base = member_name.rsplit("/", 1)[-1]
    stem, dot, ext = base.rpartition(".")
    if not dot or ext.lower() not in _IMAGE_EXTS:
        return None
    label = stem.strip().lower()
    return label or None


def _is_noise(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return name.startswith(_ARCHIVER_NOISE[0]) or base in _ARCHIVER_NOISE[1:] or base.startswith("._")


def read_sprite_zip(data: bytes) -> list[SpriteFile]:
    """The sprites of a zip of ``<label>.png|webp|gif|jpg`` files (SillyTavern's sprite folders).

    Every limit is checked before anything is inflated; each image is sniffed by its bytes. Files
    that are not named like images are skipped; a file named like an image that is not one is refused.
    """
    archive = SafeZip(data, SPRITE_ZIP_LIMITS, what="sprite zip", error=SpriteZipError)
    wanted: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for info in archive.infos.values():
        if info.is_dir() or _is_noise(info.filename):
            continue
        label = sprite_label_of(info.filename)
        if label is None:
            continue
        if len(label) > MAX_LABEL_CHARS:
            raise SpriteZipError(
                f"The sprite name {label[:80]!r}… is too long; name it after an emotion "
                f"(at most {MAX_LABEL_CHARS} characters)."
            )
        if label in seen:
            raise SpriteZipError(
                f"The zip holds two sprites for {label!r} ({seen[label][:120]!r} and "
                f"{info.filename[:120]!r}); keep one."
            )
        seen[label] = info.filename
        wanted.append((label, info.filename))
    if not wanted:
        raise SpriteZipError(
            "The zip holds no sprites. Put images named after emotions in it (joy.png, anger.webp, ...)."
        )
    sprites = []
    for label, name in wanted:
        content = archive.read(name)
        mime = sniff_mime(content)
        if mime is None:
            raise SpriteZipError(
                f"{name[:120]!r} is not a PNG, JPEG, WebP or GIF image; the archive is refused."
            )
        sprites.append(SpriteFile(label=label, data=content, mime=mime))
    return sprites


# -- the service ------------------------------------------------------------------------------------


def _sprite_rows(character: Character) -> list[CharacterAsset]:
    return sorted((a for a in character.assets if a.kind == "sprite"), key=lambda a: a.label)


def _background_of(character: Character) -> str | None:
    return next((a.sha256 for a in character.assets if a.kind == "background"), None)


class ExpressionService:
    def __init__(self, ctx: RoleplayContext) -> None:
        self.ctx = ctx

    @staticmethod
    def _character(session: Session, character_id: int) -> Character:
        found = session.get(Character, character_id)
        if found is None:
            raise NotFound("character", character_id)
        return found

    def sprites(self, character_id: int) -> list[dict[str, Any]]:
        with self.ctx.db.read_session() as session:
            character = self._character(session, character_id)
            return [{"label": a.label, "asset": a.sha256} for a in _sprite_rows(character)]

    def stage(self, character_id: int) -> dict[str, Any]:
        """What a visual-novel stage needs for one character: its sprites and background."""
        with self.ctx.db.read_session() as session:
            character = self._character(session, character_id)
            return {
                "character_id": character.id,
                "name": character.name,
                "avatar": character.avatar_sha256,
                "background": _background_of(character),
                "sprites": [{"label": a.label, "asset": a.sha256} for a in _sprite_rows(character)],
            }

    def import_zip(self, character_id: int, data: bytes) -> list[dict[str, Any]]:
        """Store every sprite of the zip (replacing sprites with the same labels), all or nothing."""
        sprites = read_sprite_zip(data)
        with self.ctx.db.session() as session:
            character = self._character(session, character_id)
            replaced = {s.label for s in sprites}
            for old in [a for a in character.assets if a.kind == "sprite" and a.label in replaced]:
                session.delete(old)
            for sprite in sprites:
                stored = remember_asset(session, self.ctx.assets, sprite.data, sprite.mime)
                session.add(
                    CharacterAsset(
                        character_id=character.id,
                        sha256=stored.sha256,
                        kind="sprite",
                        label=sprite.label,
                        ext=sprite.mime.split("/")[-1],
                    )
                )
            session.flush()
            session.refresh(character)
            return [{"label": a.label, "asset": a.sha256} for a in _sprite_rows(character)]

    def delete_sprite(self, character_id: int, label: str) -> None:
        wanted = label.strip().lower()
        with self.ctx.db.session() as session:
            character = self._character(session, character_id)
            rows = [a for a in character.assets if a.kind == "sprite" and a.label == wanted]
            if not rows:
                raise NotFound(
                    "sprite", repr(wanted[:80]), hint="List the character's sprites to see its labels."
                )
            for row in rows:
                session.delete(row)

    def expression_for_message(self, message_id: int) -> dict[str, Any]:
        """Classify a message for its speaker's sprites; remembers the label in the message's meta."""
        with self.ctx.db.read_session() as session:
            repo = ChatRepository(session)
            message = repo.message(message_id)
            speaker = message.character_id or repo.chat(message.chat_id).character_id
            text = message.content
            sprites: dict[str, str] = {}
            if speaker is not None:
                character = session.get(Character, speaker)
                if character is not None:
                    sprites = {a.label: a.sha256 for a in _sprite_rows(character)}
        label = classify_expression(self.ctx.engine, text, expression_choices(list(sprites)))
        with self.ctx.db.session() as session:
            stored = session.get(Message, message_id)
            if stored is not None:
                stored.meta = {**stored.meta, "expression": label}
        return {
            "message_id": message_id,
            "character_id": speaker,
            "label": label,
            "sprite": sprites.get(label) or sprites.get(FALLBACK_LABEL),
        }
