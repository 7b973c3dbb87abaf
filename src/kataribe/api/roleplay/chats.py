"""Routes for chats, messages, generation (SSE) and group chats."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from kataribe.api.roleplay.schemas import (
    AutoModeBody,
    BranchBody,
    ChatPatch,
    CheckpointBody,
    GroupBody,
    MessagePatch,
    NewChat,
    ReplyBody,
    SendBody,
)
from kataribe.api.roleplay.services import RoleplayServices
from kataribe.api.roleplay.sse import reply_stream
from kataribe.engine.off_loop import run_off_loop
from kataribe.errors import InvalidRequest
from kataribe.services.chat_replies import ReplyEvent
from kataribe.store.chats import ChatRepository


def chats_router(rp: RoleplayServices) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["Chats"])
    chats = rp.chats

    def chat_of_message(message_id: int) -> int:
        with rp.ctx.db.read_session() as session:
            return ChatRepository(session).message(message_id).chat_id

    @router.get("/chats")
    def list_chats(character_id: int | None = None) -> list[dict[str, Any]]:
        return chats.list_all(character_id)

    @router.post("/chats", status_code=201)
    def new_chat(body: NewChat) -> dict[str, Any]:
        return chats.start(body.character_id, persona_id=body.persona_id, title=body.title)

    @router.get("/chats/{chat_id}")
    def get_chat(chat_id: int, limit: int | None = None) -> dict[str, Any]:
        view = chats.view(chat_id, limit=limit)
        if view["group_id"] is not None:
            view["auto_mode"] = rp.groups.auto_running(chat_id)
        return view

    @router.patch("/chats/{chat_id}")
    def patch_chat(chat_id: int, body: ChatPatch) -> dict[str, Any]:
        changes = body.model_dump(exclude_unset=True)
        if body.author_note is not None:
            changes["author_note"] = body.author_note.model_dump(exclude_none=True)
        return chats.update_settings(chat_id, changes)

    @router.delete("/chats/{chat_id}", status_code=204)
    def delete_chat(chat_id: int) -> Response:
        with rp.ctx.db.session() as session:
            ChatRepository(session).delete_chat(chat_id)
        return Response(status_code=204)

    @router.post("/chats/{chat_id}/messages")
    async def send(chat_id: int, body: SendBody, request: Request) -> Any:
        """Append the user's message; with ``generate`` the reply streams back as SSE."""
        user_msg, events = await run_off_loop(chats.send, chat_id, body.text, generate=body.generate)
        if events is None:
            return user_msg
        return reply_stream(
            request,
            events,
            on_disconnect=lambda: chats.stop(chat_id),
            first=[ReplyEvent("user_message", user_msg)],
        )

    @router.post("/chats/{chat_id}/reply")
    async def reply(chat_id: int, body: ReplyBody, request: Request) -> StreamingResponse:
        events = await run_off_loop(chats.reply, chat_id, speaker_id=body.character_id)
        return reply_stream(request, events, on_disconnect=lambda: chats.stop(chat_id))

    @router.post("/chats/{chat_id}/impersonate")
    async def impersonate(chat_id: int, request: Request) -> StreamingResponse:
        events = await run_off_loop(chats.impersonate, chat_id)
        return reply_stream(request, events, on_disconnect=lambda: chats.stop(chat_id))

    @router.post("/chats/{chat_id}/stop")
    def stop(chat_id: int) -> dict[str, bool]:
        return {"stopped": chats.stop(chat_id)}

    @router.post("/messages/{message_id}/regenerate")
    async def regenerate(message_id: int, request: Request) -> StreamingResponse:
        chat_id = chat_of_message(message_id)
        events = await run_off_loop(chats.regenerate, message_id)
        return reply_stream(request, events, on_disconnect=lambda: chats.stop(chat_id))

    @router.post("/messages/{message_id}/continue")
    async def continue_message(message_id: int, request: Request) -> StreamingResponse:
        chat_id = chat_of_message(message_id)
        events = await run_off_loop(chats.continue_message, message_id)
        return reply_stream(request, events, on_disconnect=lambda: chats.stop(chat_id))

    @router.patch("/messages/{message_id}")
    def patch_message(message_id: int, body: MessagePatch) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if body.swipe_index is not None:
            out = chats.select_swipe(message_id, body.swipe_index)
        if body.content is not None:
            out = chats.edit(message_id, body.content)
        if body.hidden is not None:
            out = chats.set_hidden(message_id, body.hidden)
        if not out:
            raise InvalidRequest("Send content, hidden or swipe_index to change.", param="content")
        return out

    @router.delete("/messages/{message_id}")
    def delete_message(message_id: int) -> dict[str, int]:
        return {"deleted": chats.delete_message(message_id)}

    @router.get("/messages/{message_id}/children")
    def children(message_id: int) -> list[dict[str, Any]]:
        return chats.children(message_id)

    @router.post("/chats/{chat_id}/branch")
    def branch(chat_id: int, body: BranchBody) -> dict[str, Any]:
        return chats.branch(chat_id, body.message_id)

    @router.get("/chats/{chat_id}/tree")
    def tree(chat_id: int) -> dict[str, Any]:
        return chats.tree(chat_id)

    @router.post("/chats/{chat_id}/checkpoints", status_code=201)
    def checkpoint(chat_id: int, body: CheckpointBody) -> dict[str, Any]:
        return chats.checkpoint(chat_id, body.name, body.message_id)

    @router.get("/chats/{chat_id}/prompt")
    def dry_run(chat_id: int, character_id: int | None = None) -> dict[str, Any]:
        """The assembled prompt of the next reply, with per-section token counts and fired lore."""
        return chats.dry_run(chat_id, speaker_id=character_id)

    @router.get("/search")
    def search(q: str, character_id: int | None = None) -> list[dict[str, Any]]:
        return chats.search(q, character_id)

    # -- groups --
    @router.get("/groups")
    def list_groups() -> list[dict[str, Any]]:
        return rp.groups.list_all()

    @router.post("/groups", status_code=201)
    def create_group(body: GroupBody) -> dict[str, Any]:
        return rp.groups.create(body.model_dump(exclude_unset=True))

    @router.get("/groups/{group_id}")
    def get_group(group_id: int) -> dict[str, Any]:
        return rp.groups.view(group_id)

    @router.patch("/groups/{group_id}")
    def update_group(group_id: int, body: GroupBody) -> dict[str, Any]:
        return rp.groups.update(group_id, body.model_dump(exclude_unset=True))

    @router.delete("/groups/{group_id}", status_code=204)
    def delete_group(group_id: int) -> Response:
        rp.groups.delete(group_id)
        return Response(status_code=204)

    @router.post("/groups/{group_id}/chats", status_code=201)
    def new_group_chat(group_id: int) -> dict[str, Any]:
        return rp.groups.start_chat(group_id)

    @router.post("/chats/{chat_id}/group/next")
    async def group_turn(chat_id: int, body: ReplyBody, request: Request) -> StreamingResponse:
        """The members who speak now reply in turn (or ``character_id`` is forced to talk)."""
        events = rp.groups.next_turn(chat_id, force_character_id=body.character_id)
        return reply_stream(request, events, on_disconnect=lambda: chats.stop(chat_id))

    @router.put("/chats/{chat_id}/group/auto")
    async def group_auto(chat_id: int, body: AutoModeBody) -> dict[str, bool]:
        chats.view(chat_id, limit=1)  # 404 for an unknown chat
        return {"enabled": rp.groups.auto_mode(chat_id, body.enabled)}

    return router
