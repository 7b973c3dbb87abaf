"""Routes for SillyTavern chat files and the full backup (all of it run in worker threads)."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from kataribe.api.roleplay.services import RoleplayServices
from kataribe.api.roleplay.uploads import attachment, read_upload
from kataribe.services.transfer import export_backup, export_st_chat, import_st_chat, restore_backup

MAX_BACKUP_BYTES = 2 * 1024 * 1024 * 1024


def transfer_router(rp: RoleplayServices) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["Import and export"])

    @router.post("/chats/import", status_code=201)
    async def import_chat(
        file: Annotated[UploadFile, File()],
        character_id: Annotated[int | None, Form()] = None,
        group_id: Annotated[int | None, Form()] = None,
        title: Annotated[str | None, Form()] = None,
    ) -> dict[str, Any]:
        """A SillyTavern chat (.jsonl, with swipes) for a character or a group."""
        data = await read_upload(file, 200 * 1024 * 1024)
        imported = partial(
            import_st_chat, rp.ctx, data, character_id=character_id, group_id=group_id, title=title
        )
        chat_id = await run_in_threadpool(imported)
        return await run_in_threadpool(rp.chats.view, chat_id, limit=50)

    @router.get("/chats/{chat_id}/export")
    def export_chat(chat_id: int) -> Response:
        """The active branch as SillyTavern JSONL (every swipe kept)."""
        data = export_st_chat(rp.ctx, chat_id)
        return Response(data, media_type="application/jsonl", headers=attachment(f"chat-{chat_id}.jsonl"))

    @router.get("/backup")
    def backup() -> Response:
        """Everything: cards, assets, personas, lorebooks, chats with every branch and swipe, groups."""
        return Response(
            export_backup(rp.ctx), media_type="application/json", headers=attachment("kataribe-backup.json")
        )

    @router.post("/backup/restore")
    async def restore(file: Annotated[UploadFile, File()]) -> dict[str, int]:
        """Restore a backup onto an empty library (refused if anything is there)."""
        data = await read_upload(file, MAX_BACKUP_BYTES)
        # Checking and writing a backup of hundreds of MiB takes seconds: never on the event loop.
        return await run_in_threadpool(restore_backup, rp.ctx, data)

    return router
