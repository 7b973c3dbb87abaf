"""Initial schema: characters, assets, personas, lorebooks, groups, chats as message trees, FTS.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AUTOINCREMENT = {"sqlite_autoincrement": True}

# Substring search that works for Japanese: the trigram tokenizer (SQLite >= 3.34) indexes every
# three characters, where the default tokenizer would take a whole run of kana and kanji as one word.
FTS_STATEMENTS = (
    "CREATE VIRTUAL TABLE messages_fts USING fts5("
    "content, content='messages', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN "
    "INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content); END",
    "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN "
    "INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content); END",
    "CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN "
    "INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content); "
    "INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content); END",
)


def _now_columns(*names: str) -> list[sa.Column[object]]:
    return [sa.Column(name, sa.DateTime(timezone=True), nullable=False) for name in names]


def upgrade() -> None:
    sqlite = op.get_context().dialect.name == "sqlite"

    op.create_table(
        "assets",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("mime", sa.String(127), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        *_now_columns("created_at"),
        sa.PrimaryKeyConstraint("sha256", name="pk_assets"),
    )
    op.create_table(
        "global_variables",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_global_variables"),
    )
    op.create_table(
        "groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("activation_strategy", sa.String(16), nullable=False),
        sa.Column("allow_self_responses", sa.Boolean(), nullable=False),
        sa.Column("generation_mode", sa.String(16), nullable=False),
        sa.Column("auto_mode_delay_s", sa.Integer(), nullable=False),
        sa.Column("scenario_override", sa.Text(), nullable=True),
        *_now_columns("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_groups"),
        **AUTOINCREMENT,
    )
    op.create_table(
        "lorebooks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("is_global", sa.Boolean(), nullable=False),
        *_now_columns("created_at", "updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_lorebooks"),
        **AUTOINCREMENT,
    )
    op.create_table(
        "characters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("card", sa.JSON(), nullable=False),
        sa.Column("avatar_sha256", sa.String(64), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("favorite", sa.Boolean(), nullable=False),
        *_now_columns("created_at", "updated_at"),
        sa.ForeignKeyConstraint(
            ["avatar_sha256"], ["assets.sha256"], name="fk_characters_avatar_sha256_assets"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_characters"),
        **AUTOINCREMENT,
    )
    op.create_index("ix_characters_avatar_sha256", "characters", ["avatar_sha256"])
    op.create_table(
        "personas",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("avatar_sha256", sa.String(64), nullable=True),
        sa.Column("position", sa.String(16), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("lorebook_id", sa.Integer(), nullable=True),
        *_now_columns("created_at"),
        sa.ForeignKeyConstraint(
            ["avatar_sha256"], ["assets.sha256"], name="fk_personas_avatar_sha256_assets"
        ),
        sa.ForeignKeyConstraint(
            ["lorebook_id"], ["lorebooks.id"], name="fk_personas_lorebook_id_lorebooks", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_personas"),
        **AUTOINCREMENT,
    )
    op.create_index("ix_personas_avatar_sha256", "personas", ["avatar_sha256"])
    op.create_index("ix_personas_lorebook_id", "personas", ["lorebook_id"])
    op.create_table(
        "character_assets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("character_id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("label", sa.String(), nullable=False),
        sa.Column("ext", sa.String(16), nullable=False),
        sa.ForeignKeyConstraint(
            ["character_id"],
            ["characters.id"],
            name="fk_character_assets_character_id_characters",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["sha256"], ["assets.sha256"], name="fk_character_assets_sha256_assets"),
        sa.PrimaryKeyConstraint("id", name="pk_character_assets"),
        **AUTOINCREMENT,
    )
    op.create_index("ix_character_assets_character_id", "character_assets", ["character_id"])
    op.create_index("ix_character_assets_sha256", "character_assets", ["sha256"])
    op.create_table(
        "character_lorebooks",
        sa.Column("character_id", sa.Integer(), nullable=False),
        sa.Column("lorebook_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["character_id"],
            ["characters.id"],
            name="fk_character_lorebooks_character_id_characters",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["lorebook_id"],
            ["lorebooks.id"],
            name="fk_character_lorebooks_lorebook_id_lorebooks",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("character_id", "lorebook_id", name="pk_character_lorebooks"),
    )
    op.create_index("ix_character_lorebooks_lorebook_id", "character_lorebooks", ["lorebook_id"])
    op.create_table(
        "character_personas",
        sa.Column("character_id", sa.Integer(), nullable=False),
        sa.Column("persona_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["character_id"],
            ["characters.id"],
            name="fk_character_personas_character_id_characters",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["persona_id"],
            ["personas.id"],
            name="fk_character_personas_persona_id_personas",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("character_id", name="pk_character_personas"),
    )
    op.create_index("ix_character_personas_persona_id", "character_personas", ["persona_id"])
    op.create_table(
        "group_members",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("character_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("muted", sa.Boolean(), nullable=False),
        sa.Column("talkativeness", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["groups.id"], name="fk_group_members_group_id_groups", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["character_id"],
            ["characters.id"],
            name="fk_group_members_character_id_characters",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "character_id", name="pk_group_members"),
    )
    op.create_index("ix_group_members_character_id", "group_members", ["character_id"])

    # chats.head_message_id -> messages and messages.chat_id -> chats form a cycle. SQLite accepts a
    # key to a table created later (and cannot add one afterwards); other databases add it below.
    head_fk = sa.ForeignKeyConstraint(
        ["head_message_id"], ["messages.id"], name="fk_chats_head_message_id_messages", ondelete="SET NULL"
    )
    op.create_table(
        "chats",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("character_id", sa.Integer(), nullable=True),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("persona_id", sa.Integer(), nullable=True),
        sa.Column("head_message_id", sa.Integer(), nullable=True),
        sa.Column("author_note", sa.Text(), nullable=False),
        sa.Column("author_note_depth", sa.Integer(), nullable=False),
        sa.Column("author_note_frequency", sa.Integer(), nullable=False),
        sa.Column("author_note_role", sa.String(16), nullable=False),
        sa.Column("variables", sa.JSON(), nullable=False),
        sa.Column("lore_state", sa.JSON(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        *_now_columns("created_at", "updated_at"),
        sa.ForeignKeyConstraint(
            ["character_id"], ["characters.id"], name="fk_chats_character_id_characters", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["group_id"], ["groups.id"], name="fk_chats_group_id_groups", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["persona_id"], ["personas.id"], name="fk_chats_persona_id_personas", ondelete="SET NULL"
        ),
        *([head_fk] if sqlite else []),
        sa.PrimaryKeyConstraint("id", name="pk_chats"),
        **AUTOINCREMENT,
    )
    for column in ("character_id", "group_id", "persona_id", "head_message_id"):
        op.create_index(f"ix_chats_{column}", "chats", [column])
    op.create_table(
        "chat_lorebooks",
        sa.Column("chat_id", sa.Integer(), nullable=False),
        sa.Column("lorebook_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["chat_id"], ["chats.id"], name="fk_chat_lorebooks_chat_id_chats", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["lorebook_id"],
            ["lorebooks.id"],
            name="fk_chat_lorebooks_lorebook_id_lorebooks",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("chat_id", "lorebook_id", name="pk_chat_lorebooks"),
    )
    op.create_index("ix_chat_lorebooks_lorebook_id", "chat_lorebooks", ["lorebook_id"])
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("character_id", sa.Integer(), nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("swipe_index", sa.Integer(), nullable=False),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        *_now_columns("created_at"),
        sa.ForeignKeyConstraint(
            ["chat_id"], ["chats.id"], name="fk_messages_chat_id_chats", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["parent_id"], ["messages.id"], name="fk_messages_parent_id_messages"),
        sa.ForeignKeyConstraint(
            ["character_id"],
            ["characters.id"],
            name="fk_messages_character_id_characters",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        **AUTOINCREMENT,
    )
    op.create_index("ix_messages_chat_id_parent_id", "messages", ["chat_id", "parent_id"])
    op.create_index("ix_messages_parent_id", "messages", ["parent_id"])
    op.create_index("ix_messages_character_id", "messages", ["character_id"])
    if not sqlite:
        op.create_foreign_key(
            "fk_chats_head_message_id_messages",
            "chats",
            "messages",
            ["head_message_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.create_table(
        "swipes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        *_now_columns("created_at"),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name="fk_swipes_message_id_messages", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_swipes"),
        sa.UniqueConstraint("message_id", "idx", name="uq_swipes_message_id_idx"),
        **AUTOINCREMENT,
    )
    op.create_table(
        "checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        *_now_columns("created_at"),
        sa.ForeignKeyConstraint(
            ["chat_id"], ["chats.id"], name="fk_checkpoints_chat_id_chats", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name="fk_checkpoints_message_id_messages", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_checkpoints"),
        **AUTOINCREMENT,
    )
    op.create_index("ix_checkpoints_chat_id", "checkpoints", ["chat_id"])
    op.create_index("ix_checkpoints_message_id", "checkpoints", ["message_id"])

    if sqlite:
        for statement in FTS_STATEMENTS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        for trigger in ("messages_fts_insert", "messages_fts_delete", "messages_fts_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS messages_fts")
    else:
        op.drop_constraint("fk_chats_head_message_id_messages", "chats", type_="foreignkey")
    for table in (
        "checkpoints",
        "swipes",
        "messages",
        "chat_lorebooks",
        "chats",
        "group_members",
        "character_personas",
        "character_lorebooks",
        "character_assets",
        "personas",
        "characters",
        "lorebooks",
        "groups",
        "global_variables",
        "assets",
    ):
        op.drop_table(table)
