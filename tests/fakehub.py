"""A fake Hugging Face Hub on 127.0.0.1 for tests: search, file trees, model info and resolvable files."""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

LFS_SUFFIXES = (".gguf", ".bin", ".safetensors")
LFS_MIN_SIZE = 10 * 1024 * 1024
_BLOCK = 64 * 1024


@dataclass(frozen=True)
class HubRequest:
    """One request as the fake Hub saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    range: str | None
    authorization: str | None


@dataclass(frozen=True)
class FakeFile:
    path: str
    size: int
    sha256: str
    git_oid: str
    lfs: bool
    pointer_size: int
    data: bytes | None
    source: Path | None

    def read(self, start: int, length: int) -> bytes:
        if self.data is not None:
            return self.data[start : start + length]
        assert self.source is not None
        with self.source.open("rb") as f:
            f.seek(start)
            return f.read(length)


@dataclass
class FakeRepo:
    id: str
    files: dict[str, FakeFile]
    downloads: int
    likes: int
    gated: bool
    private: bool
    granted_tokens: set[str]
    tags: list[str]
    pipeline_tag: str | None
    last_modified: datetime
    created_at: datetime
    commit: str


def _git_blob_oid(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _make_file(path: str, content: bytes | Path) -> FakeFile:
    if isinstance(content, Path):
        hasher = hashlib.sha256()
        with content.open("rb") as f:
            while block := f.read(1 << 20):
                hasher.update(block)
        size, sha256, data, source = content.stat().st_size, hasher.hexdigest(), None, content
    else:
        size, sha256, data, source = len(content), hashlib.sha256(content).hexdigest(), content, None
    lfs = path.lower().endswith(LFS_SUFFIXES) or size >= LFS_MIN_SIZE
    if lfs:
        pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
        oid, pointer_size = _git_blob_oid(pointer), len(pointer)
    else:
        oid = _git_blob_oid(data if data is not None else content.read_bytes())  # type: ignore[union-attr]
        pointer_size = 0
    return FakeFile(path, size, sha256, oid, lfs, pointer_size, data, source)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class _State:
    repos: dict[str, FakeRepo] = field(default_factory=dict)
    log: list[HubRequest] = field(default_factory=list)
    bytes_served: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class FakeHub:
    """A Hub that the real ``huggingface_hub`` client and plain HTTP downloads both work against.

    ``throttle_bytes_per_s`` slows file bodies down; ``fail_after_bytes`` cuts each file answer's
    connection after that many body bytes. Both can be changed while the hub runs.
    """

    def __init__(
        self,
        *,
        throttle_bytes_per_s: int | None = None,
        fail_after_bytes: int | None = None,
        tree_page_size: int = 1000,
        honor_range: bool = True,
    ) -> None:
        self.throttle_bytes_per_s = throttle_bytes_per_s
        self.fail_after_bytes = fail_after_bytes
        self.tree_page_size = tree_page_size
        self.honor_range = honor_range
        """False: answer every file request with 200 and the whole body, as some proxies do."""
        self.canned: dict[str, tuple[int, bytes]] = {}
        """URL path -> (status, JSON body) answered instead of the real route, to play a broken Hub."""
        self.valid_tokens: set[str] = set()
        self._state = _State()
        # the Hub itself and its "CDN": LFS content lives on another origin, as on huggingface.co,
        # so clients must follow a cross-origin redirect (and drop the Authorization header there)
        self._servers: list[ThreadingHTTPServer] = []

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeHub:
        hub = self

        class Handler(_HubHandler):
            owner = hub

        for _ in range(2):
            server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            server.daemon_threads = True
            server.block_on_close = False
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
            self._servers.append(server)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._servers, "start() the fake hub first"
        return f"http://127.0.0.1:{self._servers[0].server_address[1]}"

    @property
    def cdn_url(self) -> str:
        """Where resolve answers for LFS files redirect to."""
        assert self._servers, "start() the fake hub first"
        return f"http://127.0.0.1:{self._servers[1].server_address[1]}"

    # --- content ---------------------------------------------------------------------------

    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, bytes | Path],
        *,
        downloads: int = 0,
        likes: int = 0,
        gated: bool = False,
        private: bool = False,
        granted_tokens: tuple[str, ...] = (),
        tags: tuple[str, ...] = (),
        pipeline_tag: str | None = "text-generation",
        last_modified: datetime | None = None,
    ) -> FakeRepo:
        made = {path: _make_file(path, content) for path, content in files.items()}
        all_tags = list(tags)
        if any(p.endswith(".gguf") for p in made) and "gguf" not in all_tags:
            all_tags.insert(0, "gguf")
        fingerprint = repo_id + "".join(f"{p}:{f.sha256}" for p, f in sorted(made.items()))
        when = last_modified or datetime(2024, 1, 1, tzinfo=UTC)
        repo = FakeRepo(
            id=repo_id,
            files=made,
            downloads=downloads,
            likes=likes,
            gated=gated,
            private=private,
            granted_tokens=set(granted_tokens),
            tags=all_tags,
            pipeline_tag=pipeline_tag,
            last_modified=when,
            created_at=when,
            commit=hashlib.sha1(fingerprint.encode()).hexdigest(),
        )
        with self._state.lock:
            self._state.repos[repo_id] = repo
        self.valid_tokens.update(granted_tokens)
        return repo

    def repo(self, repo_id: str) -> FakeRepo:
        return self._state.repos[repo_id]

    # --- observation -----------------------------------------------------------------------

    @property
    def requests(self) -> list[HubRequest]:
        with self._state.lock:
            return list(self._state.log)

    @property
    def bytes_served(self) -> int:
        """File body bytes handed to the network (JSON answers not counted)."""
        with self._state.lock:
            return self._state.bytes_served

    def clear_log(self) -> None:
        with self._state.lock:
            self._state.log.clear()
            self._state.bytes_served = 0

    def _record(self, request: HubRequest) -> None:
        with self._state.lock:
            self._state.log.append(request)

    def _count_served(self, n: int) -> None:
        with self._state.lock:
            self._state.bytes_served += n

    def _find(self, repo_id: str) -> FakeRepo | None:
        with self._state.lock:
            return self._state.repos.get(repo_id)

    def _all_repos(self) -> list[FakeRepo]:
        with self._state.lock:
            return list(self._state.repos.values())


_SORT_FIELDS = {
    "downloads": lambda r: r.downloads,
    "likes": lambda r: r.likes,
    "trendingScore": lambda r: r.likes,
    "lastModified": lambda r: r.last_modified,
    "createdAt": lambda r: r.created_at,
}


def _model_json(repo: FakeRepo, *, full: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "_id": repo.commit[:24],
        "id": repo.id,
        "author": repo.id.split("/")[0] if "/" in repo.id else None,
        "likes": repo.likes,
        "downloads": repo.downloads,
        "tags": repo.tags,
        "pipeline_tag": repo.pipeline_tag,
        "library_name": "gguf" if "gguf" in repo.tags else None,
        "private": repo.private,
        "gated": "manual" if repo.gated else False,
        "createdAt": _iso(repo.created_at),
        "lastModified": _iso(repo.last_modified),
    }
    if full:
        body |= {
            "sha": repo.commit,
            "disabled": False,
            "siblings": [{"rfilename": p} for p in sorted(repo.files)],
            "usedStorage": sum(f.size for f in repo.files.values()),
        }
    return body


class _HubHandler(BaseHTTPRequestHandler):
    owner: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle(self) -> None:
        # a client that went away (killed, or done with a kept-alive connection) is no error
        with contextlib.suppress(ConnectionError):
            super().handle()

    def do_GET(self) -> None:
        self._route("GET")

    def do_HEAD(self) -> None:
        self._route("HEAD")

    # --- plumbing --------------------------------------------------------------------------

    def _send(
        self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None, *, head: bool = False
    ) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _json(self, status: int, payload: object, headers: Mapping[str, str] | None = None) -> None:
        merged = {"Content-Type": "application/json", **(headers or {})}
        self._send(status, json.dumps(payload).encode(), merged, head=self.command == "HEAD")

    def _error(self, status: int, code: str | None, message: str) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._json(status, {"error": message}, headers)

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization")
        return auth.removeprefix("Bearer ").strip() if auth and auth.startswith("Bearer ") else None

    def _route(self, method: str) -> None:
        split = urlsplit(self.path)
        query = parse_qs(split.query)
        self.owner._record(
            HubRequest(
                method, split.path, query, self.headers.get("Range"), self.headers.get("Authorization")
            )
        )
        canned = self.owner.canned.get(split.path)
        if canned is not None:
            return self._send(canned[0], canned[1], {"Content-Type": "application/json"})
        segments = [unquote(s) for s in split.path.split("/")[1:]]
        if segments[:1] == ["_lfs"] and len(segments) == 2:
            return self._serve_lfs(segments[1])
        token = self._token()
        if token is not None and token not in self.owner.valid_tokens:
            return self._error(401, None, "Invalid credentials in Authorization header")
        if segments[:2] == ["api", "models"]:
            return self._api_models(segments[2:], query)
        for at in (1, 2):
            if len(segments) > at + 2 and segments[at] == "resolve":
                return self._resolve("/".join(segments[:at]), segments[at + 1], "/".join(segments[at + 2 :]))
        self._error(404, None, "Not found")

    def _repo_or_error(self, repo_id: str, *, for_file: bool) -> FakeRepo | None:
        repo = self.owner._find(repo_id)
        token = self._token()
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found")
            return None
        if repo.private and token not in repo.granted_tokens:
            self._error(401, "RepoNotFound", "Repository not found")
            return None
        if for_file and repo.gated and token not in repo.granted_tokens:
            if token is None:
                self._error(
                    401,
                    "GatedRepo",
                    f"Access to model {repo_id} is restricted. You must have access to it and be "
                    "authenticated to access it. Please log in.",
                )
            else:
                self._error(
                    403,
                    "GatedRepo",
                    f"Access to model {repo_id} is restricted and you are not in the authorized list. "
                    f"Visit {self.owner.url}/{repo_id} to ask for access.",
                )
            return None
        return repo

    def _revision_ok(self, repo: FakeRepo, revision: str) -> bool:
        if revision in ("main", repo.commit):
            return True
        self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return False

    # --- API -------------------------------------------------------------------------------

    def _api_models(self, rest: list[str], query: dict[str, list[str]]) -> None:
        if not rest or rest == [""]:
            return self._search(query)
        for at in (2, 1):
            if len(rest) > at and rest[at] in ("tree", "revision") and len(rest) >= at + 2:
                repo_id, kind, revision = "/".join(rest[:at]), rest[at], rest[at + 1]
                repo = self._repo_or_error(repo_id, for_file=False)
                if repo is None or not self._revision_ok(repo, revision):
                    return None
                if kind == "revision":
                    return self._json(200, _model_json(repo, full=True))
                return self._tree(repo, revision, "/".join(rest[at + 2 :]), query)
        repo = self._repo_or_error("/".join(rest), for_file=False)
        if repo is not None:
            self._json(200, _model_json(repo, full=True))

    def _search(self, query: dict[str, list[str]]) -> None:
        repos = [r for r in self.owner._all_repos() if not r.private]
        text = (query.get("search") or [""])[0].lower()
        repos = [r for r in repos if text in r.id.lower()]
        for tag in query.get("filter", []):
            repos = [r for r in repos if tag in r.tags]
        for author in query.get("author", []):
            repos = [r for r in repos if r.id.split("/")[0] == author]
        sort = (query.get("sort") or ["trendingScore"])[0]
        descending = (query.get("direction") or ["-1"])[0] != "1"
        repos.sort(key=_SORT_FIELDS.get(sort, _SORT_FIELDS["trendingScore"]), reverse=descending)
        limit = int((query.get("limit") or ["1000"])[0])
        full = (query.get("full") or ["false"])[0].lower() == "true"
        items = [_model_json(r, full=full) for r in repos[:limit]]
        expand = query.get("expand")
        if expand:
            items = [{k: v for k, v in item.items() if k in (*expand, "id", "_id")} for item in items]
        self._json(200, items)

    def _tree(self, repo: FakeRepo, revision: str, under: str, query: dict[str, list[str]]) -> None:
        recursive = (query.get("recursive") or ["false"])[0].lower() == "true"
        expand = (query.get("expand") or ["false"])[0].lower() == "true"
        prefix = f"{under}/" if under else ""
        folders: set[str] = set()
        entries: list[dict[str, Any]] = []
        for path in sorted(repo.files):
            if not path.startswith(prefix):
                continue
            inner = path[len(prefix) :].split("/")
            for depth in range(1, len(inner)):
                folders.add(prefix + "/".join(inner[:depth]))
            if not recursive and len(inner) > 1:
                continue
            f = repo.files[path]
            entry: dict[str, Any] = {"type": "file", "oid": f.git_oid, "size": f.size, "path": path}
            if f.lfs:
                entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": f.pointer_size}
            if expand:
                entry["lastCommit"] = {"id": repo.commit, "title": "Upload", "date": _iso(repo.last_modified)}
            entries.append(entry)
        for folder in sorted(folders):
            if recursive or "/" not in folder[len(prefix) :]:
                entries.append({"type": "directory", "oid": _git_blob_oid(folder.encode()), "path": folder})
        if under and not entries:
            return self._error(404, "EntryNotFound", f"{under} does not exist on {revision}")
        page = 50 if expand else self.owner.tree_page_size
        offset = int((query.get("cursor") or ["0"])[0])
        headers = {}
        if offset + page < len(entries):
            nxt = {
                "recursive": str(recursive).lower(),
                "expand": str(expand).lower(),
                "cursor": offset + page,
            }
            base = f"{self.owner.url}{urlsplit(self.path).path}"
            headers["Link"] = f'<{base}?{urlencode(nxt)}>; rel="next"'
        self._json(200, entries[offset : offset + page], headers)

    # --- files -----------------------------------------------------------------------------

    def _resolve(self, repo_id: str, revision: str, path: str) -> None:
        repo = self._repo_or_error(repo_id, for_file=True)
        if repo is None or not self._revision_ok(repo, revision):
            return None
        f = repo.files.get(path)
        if f is None:
            return self._error(404, "EntryNotFound", f"{path} does not exist on {revision}")
        headers = {"X-Repo-Commit": repo.commit, "ETag": f'"{f.git_oid}"'}
        if f.lfs:
            # like the real Hub: LFS content comes from a CDN URL the resolve answer redirects to
            headers |= {
                "X-Linked-Etag": f'"{f.sha256}"',
                "X-Linked-Size": str(f.size),
                "Accept-Ranges": "bytes",
                "Location": f"{self.owner.cdn_url}/_lfs/{f.sha256}",
            }
            return self._send(302, b"", headers, head=self.command == "HEAD")
        self._serve_file(f, headers)

    def _serve_lfs(self, sha256: str) -> None:
        for repo in self.owner._all_repos():
            for f in repo.files.values():
                if f.sha256 == sha256:
                    return self._serve_file(f, {"ETag": f'"{sha256}"'})
        self._error(404, None, "No such object")

    def _serve_file(self, f: FakeFile, headers: dict[str, str]) -> None:
        start, end = 0, f.size - 1
        status = 200
        wanted = self.headers.get("Range")
        if wanted and wanted.startswith("bytes=") and self.owner.honor_range:
            first, _, last = wanted.removeprefix("bytes=").partition("-")
            start = int(first or 0)
            if start >= f.size:
                return self._send(
                    416, b"", {"Content-Range": f"bytes */{f.size}"}, head=self.command == "HEAD"
                )
            end = min(int(last), f.size - 1) if last else f.size - 1
            status = 206
            headers = headers | {"Content-Range": f"bytes {start}-{end}/{f.size}"}
        length = end - start + 1
        self.send_response(status)
        for key, value in (
            headers | {"Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        ).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command != "HEAD":
            self._send_body(f, start, length)

    def _send_body(self, f: FakeFile, start: int, length: int) -> None:
        sent = 0
        try:
            while sent < length:
                throttle = self.owner.throttle_bytes_per_s
                block = min(_BLOCK, max(1024, throttle // 20) if throttle else _BLOCK, length - sent)
                cut = self.owner.fail_after_bytes
                if cut is not None and sent + block > cut:
                    block = max(cut - sent, 0)
                data = f.read(start + sent, block)
                self.wfile.write(data)
                sent += len(data)
                self.owner._count_served(len(data))
                if cut is not None and sent >= cut:
                    self.wfile.flush()
                    self.close_connection = True  # the dropped connection a test asked for
                    return
                if throttle:
                    time.sleep(len(data) / throttle)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
