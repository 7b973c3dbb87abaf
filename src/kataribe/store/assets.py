"""Content-addressed file storage: bytes kept under their sha256, never under a name a user chose."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path

from sqlalchemy.orm import Session

from kataribe.store.errors import AssetTooLarge, InvalidValue, NotFound
from kataribe.store.images import check_image_size
from kataribe.store.models import Asset

DEFAULT_MAX_BYTES = 32 * 1024 * 1024
OCTET_STREAM = "application/octet-stream"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# RFC 6838 type/subtype characters; parameters (";charset=...") are dropped before the check.
_MIME = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,62}")
_SNIFFABLE = ("image/png", "image/jpeg", "image/gif", "image/webp")
TEMP_PREFIX = ".tmp-"


def sniff_mime(data: bytes) -> str | None:
    """The image type the first bytes announce (PNG, JPEG, GIF, WebP), or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def normalize_mime(mime: object) -> str:
    if not isinstance(mime, str):
        raise InvalidValue("mime", f"'mime' must be a string like 'image/png'; got {type(mime).__name__}.")
    bare = mime.split(";", 1)[0].strip().lower()
    if not _MIME.fullmatch(bare):
        raise InvalidValue("mime", f"'mime' must look like 'image/png'; got {mime!r:.80}.")
    return bare


def check_sha256(sha256: object) -> str:
    """The hash as 64 lowercase hex digits; anything else (a path, '..', a short hash) is refused."""
    if isinstance(sha256, str) and len(sha256) == 64:
        lowered = sha256.lower()
        if _SHA256_HEX.fullmatch(lowered):
            return lowered
    raise InvalidValue(
        "sha256",
        f"An asset id is the file's sha256 as 64 hex digits; got {sha256!r:.80}. "
        "Use the id the upload returned.",
    )


class AssetStore:
    """Files under ``root/ab/cd/<sha256>``; writing the same bytes twice stores them once."""

    def __init__(self, root: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes

    def path(self, sha256: str) -> Path:
        digest = check_sha256(sha256)
        return self.root / digest[:2] / digest[2:4] / digest

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def read(self, sha256: str) -> bytes:
        path = self.path(sha256)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise NotFound(
                "asset", sha256, hint="The file is not in the asset store; upload it again."
            ) from None

    def put(self, data: bytes | bytearray | memoryview, mime: str | None = None) -> str:
        """Store ``data`` and return its sha256.

        A declared image type must match the file's first bytes, so a script cannot be stored as a
        "PNG" and served back with that type.
        """
        blob = _as_bytes(data)
        if len(blob) > self.max_bytes:
            raise AssetTooLarge(len(blob), self.max_bytes)
        check_image_size(blob)
        if mime is not None:
            declared = normalize_mime(mime)
            sniffed = sniff_mime(blob)
            if declared in _SNIFFABLE and sniffed != declared:
                raise InvalidValue(
                    "mime",
                    f"The file was declared as {declared} but its bytes are "
                    f"{'not an image' if sniffed is None else sniffed}. Upload the real file.",
                )
        digest = hashlib.sha256(blob).hexdigest()
        target = self.path(digest)
        # An existing file of another size was cut short (a crash before the rename was atomic
        # on this filesystem, or a disk error): write it again.
        if not target.is_file() or target.stat().st_size != len(blob):
            _write_atomically(target, blob)
        else:
            # Fresh again: the collector leaves young files alone, so bytes reused by an import that
            # has not committed its row yet survive a collection that runs in between.
            with contextlib.suppress(OSError):
                os.utime(target)
        return digest


def _as_bytes(data: object) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise InvalidValue("data", f"An asset must be bytes; got {type(data).__name__}.")


def _write_atomically(target: Path, blob: bytes) -> None:
    # Write to a temporary file beside the target, then rename: a reader or a crash never sees
    # half a file under a hash name (which would then never be rewritten).
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=TEMP_PREFIX)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(blob)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def remember_asset(
    session: Session, store: AssetStore, data: bytes | bytearray | memoryview, mime: str | None = None
) -> Asset:
    """Store the bytes and make sure an ``assets`` row describes them; returns that row."""
    blob = _as_bytes(data)
    digest = store.put(blob, mime)
    existing = session.get(Asset, digest)
    if existing is not None:
        return existing
    kind = normalize_mime(mime) if mime is not None else (sniff_mime(blob) or OCTET_STREAM)
    asset = Asset(sha256=digest, mime=kind, size=len(blob))
    session.add(asset)
    session.flush()
    return asset
