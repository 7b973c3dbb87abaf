"""Downloads into the Hugging Face cache layout (``models--org--name/blobs``, ``snapshots``, ``refs``),
so huggingface_hub and other tools find what Kataribe fetched."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

import httpx

from kataribe.library.download import (
    MIB,
    DownloadError,
    DownloadProgress,
    checked_sha256,
    download_file,
    hub_client,
    request_headers,
    resolve_url,
    status_error,
)
from kataribe.library.hub import (
    DEFAULT_ENDPOINT,
    HubOffline,
    InvalidHubName,
    checked_endpoint,
    checked_repo_id,
    checked_repo_path,
    checked_revision,
    unreachable_hub,
)

_HEX_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


def hf_cache_path(cache_dir: Path, repo_id: str, revision_commit: str, path: str) -> Path:
    """Where the Hugging Face cache keeps ``path`` of ``repo_id`` at a commit (a snapshot entry)."""
    repo_id, path = checked_repo_id(repo_id), checked_repo_path(path)
    return _repo_cache_dir(Path(cache_dir), repo_id) / "snapshots" / _checked_commit(revision_commit) / path


def _repo_cache_dir(cache_dir: Path, repo_id: str) -> Path:
    return cache_dir / ("models--" + repo_id.replace("/", "--"))


def _checked_commit(commit: str) -> str:
    if not isinstance(commit, str) or not _COMMIT_RE.match(commit):
        raise InvalidHubName(
            f"{str(commit)[:60]!r} is not a commit hash (40 hex digits).", param="revision_commit"
        )
    return commit


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def _hub_file_identity(
    client: httpx.Client, url: str, headers: dict[str, str], ctx: dict[str, str]
) -> tuple[str, str]:
    """(commit, etag) of a file from a HEAD on its resolve URL.

    Redirects are followed only on the Hub's own origin (a renamed repository): the answer that
    redirects to the CDN already carries both, and the token must not travel there.
    """
    for _ in range(5):
        try:
            response = client.head(url, headers=headers, follow_redirects=False)
        except httpx.HTTPError as exc:
            raise unreachable_hub(ctx["endpoint"], exc) from exc
        if response.status_code >= 400:
            raise status_error(response, ctx, "Authorization" in headers)
        target = response.next_request.url if response.next_request is not None else None
        if "X-Repo-Commit" in response.headers or target is None or _origin(target) != _origin(response.url):
            break
        url = str(target)
    commit = response.headers.get("X-Repo-Commit", "")
    etag = response.headers.get("X-Linked-Etag") or response.headers.get("ETag") or ""
    etag = etag.removeprefix("W/").strip('"').lower()
    if not _COMMIT_RE.match(commit) or not _HEX_RE.match(etag):
        raise DownloadError(
            f"The Hub did not say which commit and content {ctx['path']} has, so it cannot be placed in "
            "the Hugging Face cache. Check the endpoint setting, or download it to a plain folder.",
            code="hub_bad_answer",
        )
    return commit, etag


def _link_snapshot(snapshot: Path, blob: Path) -> None:
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    temp = snapshot.with_name(snapshot.name + ".link")
    temp.unlink(missing_ok=True)
    try:
        # relative, as huggingface_hub makes them, so the cache folder can be moved as a whole
        os.symlink(os.path.relpath(blob, snapshot.parent), temp)
        os.replace(temp, snapshot)
    except OSError:
        # no symlinks (Windows without developer mode): huggingface_hub then keeps the file itself
        # in the snapshot folder
        os.replace(blob, snapshot)


def _write_ref(repo_dir: Path, revision: str, commit: str) -> None:
    ref = repo_dir / "refs" / revision
    ref.parent.mkdir(parents=True, exist_ok=True)
    temp = ref.with_name(ref.name + ".tmp")
    temp.write_text(commit, encoding="ascii")
    os.replace(temp, ref)


def download_to_hf_cache(
    *,
    endpoint: str = DEFAULT_ENDPOINT,
    repo_id: str,
    path: str,
    revision: str = "main",
    cache_dir: Path,
    expected_sha256: str | None,
    expected_size: int | None,
    token: str | None = None,
    progress: Callable[[DownloadProgress], None] | None = None,
    cancel: threading.Event | None = None,
    offline: bool = False,
    chunk_size: int = MIB,
) -> Path:
    """Download into the Hugging Face cache layout so huggingface_hub and other tools find the file.

    The content goes to ``models--org--name/blobs/<etag>`` (the sha256 for LFS files), the
    snapshot entry ``snapshots/<commit>/<path>`` links to it, and ``refs/<revision>`` names the
    commit. Returns the snapshot path. The file is fetched by commit, so a push to the branch
    during the download cannot mix two versions.
    """
    endpoint = checked_endpoint(endpoint)
    repo_id, path, revision = checked_repo_id(repo_id), checked_repo_path(path), checked_revision(revision)
    expected_sha256 = checked_sha256(expected_sha256)
    if offline:
        raise HubOffline(f"download {path} from {repo_id}")
    ctx = {"endpoint": endpoint, "repo_id": repo_id, "revision": revision, "path": path}
    with hub_client() as client:
        commit, etag = _hub_file_identity(
            client, resolve_url(endpoint, repo_id, revision, path), request_headers(token), ctx
        )
    if expected_sha256 is not None and len(etag) == 64 and etag != expected_sha256:
        raise DownloadError(
            f"{path} changed on the Hub since it was listed (its sha256 is now {etag}). "
            "List the files again and retry.",
            code="sha256_mismatch",
        )
    repo_dir = _repo_cache_dir(Path(cache_dir), repo_id)
    blob = repo_dir / "blobs" / etag
    snapshot = hf_cache_path(Path(cache_dir), repo_id, commit, path)
    if not snapshot.exists():  # a snapshot entry is only ever made from a verified blob
        if not blob.exists():
            download_file(
                endpoint=endpoint,
                repo_id=repo_id,
                path=path,
                revision=commit,
                dest=blob,
                expected_sha256=expected_sha256 or (etag if len(etag) == 64 else None),
                expected_size=expected_size,
                token=token,
                progress=progress,
                cancel=cancel,
                chunk_size=chunk_size,
            )
        _link_snapshot(snapshot, blob)
    if revision != commit:
        _write_ref(repo_dir, revision, commit)
    return snapshot
