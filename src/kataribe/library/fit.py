"""Will a GGUF model fit this machine: memory estimates, verdicts, automatic GPU layers and context.

How llama.cpp spends memory (read from its sources, src/llama-context.cpp, llama-kv-cache*.cpp,
llama-hparams.cpp, llama-model.cpp):

- Weights: the GGUF tensors, i.e. about the file size. ``n_gpu_layers`` counts the repeating
  blocks plus one for the output layer, and offloads the *last* blocks first.
- KV cache: the context is padded up to a multiple of 256 cells. Each layer stores, per cell,
  ``n_kv_heads * (k_dim + v_dim)`` elements at 2 bytes (f16), 34 bytes per 32 (q8_0) or
  18 bytes per 32 (q4_0). A quantized V cache needs flash attention.
- Sliding-window (SWA) layers keep only ``pad256(min(n_ctx, window + n_ubatch))`` cells unless
  ``swa_full`` is set. Which layers slide is fixed per architecture (``set_swa_pattern``); see
  ``SWA_PATTERNS``.
- Compute buffer: ggml reuses one graph's scratch across layers, so the peak is the largest
  single stage: attention (the KQ masks ``n_ctx * n_ubatch`` plus, without flash attention, the
  f32 scores ``n_ctx * n_ubatch * n_head * 4``), the f32 logits ``n_vocab * n_ubatch * 4``
  (reserved for a full batch of outputs), or the FFN activations; plus the hidden states alive
  at that moment. Checked against the llama.cpp in our llama-cpp-python (SmolLM2, 8192 context:
  166.4 MiB reported vs 164.5 estimated; 99.4 vs 100.5 with flash attention), and against
  CUDA logs users post (Llama-3-8B, 8192 context: ~560 MiB).
- Overhead: 5 % of the above plus 300 MiB (the CUDA context and cuBLAS workspace on the GPU;
  the Python process and host buffers in RAM). KoboldCpp reserves 0.5-1.25 GB for the same.

Never plan on overcommitting VRAM: on Windows the NVIDIA driver then spills into shared system
memory and generation collapses to about a character a second, the classic failure users hit.
Splitting layers between GPU and CPU is slow too, but predictably so; that is what
``partial_gpu`` means.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kataribe.engine.gguf_meta import ModelInfo
from kataribe.errors import InvalidRequest
from kataribe.library.hardware import HardwareInfo

MIB = 1024**2
GIB = 1024**3

KvCacheType = Literal["f16", "q8_0", "q4_0"]
FitKind = Literal["full_gpu", "partial_gpu", "cpu_only", "will_not_fit"]
SpeedClass = Literal["fast", "usable", "slow", "very_slow"]

DEFAULT_MAX_CTX = 8192
"""Same cap as the engine's ``pick_context_length``: never a model's 1M maximum by default."""
MIN_AUTO_CTX = 2048
CTX_PAD = 256
OVERHEAD_FRACTION = 0.05
OVERHEAD_BASE = 300 * MIB

# Speed thresholds. Generation reads every weight once per token, so speed follows where the
# weights live: GPU memory moves 300-1000 GB/s, desktop RAM 40-80 GB/s.
PARTIAL_SLOW_MIN_GPU_FRACTION = 0.5
"""At least half the layers on the GPU: slow (a few tokens/s); fewer: very slow (1-2 tokens/s)."""
CPU_USABLE_MAX_WEIGHTS = 4 * GIB
"""Up to 4 GB of weights from RAM: usable (about 5-10 tokens/s on a recent desktop CPU)."""
CPU_SLOW_MAX_WEIGHTS = 16 * GIB
"""Up to 16 GB: slow (2-5 tokens/s); beyond that about a token a second or less."""

_KV_BYTES: dict[str, tuple[int, int]] = {"f16": (2, 1), "q8_0": (34, 32), "q4_0": (18, 32)}
"""Bytes per elements of each KV cache type, as (bytes, elements)."""

_FALLBACK_VOCAB = 150_000  # a file that hides its vocabulary: assume a large modern one
_MAX_LAYERS = 4096
_MAX_HEADS = 1 << 16
_MAX_CTX = 1 << 24
_MAX_BATCH = 1 << 16
_MAX_FILE = 1 << 50


class ModelFitError(InvalidRequest):
    """The model header lacks what an estimate needs, or a setting is out of range."""


class ModelTooLarge(InvalidRequest):
    """Neither the GPU nor RAM can hold the model at any context Kataribe would try."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="model_too_large")


@dataclass(frozen=True)
class SwaPattern:
    """Which layers use sliding-window attention, as llama.cpp's ``set_swa_pattern`` sets them."""

    period: int
    """Every ``period``-th layer attends to the full context; 0 means every layer slides."""
    dense_first: bool = False
    """The full layer opens each period instead of closing it."""
    default_window: int | None = None
    """Window llama.cpp assumes when the GGUF does not state one."""

    def swa_layers_below(self, n: int) -> int:
        if self.period <= 0:
            return n
        cycles, rest = divmod(n, self.period)
        in_rest = max(0, rest - 1) if self.dense_first else min(rest, self.period - 1)
        return cycles * (self.period - 1) + in_rest

    def swa_layers_in(self, start: int, end: int) -> int:
        return self.swa_layers_below(end) - self.swa_layers_below(start)


SWA_PATTERNS: dict[str, SwaPattern] = {
    "gemma2": SwaPattern(2, default_window=4096),  # every other layer, starting with the first
    "gemma3": SwaPattern(6),  # 5 local : 1 global
    "gemma3n": SwaPattern(5),
    "cohere2": SwaPattern(4),  # 3 sliding : 1 full
    "llama4": SwaPattern(4, default_window=8192),  # chunked attention, 3 chunked : 1 full
    "gpt-oss": SwaPattern(2),
    "exaone4": SwaPattern(4),
    "olmo2": SwaPattern(4),  # only the OLMo versions whose GGUF states a window
    "smallthinker": SwaPattern(4, dense_first=True),
}
"""Architectures not listed attend to the full context on every layer. That includes Mistral and
Ministral (``llama`` / ``mistral3`` GGUFs: llama.cpp ignores their window) and ``phi3``, whose
sliding window llama.cpp turns off."""


@dataclass(frozen=True)
class MemoryEstimate:
    weights_bytes: int
    kv_bytes: int
    compute_bytes: int
    overhead_bytes: int

    @property
    def total(self) -> int:
        return self.weights_bytes + self.kv_bytes + self.compute_bytes + self.overhead_bytes


@dataclass(frozen=True)
class FitVerdict:
    kind: FitKind
    gpu_layers: int
    """What to pass as ``n_gpu_layers``: ``block_count + 1`` means everything, output layer too."""
    n_ctx: int
    speed_class: SpeedClass
    estimate: MemoryEstimate
    vram_needed: int
    ram_needed: int
    message: str


@dataclass(frozen=True)
class _Shape:
    layers: int
    kv_heads: int
    head_dim: int
    heads: int
    embd: int
    vocab: int
    weights: int
    pattern: SwaPattern | None
    window: int | None


def _checked(value: object, what: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ModelFitError(f"{what} must be a whole number from {low} to {high}; got {value!r}.")
    return value


def _from_header(info: ModelInfo, value: int | None, what: str, key: str, high: int) -> int:
    if value is None:
        raise ModelFitError(
            f"The model file does not state its {what} ({info.architecture}.{key}), so Kataribe "
            "cannot estimate its memory. Set the GPU layers and context size by hand."
        )
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
        raise ModelFitError(
            f"The model file states an impossible {what} ({info.architecture}.{key} = {value!r}); "
            "the file is damaged or not a language model."
        )
    return value


def _optional(value: int | None, high: int) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= high
    return value if ok else None


def _shape(info: ModelInfo) -> _Shape:
    layers = _from_header(info, info.block_count, "layer count", "block_count", _MAX_LAYERS)
    heads = _optional(info.head_count, _MAX_HEADS)
    embd = _optional(info.embedding_length, 1 << 20)
    head_dim = info.head_dim if info.head_dim is not None else (embd // heads if embd and heads else None)
    head_dim = _from_header(info, head_dim, "attention head size", "attention.key_length", _MAX_HEADS)
    kv_heads = info.head_count_kv if info.head_count_kv is not None else heads
    kv_heads = _from_header(info, kv_heads, "KV head count", "attention.head_count_kv", _MAX_HEADS)
    weights = _checked(info.file_size, "The model file size", 0, _MAX_FILE)
    pattern = SWA_PATTERNS.get(info.architecture)
    window = None
    if pattern is not None:
        stated = info.sliding_window
        window = _optional(stated, _MAX_CTX) if stated is not None else pattern.default_window
    return _Shape(
        layers=layers,
        kv_heads=kv_heads,
        head_dim=head_dim,
        heads=heads or kv_heads,
        embd=embd or (heads or kv_heads) * head_dim,
        vocab=_optional(info.vocab_size, 1 << 24) or _FALLBACK_VOCAB,
        weights=weights,
        pattern=pattern if window else None,
        window=window,
    )


def _pad(n: int, to: int) -> int:
    return -(-n // to) * to


def _with_overhead(nbytes: int) -> int:
    return nbytes + int(nbytes * OVERHEAD_FRACTION) + OVERHEAD_BASE


@dataclass(frozen=True)
class _Plan:
    """One context size worked out: the estimate and the per-layer split the verdicts need."""

    shape: _Shape
    n_ctx: int
    """As asked; llama.cpp pads it up to ``CTX_PAD`` cells, and the estimate counts the padded size."""
    estimate: MemoryEstimate
    full_layer_kv: int
    swa_layer_kv: int

    def kv_of_last_layers(self, n: int) -> int:
        layers = self.shape.layers
        pattern = self.shape.pattern
        swa = pattern.swa_layers_in(layers - n, layers) if pattern else 0
        return swa * self.swa_layer_kv + (n - swa) * self.full_layer_kv

    def weights_of_layers(self, n: int) -> int:
        # The whole file spread over the blocks: it overstates a block a little (embeddings and
        # the output layer live in the file too), which errs on the safe side.
        return self.shape.weights * n // self.shape.layers

    def vram_for(self, n: int) -> int:
        part = self.weights_of_layers(n) + self.kv_of_last_layers(n) + self.estimate.compute_bytes
        return _with_overhead(part)

    def ram_for(self, n: int) -> int:
        est = self.estimate
        weights = est.weights_bytes - self.weights_of_layers(n)
        kv = est.kv_bytes - self.kv_of_last_layers(n)
        return _with_overhead(weights + kv + est.compute_bytes)


def _plan(info: ModelInfo, n_ctx: int, kv_type: str, n_batch: int, flash_attn: bool, swa_full: bool) -> _Plan:
    if kv_type not in _KV_BYTES:
        raise ModelFitError(f"kv_type must be one of {', '.join(_KV_BYTES)}; got {kv_type!r}.")
    _checked(n_ctx, "n_ctx", 1, _MAX_CTX)
    _checked(n_batch, "n_batch", 1, _MAX_BATCH)
    shape = _shape(info)
    cells = _pad(n_ctx, CTX_PAD)
    ubatch = min(n_batch, cells)
    per_cell_bytes, per_cell_elems = _KV_BYTES[kv_type]

    def layer_kv(n_cells: int) -> int:
        elements = n_cells * shape.kv_heads * shape.head_dim * 2  # K and V
        return -(-elements * per_cell_bytes // per_cell_elems)

    swa_cells = cells
    if shape.window and not swa_full:
        swa_cells = _pad(min(cells, shape.window + ubatch), CTX_PAD)
    full_kv, swa_kv = layer_kv(cells), layer_kv(swa_cells)
    swa_layers = shape.pattern.swa_layers_below(shape.layers) if shape.pattern else 0
    kv = swa_layers * swa_kv + (shape.layers - swa_layers) * full_kv

    flash = flash_attn or kv_type != "f16"  # llama.cpp needs flash attention for a quantized V cache
    # The attention stage holds the KQ masks (f32, or f16 under flash attention; a second one for
    # the sliding-window cache) and, without flash attention, the f32 scores of every head.
    mask = 2 if flash else 4
    attention = (cells + (swa_cells if shape.pattern else 0)) * ubatch * mask
    attention += 0 if flash else cells * ubatch * shape.heads * 4
    logits = shape.vocab * ubatch * 4
    ffn = ubatch * shape.embd * 4 * 8  # gate and up projections, n_ff ~ 3.5-4 x n_embd
    compute = max(attention, logits, ffn) + ubatch * shape.embd * 4 * 4

    body = shape.weights + kv + compute
    estimate = MemoryEstimate(shape.weights, kv, compute, _with_overhead(body) - body)
    return _Plan(shape, n_ctx, estimate, full_kv, swa_kv)


def estimate_memory(
    info: ModelInfo,
    *,
    n_ctx: int,
    kv_type: KvCacheType = "f16",
    n_batch: int = 512,
    flash_attn: bool = False,
    swa_full: bool = False,
) -> MemoryEstimate:
    """Memory the whole model needs at ``n_ctx`` (padded up to 256 as llama.cpp does).

    ``n_batch`` is the micro-batch llama.cpp evaluates at once (llama-cpp-python's ``n_ubatch``,
    ``min(n_batch, 512)``). ``swa_full`` gives sliding-window layers the whole context, which is
    llama-cpp-python's default; llama.cpp's own tools default to the small window cache.
    """
    return _plan(info, n_ctx, kv_type, n_batch, flash_attn, swa_full).estimate


def default_context(info: ModelInfo, *, max_default_ctx: int = DEFAULT_MAX_CTX) -> int:
    """The trained context, capped: a 1M-token model still starts at ``max_default_ctx``."""
    cap = _checked(max_default_ctx, "max_default_ctx", 1, _MAX_CTX)
    trained = _optional(info.context_length, 1 << 40)
    return min(trained or cap, cap)


def _gb(nbytes: int) -> str:
    return f"{nbytes / GIB:.1f}"


def _gb_rounded(nbytes: int) -> str:
    value = nbytes / GIB
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _card_size(total_bytes: int) -> str:
    return f"{max(1, round(total_bytes / GIB))} GB GPU"


# Approximate bits per weight of llama.cpp quantizations, largest first.
_QUANT_BITS: tuple[tuple[str, float], ...] = (
    ("Q8_0", 8.5),
    ("Q6_K", 6.56),
    ("Q5_K_M", 5.69),
    ("Q4_K_M", 4.89),
    ("IQ4_XS", 4.25),
    ("Q3_K_M", 3.91),
    ("IQ3_XXS", 3.06),
    ("IQ2_M", 2.7),
)


def _smaller_quant(info: ModelInfo, plan: _Plan, free: int, sides: int) -> str | None:
    """The largest quantization whose file would fit ``free`` bytes split over ``sides`` devices
    (GPU and RAM each carry a compute buffer and the base overhead)."""
    est = plan.estimate
    weights = est.weights_bytes
    params = info.parameter_count if isinstance(info.parameter_count, int) else 0
    if params <= 0:
        stated = dict(_QUANT_BITS).get((info.quantization or "").upper())
        if stated is None:
            return "Q3_K_M"
        params = int(weights * 8 / stated)
    if params <= 0 or weights <= 0:
        return None
    fixed = est.kv_bytes + sides * est.compute_bytes
    budget = (free - sides * OVERHEAD_BASE) / (1 + OVERHEAD_FRACTION) - fixed
    current_bits = weights * 8 / params
    for name, bits in _QUANT_BITS:
        if bits < current_bits * 0.97 and params * bits / 8 <= budget:
            return name
    return None


def _verdict(info: ModelInfo, plan: _Plan, hw: HardwareInfo) -> FitVerdict:
    est = plan.estimate
    layers = plan.shape.layers
    ram_free = max(0, hw.ram_free_bytes)
    gpu = hw.largest_gpu
    if gpu is not None and est.total <= gpu.free_bytes and ram_free >= OVERHEAD_BASE:
        message = f"Fits entirely in the {_card_size(gpu.total_bytes)} ({_gb(est.total)} GB needed): fast."
        return FitVerdict("full_gpu", layers + 1, plan.n_ctx, "fast", est, est.total, OVERHEAD_BASE, message)

    on_gpu = 0
    if gpu is not None:
        low, high = 0, layers  # the largest n whose share fits the free VRAM
        while low < high:
            mid = (low + high + 1) // 2
            low, high = (mid, high) if plan.vram_for(mid) <= gpu.free_bytes else (low, mid - 1)
        on_gpu = low
    if gpu is not None and on_gpu > 0 and plan.ram_for(on_gpu) <= ram_free:
        vram, ram = plan.vram_for(on_gpu), plan.ram_for(on_gpu)
        if on_gpu / layers >= PARTIAL_SLOW_MIN_GPU_FRACTION:
            speed: SpeedClass = "slow"
            message = (
                f"{on_gpu} of {layers + 1} layers on the GPU, the rest in RAM: "
                "expect a big slowdown — about a few tokens/s."
            )
        else:
            speed = "very_slow"
            message = (
                f"Only {on_gpu} of {layers + 1} layers fit on the {_card_size(gpu.total_bytes)}, the rest "
                "runs from RAM: expect a crawl — about 1-2 tokens/s. A smaller quantization or model "
                "that fits the GPU will be many times faster."
            )
        return FitVerdict("partial_gpu", on_gpu, plan.n_ctx, speed, est, vram, ram, message)

    if on_gpu == 0 and est.total <= ram_free:
        if est.weights_bytes <= CPU_USABLE_MAX_WEIGHTS:
            speed, pace = "usable", "usable — about 5-10 tokens/s"
        elif est.weights_bytes <= CPU_SLOW_MAX_WEIGHTS:
            speed, pace = "slow", "slow — about 2-5 tokens/s"
        else:
            speed, pace = "very_slow", "very slow — about a token a second or less"
        where = (
            "No usable GPU"
            if gpu is None
            else f"The {_card_size(gpu.total_bytes)} has too little free memory for even one layer"
        )
        message = (
            f"{where}: runs on the CPU from RAM ({_gb(est.total)} GB of {_gb(ram_free)} GB free): {pace}."
        )
        return FitVerdict("cpu_only", 0, plan.n_ctx, speed, est, 0, est.total, message)

    free = ram_free + (gpu.free_bytes if gpu is not None else 0)
    quant = _smaller_quant(info, plan, free, 1 if gpu is None else 2)
    options = [f"a smaller quantization such as {quant}"] if quant else []
    if est.kv_bytes > est.total // 4:
        options.append("a shorter context")
    options.append("a smaller model")
    advice = "Pick " + (", ".join(options[:-1]) + " or " if len(options) > 1 else "") + options[-1] + "."
    message = f"Does not fit: needs {_gb_rounded(est.total)} GB, {_gb_rounded(free)} GB free. {advice}"
    return FitVerdict("will_not_fit", 0, plan.n_ctx, "very_slow", est, 0, est.total, message)


def fit_model(
    info: ModelInfo,
    hw: HardwareInfo,
    *,
    n_ctx: int | None = None,
    kv_type: KvCacheType = "f16",
    max_default_ctx: int = DEFAULT_MAX_CTX,
    n_batch: int = 512,
    flash_attn: bool = False,
    swa_full: bool = False,
) -> FitVerdict:
    """Where the model would run on ``hw`` at ``n_ctx`` (default: the capped trained context)."""
    ctx = n_ctx if n_ctx is not None else default_context(info, max_default_ctx=max_default_ctx)
    return _verdict(info, _plan(info, ctx, kv_type, n_batch, flash_attn, swa_full), hw)


def auto_load_settings(
    info: ModelInfo,
    hw: HardwareInfo,
    *,
    n_ctx: int | None = None,
    kv_type: KvCacheType = "f16",
    n_batch: int = 512,
    flash_attn: bool = False,
    swa_full: bool = False,
) -> tuple[int, int]:
    """``(gpu_layers, n_ctx)`` for the loader.

    A default context is halved (down to 2048) before any layer leaves the GPU, since a shorter
    context costs far less speed than layers in RAM. A context the user asked for is kept and
    only the layers adapt. Raises ``ModelTooLarge`` when nothing fits.
    """

    def fit(ctx: int | None) -> FitVerdict:
        return fit_model(
            info, hw, n_ctx=ctx, kv_type=kv_type, n_batch=n_batch, flash_attn=flash_attn, swa_full=swa_full
        )

    first = fit(n_ctx)
    if first.kind == "full_gpu" or (n_ctx is not None and first.kind != "will_not_fit"):
        return first.gpu_layers, first.n_ctx
    tried = [first]
    ctx = first.n_ctx
    while n_ctx is None and ctx > MIN_AUTO_CTX:
        ctx = max(ctx // 2, MIN_AUTO_CTX)
        verdict = fit(ctx)
        if verdict.kind == "full_gpu":
            return verdict.gpu_layers, verdict.n_ctx
        tried.append(verdict)
    if tried[-1].kind == "partial_gpu":
        return tried[-1].gpu_layers, tried[-1].n_ctx
    for verdict in tried:  # largest context first
        if verdict.kind == "cpu_only":
            return 0, verdict.n_ctx
    raise ModelTooLarge(first.message)
