"""What this machine offers a model: NVIDIA GPUs (via nvidia-smi), RAM and CPU cores."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil

MIB = 1024 * 1024

NVIDIA_SMI_COMMAND = (
    "nvidia-smi",
    "--query-gpu=name,memory.total,memory.free",
    "--format=csv,noheader,nounits",
)
NVIDIA_SMI_TIMEOUT_S = 5.0

_MAX_GPU_LINES = 64
_MAX_GPU_MIB = 1 << 24  # 16 TiB: anything larger is a parsing accident, not a card
_MAX_NAME = 200

CommandRunner = Callable[..., Any]
"""``subprocess.run`` or a stand-in with the same call shape (tests feed canned output)."""


@dataclass(frozen=True)
class GpuInfo:
    name: str
    total_bytes: int
    free_bytes: int


@dataclass
class HardwareInfo:
    gpus: list[GpuInfo]
    ram_total_bytes: int
    ram_free_bytes: int
    """psutil's "available" memory: what a new process can take without swapping."""
    cpu_physical_cores: int
    notes: list[str] = field(default_factory=list)
    """Plain-language remarks on what could not be detected, for the UI to show."""

    @property
    def largest_gpu(self) -> GpuInfo | None:
        """The GPU with the most free memory: llama.cpp puts a single-GPU load there."""
        return max(self.gpus, key=lambda g: (g.free_bytes, g.total_bytes), default=None)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    return ""


def _parse_mib(text: str) -> int | None:
    text = text.strip()
    if not text.isascii() or not text.isdigit():
        return None  # "[N/A]", "[Insufficient Permissions]", garbage
    value = int(text)
    return value if value <= _MAX_GPU_MIB else None


def _parse_nvidia_smi(output: str) -> tuple[list[GpuInfo], list[str]]:
    gpus: list[GpuInfo] = []
    notes: list[str] = []
    lines = [line for line in output.splitlines() if line.strip()]
    for line in lines[:_MAX_GPU_LINES]:
        # The name comes first and could itself hold a comma, so split from the right.
        parts = line.rsplit(",", 2)
        if len(parts) != 3:
            continue
        name = parts[0].strip()[:_MAX_NAME] or "NVIDIA GPU"
        total, free = _parse_mib(parts[1]), _parse_mib(parts[2])
        if total is None or free is None:
            notes.append(
                f"The GPU '{name}' does not report its memory (shared or unified memory?); "
                "it is not counted for GPU offload."
            )
            continue
        gpus.append(GpuInfo(name=name, total_bytes=total * MIB, free_bytes=min(free, total) * MIB))
    if lines and not gpus and not notes:
        notes.append("nvidia-smi answered something Kataribe cannot read; no GPU is counted.")
    return gpus, notes


def _detect_nvidia(run: CommandRunner) -> tuple[list[GpuInfo], list[str]]:
    try:
        result = run(
            list(NVIDIA_SMI_COMMAND),
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError:
        return [], []
    except subprocess.TimeoutExpired:
        return [], [f"nvidia-smi did not answer within {NVIDIA_SMI_TIMEOUT_S:g} s; no GPU is counted."]
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        return [], [f"nvidia-smi could not be run ({type(exc).__name__}); no GPU is counted."]
    returncode = getattr(result, "returncode", 1)
    if returncode != 0:
        detail = (_as_text(getattr(result, "stdout", "")) + _as_text(getattr(result, "stderr", ""))).strip()
        first_line = detail.splitlines()[0][:200] if detail else "no message"
        return [], [f"nvidia-smi failed ({first_line}); no GPU is counted. Is the NVIDIA driver loaded?"]
    return _parse_nvidia_smi(_as_text(getattr(result, "stdout", "")))


def _not_detected_note() -> str:
    if sys.platform == "darwin":
        return (
            "No NVIDIA GPU found. Apple GPUs (Metal, unified memory) are not measured yet: "
            "the estimates assume the model runs from RAM."
        )
    return (
        "No NVIDIA GPU found. AMD (ROCm), Intel and other GPUs are not detected yet: "
        "the estimates assume the model runs from RAM."
    )


def detect_hardware(*, run: CommandRunner = subprocess.run) -> HardwareInfo:
    """Look at this machine. Never raises: a missing or broken nvidia-smi means no GPU."""
    gpus, notes = _detect_nvidia(run)
    if not gpus:
        notes.append(_not_detected_note())
    memory = psutil.virtual_memory()
    cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    return HardwareInfo(
        gpus=gpus,
        ram_total_bytes=int(memory.total),
        ram_free_bytes=int(memory.available),
        cpu_physical_cores=int(cores),
        notes=notes,
    )
