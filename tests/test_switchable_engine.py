"""Switching the running model: the old one unloads, a failed load puts it back, 503 meanwhile."""

from __future__ import annotations

from pathlib import Path

import pytest

from kataribe.engine.base import GenerationRequest, SamplingParams
from kataribe.engine.llamacpp import EmbeddedConfig, EmbeddedEngine
from kataribe.engine.switchable import SwitchableEngine
from kataribe.errors import ModelLoadError


def test_switch_then_failed_switch_restores_the_previous_model(model_path: Path, tmp_path: Path) -> None:
    first = EmbeddedEngine(EmbeddedConfig(model_path=model_path, n_ctx=512, n_threads=2))
    holder = SwitchableEngine(first)
    holder.switch(
        lambda: EmbeddedEngine(EmbeddedConfig(model_path=model_path, n_ctx=1024, n_threads=2)), label="b"
    )
    assert holder.capabilities().n_ctx == 1024 and holder.label == "b"
    with pytest.raises(ModelLoadError):
        holder.switch(lambda: EmbeddedEngine(EmbeddedConfig(model_path=tmp_path / "missing.gguf")), label="c")
    # the 1024-context model came back and still generates
    assert holder.capabilities().n_ctx == 1024
    done = holder.generate(
        GenerationRequest(prompt="Hi", max_tokens=2, sampling=SamplingParams(temperature=0))
    )
    assert done.collect().finish_reason in ("length", "stop")
    holder.close()


def test_jobs_of_the_unloaded_model_end_as_cancelled(model_path: Path) -> None:
    holder = SwitchableEngine(EmbeddedEngine(EmbeddedConfig(model_path=model_path, n_ctx=512, n_threads=2)))
    stream = holder.generate(GenerationRequest(prompt="Story:", max_tokens=400))
    holder.switch(lambda: EmbeddedEngine(EmbeddedConfig(model_path=model_path, n_ctx=512, n_threads=2)))
    assert stream.collect().finish_reason == "cancelled"
    holder.close()
