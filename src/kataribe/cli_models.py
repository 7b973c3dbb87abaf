"""``kataribe models``: search, files, pull, list, info, fit, add, rm, load."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from kataribe.errors import KataribeError
from kataribe.library.download import DownloadProgress
from kataribe.settings import load_settings

models_app = typer.Typer(help="Find, download, inspect and fit GGUF models.", no_args_is_help=True)
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def _library() -> Any:
    from kataribe.services.models import ModelLibrary
    from kataribe.store.db import Database, sqlite_url

    settings = load_settings()
    db = Database(settings.database_url or sqlite_url(settings.data_dir))
    db.migrate()
    library = ModelLibrary(db, settings)
    library.ensure_built_in()
    return library


def _size(n: int | None) -> str:
    if not n:
        return "-"
    return f"{n / 1024**3:.2f} GB" if n >= 1024**3 else f"{n / 1024**2:.0f} MB"


def _run(fn: Any) -> Any:
    try:
        return fn()
    except KataribeError as exc:
        err_console.print(f"[bold red]Error:[/] {exc.message}")
        raise typer.Exit(2) from None


def _resolve(library: Any, ref: str) -> int:
    """A model id, or a path (registered on the fly)."""
    if ref.isdigit():
        return int(ref)
    return int(library.add(Path(ref))["id"])


@models_app.command()
def search(
    query: Annotated[str | None, typer.Argument()] = None,
    sort: Annotated[Literal["downloads", "likes", "recent"], typer.Option()] = "downloads",
    limit: int = 20,
) -> None:
    """Search Hugging Face for GGUF models."""
    repos = _run(lambda: _library().search(query, sort=sort, limit=limit))
    table = Table("repository", "downloads", "likes", "updated")
    for r in repos:
        table.add_row(
            r["id"] + (" (gated)" if r["gated"] else ""),
            str(r["downloads"]),
            str(r["likes"]),
            (r["last_modified"] or "")[:10],
        )
    console.print(table)


@models_app.command()
def files(repo: str) -> None:
    """List a repository's GGUF models: quantization, size, and whether they fit this machine."""
    groups = _run(lambda: _library().files(repo))
    table = Table("model", "quant", "size", "parts", "fit")
    for g in groups:
        table.add_row(
            g["name"],
            g["quant"] or "?",
            _size(g["total_size"]),
            str(len(g["files"])),
            "projector" if g["is_projector"] else g["fit"],
        )
    console.print(table)


@models_app.command()
def pull(
    repo: str, file: Annotated[str, typer.Argument(help="A model name or file path from `files`.")]
) -> None:
    """Download a model (resumable; sha256-checked) into the library. Ctrl+C stops; pull again to resume."""
    library = _library()
    cancel = threading.Event()
    columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("download", total=None)

        def on_progress(p: DownloadProgress) -> None:
            progress.update(task, completed=p.downloaded, total=p.total)

        try:
            entry = _run(lambda: library.pull(repo, file, progress=on_progress, cancel=cancel))
        except KeyboardInterrupt:
            cancel.set()
            err_console.print("Stopped. The partial file is kept; run the same pull again to resume.")
            raise typer.Exit(130) from None
    console.print(f"Added model {entry['id']}: {entry['name']} ({_size(entry['size'])}) at {entry['path']}")


@models_app.command()
def recommended(
    use: Annotated[str | None, typer.Option(help="chat, novel or adventure")] = None,
    language: Annotated[str | None, typer.Option(help="ja or en")] = None,
) -> None:
    """Models we suggest, with the quantization, context and prompt template to use."""
    table = Table("name", "repository", "use", "lang", "content", "size", "quant", "template")
    for r in _run(lambda: _library().recommendations(use=use, language=language)):
        table.add_row(
            r["name"],
            r["hf_repo"],
            ",".join(r["use"]),
            ",".join(r["languages"]),
            r["censorship"],
            r["parameters"],
            r["suggested_quant"],
            r["prompt_template"],
        )
    console.print(table)


@models_app.command("list")
def list_models() -> None:
    """Models in the library."""
    table = Table("id", "name", "quant", "size", "path")
    for m in _run(lambda: _library().list_all()):
        table.add_row(
            str(m["id"]),
            m["name"],
            m["quantization"] or "?",
            _size(m["size"]),
            m["path"] if m["exists"] else f"[red]{m['path']} (missing)[/]",
        )
    console.print(table)


@models_app.command()
def info(ref: Annotated[str, typer.Argument(help="A model id or a GGUF path")]) -> None:
    """Read a GGUF's header: architecture, parameters, context, layers, heads, quantization, template."""
    library = _library()
    view = _run(lambda: library.view(_resolve(library, ref)))
    console.print_json(json.dumps(view.get("info", view)))


@models_app.command()
def fit(ref: str, ctx: Annotated[int | None, typer.Option("--ctx-size", "-c")] = None) -> None:
    """Will it fit? Full GPU, partial offload, CPU only, or not at all — and how fast."""
    library = _library()
    verdict = _run(lambda: library.fit(_resolve(library, ref), n_ctx=ctx))
    console.print(
        f"[bold]{verdict['kind']}[/] · {verdict['gpu_layers']} GPU layers · context {verdict['n_ctx']} · "
        f"{verdict['speed_class']}"
    )
    console.print(verdict["message"])


@models_app.command()
def add(path: Path, name: Annotated[str | None, typer.Option()] = None) -> None:
    """Register a GGUF file where it is (no copy)."""
    m = _run(lambda: _library().add(path, name=name))
    console.print(f"Added model {m['id']}: {m['name']} ({_size(m['size'])})")


@models_app.command()
def rm(model_id: int, delete_file: Annotated[bool, typer.Option("--delete-file")] = False) -> None:
    """Remove a model from the library (and its file, if Kataribe downloaded it)."""
    _run(lambda: _library().remove(model_id, delete_file=delete_file))
    console.print(f"Removed model {model_id}.")


@models_app.command()
def load(
    model_id: int,
    server: Annotated[str, typer.Option(help="The running Kataribe server.")] = "http://127.0.0.1:5001",
    api_key: Annotated[str | None, typer.Option("--api-key")] = None,
) -> None:
    """Switch the model of a running server."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        r = httpx.post(f"{server.rstrip('/')}/api/models/{model_id}/load", headers=headers, timeout=600)
    except httpx.HTTPError as exc:
        err_console.print(f"[bold red]Error:[/] cannot reach {server}: {exc}")
        raise typer.Exit(2) from None
    if r.status_code >= 400:
        err_console.print(f"[bold red]Error:[/] {r.json().get('error', {}).get('message', r.text)}")
        raise typer.Exit(2)
    console.print(f"Loaded {r.json()['name']}.")
