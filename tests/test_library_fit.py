"""Will a model fit: KV and compute sizes against llama.cpp, verdicts, auto settings, nvidia-smi."""

from __future__ import annotations

import re
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kataribe.engine.gguf_meta import ModelInfo, inspect_gguf
from kataribe.library.fit import (
    CPU_USABLE_MAX_WEIGHTS,
    SWA_PATTERNS,
    KvCacheType,
    ModelFitError,
    ModelTooLarge,
    SwaPattern,
    auto_load_settings,
    default_context,
    estimate_memory,
    fit_model,
)
from kataribe.library.hardware import GpuInfo, HardwareInfo, detect_hardware

GB = 10**9
MIB = 1024**2
GIB = 1024**3


def model(
    arch: str,
    file_size: int,
    layers: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    embd: int,
    trained_ctx: int,
    vocab: int,
    params: int,
    window: int | None = None,
) -> ModelInfo:
    return ModelInfo(
        path=f"/models/{arch}.gguf",
        file_size=file_size,
        architecture=arch,
        name=None,
        size_label=None,
        parameter_count=params,
        context_length=trained_ctx,
        block_count=layers,
        head_count=heads,
        head_count_kv=kv_heads,
        embedding_length=embd,
        head_dim=head_dim,
        sliding_window=window,
        quantization="Q4_K_M",
        tokenizer="gpt2",
        vocab_size=vocab,
        chat_template=None,
        bos_token_id=None,
        eos_token_id=None,
    )


# Q4_K_M files as published (sizes from their Hugging Face repositories).
LLAMA3_8B = model("llama", int(4.92 * GB), 32, 32, 8, 128, 4096, 8192, 128256, 8_030_000_000)
NEMO_12B = model("llama", int(7.48 * GB), 40, 32, 8, 128, 5120, 1_024_000, 131072, 12_250_000_000)
LLAMA3_70B = model("llama", int(42.5 * GB), 80, 64, 8, 128, 8192, 8192, 128256, 70_550_000_000)
GEMMA2_9B = model("gemma2", int(5.76 * GB), 42, 16, 8, 256, 3584, 8192, 256000, 9_240_000_000, window=4096)


def machine(vram_gib: int | None, ram_gib: int) -> HardwareInfo:
    """A desktop: the display takes 300 MiB of the card, the OS a quarter of the RAM."""
    gpus = [GpuInfo("NVIDIA GeForce RTX", vram_gib * GIB, vram_gib * GIB - 300 * MIB)] if vram_gib else []
    return HardwareInfo(
        gpus=gpus, ram_total_bytes=ram_gib * GIB, ram_free_bytes=ram_gib * GIB * 3 // 4, cpu_physical_cores=8
    )


# --- KV cache and compute buffer ---------------------------------------------------------------


def test_llama3_8b_f16_kv_cache_at_8192_is_exactly_one_gib() -> None:
    # 32 layers x 8192 cells x 8 KV heads x (128 + 128) x 2 bytes
    assert estimate_memory(LLAMA3_8B, n_ctx=8192).kv_bytes == GIB


def test_quantized_kv_caches_use_ggml_block_sizes() -> None:
    assert estimate_memory(LLAMA3_8B, n_ctx=8192, kv_type="q8_0").kv_bytes == GIB * 34 // 64  # 0.53 GiB
    assert estimate_memory(LLAMA3_8B, n_ctx=8192, kv_type="q4_0").kv_bytes == GIB * 18 // 64


def test_context_is_padded_to_256_cells_like_llama_cpp() -> None:
    padded = estimate_memory(LLAMA3_8B, n_ctx=8000)
    assert padded.kv_bytes == estimate_memory(LLAMA3_8B, n_ctx=8192).kv_bytes
    assert estimate_memory(LLAMA3_8B, n_ctx=4096).kv_bytes == GIB // 2


def test_weights_are_the_file_size_and_total_adds_every_part() -> None:
    est = estimate_memory(NEMO_12B, n_ctx=8192)
    assert est.weights_bytes == NEMO_12B.file_size
    assert est.total == est.weights_bytes + est.kv_bytes + est.compute_bytes + est.overhead_bytes
    assert est.overhead_bytes >= 300 * MIB


def test_gemma2_sliding_window_shrinks_every_other_layer() -> None:
    full_layer = 8192 * 8 * 256 * 2 * 2
    window_layer = 4608 * 8 * 256 * 2 * 2  # pad256(4096 window + 512 batch)
    est = estimate_memory(GEMMA2_9B, n_ctx=8192)
    assert est.kv_bytes == 21 * full_layer + 21 * window_layer
    assert estimate_memory(GEMMA2_9B, n_ctx=8192, swa_full=True).kv_bytes == 42 * full_layer
    # below the window nothing slides away
    assert estimate_memory(GEMMA2_9B, n_ctx=2048).kv_bytes == 42 * 2048 * 8 * 256 * 2 * 2


def test_gemma2_without_a_stated_window_uses_llama_cpps_4096() -> None:
    stated = estimate_memory(GEMMA2_9B, n_ctx=8192).kv_bytes
    assert estimate_memory(replace(GEMMA2_9B, sliding_window=None), n_ctx=8192).kv_bytes == stated


def test_gemma3_keeps_five_local_layers_per_global_one() -> None:
    gemma3_12b = model("gemma3", int(7.3 * GB), 48, 16, 8, 256, 3840, 131072, 262144, 12_000_000_000, 1024)
    cells, window_cells = 8192, 1536  # pad256(1024 + 512)
    per_cell = 8 * 256 * 2 * 2
    assert estimate_memory(gemma3_12b, n_ctx=8192).kv_bytes == (8 * cells + 40 * window_cells) * per_cell


def test_mistral_window_is_ignored_as_llama_cpp_does() -> None:
    with_window = replace(LLAMA3_8B, sliding_window=4096)
    assert estimate_memory(with_window, n_ctx=8192).kv_bytes == GIB


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=0, max_value=9),
    st.booleans(),
    st.integers(min_value=0, max_value=300),
    st.integers(min_value=0, max_value=300),
)
def test_swa_layer_count_matches_llama_cpps_per_layer_rule(
    period: int, dense_first: bool, start: int, length: int
) -> None:
    pattern = SwaPattern(period, dense_first)

    def is_swa(layer: int) -> bool:  # llama_hparams::set_swa_pattern
        if period == 0:
            return True
        return layer % period != 0 if dense_first else layer % period < period - 1

    expected = sum(is_swa(layer) for layer in range(start, start + length))
    assert pattern.swa_layers_in(start, start + length) == expected


def test_flash_attention_drops_the_score_matrix() -> None:
    plain = estimate_memory(LLAMA3_8B, n_ctx=8192).compute_bytes
    flash = estimate_memory(LLAMA3_8B, n_ctx=8192, flash_attn=True).compute_bytes
    assert 512 * MIB < plain < 600 * MIB  # llama.cpp reports ~560 MiB on CUDA
    assert 250 * MIB < flash < 300 * MIB  # the logits of a 512-token batch dominate
    assert estimate_memory(LLAMA3_8B, n_ctx=8192, kv_type="q8_0").compute_bytes == flash


# --- against the llama.cpp Kataribe ships --------------------------------------------------------


def llama_cpp_buffers(path: Path, capsys: pytest.CaptureFixture[str], **kwargs: Any) -> tuple[float, float]:
    """Load ``path`` with llama.cpp and read the KV and compute buffer sizes (MiB) it logs."""
    from llama_cpp import Llama
    from llama_cpp._logger import set_verbose

    capsys.readouterr()
    try:
        llm = Llama(model_path=str(path), n_batch=512, n_threads=2, verbose=True, **kwargs)
        llm.close()
    finally:
        set_verbose(False)
    log = capsys.readouterr().err
    kv = sum(float(m) for m in re.findall(r"KV buffer size =\s*([\d.]+) MiB", log))
    compute = re.search(r"compute buffer size =\s*([\d.]+) MiB", log)
    assert kv > 0 and compute is not None, log[-2000:]
    return kv, float(compute.group(1))


@pytest.mark.model
def test_estimate_matches_llama_cpp_for_the_shipped_model(
    model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    info = inspect_gguf(model_path)
    cases: tuple[tuple[dict[str, Any], KvCacheType], ...] = (
        ({}, "f16"),
        ({"flash_attn": True, "type_k": 8, "type_v": 8}, "q8_0"),  # 8 = GGML_TYPE_Q8_0
    )
    for kwargs, kv_type in cases:
        kv_mib, compute_mib = llama_cpp_buffers(model_path, capsys, n_ctx=8192, **kwargs)
        est = estimate_memory(info, n_ctx=8192, kv_type=kv_type, flash_attn=bool(kwargs))
        assert est.kv_bytes / MIB == pytest.approx(kv_mib, abs=0.01)
        assert est.compute_bytes / MIB == pytest.approx(compute_mib, rel=0.05)


def write_tiny_gemma2(path: Path, *, window: int = 256) -> None:
    """A 6-layer gemma2 with random weights: enough for llama.cpp to build its caches."""
    embd, heads, kv_heads, head_dim, ff = 64, 4, 2, 16, 128
    tokens = [b"<unk>", b"<s>", b"</s>"] + [f"<0x{i:02X}>".encode() for i in range(256)]
    w = gguf.GGUFWriter(str(path), "gemma2")
    w.add_context_length(8192)
    w.add_block_count(6)
    w.add_embedding_length(embd)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_sliding_window(window)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * len(tokens))
    w.add_token_types([2, 3, 3] + [6] * 256)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    rng = np.random.default_rng(0)

    def tensor(name: str, n_in: int, n_out: int) -> None:
        w.add_tensor(name, (rng.standard_normal((n_out, n_in)) * 0.02).astype(np.float32))

    def norm(name: str) -> None:
        w.add_tensor(name, np.ones(embd, dtype=np.float32))

    tensor("token_embd.weight", embd, len(tokens))
    norm("output_norm.weight")
    for i in range(6):
        for name in ("attn_norm", "post_attention_norm", "ffn_norm", "post_ffw_norm"):
            norm(f"blk.{i}.{name}.weight")
        tensor(f"blk.{i}.attn_q.weight", embd, heads * head_dim)
        tensor(f"blk.{i}.attn_k.weight", embd, kv_heads * head_dim)
        tensor(f"blk.{i}.attn_v.weight", embd, kv_heads * head_dim)
        tensor(f"blk.{i}.attn_output.weight", heads * head_dim, embd)
        tensor(f"blk.{i}.ffn_gate.weight", embd, ff)
        tensor(f"blk.{i}.ffn_up.weight", embd, ff)
        tensor(f"blk.{i}.ffn_down.weight", ff, embd)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.mark.model
def test_sliding_window_cache_matches_llama_cpp(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tiny-gemma2.gguf"
    write_tiny_gemma2(path)
    info = inspect_gguf(path)
    for swa_full in (False, True):
        kv_mib, compute_mib = llama_cpp_buffers(path, capsys, n_ctx=4096, swa_full=swa_full)
        est = estimate_memory(info, n_ctx=4096, swa_full=swa_full)
        assert est.kv_bytes / MIB == pytest.approx(kv_mib, abs=0.01)
        assert est.compute_bytes / MIB == pytest.approx(compute_mib, rel=0.05)
    assert (
        estimate_memory(info, n_ctx=4096).kv_bytes < estimate_memory(info, n_ctx=4096, swa_full=True).kv_bytes
    )


# --- verdicts ------------------------------------------------------------------------------------


def test_llama3_8b_fits_an_8_gb_gpu() -> None:
    verdict = fit_model(LLAMA3_8B, machine(8, 16))
    assert (verdict.kind, verdict.gpu_layers, verdict.speed_class) == ("full_gpu", 33, "fast")
    assert verdict.message.startswith("Fits entirely in the 8 GB GPU (")
    assert verdict.message.endswith("needed): fast.")
    assert verdict.vram_needed == verdict.estimate.total <= 8 * GIB - 300 * MIB


def test_nemo_12b_spills_out_of_8_gb_but_fits_12_gb() -> None:
    small = fit_model(NEMO_12B, machine(8, 32))
    assert small.kind == "partial_gpu" and small.speed_class == "slow"
    assert 20 <= small.gpu_layers < 40
    assert small.message == (
        f"{small.gpu_layers} of 41 layers on the GPU, the rest in RAM: "
        "expect a big slowdown — about a few tokens/s."
    )
    assert small.vram_needed <= 8 * GIB - 300 * MIB and small.ram_needed <= 24 * GIB
    assert fit_model(NEMO_12B, machine(12, 32)).kind == "full_gpu"


def test_nemo_defaults_to_8192_context_not_its_million_token_maximum() -> None:
    assert default_context(NEMO_12B) == 8192
    assert fit_model(NEMO_12B, machine(24, 64)).n_ctx == 8192
    assert fit_model(NEMO_12B, machine(24, 64), max_default_ctx=16384).n_ctx == 16384
    assert default_context(replace(NEMO_12B, context_length=None)) == 8192
    assert default_context(replace(NEMO_12B, context_length=2048)) == 2048


def test_llama3_70b_splits_between_a_24_gb_gpu_and_64_gb_ram() -> None:
    verdict = fit_model(LLAMA3_70B, machine(24, 64))
    assert verdict.kind == "partial_gpu"
    assert 30 <= verdict.gpu_layers <= 50
    assert verdict.vram_needed <= 24 * GIB - 300 * MIB
    assert verdict.ram_needed <= 48 * GIB


def test_few_layers_on_the_gpu_is_very_slow() -> None:
    verdict = fit_model(LLAMA3_70B, machine(8, 64))
    assert (verdict.kind, verdict.speed_class) == ("partial_gpu", "very_slow")
    assert verdict.message.startswith(f"Only {verdict.gpu_layers} of 81 layers fit on the 8 GB GPU")


def test_llama3_70b_does_not_fit_8_gb_vram_and_16_gb_ram() -> None:
    verdict = fit_model(LLAMA3_70B, machine(8, 16))
    assert (verdict.kind, verdict.gpu_layers) == ("will_not_fit", 0)
    assert verdict.message == "Does not fit: needs 46 GB, 20 GB free. Pick a smaller model."


def test_does_not_fit_suggests_a_quantization_that_would() -> None:
    verdict = fit_model(LLAMA3_70B, machine(8, 32))
    assert verdict.kind == "will_not_fit"
    match = re.search(r"such as (\S+) or a smaller model\.$", verdict.message)
    assert match is not None, verdict.message
    bits = {"Q3_K_M": 3.91, "IQ3_XXS": 3.06, "IQ2_M": 2.7}[match.group(1)]
    smaller = replace(LLAMA3_70B, file_size=int(LLAMA3_70B.parameter_count * bits / 8))
    assert fit_model(smaller, machine(8, 32)).kind == "partial_gpu"


def test_without_a_gpu_the_model_runs_from_ram() -> None:
    verdict = fit_model(LLAMA3_8B, machine(None, 16))
    assert (verdict.kind, verdict.gpu_layers, verdict.vram_needed) == ("cpu_only", 0, 0)
    assert verdict.speed_class == "slow"
    assert verdict.message.startswith("No usable GPU: runs on the CPU from RAM (")
    tiny = replace(LLAMA3_8B, file_size=CPU_USABLE_MAX_WEIGHTS - 1)
    assert fit_model(tiny, machine(None, 16)).speed_class == "usable"
    assert fit_model(LLAMA3_70B, machine(None, 64)).speed_class == "very_slow"


def test_a_gpu_too_full_for_one_layer_means_cpu_only() -> None:
    busy = HardwareInfo([GpuInfo("GTX 1050", 2 * GIB, 200 * MIB)], 32 * GIB, 24 * GIB, 4)
    verdict = fit_model(LLAMA3_8B, busy)
    assert verdict.kind == "cpu_only"
    assert verdict.message.startswith("The 2 GB GPU has too little free memory for even one layer")


def test_the_gpu_with_most_free_memory_is_used() -> None:
    two = HardwareInfo(
        [GpuInfo("RTX 3060", 12 * GIB, 1 * GIB), GpuInfo("RTX 4060", 8 * GIB, 7 * GIB)], 32 * GIB, 24 * GIB, 8
    )
    assert fit_model(LLAMA3_8B, two).message.startswith("Fits entirely in the 8 GB GPU")


def test_quantized_kv_cache_lets_a_long_context_fit() -> None:
    hw = machine(8, 32)
    assert fit_model(LLAMA3_8B, hw, n_ctx=16384).kind == "partial_gpu"
    assert fit_model(LLAMA3_8B, hw, n_ctx=16384, kv_type="q4_0").kind == "full_gpu"


# --- automatic load settings ----------------------------------------------------------------------


def test_auto_settings_keep_everything_on_a_big_enough_gpu() -> None:
    assert auto_load_settings(LLAMA3_8B, machine(8, 16)) == (33, 8192)


def test_auto_settings_halve_the_context_before_giving_up_layers() -> None:
    nine_free = HardwareInfo([GpuInfo("RTX 3080", 10 * GIB, 9 * GIB)], 32 * GIB, 24 * GIB, 8)
    assert fit_model(NEMO_12B, nine_free).kind == "partial_gpu"
    assert auto_load_settings(NEMO_12B, nine_free) == (41, 4096)


def test_auto_settings_stop_halving_at_2048_then_offload_what_fits() -> None:
    at_8192 = fit_model(NEMO_12B, machine(8, 32))
    layers, n_ctx = auto_load_settings(NEMO_12B, machine(8, 32))
    assert n_ctx == 2048
    assert at_8192.gpu_layers < layers < 41


def test_auto_settings_respect_a_context_the_user_asked_for() -> None:
    layers, n_ctx = auto_load_settings(NEMO_12B, machine(8, 32), n_ctx=8192)
    assert (layers, n_ctx) == (fit_model(NEMO_12B, machine(8, 32)).gpu_layers, 8192)


def test_auto_settings_without_a_gpu_run_on_the_cpu_at_full_context() -> None:
    assert auto_load_settings(NEMO_12B, machine(None, 32)) == (0, 8192)


def test_auto_settings_refuse_a_model_that_fits_nowhere() -> None:
    with pytest.raises(ModelTooLarge, match="Does not fit: needs 46 GB"):
        auto_load_settings(LLAMA3_70B, machine(8, 16))


# --- bad input --------------------------------------------------------------------------------------


def test_a_header_without_layer_count_is_a_clear_error() -> None:
    with pytest.raises(ModelFitError, match=r"layer count \(llama\.block_count\).*by hand"):
        estimate_memory(replace(LLAMA3_8B, block_count=None), n_ctx=4096)


def test_a_header_without_head_counts_is_a_clear_error() -> None:
    broken = replace(LLAMA3_8B, head_count_kv=None, head_count=None, head_dim=None)
    with pytest.raises(ModelFitError, match="attention head size"):
        estimate_memory(broken, n_ctx=4096)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"block_count": 10**12}, "impossible layer count"),
        ({"head_count_kv": -8}, "impossible KV head count"),
        ({"file_size": -1}, "file size"),
    ],
)
def test_impossible_header_values_are_rejected(change: dict[str, Any], match: str) -> None:
    with pytest.raises(ModelFitError, match=match):
        fit_model(replace(LLAMA3_8B, **change), machine(8, 16))


@pytest.mark.parametrize(
    "kwargs",
    [{"n_ctx": 0}, {"n_ctx": -5}, {"n_ctx": True}, {"n_ctx": 1 << 40}, {"kv_type": "q5_1"}, {"n_batch": 0}],
)
def test_bad_settings_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ModelFitError):
        fit_model(LLAMA3_8B, machine(8, 16), **kwargs)


maybe_int = st.one_of(st.none(), st.integers(min_value=-10, max_value=1 << 20), st.integers())


@settings(max_examples=300, deadline=None)
@given(
    layers=maybe_int,
    heads=maybe_int,
    kv_heads=maybe_int,
    head_dim=maybe_int,
    window=maybe_int,
    vocab=maybe_int,
    size=st.integers(min_value=-1, max_value=1 << 42),
    arch=st.sampled_from(["llama", "gemma2", "gemma3", "llama4", "smallthinker", "x<script>"]),
    vram=st.one_of(st.none(), st.integers(min_value=0, max_value=80)),
    ram=st.integers(min_value=0, max_value=256),
)
def test_any_header_gives_a_consistent_verdict_or_a_clear_error(
    layers: int | None,
    heads: int | None,
    kv_heads: int | None,
    head_dim: int | None,
    window: int | None,
    vocab: int | None,
    size: int,
    arch: str,
    vram: int | None,
    ram: int,
) -> None:
    info = model(arch, size, 1, 1, 1, 1, 64, 8192, 100, 0)
    info = replace(
        info,
        block_count=layers,
        head_count=heads,
        head_count_kv=kv_heads,
        head_dim=head_dim,
        sliding_window=window,
        vocab_size=vocab,
    )
    hw = machine(vram, ram)
    try:
        verdict = fit_model(info, hw)
    except ModelFitError as exc:
        assert exc.message
        return
    assert layers is not None
    assert 0 <= verdict.gpu_layers <= layers + 1
    gpu = hw.largest_gpu
    if verdict.kind in ("full_gpu", "partial_gpu"):
        assert gpu is not None and verdict.vram_needed <= gpu.free_bytes
        assert verdict.ram_needed <= hw.ram_free_bytes
    if verdict.kind == "cpu_only":
        assert verdict.ram_needed <= hw.ram_free_bytes and verdict.gpu_layers == 0


# --- hardware detection -------------------------------------------------------------------------------


class FakeNvidiaSmi:
    """Stands in for subprocess.run: nvidia-smi cannot run on a machine without an NVIDIA driver."""

    def __init__(self, stdout: str = "", returncode: int = 0, raises: BaseException | None = None) -> None:
        self.stdout, self.returncode, self.raises = stdout, returncode, raises
        self.calls: list[tuple[list[str], dict[str, Any]]] = []

    def __call__(self, args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append((args, kwargs))
        if self.raises is not None:
            raise self.raises
        return subprocess.CompletedProcess(args, self.returncode, self.stdout, "")


def test_one_gpu_from_nvidia_smi() -> None:
    smi = FakeNvidiaSmi("NVIDIA GeForce RTX 4070, 12282, 11050\n")
    hw = detect_hardware(run=smi)
    assert hw.gpus == [GpuInfo("NVIDIA GeForce RTX 4070", 12282 * MIB, 11050 * MIB)]
    args, kwargs = smi.calls[0]
    assert args[0] == "nvidia-smi" and "--format=csv,noheader,nounits" in args
    assert kwargs["timeout"] == 5 and kwargs["check"] is False


def test_two_gpus_and_the_freer_one_is_largest() -> None:
    smi = FakeNvidiaSmi("NVIDIA GeForce RTX 3090, 24576, 2000\nNVIDIA GeForce RTX 3060, 12288, 11800\n")
    hw = detect_hardware(run=smi)
    assert [g.name for g in hw.gpus] == ["NVIDIA GeForce RTX 3090", "NVIDIA GeForce RTX 3060"]
    assert hw.largest_gpu == hw.gpus[1]


@pytest.mark.parametrize(
    "output",
    ["", "garbage\n", "NVIDIA-SMI has failed\n", "a, b\n", "x, -1, 5\n", "\x00\xff, 1e99, 7\n"],
)
def test_garbage_from_nvidia_smi_means_no_gpu(output: str) -> None:
    hw = detect_hardware(run=FakeNvidiaSmi(output))
    assert hw.gpus == []
    assert any("not detected yet" in note for note in hw.notes)


def test_gpu_without_memory_figures_is_skipped_with_a_note() -> None:
    hw = detect_hardware(run=FakeNvidiaSmi("NVIDIA GB10, [N/A], [N/A]\nNVIDIA L4, 23034, 22000\n"))
    assert [g.name for g in hw.gpus] == ["NVIDIA L4"]
    assert any("NVIDIA GB10" in note for note in hw.notes)


@pytest.mark.parametrize(
    "failure",
    [
        FakeNvidiaSmi(raises=FileNotFoundError("nvidia-smi")),
        FakeNvidiaSmi(raises=subprocess.TimeoutExpired("nvidia-smi", 5)),
        FakeNvidiaSmi(raises=PermissionError("denied")),
        FakeNvidiaSmi("NVIDIA-SMI has failed because it couldn't communicate with the driver", returncode=9),
    ],
)
def test_missing_or_broken_nvidia_smi_means_no_gpu_never_an_exception(failure: FakeNvidiaSmi) -> None:
    hw = detect_hardware(run=failure)
    assert hw.gpus == [] and hw.notes


def test_this_machine_reports_its_ram_and_cores() -> None:
    hw = detect_hardware()
    assert hw.ram_total_bytes > 0 and 0 < hw.ram_free_bytes <= hw.ram_total_bytes
    assert hw.cpu_physical_cores >= 1
    assert all(0 <= g.free_bytes <= g.total_bytes for g in hw.gpus)


def test_swa_table_covers_the_architectures_the_brief_names() -> None:
    assert {"gemma2", "gemma3", "cohere2", "llama4"} <= SWA_PATTERNS.keys()
    assert "llama" not in SWA_PATTERNS and "phi3" not in SWA_PATTERNS
