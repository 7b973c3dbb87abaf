"""The role-play services, built once per app and handed to the routers."""

from __future__ import annotations

from dataclasses import dataclass

from kataribe.services.characters import CharacterService
from kataribe.services.chats import ChatService
from kataribe.services.context import RoleplayContext
from kataribe.services.groups import GroupService
from kataribe.services.lorebooks import LorebookService
from kataribe.services.personas import PersonaService

MAX_UPLOAD_BYTES = 64 * 1024 * 1024


@dataclass
class RoleplayServices:
    ctx: RoleplayContext
    characters: CharacterService
    personas: PersonaService
    lorebooks: LorebookService
    chats: ChatService
    groups: GroupService

    @classmethod
    def build(cls, ctx: RoleplayContext) -> RoleplayServices:
        chats = ChatService(ctx)
        return cls(
            ctx,
            CharacterService(ctx),
            PersonaService(ctx),
            LorebookService(ctx),
            chats,
            GroupService(ctx, chats),
        )
