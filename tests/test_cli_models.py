"""``kataribe models`` against a fake Hugging Face Hub."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kataribe.engine.default_model import default_model_path
from tests.conftest import VENV_BIN
from tests.fakehub import FakeHub
from tests.test_api_models import REPO, tiny_gguf


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    tiny = tiny_gguf(tmp_path_factory.mktemp("cli-hub") / "tiny.gguf")
    fake = FakeHub().start()
    fake.add_repo(
        REPO,
        {"tiny-model.Q8_0.gguf": tiny, "SmolLM2-135M-Instruct.Q4_1.gguf": default_model_path()},
        downloads=5,
    )
    yield fake
    fake.stop()


def models(*args: str, hub: FakeHub, data: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KATARIBE_DATA_DIR": str(data), "KATARIBE_HF_ENDPOINT": hub.url, "COLUMNS": "200"}
    return subprocess.run(
        [str(VENV_BIN / "kataribe"), "models", *args], capture_output=True, text=True, timeout=180, env=env
    )


def test_search_files_pull_list_info_fit_rm(hub: FakeHub, tmp_path: Path) -> None:
    found = models("search", "SmolLM2", hub=hub, data=tmp_path)
    assert found.returncode == 0 and REPO in found.stdout
    files = models("files", REPO, hub=hub, data=tmp_path)
    assert "Q8_0" in files.stdout and "Q4_1" in files.stdout
    pulled = models("pull", REPO, "tiny-model.Q8_0.gguf", hub=hub, data=tmp_path)
    assert pulled.returncode == 0, pulled.stderr
    assert "Added model" in pulled.stdout
    assert (tmp_path / "models" / REPO.replace("/", "__") / "tiny-model.Q8_0.gguf").is_file()
    listed = models("list", hub=hub, data=tmp_path)
    assert "built in" in listed.stdout and "tiny" in listed.stdout.lower()
    model_id = pulled.stdout.split("Added model ")[1].split(":")[0]
    info = models("info", model_id, hub=hub, data=tmp_path)
    assert '"quantization": "Q8_0"' in info.stdout
    fit = models("fit", str(default_model_path()), hub=hub, data=tmp_path)
    assert fit.returncode == 0 and ("cpu_only" in fit.stdout or "gpu" in fit.stdout)
    removed = models("rm", model_id, "--delete-file", hub=hub, data=tmp_path)
    assert removed.returncode == 0
    assert not (tmp_path / "models" / REPO.replace("/", "__") / "tiny-model.Q8_0.gguf").exists()


def test_errors_are_one_clear_line(hub: FakeHub, tmp_path: Path) -> None:
    missing = models("files", "nobody/nothing", hub=hub, data=tmp_path)
    assert missing.returncode == 2 and "Error:" in missing.stderr
    offline = subprocess.run(
        [str(VENV_BIN / "kataribe"), "models", "search", "x"],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "KATARIBE_DATA_DIR": str(tmp_path),
            "HF_HUB_OFFLINE": "1",
            "KATARIBE_HF_ENDPOINT": hub.url,
        },
    )
    assert offline.returncode == 2 and "offline" in offline.stderr.lower()


def test_recommended_lists_the_picks(hub: FakeHub, tmp_path: Path) -> None:
    out = models("recommended", "--use", "novel", hub=hub, data=tmp_path)
    assert out.returncode == 0 and "Vecteus" in out.stdout
