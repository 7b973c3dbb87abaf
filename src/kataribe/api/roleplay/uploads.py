"""Reading an uploaded file (multipart field ``file``) with a size limit."""

from __future__ import annotations

from fastapi import UploadFile

from kataribe.api.roleplay.services import MAX_UPLOAD_BYTES
from kataribe.errors import InvalidRequest


async def read_upload(file: UploadFile, limit: int = MAX_UPLOAD_BYTES) -> bytes:
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise InvalidRequest(f"The file is larger than {limit // (1024 * 1024)} MB.", param="file")
    if not data:
        raise InvalidRequest("The uploaded file is empty.", param="file")
    return data


def attachment(filename: str) -> dict[str, str]:
    from urllib.parse import quote

    safe = "".join(ch for ch in filename if ch.isascii() and (ch.isalnum() or ch in "._- ")) or "download"
    return {"Content-Disposition": f"attachment; filename=\"{safe}\"; filename*=UTF-8''{quote(filename)}"}
