"""The database schema as SQLAlchemy 2 typed ORM classes: characters, assets, chats as message trees."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.ext.mutable import MutableDict, MutableList
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

from kataribe.store.errors import InvalidValue

# Named constraints, so later migrations (batch mode on SQLite, ALTER on PostgreSQL) can address them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

MESSAGE_ROLES = ("user", "assistant", "system")
ASSET_KINDS = ("sprite", "background", "icon", "other")
PERSONA_POSITIONS = ("story_string", "at_depth", "none")
ACTIVATION_STRATEGIES = ("natural", "list", "manual", "pooled")
GENERATION_MODES = ("swap", "join")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every dialect.

    SQLite has no time zones: it stores naive text, which sorts correctly only if every row is UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        aware = aware.astimezone(UTC)
        return aware.replace(tzinfo=None) if dialect.name == "sqlite" else aware

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _choice(field: str, value: object, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise InvalidValue(field, f"'{field}' must be one of {', '.join(allowed)}; got {value!r:.80}.")
    return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # Integer ids are never reused after a delete (a stale client must not reach a newer row).
    __table_args__: Any = ({"sqlite_autoincrement": True},)


class Asset(Base):
    """A file in the content-addressed asset store; the bytes live on disk under their sha256."""

    __tablename__ = "assets"
    __table_args__ = ()

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    mime: Mapped[str] = mapped_column(String(127))
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


character_lorebooks = Table(
    "character_lorebooks",
    Base.metadata,
    Column("character_id", ForeignKey("characters.id", ondelete="CASCADE"), primary_key=True),
    Column("lorebook_id", ForeignKey("lorebooks.id", ondelete="CASCADE"), primary_key=True, index=True),
)

chat_lorebooks = Table(
    "chat_lorebooks",
    Base.metadata,
    Column("chat_id", ForeignKey("chats.id", ondelete="CASCADE"), primary_key=True),
    Column("lorebook_id", ForeignKey("lorebooks.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Character(Base):
    __tablename__ = "characters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String)
    # The whole card (V2/V3 shape, unknown keys included); formats/ builds and reads it.
    card: Mapped[dict[str, Any]] = mapped_column(MutableDict.as_mutable(JSON()), default=dict)
    avatar_sha256: Mapped[str | None] = mapped_column(ForeignKey("assets.sha256"), index=True)
    tags: Mapped[list[str]] = mapped_column(MutableList.as_mutable(JSON()), default=list)
    favorite: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    assets: Mapped[list[CharacterAsset]] = relationship(
        back_populates="character", cascade="all, delete-orphan", passive_deletes=True
    )


class CharacterAsset(Base):
    """An extra file of a character: an expression sprite (label = emotion), a background, an icon."""

    __tablename__ = "character_assets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    character_id: Mapped[int] = mapped_column(ForeignKey("characters.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("assets.sha256"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="other")
    label: Mapped[str] = mapped_column(String, default="")
    ext: Mapped[str] = mapped_column(String(16), default="")

    character: Mapped[Character] = relationship(back_populates="assets")

    @validates("kind")
    def _check_kind(self, _key: str, value: object) -> str:
        return _choice("kind", value, ASSET_KINDS)


class Persona(Base):
    """Who the user plays; its description goes into the prompt at `position`."""

    __tablename__ = "personas"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String)
    description: Mapped[str] = mapped_column(Text, default="")
    avatar_sha256: Mapped[str | None] = mapped_column(ForeignKey("assets.sha256"), index=True)
    position: Mapped[str] = mapped_column(String(16), default="story_string")
    depth: Mapped[int] = mapped_column(Integer, default=2)
    role: Mapped[str] = mapped_column(String(16), default="system")
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    lorebook_id: Mapped[int | None] = mapped_column(
        ForeignKey("lorebooks.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    @validates("position")
    def _check_position(self, _key: str, value: object) -> str:
        return _choice("position", value, PERSONA_POSITIONS)

    @validates("role")
    def _check_role(self, _key: str, value: object) -> str:
        return _choice("role", value, MESSAGE_ROLES)


class Lorebook(Base):
    __tablename__ = "lorebooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String)
    # Entries and settings as lore/ defines them; kept whole, unknown keys included.
    data: Mapped[dict[str, Any]] = mapped_column(MutableDict.as_mutable(JSON()), default=dict)
    is_global: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class Group(Base):
    """A group chat's cast and how the next speaker is chosen."""

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String)
    activation_strategy: Mapped[str] = mapped_column(String(16), default="natural")
    allow_self_responses: Mapped[bool] = mapped_column(Boolean, default=False)
    generation_mode: Mapped[str] = mapped_column(String(16), default="swap")
    auto_mode_delay_s: Mapped[int] = mapped_column(Integer, default=5)
    scenario_override: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    members: Mapped[list[GroupMember]] = relationship(
        order_by="GroupMember.position", cascade="all, delete-orphan", passive_deletes=True
    )

    @validates("activation_strategy")
    def _check_strategy(self, _key: str, value: object) -> str:
        return _choice("activation_strategy", value, ACTIVATION_STRATEGIES)

    @validates("generation_mode")
    def _check_mode(self, _key: str, value: object) -> str:
        return _choice("generation_mode", value, GENERATION_MODES)


class GroupMember(Base):
    __tablename__ = "group_members"
    __table_args__ = ()

    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    character_id: Mapped[int] = mapped_column(
        ForeignKey("characters.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0)
    muted: Mapped[bool] = mapped_column(Boolean, default=False)
    talkativeness: Mapped[float] = mapped_column(Float, default=0.5)


class Chat(Base):
    """One conversation: a tree of messages whose active branch ends at `head_message_id`."""

    __tablename__ = "chats"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String, default="")
    # SET NULL, not CASCADE: deleting a character or group must not silently delete its chats.
    character_id: Mapped[int | None] = mapped_column(
        ForeignKey("characters.id", ondelete="SET NULL"), index=True
    )
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="SET NULL"), index=True)
    persona_id: Mapped[int | None] = mapped_column(ForeignKey("personas.id", ondelete="SET NULL"), index=True)
    # chats -> messages -> chats is a cycle: use_alter makes create_all add this key after both tables.
    head_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL", use_alter=True), index=True
    )
    author_note: Mapped[str] = mapped_column(Text, default="")
    author_note_depth: Mapped[int] = mapped_column(Integer, default=4)
    author_note_frequency: Mapped[int] = mapped_column(Integer, default=1)
    author_note_role: Mapped[str] = mapped_column(String(16), default="system")
    variables: Mapped[dict[str, Any]] = mapped_column(MutableDict.as_mutable(JSON()), default=dict)
    lore_state: Mapped[dict[str, Any]] = mapped_column(MutableDict.as_mutable(JSON()), default=dict)
    settings: Mapped[dict[str, Any]] = mapped_column(MutableDict.as_mutable(JSON()), default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    @validates("author_note_role")
    def _check_role(self, _key: str, value: object) -> str:
        return _choice("author_note_role", value, MESSAGE_ROLES)


class Message(Base):
    """One turn. Rows are only ever inserted when a chat grows; branching = a parent with two children."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_chat_id_parent_id", "chat_id", "parent_id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"))
    # No ON DELETE action: a subtree is deleted in one statement (see chats.delete_message); a
    # cascading key would recurse once per level and hit SQLite's trigger depth limit on long chats.
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String, default="")
    character_id: Mapped[int | None] = mapped_column(
        ForeignKey("characters.id", ondelete="SET NULL"), index=True
    )
    content: Mapped[str] = mapped_column(Text, default="")  # the selected swipe's text
    swipe_index: Mapped[int] = mapped_column(Integer, default=0)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)  # kept, but left out of prompts
    meta: Mapped[dict[str, Any]] = mapped_column(MutableDict.as_mutable(JSON()), default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    @validates("role")
    def _check_role(self, _key: str, value: object) -> str:
        return _choice("role", value, MESSAGE_ROLES)


class Swipe(Base):
    """One alternative text of a message; index 0 is the original."""

    __tablename__ = "swipes"
    __table_args__ = (UniqueConstraint("message_id", "idx"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    idx: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text, default="")
    meta: Mapped[dict[str, Any]] = mapped_column(MutableDict.as_mutable(JSON()), default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Checkpoint(Base):
    """A named bookmark on a message of a chat's tree, to come back to that branch."""

    __tablename__ = "checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class GlobalVariable(Base):
    """A variable shared by all chats (the {{setglobalvar}} family); values keep their JSON type."""

    __tablename__ = "global_variables"
    __table_args__ = ()

    name: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[Any] = mapped_column(JSON())


class CharacterPersona(Base):
    """The persona locked to a character: new chats with it start as that persona."""

    __tablename__ = "character_personas"
    __table_args__ = ()

    character_id: Mapped[int] = mapped_column(
        ForeignKey("characters.id", ondelete="CASCADE"), primary_key=True
    )
    persona_id: Mapped[int] = mapped_column(ForeignKey("personas.id", ondelete="CASCADE"), index=True)


class ModelEntry(Base):
    """A GGUF file in the model library: downloaded, or registered where it already lies on disk.

    ``settings`` remembers how the user loads it (context, GPU layers, threads, template override).
    """

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String)
    path: Mapped[str] = mapped_column(Text, unique=True)
    repo_id: Mapped[str | None] = mapped_column(String)
    file_name: Mapped[str | None] = mapped_column(String)
    sha256: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    quantization: Mapped[str | None] = mapped_column(String(32))
    managed: Mapped[bool] = mapped_column(Boolean, default=False)
    """True when Kataribe downloaded it into its models dir (so removing it may delete the file)."""
    settings: Mapped[dict[str, Any]] = mapped_column(MutableDict.as_mutable(JSON()), default=dict)
    added_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


PRESET_KINDS = ("sampler", "system_prompt")


class Preset(Base):
    """A named set of chat settings to reuse: sampler values, or a system prompt and post-history text."""

    __tablename__ = "presets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    name: Mapped[str] = mapped_column(String)
    data: Mapped[dict[str, Any]] = mapped_column(MutableDict.as_mutable(JSON()), default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    @validates("kind")
    def _check_kind(self, _key: str, value: object) -> str:
        return _choice("kind", value, PRESET_KINDS)
