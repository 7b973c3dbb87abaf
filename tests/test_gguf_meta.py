"""Reading GGUF headers without loading weights: the shipped model and files written by the test."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from kataribe.engine.gguf_meta import GgufFormatError, inspect_gguf


def test_shipped_model(model_path: Path) -> None:
    info = inspect_gguf(model_path)
    assert (info.architecture, info.context_length, info.block_count) == ("llama", 8192, 30)
    assert (info.head_count, info.head_count_kv, info.head_dim) == (9, 3, 64)
    assert info.quantization == "Q4_1" and info.tokenizer == "gpt2"
    assert info.has_chat_template and "<|im_start|>" in (info.chat_template or "")
    assert 130e6 < info.parameter_count < 140e6


def test_tiny_written_gguf(tmp_path: Path) -> None:
    path = tmp_path / "tiny.gguf"
    w = gguf.GGUFWriter(str(path), "gemma2")
    w.add_context_length(1_024_000)
    w.add_block_count(2)
    w.add_embedding_length(64)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_sliding_window(4096)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    w.add_tokenizer_model("llama")
    w.add_token_list([f"t{i}".encode() for i in range(300)])
    w.add_tensor("w", np.zeros((8, 16), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    info = inspect_gguf(path)
    assert info.architecture == "gemma2" and info.context_length == 1_024_000
    assert info.sliding_window == 4096 and info.quantization == "Q4_K_M"
    assert info.vocab_size == 300 and info.parameter_count == 128 and not info.has_chat_template
    assert info.head_dim == 16


@pytest.mark.parametrize("content", [b"", b"NOPE" + b"\0" * 40, b"GGUF\x03\0\0\0" + b"\xff" * 8])
def test_bad_files_raise_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(GgufFormatError):
        inspect_gguf(path)
