"""Resumable, verified downloads from a fake Hub: kills, dropped connections, bad bytes, the HF cache."""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
from huggingface_hub import try_to_load_from_cache

from kataribe.engine.default_model import default_model_path
from kataribe.library.download import (
    DownloadCancelled,
    DownloadError,
    DownloadInProgress,
    DownloadProgress,
    NotEnoughDiskSpace,
    download_file,
)
from kataribe.library.hf_cache import download_to_hf_cache, hf_cache_path
from kataribe.library.hub import HubError, HubOffline, InvalidHubName
from tests.fakehub import FakeHub

REPO = "org/Tiny-GGUF"
KIB = 1024


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub() as running:
        yield running


def _tiny_gguf(path: Path) -> bytes:
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(256)
    writer.add_block_count(1)
    writer.add_embedding_length(16)
    writer.add_head_count(2)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    writer.add_tensor("token_embd.weight", np.arange(16 * 32, dtype=np.float32).reshape(32, 16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


def _noise(size: int, seed: int = 7) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _part(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _resolve_gets(hub: FakeHub, path: str) -> list[Any]:
    return [r for r in hub.requests if r.method == "GET" and r.path.endswith("/" + path)]


def _get(hub: FakeHub, dest: Path, path: str, data: bytes, **kwargs: Any) -> Path:
    args: dict[str, Any] = {
        "endpoint": hub.url,
        "repo_id": REPO,
        "path": path,
        "dest": dest,
        "expected_sha256": _sha(data),
        "expected_size": len(data),
    }
    return download_file(**(args | kwargs))


def test_tiny_gguf_downloads_verified_and_readable(hub: FakeHub, tmp_path: Path) -> None:
    data = _tiny_gguf(tmp_path / "source.gguf")
    hub.add_repo(REPO, {"tiny-Q8_0.gguf": data})
    dest = tmp_path / "models" / "tiny-Q8_0.gguf"
    assert _get(hub, dest, "tiny-Q8_0.gguf", data) == dest
    assert dest.read_bytes() == data
    assert not _part(dest).exists()
    reader = gguf.GGUFReader(str(dest))
    assert reader.fields["general.architecture"].contents() == "llama"
    # LFS content comes from the CDN origin, and the redirect there must not carry the token
    assert any(r.path.startswith("/_lfs/") for r in hub.requests)


def test_shipped_smollm2_file_downloads_byte_identical(hub: FakeHub, tmp_path: Path) -> None:
    source = default_model_path()
    repo = hub.add_repo("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", {source.name: source})
    sha, size = repo.files[source.name].sha256, repo.files[source.name].size
    dest = download_file(
        endpoint=hub.url,
        repo_id="HuggingFaceTB/SmolLM2-135M-Instruct-GGUF",
        path=source.name,
        dest=tmp_path / source.name,
        expected_sha256=sha,
        expected_size=size,
        chunk_size=4 * 1024 * KIB,
    )
    assert dest.stat().st_size == size == source.stat().st_size
    assert hub.bytes_served == size


def test_progress_reports_growing_bytes_up_to_the_total(hub: FakeHub, tmp_path: Path) -> None:
    data = _noise(300 * KIB)
    hub.add_repo(REPO, {"m-Q4_K_M.gguf": data})
    seen: list[DownloadProgress] = []
    _get(hub, tmp_path / "m.gguf", "m-Q4_K_M.gguf", data, progress=seen.append, chunk_size=64 * KIB)
    steps = [p.downloaded for p in seen]
    assert steps[-1] == len(data)
    assert len(seen) >= 3  # one report per 64 KiB received, not one per network read
    assert all(b - a >= 64 * KIB for a, b in itertools.pairwise([0, *steps[:-1]]))
    assert all(p.total == len(data) and p.resumed_from == 0 and p.bytes_per_s > 0 for p in seen)


def test_resume_after_the_downloading_process_is_killed(hub: FakeHub, tmp_path: Path) -> None:
    data = _noise(2048 * KIB)
    hub.add_repo(REPO, {"big-Q4_K_M.gguf": data})
    hub.throttle_bytes_per_s = 512 * KIB
    dest = tmp_path / "big.gguf"
    script = (
        "import sys; from pathlib import Path; from kataribe.library.download import download_file; "
        "download_file(endpoint=sys.argv[1], repo_id=sys.argv[2], path='big-Q4_K_M.gguf', "
        "dest=Path(sys.argv[3]), expected_sha256=None, expected_size=None, chunk_size=16384)"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, hub.url, REPO, str(dest)])
    try:
        deadline = time.monotonic() + 30
        while not (_part(dest).exists() and _part(dest).stat().st_size >= 128 * KIB):
            assert proc.poll() is None, "the download process ended before it could be killed"
            assert time.monotonic() < deadline, "the download never started"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    kept = _part(dest).stat().st_size
    assert 128 * KIB <= kept < len(data)

    hub.throttle_bytes_per_s = None
    seen: list[DownloadProgress] = []
    _get(hub, dest, "big-Q4_K_M.gguf", data, progress=seen.append)
    assert dest.read_bytes() == data
    ranges = [r.range for r in _resolve_gets(hub, "big-Q4_K_M.gguf")]
    assert ranges == [None, f"bytes={kept}-"]
    assert seen[0].resumed_from == kept
    # the resumed run fetched only the rest: everything served is about one file, not two (the
    # slack is what sat in socket buffers when the process died)
    assert len(data) <= hub.bytes_served < len(data) * 3 // 2


def test_a_dropped_connection_keeps_the_part_and_the_next_call_resumes(hub: FakeHub, tmp_path: Path) -> None:
    data = _noise(400 * KIB)
    hub.add_repo(REPO, {"m-Q5_K_M.gguf": data})
    hub.fail_after_bytes = 150 * KIB
    dest = tmp_path / "m.gguf"
    with pytest.raises(DownloadError) as caught:
        _get(hub, dest, "m-Q5_K_M.gguf", data, chunk_size=16 * KIB)
    assert caught.value.code == "connection_dropped"
    assert "download again to resume" in caught.value.message
    assert _part(dest).stat().st_size == 150 * KIB
    assert not dest.exists()

    hub.fail_after_bytes = None
    _get(hub, dest, "m-Q5_K_M.gguf", data)
    assert dest.read_bytes() == data
    assert _resolve_gets(hub, "m-Q5_K_M.gguf")[-1].range == f"bytes={150 * KIB}-"
    assert hub.bytes_served == len(data)


def test_wrong_sha256_deletes_the_part(hub: FakeHub, tmp_path: Path) -> None:
    data = _noise(100 * KIB)
    hub.add_repo(REPO, {"m-Q4_0.gguf": data})
    dest = tmp_path / "m.gguf"
    with pytest.raises(DownloadError, match="sha256 does not match the Hub's; it was deleted, try again"):
        _get(hub, dest, "m-Q4_0.gguf", data, expected_sha256="0" * 64)
    assert not _part(dest).exists()
    assert not dest.exists()


def test_corrupt_part_from_an_earlier_run_fails_the_hash_and_is_deleted(hub: FakeHub, tmp_path: Path) -> None:
    data = _noise(100 * KIB)
    hub.add_repo(REPO, {"m-Q4_0.gguf": data})
    dest = tmp_path / "m.gguf"
    _part(dest).write_bytes(b"\0" * 10 * KIB)  # not the file's first bytes
    with pytest.raises(DownloadError) as caught:
        _get(hub, dest, "m-Q4_0.gguf", data)
    assert caught.value.code == "sha256_mismatch"
    assert not _part(dest).exists()
    _get(hub, dest, "m-Q4_0.gguf", data)  # the retry the message asks for works
    assert dest.read_bytes() == data


def test_size_other_than_the_listing_is_rejected_and_the_part_deleted(hub: FakeHub, tmp_path: Path) -> None:
    data = _noise(100 * KIB)
    hub.add_repo(REPO, {"m-Q4_0.gguf": data})
    dest = tmp_path / "m.gguf"
    with pytest.raises(DownloadError) as caught:
        _get(hub, dest, "m-Q4_0.gguf", data, expected_size=len(data) + 1)
    assert caught.value.code == "size_mismatch"
    assert not _part(dest).exists()
    assert not dest.exists()


def test_cancel_keeps_the_part_for_a_later_resume(hub: FakeHub, tmp_path: Path) -> None:
    data = _noise(256 * KIB)
    hub.add_repo(REPO, {"m-Q6_K.gguf": data})
    dest = tmp_path / "m.gguf"
    cancel = threading.Event()

    def stop_after_two_chunks(p: DownloadProgress) -> None:
        if p.downloaded >= 64 * KIB:
            cancel.set()

    with pytest.raises(DownloadCancelled) as caught:
        _get(
            hub, dest, "m-Q6_K.gguf", data, progress=stop_after_two_chunks, cancel=cancel, chunk_size=32 * KIB
        )
    assert caught.value.status_code == 499
    kept = _part(dest).stat().st_size
    assert kept == caught.value.downloaded
    assert 64 * KIB <= kept < len(data)
    assert not dest.exists()

    _get(hub, dest, "m-Q6_K.gguf", data)
    assert dest.read_bytes() == data
    assert _resolve_gets(hub, "m-Q6_K.gguf")[-1].range == f"bytes={kept}-"


@pytest.mark.skipif(sys.platform == "win32", reason="the .part lock uses flock")
def test_a_second_writer_of_the_same_part_is_refused_until_the_first_ends(
    hub: FakeHub, tmp_path: Path
) -> None:
    import fcntl

    data = _noise(8 * KIB)
    hub.add_repo(REPO, {"m-Q4_0.gguf": data})
    dest = tmp_path / "m.gguf"
    with _part(dest).open("ab") as first_writer:
        fcntl.flock(first_writer.fileno(), fcntl.LOCK_EX)
        with pytest.raises(DownloadInProgress) as caught:
            _get(hub, dest, "m-Q4_0.gguf", data)
        assert caught.value.status_code == 409
    _get(hub, dest, "m-Q4_0.gguf", data)
    assert dest.read_bytes() == data


def test_too_little_disk_space_refuses_before_any_request(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _noise(10 * KIB)
    hub.add_repo(REPO, {"m-Q4_0.gguf": data})
    real = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: real._replace(free=5 * 1024 * KIB))
    with pytest.raises(NotEnoughDiskSpace) as caught:
        _get(hub, tmp_path / "m.gguf", "m-Q4_0.gguf", data)
    assert caught.value.status_code == 507
    assert str(len(data)) in caught.value.message and str(5 * 1024 * KIB) in caught.value.message
    assert hub.requests == []
    assert not _part(tmp_path / "m.gguf").exists()


def test_offline_mode_downloads_nothing(hub: FakeHub, tmp_path: Path) -> None:
    data = b"x"
    hub.add_repo(REPO, {"m-Q4_0.gguf": data})
    with pytest.raises(HubOffline):
        _get(hub, tmp_path / "m.gguf", "m-Q4_0.gguf", data, offline=True)
    with pytest.raises(HubOffline):
        download_to_hf_cache(
            endpoint=hub.url,
            repo_id=REPO,
            path="m-Q4_0.gguf",
            cache_dir=tmp_path / "hf",
            expected_sha256=None,
            expected_size=None,
            offline=True,
        )
    assert hub.requests == []
    assert list(tmp_path.iterdir()) == []


def test_server_ignoring_range_restarts_from_zero_without_duplicating(hub: FakeHub, tmp_path: Path) -> None:
    hub.honor_range = False
    data = _noise(200 * KIB)
    hub.add_repo(REPO, {"m-Q4_0.gguf": data})
    dest = tmp_path / "m.gguf"
    _part(dest).write_bytes(data[: 50 * KIB])
    _get(hub, dest, "m-Q4_0.gguf", data)
    assert dest.read_bytes() == data


def test_a_part_that_is_already_whole_is_verified_and_kept(hub: FakeHub, tmp_path: Path) -> None:
    data = _noise(64 * KIB)
    hub.add_repo(REPO, {"m-Q4_0.gguf": data})
    dest = tmp_path / "m.gguf"
    _part(dest).write_bytes(data)
    _get(hub, dest, "m-Q4_0.gguf", data)
    assert dest.read_bytes() == data
    assert hub.bytes_served == 0  # the Hub answered 416: nothing was left to send


def test_a_part_longer_than_the_file_is_thrown_away(hub: FakeHub, tmp_path: Path) -> None:
    data = _noise(64 * KIB)
    hub.add_repo(REPO, {"m-Q4_0.gguf": data})
    dest = tmp_path / "m.gguf"
    _part(dest).write_bytes(data + b"junk")
    _get(hub, dest, "m-Q4_0.gguf", data)
    assert dest.read_bytes() == data
    assert _resolve_gets(hub, "m-Q4_0.gguf")[-1].range is None


def test_gated_file_needs_an_accepted_license(hub: FakeHub, tmp_path: Path) -> None:
    data = _noise(8 * KIB)
    hub.add_repo(REPO, {"m-Q4_0.gguf": data}, gated=True, granted_tokens=("hf_accepted",))
    hub.valid_tokens.add("hf_not_accepted")
    dest = tmp_path / "m.gguf"
    with pytest.raises(HubError) as anonymous:
        _get(hub, dest, "m-Q4_0.gguf", data)
    assert anonymous.value.status_code == 401
    assert "accept its license" in anonymous.value.message.lower()
    with pytest.raises(HubError) as not_accepted:
        _get(hub, dest, "m-Q4_0.gguf", data, token="hf_not_accepted")
    assert not_accepted.value.status_code == 403
    _get(hub, dest, "m-Q4_0.gguf", data, token="hf_accepted")
    assert dest.read_bytes() == data
    cdn = [r for r in hub.requests if r.path.startswith("/_lfs/")]
    assert cdn and all(r.authorization is None for r in cdn)  # the token never leaves the Hub


def test_missing_file_is_a_404(hub: FakeHub, tmp_path: Path) -> None:
    hub.add_repo(REPO, {"m-Q4_0.gguf": b"x"})
    with pytest.raises(HubError) as caught:
        _get(hub, tmp_path / "m.gguf", "m-Q9_0.gguf", b"x")
    assert caught.value.status_code == 404
    assert not _part(tmp_path / "m.gguf").exists()


@pytest.mark.parametrize("path", ["../../etc/passwd", "/abs.gguf", "a\\b.gguf", "a/./b.gguf", ""])
def test_unsafe_file_paths_are_refused(hub: FakeHub, tmp_path: Path, path: str) -> None:
    with pytest.raises(InvalidHubName):
        _get(hub, tmp_path / "m.gguf", path, b"x")
    assert hub.requests == []


def test_hf_cache_layout_is_what_huggingface_hub_reads(hub: FakeHub, tmp_path: Path) -> None:
    data = _tiny_gguf(tmp_path / "source.gguf")
    repo = hub.add_repo(REPO, {"Q8_0/tiny-Q8_0.gguf": data})
    cache = tmp_path / "hf"

    def fetch() -> Path:
        return download_to_hf_cache(
            endpoint=hub.url,
            repo_id=REPO,
            path="Q8_0/tiny-Q8_0.gguf",
            cache_dir=cache,
            expected_sha256=_sha(data),
            expected_size=len(data),
        )

    snapshot = fetch()
    folder = cache / "models--org--Tiny-GGUF"
    assert snapshot == hf_cache_path(cache, REPO, repo.commit, "Q8_0/tiny-Q8_0.gguf")
    assert snapshot == folder / "snapshots" / repo.commit / "Q8_0" / "tiny-Q8_0.gguf"
    blob = folder / "blobs" / _sha(data)
    assert blob.read_bytes() == data
    assert snapshot.is_symlink()
    assert os.readlink(snapshot) == f"../../../blobs/{_sha(data)}"
    assert snapshot.read_bytes() == data
    assert (folder / "refs" / "main").read_text() == repo.commit
    # the file was fetched by commit, so a push during the download cannot mix versions
    assert (
        _resolve_gets(hub, "tiny-Q8_0.gguf")[0].path == f"/{REPO}/resolve/{repo.commit}/Q8_0/tiny-Q8_0.gguf"
    )
    assert try_to_load_from_cache(REPO, "Q8_0/tiny-Q8_0.gguf", cache_dir=cache) == str(snapshot)

    hub.clear_log()
    assert fetch() == snapshot  # already cached: one HEAD for the commit, no bytes
    assert [r.method for r in hub.requests] == ["HEAD"]
    assert hub.bytes_served == 0


def test_hf_cache_refuses_a_file_changed_since_listing(hub: FakeHub, tmp_path: Path) -> None:
    hub.add_repo(REPO, {"m-Q4_0.gguf": b"new content"})
    with pytest.raises(DownloadError, match="changed on the Hub"):
        download_to_hf_cache(
            endpoint=hub.url,
            repo_id=REPO,
            path="m-Q4_0.gguf",
            cache_dir=tmp_path / "hf",
            expected_sha256=_sha(b"old content"),
            expected_size=None,
        )
    assert hub.bytes_served == 0


def test_hf_cache_path_refuses_non_commits_and_traversal(tmp_path: Path) -> None:
    with pytest.raises(InvalidHubName):
        hf_cache_path(tmp_path, REPO, "main", "m.gguf")
    with pytest.raises(InvalidHubName):
        hf_cache_path(tmp_path, REPO, "a" * 40, "../m.gguf")
    assert (
        hf_cache_path(tmp_path, "gpt2", "a" * 40, "m.gguf")
        == tmp_path / "models--gpt2/snapshots" / ("a" * 40) / "m.gguf"
    )
