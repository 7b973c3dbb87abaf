"""llama.cpp quantization names and split parts as they appear in GGUF file names (pure)."""

from __future__ import annotations

import re

from kataribe.errors import InvalidRequest

# Approximate bits per weight of each quant as a whole file (mixes included), from llama.cpp's
# quantize table; used to estimate whether a model fits, never to compute exact sizes.
# Aliases (Q3_K = Q3_K_M, ...) and the community "_L"/"_XL" variants (output and embedding
# tensors kept at Q8_0) are listed because Hub repositories use them in file names.
_BITS_PER_WEIGHT: dict[str, float] = {
    "IQ1_S": 1.56,
    "TQ1_0": 1.69,
    "IQ1_M": 1.75,
    "IQ2_XXS": 2.06,
    "TQ2_0": 2.06,
    "IQ2_XS": 2.31,
    "IQ2_S": 2.5,
    "IQ2_M": 2.7,
    "Q2_K_S": 2.9,
    "Q2_K": 3.0,
    "Q2_K_L": 3.2,
    "Q2_K_XL": 3.3,
    "IQ3_XXS": 3.06,
    "IQ3_XS": 3.3,
    "IQ3_S": 3.44,
    "Q3_K_S": 3.5,
    "IQ3_M": 3.66,
    "Q3_K": 3.91,
    "Q3_K_M": 3.91,
    "Q3_K_L": 4.27,
    "Q3_K_XL": 4.4,
    "IQ4_XS": 4.25,
    "MXFP4": 4.25,
    "IQ4_NL": 4.5,
    "Q4_0": 4.55,
    "Q4_0_4_4": 4.55,
    "Q4_0_4_8": 4.55,
    "Q4_0_8_8": 4.55,
    "Q4_K_S": 4.58,
    "Q4_K": 4.89,
    "Q4_K_M": 4.89,
    "Q4_K_L": 5.1,
    "Q4_K_XL": 5.1,
    "Q4_1": 5.0,
    "Q5_0": 5.5,
    "Q5_K_S": 5.54,
    "Q5_K": 5.7,
    "Q5_K_M": 5.7,
    "Q5_K_L": 5.9,
    "Q5_K_XL": 5.9,
    "Q5_1": 6.0,
    "Q6_K": 6.56,
    "Q6_K_L": 6.7,
    "Q6_K_XL": 6.9,
    "Q8_0": 8.5,
    "Q8_K_XL": 9.0,
    "BF16": 16.0,
    "F16": 16.0,
    "F32": 32.0,
}

QUANTS: tuple[str, ...] = tuple(sorted(_BITS_PER_WEIGHT, key=lambda q: _BITS_PER_WEIGHT[q]))
"""Every recognized quant, smallest first (stable among equal sizes)."""


class UnknownQuant(InvalidRequest):
    """A quant name that llama.cpp does not define."""


_RANK = {q: i for i, q in enumerate(QUANTS)}

# Longest names first so Q4_K_M wins over Q4_K and Q4_0_4_4 over Q4_0 at the same position.
# A quant must stand alone: not glued to a letter or digit ("bf16" is BF16, never F16), but
# "-", ".", "_" or "/" may surround it.
_QUANT_RE = re.compile(
    r"(?<![a-z0-9])(" + "|".join(sorted(QUANTS, key=len, reverse=True)) + r")(?![a-z0-9])",
    re.IGNORECASE,
)
_SPLIT_RE = re.compile(r"^(?P<stem>.+)-(?P<index>\d{1,5})-of-(?P<count>\d{1,5})\.gguf$", re.IGNORECASE)
_MAX_NAME = 4096


def quant_of(filename: str) -> str | None:
    """The quant named in a GGUF file name (``Model.Q4_K_M.gguf`` -> ``Q4_K_M``), or None.

    When a name holds several (``model-f16-Q4_K_M.gguf``), the last wins: it is the one the
    quantizer appended. A path is searched file name first, then its folders from the inside out.
    """
    if not isinstance(filename, str) or len(filename) > _MAX_NAME:
        return None
    for part in reversed(filename.replace("\\", "/").split("/")):
        matches = _QUANT_RE.findall(part)
        if matches:
            return str(matches[-1]).upper()
    return None


def split_of(filename: str) -> tuple[str, int, int] | None:
    """``(stem, index, count)`` of a llama.cpp split part (``m-00002-of-00003.gguf``), else None.

    Impossible numbering (part 0, part 4 of 3) is not a split part.
    """
    if not isinstance(filename, str) or len(filename) > _MAX_NAME:
        return None
    match = _SPLIT_RE.match(filename)
    if match is None:
        return None
    index, count = int(match["index"]), int(match["count"])
    if not 1 <= index <= count:
        return None
    return match["stem"], index, count


def bits_per_weight(quant: str) -> float:
    """Approximate bits per weight of a quant (``Q4_K_M`` -> 4.89), for fit estimates.

    Raises ``UnknownQuant`` for a name that is not a known quant; ``quant_of`` only returns known ones.
    """
    known = _BITS_PER_WEIGHT.get(quant.upper()) if isinstance(quant, str) else None
    if known is None:
        raise UnknownQuant(
            f"{str(quant)[:40]!r} is not a known llama.cpp quant. Use one of: {', '.join(QUANTS)}.",
            param="quant",
        )
    return known


def quant_rank(quant: str | None) -> int:
    """Sort key from smallest to largest quant; unknown or missing quants sort after every known one."""
    if not isinstance(quant, str):
        return len(QUANTS)
    return _RANK.get(quant.upper(), len(QUANTS))
