"""Hub search and GGUF listing against a fake Hub (real huggingface_hub client); quant and split names."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from huggingface_hub import hf_hub_download
from hypothesis import given, settings
from hypothesis import strategies as st

from kataribe.errors import InvalidRequest
from kataribe.library.hub import (
    GgufFile,
    HubError,
    HubOffline,
    InvalidHubName,
    group_gguf_files,
    list_gguf_files,
    search_models,
)
from kataribe.library.quant import QUANTS, UnknownQuant, bits_per_weight, quant_of, quant_rank, split_of
from tests.fakehub import FakeHub

# --- quant and split names ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "quant"),
    [
        ("model-q4_k_m.gguf", "Q4_K_M"),
        ("Model.Q4_K_M.gguf", "Q4_K_M"),
        ("model-IQ4_XS-imat.gguf", "IQ4_XS"),
        ("Llama-3.2-1B-Instruct-Q3_K_L.gguf", "Q3_K_L"),
        ("qwen2.5-7b-instruct-iq2_xxs.gguf", "IQ2_XXS"),
        ("model-Q4_0_4_8.gguf", "Q4_0_4_8"),
        ("gemma-2-2b-it-bf16.gguf", "BF16"),
        ("mmproj-model-f16.gguf", "F16"),
        ("ggml-model-f32.gguf", "F32"),
        ("BitNet-b1.58-TQ1_0.gguf", "TQ1_0"),
        ("gpt-oss-20b-MXFP4.gguf", "MXFP4"),
        ("Q8_0/Model-Q8_0-00001-of-00002.gguf", "Q8_0"),
        ("Q6_K/model-00001-of-00002.gguf", "Q6_K"),  # quant only in the folder name
        ("UD-Q4_K_XL/model-UD-Q4_K_XL.gguf", "Q4_K_XL"),
        ("model-f16-Q5_K_S.gguf", "Q5_K_S"),  # the quantizer's suffix comes last
        ("tinyllama.gguf", None),
        ("llama-3-8b-instruct.gguf", None),
        ("dq4_k_m.gguf", None),  # glued to a letter: not a quant
    ],
)
def test_quant_is_read_from_common_gguf_file_names(name: str, quant: str | None) -> None:
    assert quant_of(name) == quant


def test_split_parts_give_stem_index_and_count() -> None:
    assert split_of("Llama-70B-Q4_K_M-00002-of-00003.gguf") == ("Llama-70B-Q4_K_M", 2, 3)
    assert split_of("Q8_0/m-00001-of-00002.gguf") == ("Q8_0/m", 1, 2)
    assert split_of("m-Q4_K_M.gguf") is None
    assert split_of("m-00000-of-00002.gguf") is None
    assert split_of("m-00004-of-00003.gguf") is None


def test_quant_rank_orders_by_bits_per_weight_and_unknowns_last() -> None:
    ranked = sorted(["Q8_0", "IQ1_S", "Q4_K_M", "F16", "Q2_K", "Q6_K", "IQ4_XS"], key=quant_rank)
    assert ranked == ["IQ1_S", "Q2_K", "IQ4_XS", "Q4_K_M", "Q6_K", "Q8_0", "F16"]
    bits = [bits_per_weight(q) for q in QUANTS]
    assert bits == sorted(bits)
    assert quant_rank(None) > quant_rank("F32")
    assert quant_rank("Q99") == quant_rank(None)
    assert 4.0 < bits_per_weight("q4_k_m") < 5.0


def test_unknown_quant_has_no_bit_count() -> None:
    with pytest.raises(UnknownQuant, match=r"not a known llama\.cpp quant"):
        bits_per_weight("Q9_Z")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_any_file_name_gives_a_known_quant_or_none(name: str) -> None:
    quant = quant_of(name)
    assert quant is None or quant in QUANTS
    split = split_of(name)
    assert split is None or 1 <= split[1] <= split[2]


_names = st.sampled_from(["Model", "Q8_0/Model", "mmproj-Model", "x"])
_suffixes = st.sampled_from(["-Q4_K_M", "-Q8_0", ".IQ2_XS", "-f16", ""])


@st.composite
def _gguf_files(draw: st.DrawFn) -> GgufFile:
    name = draw(_names) + draw(_suffixes)
    count = draw(st.integers(0, 4))
    path = f"{name}-{draw(st.integers(1, count)):05d}-of-{count:05d}.gguf" if count else f"{name}.gguf"
    size = draw(st.integers(0, 10**12))
    split = split_of(path)
    return GgufFile(path, size, None, quant_of(path), split and split[1], split and split[2])


@settings(max_examples=200, deadline=None)
@given(st.lists(_gguf_files(), max_size=20, unique_by=lambda f: f.path))
def test_grouping_keeps_every_file_once_in_part_order(files: list[GgufFile]) -> None:
    groups = group_gguf_files(files)
    grouped = [f.path for g in groups for f in g.files]
    assert sorted(grouped) == sorted(f.path for f in files)
    for group in groups:
        assert group.total_size == sum(f.size for f in group.files)
        parts = [f.split_index or 0 for f in group.files]
        assert parts == sorted(parts)
        count = group.files[0].split_count
        assert all(f.split_count == count for f in group.files)
        assert group.complete == (count is None or parts == list(range(1, count + 1)))
    projector_flags = [g.is_projector for g in groups]
    assert projector_flags == sorted(projector_flags)  # projectors come after every model


# --- the fake Hub -------------------------------------------------------------------------------


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub() as running:
        yield running


def _blob(tag: str, size: int) -> bytes:
    return (tag.encode() * (size // len(tag) + 1))[:size]


def _populate_search(hub: FakeHub) -> None:
    hub.add_repo(
        "bartowski/Llama-3.2-1B-Instruct-GGUF",
        {"Llama-3.2-1B-Instruct-Q4_K_M.gguf": b"a"},
        downloads=900,
        likes=10,
        last_modified=datetime(2024, 9, 25, tzinfo=UTC),
    )
    hub.add_repo(
        "TheBloke/Mistral-7B-Instruct-GGUF",
        {"mistral-7b-instruct.Q4_K_M.gguf": b"b"},
        downloads=500,
        likes=80,
        last_modified=datetime(2023, 12, 1, tzinfo=UTC),
    )
    hub.add_repo(
        "unsloth/Qwen3-8B-GGUF",
        {"Qwen3-8B-Q4_K_M.gguf": b"c"},
        downloads=100,
        likes=40,
        gated=True,
        last_modified=datetime(2025, 5, 1, tzinfo=UTC),
    )
    hub.add_repo("meta-llama/Llama-3.2-1B", {"model.safetensors": b"d"}, downloads=5000, likes=999)


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        (
            "downloads",
            [
                "bartowski/Llama-3.2-1B-Instruct-GGUF",
                "TheBloke/Mistral-7B-Instruct-GGUF",
                "unsloth/Qwen3-8B-GGUF",
            ],
        ),
        (
            "likes",
            [
                "TheBloke/Mistral-7B-Instruct-GGUF",
                "unsloth/Qwen3-8B-GGUF",
                "bartowski/Llama-3.2-1B-Instruct-GGUF",
            ],
        ),
        (
            "recent",
            [
                "unsloth/Qwen3-8B-GGUF",
                "bartowski/Llama-3.2-1B-Instruct-GGUF",
                "TheBloke/Mistral-7B-Instruct-GGUF",
            ],
        ),
    ],
)
def test_search_lists_only_gguf_repos_in_the_requested_order(
    hub: FakeHub, sort: str, expected: list[str]
) -> None:
    _populate_search(hub)
    found = search_models(None, sort=sort, endpoint=hub.url)  # type: ignore[arg-type]
    assert [r.id for r in found] == expected
    query = hub.requests[-1].query
    assert query["filter"] == ["gguf"]
    assert query["sort"] == [{"downloads": "downloads", "likes": "likes", "recent": "lastModified"}[sort]]


def test_search_query_filters_by_repo_id_and_maps_fields(hub: FakeHub) -> None:
    _populate_search(hub)
    found = search_models("qwen3", endpoint=hub.url, limit=5)
    assert len(found) == 1
    repo = found[0]
    assert repo.id == "unsloth/Qwen3-8B-GGUF"
    assert repo.author == "unsloth"
    assert (repo.downloads, repo.likes) == (100, 40)
    assert repo.last_modified == datetime(2025, 5, 1, tzinfo=UTC)
    assert repo.gated is True
    assert "gguf" in repo.tags
    assert repo.pipeline_tag == "text-generation"
    assert hub.requests[-1].query["limit"] == ["5"]
    assert search_models("no-such-model", endpoint=hub.url) == []


def test_search_limit_caps_results(hub: FakeHub) -> None:
    _populate_search(hub)
    assert len(search_models(None, endpoint=hub.url, limit=2)) == 2


def test_bad_search_arguments_are_refused_before_any_request(hub: FakeHub) -> None:
    with pytest.raises(InvalidRequest, match="limit"):
        search_models(None, endpoint=hub.url, limit=0)
    with pytest.raises(InvalidRequest, match="sort"):
        search_models(None, endpoint=hub.url, sort="stars")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="256"):
        search_models("x" * 5000, endpoint=hub.url)
    with pytest.raises(InvalidHubName, match="endpoint"):
        search_models(None, endpoint="file:///etc/passwd")
    assert hub.requests == []


def test_offline_mode_searches_and_lists_nothing(hub: FakeHub) -> None:
    _populate_search(hub)
    with pytest.raises(HubOffline) as caught:
        search_models("llama", endpoint=hub.url, offline=True)
    assert caught.value.status_code == 503
    assert "offline" in caught.value.message.lower()
    with pytest.raises(HubOffline):
        list_gguf_files("bartowski/Llama-3.2-1B-Instruct-GGUF", endpoint=hub.url, offline=True)
    assert hub.requests == []


# --- listing ----------------------------------------------------------------------------------------


def _quant_repo(hub: FakeHub) -> dict[str, bytes]:
    files = {
        "README.md": b"# model card",
        "Model-Q8_0.gguf": _blob("q8", 8000),
        "Model-Q4_K_M.gguf": _blob("q4", 4000),
        "Model-IQ2_XS.gguf": _blob("iq2", 2000),
        "mmproj-Model-f16.gguf": _blob("mm", 600),
        # parts listed out of order in the tree: the group must put them in part order
        "BF16/Model-BF16-00002-of-00002.gguf": _blob("bf2", 7000),
        "BF16/Model-BF16-00001-of-00002.gguf": _blob("bf1", 9000),
    }
    hub.add_repo("org/Model-GGUF", files)
    return files


def test_listing_groups_splits_flags_projectors_and_orders_by_quant(hub: FakeHub) -> None:
    files = _quant_repo(hub)
    groups = list_gguf_files("org/Model-GGUF", endpoint=hub.url)
    assert [g.name for g in groups] == [
        "Model-IQ2_XS",
        "Model-Q4_K_M",
        "Model-Q8_0",
        "BF16/Model-BF16",
        "mmproj-Model-f16",
    ]
    assert [g.quant for g in groups] == ["IQ2_XS", "Q4_K_M", "Q8_0", "BF16", "F16"]
    assert [g.is_projector for g in groups] == [False, False, False, False, True]
    split = groups[3]
    assert [f.path for f in split.files] == [
        "BF16/Model-BF16-00001-of-00002.gguf",
        "BF16/Model-BF16-00002-of-00002.gguf",
    ]
    assert [(f.split_index, f.split_count) for f in split.files] == [(1, 2), (2, 2)]
    assert split.total_size == 16000
    assert split.complete
    for group in groups:
        for f in group.files:
            assert f.size == len(files[f.path])
            assert f.sha256 == hashlib.sha256(files[f.path]).hexdigest()
    assert hub.requests[-1].query["recursive"] == ["true"]


def test_listing_follows_tree_pages(hub: FakeHub) -> None:
    hub.tree_page_size = 2
    _quant_repo(hub)
    groups = list_gguf_files("org/Model-GGUF", endpoint=hub.url)
    assert sum(len(g.files) for g in groups) == 6
    assert len([r for r in hub.requests if "/tree/" in r.path]) > 3


def test_a_split_model_missing_a_part_is_marked_incomplete(hub: FakeHub) -> None:
    hub.add_repo(
        "org/Big-GGUF", {"Big-Q4_K_M-00001-of-00003.gguf": b"1", "Big-Q4_K_M-00003-of-00003.gguf": b"3"}
    )
    (group,) = list_gguf_files("org/Big-GGUF", endpoint=hub.url)
    assert group.name == "Big-Q4_K_M"
    assert not group.complete


def test_listing_a_commit_revision_works_and_a_missing_one_is_404(hub: FakeHub) -> None:
    repo = hub.add_repo("org/M-GGUF", {"m-Q4_0.gguf": b"x"})
    assert list_gguf_files("org/M-GGUF", revision=repo.commit, endpoint=hub.url)[0].quant == "Q4_0"
    with pytest.raises(HubError) as caught:
        list_gguf_files("org/M-GGUF", revision="v9", endpoint=hub.url)
    assert caught.value.status_code == 404
    assert "no revision 'v9'" in caught.value.message


def test_unknown_repo_is_404_with_advice(hub: FakeHub) -> None:
    with pytest.raises(HubError) as caught:
        list_gguf_files("nobody/nothing-GGUF", endpoint=hub.url)
    assert caught.value.status_code == 404
    assert caught.value.code == "repo_not_found"
    assert "Check the name" in caught.value.message


def test_private_repo_needs_a_token_that_can_read_it(hub: FakeHub) -> None:
    hub.add_repo("org/Secret-GGUF", {"s-Q4_K_M.gguf": b"s"}, private=True, granted_tokens=("hf_reader",))
    with pytest.raises(HubError) as caught:
        list_gguf_files("org/Secret-GGUF", endpoint=hub.url)
    assert caught.value.status_code == 404
    assert "private" in caught.value.message
    assert list_gguf_files("org/Secret-GGUF", endpoint=hub.url, token="hf_reader")[0].quant == "Q4_K_M"
    assert hub.requests[-1].authorization == "Bearer hf_reader"


def test_rejected_token_is_401(hub: FakeHub) -> None:
    hub.add_repo("org/M-GGUF", {"m-Q4_0.gguf": b"x"})
    with pytest.raises(HubError) as caught:
        list_gguf_files("org/M-GGUF", endpoint=hub.url, token="hf_wrong")
    assert caught.value.status_code == 401
    assert "settings/tokens" in caught.value.message


def test_gated_repo_lists_its_files_like_the_real_hub(hub: FakeHub) -> None:
    hub.add_repo("org/Gated-GGUF", {"g-Q4_K_M.gguf": b"g"}, gated=True)
    assert list_gguf_files("org/Gated-GGUF", endpoint=hub.url)[0].files[0].path == "g-Q4_K_M.gguf"


@pytest.mark.parametrize("repo_id", ["../etc", "org/na me", "a/b/c", "org--x/y", "", "x" * 200])
def test_malformed_repo_ids_are_refused_without_a_request(hub: FakeHub, repo_id: str) -> None:
    with pytest.raises(InvalidHubName):
        list_gguf_files(repo_id, endpoint=hub.url)
    assert hub.requests == []


def test_hostile_tree_entries_are_skipped_and_garbage_is_a_502(hub: FakeHub) -> None:
    hub.add_repo("org/Evil-GGUF", {"ok-Q4_0.gguf": b"x"})
    tree = "/api/models/org/Evil-GGUF/tree/main"
    good = {"type": "file", "oid": "0" * 40, "size": 5, "path": "ok-Q4_0.gguf"}
    hostile = [
        good | {"lfs": {"oid": "not-a-sha", "size": 5, "pointerSize": 1}},
        {"type": "file", "oid": "1" * 40, "size": 5, "path": "../../escape-Q4_0.gguf"},
        {"type": "file", "oid": "2" * 40, "size": -7, "path": "neg-Q8_0.gguf"},
        {"type": "file", "oid": "3" * 40, "size": 5, "path": "<script>alert(1)</script>/x\\y.gguf"},
    ]
    hub.canned[tree] = (200, json.dumps(hostile).encode())
    groups = list_gguf_files("org/Evil-GGUF", endpoint=hub.url)
    assert [f.path for g in groups for f in g.files] == ["ok-Q4_0.gguf", "neg-Q8_0.gguf"]
    assert groups[0].files[0].sha256 is None
    assert groups[1].total_size == 0
    for garbage in (b"{not json", b'{"a": 1}', b"[1, 2]", b'[{"type": "file"}]'):
        hub.canned[tree] = (200, garbage)
        with pytest.raises(HubError) as caught:
            list_gguf_files("org/Evil-GGUF", endpoint=hub.url)
        assert caught.value.status_code == 502


def test_hostile_search_answer_is_a_502_not_a_crash(hub: FakeHub) -> None:
    hub.canned["/api/models"] = (200, b'[{"id": "a/b", "lastModified": "yesterday"}]')
    with pytest.raises(HubError) as caught:
        search_models(None, endpoint=hub.url)
    assert caught.value.status_code == 502
    hub.canned["/api/models"] = (200, b'[{"id": "a/b", "downloads": "many", "likes": -3, "tags": "gguf"}]')
    (repo,) = search_models(None, endpoint=hub.url)
    assert (repo.downloads, repo.likes, repo.tags) == (0, 0, [])


def test_the_real_hf_hub_download_works_against_the_fake_hub(hub: FakeHub, tmp_path: Path) -> None:
    # The fake must behave like huggingface.co for the stock client, or our tests prove nothing.
    data = _blob("real", 3000)
    hub.add_repo("org/Real-GGUF", {"real-Q4_K_M.gguf": data, "README.md": b"card"})
    path = Path(
        hf_hub_download(
            "org/Real-GGUF", "real-Q4_K_M.gguf", cache_dir=tmp_path, endpoint=hub.url, token=False
        )
    )
    assert path.read_bytes() == data
    assert os.readlink(path) == f"../../blobs/{hashlib.sha256(data).hexdigest()}"
    readme = hf_hub_download("org/Real-GGUF", "README.md", cache_dir=tmp_path, endpoint=hub.url, token=False)
    assert Path(readme).read_bytes() == b"card"
