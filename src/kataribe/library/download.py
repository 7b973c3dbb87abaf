"""Resumable, sha256-verified file downloads from the Hub (the Hugging Face cache layout: hf_cache.py)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import quote

import httpx

from kataribe.errors import InvalidRequest, KataribeError
from kataribe.library.hub import (
    DEFAULT_ENDPOINT,
    HubError,
    HubOffline,
    checked_endpoint,
    checked_repo_id,
    checked_repo_path,
    checked_revision,
    hub_error_for,
    unreachable_hub,
)

if sys.platform != "win32":
    import fcntl

MIB = 1 << 20
DISK_MARGIN = 64 * MIB
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_CONTENT_RANGE_RE = re.compile(r"^bytes (?:(\d+)-(\d+)|\*)/(\d+)$")
_TIMEOUT = httpx.Timeout(60.0, connect=15.0)


class DownloadError(KataribeError):
    """A download failed; the message says whether the partial file was kept for a resume."""

    status_code = 502
    error_type = "server_error"


class NotEnoughDiskSpace(DownloadError):
    status_code = 507


class DownloadInProgress(DownloadError):
    """Another task is writing the same ``.part`` file."""

    status_code = 409
    error_type = "invalid_request_error"


class DownloadCancelled(KataribeError):
    """The caller cancelled; the ``.part`` file stays so the next download resumes it."""

    status_code = 499
    error_type = "invalid_request_error"

    def __init__(self, part: Path, downloaded: int) -> None:
        super().__init__(
            f"The download was cancelled after {downloaded} bytes; {part.name} was kept, "
            "so downloading again resumes it.",
            code="download_cancelled",
        )
        self.part = part
        self.downloaded = downloaded


@dataclass(frozen=True)
class DownloadProgress:
    downloaded: int
    """Bytes in the file so far, resumed bytes included."""
    total: int | None
    bytes_per_s: float
    """Speed of this run only, not counting the resumed part."""
    resumed_from: int


class _PartRejected(Exception):
    """The partial file is wrong and must be deleted before the error is raised."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class _RestartFromZero(Exception):
    """The server cannot continue the partial file (bad range answer): start over."""


@dataclass
class _Job:
    url: str
    headers: dict[str, str]
    part_path: Path
    expected_size: int | None
    progress: Callable[[DownloadProgress], None] | None
    cancel: threading.Event | None
    chunk_size: int
    context: dict[str, str]


def resolve_url(endpoint: str, repo_id: str, revision: str, path: str) -> str:
    return f"{endpoint}/{repo_id}/resolve/{quote(revision, safe='')}/{quote(path, safe='/')}"


def checked_sha256(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    if not isinstance(sha256, str) or not _SHA256_RE.match(sha256.lower()):
        raise InvalidRequest(
            f"{str(sha256)[:80]!r} is not a sha256 (64 hex digits). Pass the one from the file listing.",
            param="expected_sha256",
        )
    return sha256.lower()


def _checked_count(value: int | None, name: str, *, minimum: int = 0) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidRequest(f"{name} must be a whole number of at least {minimum}.", param=name)
    return value


def _require_space(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed + DISK_MARGIN:
        raise NotEnoughDiskSpace(
            f"Not enough disk space in {folder}: the download needs {needed} more bytes "
            f"(plus a {DISK_MARGIN // MIB} MiB margin) but only {free} bytes are free. "
            "Free some space or choose a smaller quant.",
            code="insufficient_storage",
        )


def _lock(part: IO[bytes], part_path: Path) -> None:
    """One writer per ``.part``. The OS drops the lock when its process dies: a kill never blocks a resume."""
    if sys.platform == "win32":
        return
    try:
        fcntl.flock(part.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise DownloadInProgress(
            f"{part_path.name} is already being downloaded by another task. Wait for it to finish.",
            code="download_in_progress",
        ) from None


def _cancelled(job: _Job) -> bool:
    return job.cancel is not None and job.cancel.is_set()


def _hash_existing(part: IO[bytes], size: int, job: _Job) -> hashlib._Hash:
    hasher = hashlib.sha256()
    part.seek(0)
    remaining = size
    while remaining > 0:
        if _cancelled(job):
            raise DownloadCancelled(job.part_path, size)
        block = part.read(min(max(job.chunk_size, MIB), remaining))
        if not block:
            break
        hasher.update(block)
        remaining -= len(block)
    return hasher


def _content_range(value: str | None) -> tuple[int | None, int] | None:
    match = _CONTENT_RANGE_RE.match(value or "")
    if match is None:
        return None
    return (int(match[1]) if match[1] is not None else None), int(match[3])


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("Content-Length", "")
    return int(value) if value.isdigit() else None


def status_error(response: httpx.Response, ctx: dict[str, str], has_token: bool) -> KataribeError:
    return hub_error_for(
        response.status_code,
        response.headers.get("X-Error-Code"),
        endpoint=ctx["endpoint"],
        repo_id=ctx["repo_id"],
        has_token=has_token,
        revision=ctx["revision"],
        path=ctx["path"],
    )


def _transfer(
    client: httpx.Client, job: _Job, part: IO[bytes], start: int, hasher: hashlib._Hash
) -> tuple[int, int | None, hashlib._Hash]:
    """Append the rest of the file to ``part``; returns (bytes in part, announced total, hash so far)."""
    headers = dict(job.headers)
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        with client.stream("GET", job.url, headers=headers) as response:
            status = response.status_code
            if status == 416 and start:
                span = _content_range(response.headers.get("Content-Range"))
                if span is None or span[1] != start:
                    raise _RestartFromZero
                _check_total(job, start)
                return start, start, hasher  # the partial file was already whole
            if status not in (200, 206):
                raise status_error(response, job.context, "Authorization" in job.headers)
            if status == 206:
                span = _content_range(response.headers.get("Content-Range"))
                if span is None or span[0] != start:
                    raise _RestartFromZero
                total: int | None = span[1]
            else:
                total = _content_length(response)
                if start:  # the server ignored the Range header: its bytes start from zero
                    part.truncate(0)
                    start, hasher = 0, hashlib.sha256()
            if total is not None:
                _check_total(job, total)
            if job.expected_size is None and total is not None:
                _require_space(job.part_path.parent, total - start)
            return _write_body(response, job, part, start, total, hasher)
    except httpx.HTTPError as exc:
        raise unreachable_hub(job.context["endpoint"], exc) from exc


def _check_total(job: _Job, total: int) -> None:
    if job.expected_size is not None and total != job.expected_size:
        raise _PartRejected(
            f"The Hub serves {total} bytes but the listing said {job.expected_size}; the file "
            "changed since it was listed. The partial file was deleted; list the files again.",
            "size_mismatch",
        )


def _write_body(
    response: httpx.Response, job: _Job, part: IO[bytes], start: int, total: int | None, hasher: hashlib._Hash
) -> tuple[int, int | None, hashlib._Hash]:
    """Write every byte as it arrives (a drop loses nothing); report and check cancel each chunk_size."""
    limit = job.expected_size if job.expected_size is not None else total
    downloaded = reported = start
    began = time.monotonic()
    try:
        for piece in response.iter_raw():
            part.write(piece)
            hasher.update(piece)
            downloaded += len(piece)
            if limit is not None and downloaded > limit:
                raise _PartRejected(
                    f"The Hub sent more than the {limit} bytes expected. The partial file was deleted; "
                    "list the files again and retry.",
                    "size_mismatch",
                )
            if downloaded - reported >= job.chunk_size or downloaded == limit:
                reported = downloaded
                _report(job, downloaded, limit, start, began)
                if _cancelled(job):
                    part.flush()
                    raise DownloadCancelled(job.part_path, downloaded)
    except httpx.HTTPError as exc:
        part.flush()
        of_total = f" of {limit}" if limit is not None else ""
        raise DownloadError(
            f"The connection dropped after {downloaded}{of_total} bytes ({type(exc).__name__}). "
            f"{job.part_path.name} was kept: download again to resume.",
            code="connection_dropped",
        ) from exc
    if downloaded != reported:
        _report(job, downloaded, limit, start, began)
    return downloaded, total, hasher


def _report(job: _Job, downloaded: int, total: int | None, start: int, began: float) -> None:
    if job.progress is not None:
        speed = (downloaded - start) / max(time.monotonic() - began, 1e-6)
        job.progress(DownloadProgress(downloaded, total, speed, start))


def hub_client() -> httpx.Client:
    return httpx.Client(follow_redirects=True, timeout=_TIMEOUT)


def request_headers(token: str | None) -> dict[str, str]:
    # identity: the bytes on disk must be the file's bytes, or neither resume nor sha256 would hold
    headers = {"Accept-Encoding": "identity", "User-Agent": "kataribe"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def download_file(
    *,
    endpoint: str = DEFAULT_ENDPOINT,
    repo_id: str,
    path: str,
    revision: str = "main",
    dest: Path,
    expected_sha256: str | None,
    expected_size: int | None,
    token: str | None = None,
    progress: Callable[[DownloadProgress], None] | None = None,
    cancel: threading.Event | None = None,
    offline: bool = False,
    chunk_size: int = MIB,
) -> Path:
    """Download ``path`` of ``repo_id`` to ``dest`` through ``dest.part``, resuming a partial file.

    The finished file is checked against the listing's size and sha256 and only then renamed to
    ``dest``; a mismatch deletes the partial file. Cancelling and dropped connections keep it.
    """
    endpoint = checked_endpoint(endpoint)
    repo_id, path, revision = checked_repo_id(repo_id), checked_repo_path(path), checked_revision(revision)
    expected_sha256 = checked_sha256(expected_sha256)
    expected_size = _checked_count(expected_size, "expected_size")
    chunk_size = _checked_count(chunk_size, "chunk_size", minimum=1) or MIB
    if offline:
        raise HubOffline(f"download {path} from {repo_id}")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part_path = dest.with_name(dest.name + ".part")
    start = part_path.stat().st_size if part_path.exists() else 0
    if expected_size is not None:
        _require_space(dest.parent, max(expected_size - start, 0))
    job = _Job(
        url=resolve_url(endpoint, repo_id, revision, path),
        headers=request_headers(token),
        part_path=part_path,
        expected_size=expected_size,
        progress=progress,
        cancel=cancel,
        chunk_size=chunk_size,
        context={"endpoint": endpoint, "repo_id": repo_id, "revision": revision, "path": path},
    )
    if _cancelled(job):
        raise DownloadCancelled(part_path, start)
    try:
        with part_path.open("a+b") as part, hub_client() as client:
            _lock(part, part_path)
            start = os.fstat(part.fileno()).st_size
            if expected_size is not None and start > expected_size:
                part.truncate(0)
                start = 0
            hasher = _hash_existing(part, start, job)
            try:
                downloaded, total, hasher = _transfer(client, job, part, start, hasher)
            except _RestartFromZero:
                part.truncate(0)
                downloaded, total, hasher = _transfer(client, job, part, 0, hashlib.sha256())
            _verify(job, downloaded, total, hasher, expected_sha256)
            part.flush()
            os.fsync(part.fileno())
    except _PartRejected as exc:
        part_path.unlink(missing_ok=True)
        raise DownloadError(exc.message, code=exc.code) from None
    except HubError:
        if part_path.exists() and part_path.stat().st_size == 0:
            part_path.unlink()  # refused before any byte came: leave no empty .part behind
        raise
    except _RestartFromZero:
        raise DownloadError(
            "The Hub could not continue the partial download. Try again; it will start from the beginning.",
            code="bad_range",
        ) from None
    os.replace(part_path, dest)
    return dest


def _verify(
    job: _Job, downloaded: int, total: int | None, hasher: hashlib._Hash, expected_sha256: str | None
) -> None:
    wanted = job.expected_size if job.expected_size is not None else total
    if wanted is not None and downloaded < wanted:
        raise DownloadError(
            f"The Hub stopped sending after {downloaded} of {wanted} bytes. "
            f"{job.part_path.name} was kept: download again to resume.",
            code="connection_dropped",
        )
    if expected_sha256 is not None and hasher.hexdigest() != expected_sha256:
        raise _PartRejected(
            "The file's sha256 does not match the Hub's; it was deleted, try again.", "sha256_mismatch"
        )
