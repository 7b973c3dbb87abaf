"""SafeZip: reading a zip from an untrusted source, with every limit checked before anything inflates."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass

from kataribe.errors import InvalidRequest

MIB = 1024 * 1024
_READ_BLOCK = 1 * MIB
# What zipfile raises on hostile archives besides BadZipFile ("zip file version 6.4" is NotImplementedError).
ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    struct.error,
    NotImplementedError,
    RuntimeError,
)


@dataclass(frozen=True)
class ZipLimits:
    max_bytes: int
    """The archive itself."""
    max_members: int
    max_total: int
    """All members inflated together."""
    max_member: int | None = None
    max_ratio: int = 100
    ratio_min_bytes: int = 1 * MIB
    """Small members may compress past the ratio legitimately (a page of spaces); they are bounded anyway."""


def unsafe_member_name_reason(name: str) -> str | None:
    """Why a member name could escape an extraction folder or differ between systems; None if safe."""
    if not name:
        return "has an empty name"
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/") or (len(name) >= 2 and name[1] == ":"):
        return "is an absolute path"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "contains control characters"
    parts = name[:-1].split("/") if name.endswith("/") else name.split("/")
    if ".." in parts:
        return "contains a '..' component"
    if any(part in ("", ".") for part in parts):
        return "contains an empty or '.' component"
    return None


class SafeZip:
    """A checked view of an archive. ``what`` names it in messages ("CHARX", "sprite zip");
    problems raise ``error`` (an InvalidRequest subclass taking the message)."""

    def __init__(self, data: bytes, limits: ZipLimits, *, what: str, error: type[InvalidRequest]) -> None:
        self.what = what
        self.error = error
        if len(data) > limits.max_bytes:
            raise error(
                f"The {what} file is {len(data) // MIB} MiB; the limit is {limits.max_bytes // MIB} MiB."
            )
        try:
            self._zip = zipfile.ZipFile(io.BytesIO(data))
            infos = self._zip.infolist()
        except ZIP_ERRORS as exc:
            raise error(f"The file is not a readable zip archive ({str(exc)[:120]}).") from None
        if len(infos) > limits.max_members:
            raise error(f"The {what} archive has {len(infos)} members; the limit is {limits.max_members}.")
        self.infos: dict[str, zipfile.ZipInfo] = {}
        total = compressed = 0
        for info in infos:
            self._check_member(info, limits)
            if info.filename in self.infos:
                raise error(f"The {what} archive holds {info.filename[:120]!r} twice; refused as ambiguous.")
            total += info.file_size
            compressed += info.compress_size
            self.infos[info.filename] = info
        if total > limits.max_total:
            raise error(
                f"The {what} archive expands to {total // MIB} MiB; "
                f"the limit is {limits.max_total // MIB} MiB."
            )
        # The ratio of the whole archive: many members each under ratio_min_bytes add up.
        if total > limits.ratio_min_bytes and total > limits.max_ratio * max(compressed, 1):
            raise error(
                f"The {what} archive expands more than {limits.max_ratio}:1 as a whole "
                f"({compressed:,} to {total:,} bytes); refused as a zip bomb."
            )
        self.names = frozenset(name for name in self.infos if not name.endswith("/"))
        # zipfile shifts offsets by any bytes before the archive (RisuAI's JPEG-with-zip export).
        start = min((info.header_offset for info in infos), default=len(data))
        self.prefix = data[: max(0, min(start, len(data)))]

    def _check_member(self, info: zipfile.ZipInfo, limits: ZipLimits) -> None:
        name, what, error = info.filename[:120], self.what, self.error
        reason = unsafe_member_name_reason(info.filename)
        if reason is not None:
            raise error(f"The {what} member {name!r} {reason}; the archive is refused.")
        if info.flag_bits & 0x1:
            raise error(f"The {what} member {name!r} is encrypted; make the archive without a password.")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise error(
                f"The {what} member {name!r} uses compression method {info.compress_type}; "
                "only stored and deflate are supported."
            )
        if limits.max_member is not None and info.file_size > limits.max_member:
            raise error(
                f"The {what} member {name!r} is {info.file_size // MIB} MiB; each may be at most "
                f"{limits.max_member // MIB} MiB."
            )
        if info.file_size > limits.ratio_min_bytes and info.file_size > limits.max_ratio * max(
            info.compress_size, 1
        ):
            raise error(
                f"The {what} member {name!r} expands more than {limits.max_ratio}:1 "
                f"({info.compress_size} to {info.file_size} bytes); refused as a zip bomb."
            )

    def read(self, name: str) -> bytes:
        info = self.infos.get(name)
        if info is None or name not in self.names:
            raise self.error(f"The {self.what} archive has no member {name[:120]!r}.")
        out = bytearray()
        try:
            with self._zip.open(info) as member:
                while block := member.read(_READ_BLOCK):
                    out += block
                    if len(out) > info.file_size:  # zipfile caps output at file_size; never trust that alone
                        raise self.error(
                            f"The {self.what} member {name[:120]!r} is larger than its header says."
                        )
        except ZIP_ERRORS as exc:
            raise self.error(
                f"The {self.what} member {name[:120]!r} cannot be read ({str(exc)[:120]}); "
                "the file is damaged."
            ) from None
        return bytes(out)
