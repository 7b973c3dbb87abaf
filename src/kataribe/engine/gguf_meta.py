"""Read a GGUF file's header (metadata and tensor shapes) fast, without loading weights."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import gguf

from kataribe.errors import ModelLoadError

_SCALARS: dict[int, str] = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
_MAX_KEEP_ARRAY = 64
"""Arrays longer than this (token lists, merges) are skipped; only their length is kept."""


class GgufFormatError(ModelLoadError):
    pass


@dataclass
class GgufHeader:
    version: int
    metadata: dict[str, Any]
    array_lengths: dict[str, int]
    tensor_count: int
    parameter_count: int


def _read_exact(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise GgufFormatError("The GGUF file ends early; it is truncated or not a GGUF file.")
    return data


def _unpack(f: BinaryIO, fmt: str) -> Any:
    return struct.unpack(fmt, _read_exact(f, struct.calcsize(fmt)))[0]


def _read_string(f: BinaryIO) -> str:
    n = _unpack(f, "<Q")
    if n > 1 << 26:
        raise GgufFormatError("The GGUF header holds an impossibly long string; the file is damaged.")
    return _read_exact(f, n).decode("utf-8", errors="replace")


def _read_value(f: BinaryIO, vtype: int) -> Any:
    if vtype in _SCALARS:
        return _unpack(f, _SCALARS[vtype])
    if vtype == _STRING:
        return _read_string(f)
    raise GgufFormatError(f"Unknown GGUF value type {vtype}; the file is damaged or too new.")


def _read_array(f: BinaryIO) -> tuple[list[Any] | None, int]:
    etype = _unpack(f, "<I")
    n = _unpack(f, "<Q")
    keep = n <= _MAX_KEEP_ARRAY
    items: list[Any] = []
    if etype in _SCALARS and not keep:
        f.seek(struct.calcsize(_SCALARS[etype]) * n, 1)
        return None, n
    for _ in range(n):
        if etype == _STRING:
            size = _unpack(f, "<Q")
            if keep:
                items.append(_read_exact(f, size).decode("utf-8", errors="replace"))
            else:
                f.seek(size, 1)
        elif etype == _ARRAY:
            sub, _len = _read_array(f)
            if keep:
                items.append(sub)
        else:
            items.append(_read_value(f, etype))
    return (items if keep else None), n


def read_gguf_header(path: Path) -> GgufHeader:
    try:
        f = path.open("rb")
    except OSError as exc:
        raise ModelLoadError(f"Cannot open the model file {path}: {exc.strerror}.") from exc
    with f:
        if _read_exact(f, 4) != b"GGUF":
            raise GgufFormatError(f"{path.name} is not a GGUF file (wrong magic bytes).")
        version = _unpack(f, "<I")
        if version < 2:
            raise GgufFormatError(f"{path.name} is GGUF version {version}; convert it to version 3.")
        tensor_count = _unpack(f, "<Q")
        kv_count = _unpack(f, "<Q")
        metadata: dict[str, Any] = {}
        lengths: dict[str, int] = {}
        for _ in range(kv_count):
            key = _read_string(f)
            vtype = _unpack(f, "<I")
            if vtype == _ARRAY:
                items, n = _read_array(f)
                lengths[key] = n
                if items is not None:
                    metadata[key] = items
            else:
                metadata[key] = _read_value(f, vtype)
        params = 0
        for _ in range(tensor_count):
            _read_string(f)
            n_dims = _unpack(f, "<I")
            n_el = 1
            for _d in range(n_dims):
                n_el *= _unpack(f, "<Q")
            f.seek(4 + 8, 1)  # type, offset
            params += n_el
    return GgufHeader(version, metadata, lengths, tensor_count, params)


@dataclass
class ModelInfo:
    """What users ask about a model file before and after loading it."""

    path: str
    file_size: int
    architecture: str
    name: str | None
    size_label: str | None
    parameter_count: int
    context_length: int | None
    block_count: int | None
    head_count: int | None
    head_count_kv: int | None
    embedding_length: int | None
    head_dim: int | None
    sliding_window: int | None
    quantization: str | None
    tokenizer: str | None
    vocab_size: int | None
    chat_template: str | None
    bos_token_id: int | None
    eos_token_id: int | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def has_chat_template(self) -> bool:
        return bool(self.chat_template)

    def summary(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "file_size": self.file_size,
            "architecture": self.architecture,
            "name": self.name,
            "size_label": self.size_label,
            "parameter_count": self.parameter_count,
            "context_length": self.context_length,
            "block_count": self.block_count,
            "head_count": self.head_count,
            "head_count_kv": self.head_count_kv,
            "embedding_length": self.embedding_length,
            "head_dim": self.head_dim,
            "sliding_window": self.sliding_window,
            "quantization": self.quantization,
            "tokenizer": self.tokenizer,
            "vocab_size": self.vocab_size,
            "chat_template": self.has_chat_template,
        }


def _first_int(value: Any) -> int | None:
    if isinstance(value, list):  # some models give per-layer head counts
        value = max((v for v in value if isinstance(v, int)), default=None)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def quantization_name(file_type: Any) -> str | None:
    if not isinstance(file_type, int):
        return None
    try:
        return str(gguf.LlamaFileType(file_type).name).removeprefix("MOSTLY_").removeprefix("ALL_")
    except ValueError:
        return f"type {file_type}"


def inspect_gguf(path: Path) -> ModelInfo:
    header = read_gguf_header(path)
    md = header.metadata
    arch = str(md.get("general.architecture", "unknown"))

    def a(key: str) -> Any:
        return md.get(f"{arch}.{key}")

    heads = _first_int(a("attention.head_count"))
    embd = _first_int(a("embedding_length"))
    head_dim = _first_int(a("attention.key_length")) or (embd // heads if embd and heads else None)
    template = md.get("tokenizer.chat_template")
    return ModelInfo(
        path=str(path),
        file_size=path.stat().st_size,
        architecture=arch,
        name=md.get("general.name"),
        size_label=md.get("general.size_label"),
        parameter_count=header.parameter_count,
        context_length=_first_int(a("context_length")),
        block_count=_first_int(a("block_count")),
        head_count=heads,
        head_count_kv=_first_int(a("attention.head_count_kv")) or heads,
        embedding_length=embd,
        head_dim=head_dim,
        sliding_window=_first_int(a("attention.sliding_window")),
        quantization=quantization_name(md.get("general.file_type")),
        tokenizer=md.get("tokenizer.ggml.model"),
        vocab_size=_first_int(a("vocab_size")) or header.array_lengths.get("tokenizer.ggml.tokens"),
        chat_template=template if isinstance(template, str) else None,
        bos_token_id=_first_int(md.get("tokenizer.ggml.bos_token_id")),
        eos_token_id=_first_int(md.get("tokenizer.ggml.eos_token_id")),
    )
