"""Hugging Face Hub search and GGUF file listing, with the Hub's failures turned into typed errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import httpx2
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
from huggingface_hub.hf_api import ExpandModelProperty_T, ModelSort_T, RepoFile

from kataribe.errors import InvalidRequest, KataribeError
from kataribe.library.quant import quant_of, quant_rank, split_of

DEFAULT_ENDPOINT = "https://huggingface.co"
MAX_SEARCH_LIMIT = 1000
MAX_TREE_ENTRIES = 100_000
_MAX_QUERY = 256

_SEGMENT = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?"
_REPO_ID_RE = re.compile(rf"^(?:{_SEGMENT}/)?{_SEGMENT}$")
_REVISION_RE = re.compile(r"^[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_PROJECTOR_RE = re.compile(r"mmproj|projector", re.IGNORECASE)

# What a search result needs; asking for these keeps the Hub's answer small.
_SEARCH_FIELDS: list[ExpandModelProperty_T] = [
    "author",
    "downloads",
    "likes",
    "lastModified",
    "tags",
    "gated",
    "pipeline_tag",
]
_SORTS: dict[str, ModelSort_T] = {"downloads": "downloads", "likes": "likes", "recent": "last_modified"}


class HubError(KataribeError):
    """The Hub refused or failed a request; ``status_code`` says which way (404, 401, 403, 502...)."""

    error_type = "invalid_request_error"

    def __init__(self, message: str, *, status: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.status_code = status
        if status >= 500:
            self.error_type = "server_error"


class HubOffline(KataribeError):
    """Offline mode is on, so nothing may be asked of the Hub."""

    status_code = 503
    error_type = "server_error"

    def __init__(self, action: str) -> None:
        super().__init__(
            f"Offline mode is on (HF_HUB_OFFLINE), so Kataribe did not contact the Hugging Face Hub "
            f"to {action}. Turn offline mode off to search or download models; local models still work.",
            code="hub_offline",
        )


class InvalidHubName(InvalidRequest):
    """A repository id, revision, file path or endpoint that cannot be sent to the Hub safely."""


@dataclass(frozen=True)
class GgufRepo:
    id: str
    author: str | None
    downloads: int
    likes: int
    last_modified: datetime | None
    tags: list[str]
    gated: bool
    pipeline_tag: str | None


@dataclass(frozen=True)
class GgufFile:
    path: str
    size: int
    sha256: str | None
    """The LFS object's sha256 as the Hub lists it; None for a file stored in git itself."""
    quant: str | None
    split_index: int | None
    split_count: int | None


@dataclass(frozen=True)
class ModelFileGroup:
    """One loadable model: a single GGUF file, or every part of a split one in part order."""

    name: str
    quant: str | None
    files: list[GgufFile]
    total_size: int
    is_projector: bool = False
    """A multimodal projector (mmproj), loaded beside a model rather than as one."""
    complete: bool = True
    """False when some parts of a split model are missing from the repository."""


def checked_endpoint(endpoint: str) -> str:
    """The endpoint without a trailing slash; refuses anything but a plain http(s) base URL."""
    if not isinstance(endpoint, str) or not re.match(r"^https?://[^\s/?#]+(?:/[^\s?#]*)?$", endpoint):
        raise InvalidHubName(
            f"The Hub endpoint {str(endpoint)[:100]!r} is not an http(s) URL. Use e.g. {DEFAULT_ENDPOINT}.",
            param="endpoint",
        )
    return endpoint.rstrip("/")


def checked_repo_id(repo_id: str) -> str:
    """A Hub repository id (``org/name`` or ``name``) safe to put in a URL and a folder name."""
    if (
        not isinstance(repo_id, str)
        or len(repo_id) > 96
        or not _REPO_ID_RE.match(repo_id)
        or "--" in repo_id
        or ".." in repo_id
    ):
        raise InvalidHubName(
            f"{str(repo_id)[:100]!r} is not a Hugging Face repository id. "
            "Use the form 'organization/model-name'.",
            param="repo_id",
        )
    return repo_id


def checked_revision(revision: str) -> str:
    """A branch, tag or commit name without path tricks."""
    if (
        not isinstance(revision, str)
        or len(revision) > 255
        or not _REVISION_RE.match(revision)
        or ".." in revision
    ):
        raise InvalidHubName(
            f"{str(revision)[:100]!r} is not a usable revision. Use 'main', a tag, or a commit hash.",
            param="revision",
        )
    return revision


def checked_repo_path(path: str) -> str:
    """A file path inside a repository: relative, no '..', no control characters or backslashes."""
    ok = isinstance(path, str) and 0 < len(path) <= 1024
    if ok:
        parts = path.split("/")
        ok = all(p not in ("", ".", "..") for p in parts) and not any(
            ord(c) < 32 or c in "\\\x7f" for c in path
        )
    if not ok:
        raise InvalidHubName(
            f"{str(path)[:100]!r} is not a file path inside a repository. "
            "Use a relative path like 'model.Q4_K_M.gguf'.",
            param="path",
        )
    return path


def hub_error_for(
    status: int,
    error_code: str | None,
    *,
    endpoint: str,
    repo_id: str,
    has_token: bool,
    revision: str = "main",
    path: str | None = None,
) -> HubError:
    """The typed error for a Hub answer, from its status and ``X-Error-Code`` header."""
    page = f"{endpoint}/{repo_id}"
    if error_code == "GatedRepo":
        if has_token:
            return HubError(
                f"Your Hugging Face token has no access to the gated model {repo_id} yet. "
                f"Accept its license on {page} (approval can take a while), then try again.",
                status=403,
                code="gated_repo",
            )
        return HubError(
            f"{repo_id} is gated. Accept its license on {page}, then set a Hugging Face token "
            "in the settings and try again.",
            status=401,
            code="gated_repo",
        )
    if error_code == "RepoNotFound":
        return HubError(
            f"There is no model repository {repo_id!r} on the Hub, or it is private. Check the name; for a "
            "private repository set a Hugging Face token that can read it.",
            status=404,
            code="repo_not_found",
        )
    if error_code == "RevisionNotFound":
        return HubError(
            f"{repo_id} has no revision {revision!r}. Use 'main' or an existing branch, tag or commit.",
            status=404,
            code="revision_not_found",
        )
    if error_code == "EntryNotFound" or (status == 404 and path is not None):
        return HubError(
            f"{repo_id} has no file {path!r} at revision {revision!r}. List its files again.",
            status=404,
            code="file_not_found",
        )
    if status == 404:
        return HubError(
            f"The Hub found nothing for {repo_id!r}. Check the name.", status=404, code="repo_not_found"
        )
    if status == 401:
        return HubError(
            "The Hub rejected the Hugging Face token. Create a read token at "
            f"{endpoint}/settings/tokens and set it again.",
            status=401,
            code="invalid_token",
        )
    if status == 403:
        return HubError(
            f"The Hub refused access to {repo_id}. Check on {page} that your account may read it.",
            status=403,
            code="forbidden",
        )
    if status == 429:
        return HubError(
            "The Hub is limiting how many requests Kataribe may send. Wait a minute and try again.",
            status=429,
            code="rate_limited",
        )
    return HubError(
        f"The Hub answered HTTP {status} for {repo_id}. Try again later.", status=502, code="hub_failed"
    )


def unreachable_hub(endpoint: str, exc: BaseException) -> HubError:
    return HubError(
        f"Could not reach the Hub at {endpoint} ({type(exc).__name__}). Check the network connection, "
        "or turn on offline mode to use local models only.",
        status=502,
        code="hub_unreachable",
    )


def _unreadable_answer(endpoint: str, exc: BaseException) -> HubError:
    return HubError(
        f"The Hub at {endpoint} sent an answer Kataribe cannot read ({type(exc).__name__}). "
        "Check the endpoint setting, or try again later.",
        status=502,
        code="hub_bad_answer",
    )


@contextmanager
def _hub_errors(endpoint: str, repo_id: str, *, has_token: bool, revision: str = "main") -> Iterator[None]:
    try:
        yield
    except OfflineModeIsEnabled as exc:
        # The process-wide HF_HUB_OFFLINE switch of huggingface_hub itself.
        raise HubOffline("answer this request") from exc
    except HfHubHTTPError as exc:
        response = exc.response
        raise hub_error_for(
            response.status_code,
            response.headers.get("X-Error-Code"),
            endpoint=endpoint,
            repo_id=repo_id,
            has_token=has_token,
            revision=revision,
        ) from exc
    except (httpx2.HTTPError, OSError) as exc:
        raise unreachable_hub(endpoint, exc) from exc
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _unreadable_answer(endpoint, exc) from exc


def _api(endpoint: str, token: str | None) -> HfApi:
    # token=False: never fall back to a token saved on this machine; the app passes its own.
    return HfApi(endpoint=endpoint, token=token or False, library_name="kataribe")


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _text(value: object, limit: int = 200) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def search_models(
    query: str | None,
    *,
    sort: Literal["downloads", "likes", "recent"] = "downloads",
    limit: int = 30,
    endpoint: str = DEFAULT_ENDPOINT,
    token: str | None = None,
    offline: bool = False,
) -> list[GgufRepo]:
    """GGUF repositories on the Hub whose id contains ``query``, best first by ``sort``."""
    if not isinstance(sort, str) or sort not in _SORTS:
        raise InvalidRequest(
            f"Cannot sort search results by {str(sort)[:40]!r}. Use 'downloads', 'likes' or 'recent'.",
            param="sort",
        )
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_SEARCH_LIMIT:
        raise InvalidRequest(f"limit must be between 1 and {MAX_SEARCH_LIMIT}.", param="limit")
    if query is not None and (not isinstance(query, str) or len(query) > _MAX_QUERY):
        raise InvalidRequest(f"The search text must be at most {_MAX_QUERY} characters.", param="query")
    endpoint = checked_endpoint(endpoint)
    if offline:
        raise HubOffline("search for models")
    search = query.strip() if query else None
    repos: list[GgufRepo] = []
    with _hub_errors(endpoint, "(search)", has_token=bool(token)):
        found = _api(endpoint, token).list_models(
            filter="gguf", search=search or None, sort=_SORTS[sort], limit=limit, expand=_SEARCH_FIELDS
        )
        for info in found:
            if not isinstance(info.id, str):
                continue
            tags = info.tags if isinstance(info.tags, list) else []
            repos.append(
                GgufRepo(
                    id=info.id,
                    author=_text(info.author) or (info.id.split("/")[0] if "/" in info.id else None),
                    downloads=_count(info.downloads),
                    likes=_count(info.likes),
                    last_modified=info.last_modified if isinstance(info.last_modified, datetime) else None,
                    tags=[t[:200] for t in tags[:500] if isinstance(t, str)],
                    gated=info.gated not in (None, False, "false", "False"),
                    pipeline_tag=_text(info.pipeline_tag),
                )
            )
    return repos


def _gguf_file(entry: RepoFile) -> GgufFile | None:
    path = entry.path
    if not isinstance(path, str) or not path.lower().endswith(".gguf"):
        return None
    try:
        checked_repo_path(path)
    except InvalidHubName:
        return None  # a hostile or broken listing: such a path could never be saved safely
    lfs_sha = entry.lfs.sha256 if entry.lfs is not None else None
    sha256 = lfs_sha.lower() if isinstance(lfs_sha, str) and _SHA256_RE.match(lfs_sha.lower()) else None
    split = split_of(path)
    return GgufFile(
        path=path,
        size=_count(entry.size),
        sha256=sha256,
        quant=quant_of(path),
        split_index=split[1] if split else None,
        split_count=split[2] if split else None,
    )


def group_gguf_files(files: list[GgufFile]) -> list[ModelFileGroup]:
    """Split parts gathered into one model each; groups ordered projectors last, then smallest quant first."""
    buckets: dict[tuple[str, int], list[GgufFile]] = {}
    for f in files:
        split = split_of(f.path)
        key = (split[0], split[2]) if split else (f.path[: -len(".gguf")], 0)
        buckets.setdefault(key, []).append(f)
    groups = []
    for (name, count), members in buckets.items():
        members.sort(key=lambda f: (f.split_index or 0, f.path))
        indices = sorted(f.split_index or 0 for f in members)
        base = name.rsplit("/", 1)[-1]
        groups.append(
            ModelFileGroup(
                name=name,
                quant=quant_of(name) or members[0].quant,
                files=members,
                total_size=sum(f.size for f in members),
                is_projector=bool(_PROJECTOR_RE.search(base)),
                complete=count == 0 or indices == list(range(1, count + 1)),
            )
        )
    groups.sort(key=lambda g: (g.is_projector, quant_rank(g.quant), g.total_size, g.name))
    return groups


def list_gguf_files(
    repo_id: str,
    *,
    revision: str = "main",
    endpoint: str = DEFAULT_ENDPOINT,
    token: str | None = None,
    offline: bool = False,
) -> list[ModelFileGroup]:
    """The repository's GGUF models with sizes and LFS sha256s, split parts grouped, smallest quant first."""
    repo_id = checked_repo_id(repo_id)
    revision = checked_revision(revision)
    endpoint = checked_endpoint(endpoint)
    if offline:
        raise HubOffline(f"list the files of {repo_id}")
    files: list[GgufFile] = []
    with _hub_errors(endpoint, repo_id, has_token=bool(token), revision=revision):
        tree = _api(endpoint, token).list_repo_tree(repo_id, recursive=True, revision=revision)
        for n, entry in enumerate(tree):
            if n >= MAX_TREE_ENTRIES:
                raise HubError(
                    f"{repo_id} lists more than {MAX_TREE_ENTRIES} files; Kataribe stops there. "
                    "Download from a smaller repository.",
                    status=502,
                    code="hub_bad_answer",
                )
            if isinstance(entry, RepoFile) and (gguf := _gguf_file(entry)) is not None:
                files.append(gguf)
    return group_gguf_files(files)
