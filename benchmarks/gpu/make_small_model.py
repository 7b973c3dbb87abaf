"""Writes SmolLM2 with only its first N transformer blocks (default 4): the real tokenizer, chat
template and architecture in a file small enough (about 40 MB) to carry to a GPU machine that
cannot download. Its text is nonsense; it exercises offload, decode and KV snapshots, not quality.

    .venv/bin/python benchmarks/gpu/make_small_model.py OUT.gguf [BLOCKS]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter

from kataribe.engine.default_model import default_model_path


def main() -> None:
    out, blocks = Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 4
    reader = GGUFReader(default_model_path())
    arch = str(reader.fields["general.architecture"].contents())
    writer = GGUFWriter(out, arch)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        kind = field.types[0]
        value = blocks if name == f"{arch}.block_count" else field.contents()
        if kind == GGUFValueType.ARRAY:
            item = field.types[-1] if len(field.types) > 1 else None
            writer.add_key_value(name, value, kind, sub_type=item)
        else:
            writer.add_key_value(name, value, kind)
    plain = (GGMLQuantizationType.F32, GGMLQuantizationType.F16)
    for tensor in reader.tensors:
        if tensor.name.startswith("blk.") and int(tensor.name.split(".")[1]) >= blocks:
            continue
        raw_shape = None if tensor.tensor_type in plain else tensor.data.shape
        data = np.asarray(tensor.data)
        writer.add_tensor(tensor.name, data, raw_shape=raw_shape, raw_dtype=tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"{out}: {out.stat().st_size / 2**20:.1f} MiB, {blocks} blocks")


if __name__ == "__main__":
    main()
