"""The ``kataribe`` command: serve, chat, complete, info. A thin layer over the engine and server."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from kataribe import __version__
from kataribe.engine.base import ChatMessage, Engine, GenerationRequest, SamplingParams, TextDelta
from kataribe.errors import KataribeError
from kataribe.settings import Settings, load_settings

app = typer.Typer(
    name="kataribe",
    help="Kataribe (語り部): run a local LLM and serve it over OpenAI- and KoboldCpp-compatible APIs.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

ModelOpt = Annotated[
    Path | None, typer.Option("--model", "-m", help="GGUF file (default: embedded SmolLM2).")
]
RemoteOpt = Annotated[
    str | None, typer.Option("--remote-url", help="Use an OpenAI-compatible server instead.")
]
RemoteKeyOpt = Annotated[str | None, typer.Option("--remote-api-key", help="API key for the remote server.")]
RemoteModelOpt = Annotated[
    str | None, typer.Option("--remote-model", help="Model name on the remote server.")
]
CtxOpt = Annotated[int | None, typer.Option("--ctx-size", "-c", min=16, help="Context length in tokens.")]
ThreadsOpt = Annotated[
    int | None, typer.Option("--threads", "-t", min=1, help="CPU threads (default: cores).")
]
GpuOpt = Annotated[int | None, typer.Option("--gpu-layers", help="Layers on the GPU (-1: all).")]


def _settings(**options: Any) -> Settings:
    return load_settings(**options)


def _engine_settings(
    model: Path | None,
    remote_url: str | None,
    remote_api_key: str | None,
    remote_model: str | None,
    ctx_size: int | None,
    threads: int | None,
    gpu_layers: int | None,
    **extra: Any,
) -> Settings:
    return _settings(
        model=model,
        remote_url=remote_url,
        remote_api_key=remote_api_key,
        remote_model=remote_model,
        n_ctx=ctx_size,
        n_threads=threads,
        n_gpu_layers=gpu_layers,
        **extra,
    )


def _fail(exc: KataribeError) -> typer.Exit:
    err_console.print(f"[bold red]Error:[/] {exc.message}")
    return typer.Exit(code=2)


def _open(settings: Settings) -> Engine:
    from kataribe.services.models import open_configured_engine

    return open_configured_engine(settings)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 5001, KoboldCpp's).")] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            help="Require this key on every request (it shows in `ps`: prefer --api-key-file or "
            "KATARIBE_API_KEY).",
        ),
    ] = None,
    api_key_file: Annotated[
        Path | None,
        typer.Option(
            "--api-key-file", help="Read the API key from this file's first line (KATARIBE_API_KEY_FILE)."
        ),
    ] = None,
    allowed_hosts: Annotated[
        str | None, typer.Option("--allowed-hosts", help="Extra Host names to accept, comma-separated.")
    ] = None,
    cors_origins: Annotated[
        str | None,
        typer.Option(
            "--cors-origins",
            help="Web origins that may call the OpenAI/KoboldCpp/Ollama/llama.cpp routes from a browser, "
            "comma-separated (pages on this machine always may), e.g. https://lite.koboldai.net.",
        ),
    ] = None,
    model_alias: Annotated[
        str | None, typer.Option("--model-alias", help="Model name shown to clients.")
    ] = None,
    model: ModelOpt = None,
    remote_url: RemoteOpt = None,
    remote_api_key: RemoteKeyOpt = None,
    remote_model: RemoteModelOpt = None,
    ctx_size: CtxOpt = None,
    threads: ThreadsOpt = None,
    gpu_layers: GpuOpt = None,
) -> None:
    """Start the server (OpenAI API at /v1, KoboldCpp API at /api)."""
    import uvicorn

    from kataribe.api.app import check_exposure, create_app

    try:
        settings = _engine_settings(
            model,
            remote_url,
            remote_api_key,
            remote_model,
            ctx_size,
            threads,
            gpu_layers,
            host=host,
            port=port,
            api_key=api_key,
            api_key_file=api_key_file,
            allowed_hosts=allowed_hosts,
            cors_origins=cors_origins,
            model_alias=model_alias,
        )
        check_exposure(settings)  # before the (slow) model load
        engine = _open(settings)
        application = create_app(settings, engine)
    except KataribeError as exc:
        raise _fail(exc) from None
    caps = engine.capabilities()
    shown_host = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"http://{shown_host}:{settings.port}"
    console.print(
        f"[bold]Kataribe {__version__}[/] · {caps.engine} · model [cyan]{caps.model}[/] · "
        f"context {caps.n_ctx}"
    )
    console.print(f"OpenAI API: {url}/v1   KoboldCpp API: {url}/api   health: {url}/health")
    if settings.api_key:
        console.print(f"Browser app: {url}/ (log in once with the API key)")
    if api_key:
        err_console.print(
            "[yellow]Note:[/] a key given with --api-key shows in the process list (ps); "
            "--api-key-file or KATARIBE_API_KEY keep it out."
        )
    try:
        uvicorn.run(
            application,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            timeout_graceful_shutdown=5,
        )
    finally:
        engine.close()


def _stream_to_console(engine: Engine, request: GenerationRequest) -> str:
    stream = engine.generate(request)
    try:
        for event in stream:
            if isinstance(event, TextDelta):
                sys.stdout.write(event.text)
                sys.stdout.flush()
            else:
                sys.stdout.write("\n")
                if event.finish_reason == "error":
                    err_console.print(f"[red]Generation failed:[/] {event.error}")
                t = event.timings.as_dict()
                err_console.print(
                    f"[dim]{t['predicted_n']} tokens · {t['predicted_per_second']:.1f} tok/s · "
                    f"prompt {t['prompt_n']} evaluated, {t['cache_n']} cached[/]"
                )
                return event.text
    except KeyboardInterrupt:
        stream.cancel()
        for event in stream:  # drain until the engine confirms
            if not isinstance(event, TextDelta):
                sys.stdout.write("\n")
                return event.text
    return ""


CHAT_HELP = "/regen  regenerate the last reply · /system TEXT  set the system prompt · /clear · /quit"


@app.command()
def chat(
    system: Annotated[str | None, typer.Option(help="System prompt.")] = None,
    temperature: Annotated[float, typer.Option(min=0)] = 0.7,
    max_tokens: Annotated[int, typer.Option(min=1)] = 512,
    model: ModelOpt = None,
    remote_url: RemoteOpt = None,
    remote_api_key: RemoteKeyOpt = None,
    remote_model: RemoteModelOpt = None,
    ctx_size: CtxOpt = None,
    threads: ThreadsOpt = None,
    gpu_layers: GpuOpt = None,
) -> None:
    """Chat in the terminal with streaming replies."""
    try:
        engine = _open(
            _engine_settings(model, remote_url, remote_api_key, remote_model, ctx_size, threads, gpu_layers)
        )
    except KataribeError as exc:
        raise _fail(exc) from None
    history: list[ChatMessage] = []
    console.print(f"[bold]Kataribe chat[/] · {engine.model_name}   [dim]{CHAT_HELP}[/]")
    sampling = SamplingParams(temperature=temperature)

    def reply() -> None:
        messages = ([ChatMessage("system", system)] if system else []) + history
        try:
            text = _stream_to_console(
                engine, GenerationRequest(messages=messages, max_tokens=max_tokens, sampling=sampling)
            )
        except KataribeError as exc:
            err_console.print(f"[red]{exc.message}[/]")
            history.pop()
            return
        history.append(ChatMessage("assistant", text))

    try:
        while True:
            try:
                line = input("> ")
            except EOFError:
                break
            if not line.strip():
                continue
            command, _, arg = line.strip().partition(" ")
            if command in ("/quit", "/exit", "/q"):
                break
            if command == "/help":
                console.print(CHAT_HELP)
            elif command == "/clear":
                history.clear()
                console.print("[dim](history cleared)[/]")
            elif command == "/system":
                system = arg.strip() or None
                console.print(f"[dim](system prompt {'set' if system else 'cleared'})[/]")
            elif command in ("/regen", "/regenerate", "/retry"):
                if history and history[-1].role == "assistant":
                    history.pop()
                if not history:
                    console.print("[dim](nothing to regenerate)[/]")
                    continue
                reply()
            elif command.startswith("/"):
                console.print(f"[yellow]Unknown command {command}.[/] {CHAT_HELP}")
            else:
                history.append(ChatMessage("user", line))
                reply()
    finally:
        engine.close()


@app.command()
def complete(
    prompt: Annotated[str, typer.Argument(help="The prompt; '-' reads standard input.")],
    max_tokens: Annotated[int, typer.Option(min=1)] = 200,
    temperature: Annotated[float, typer.Option(min=0)] = 0.7,
    seed: Annotated[int | None, typer.Option()] = None,
    stop: Annotated[list[str] | None, typer.Option(help="Stop string (repeatable).")] = None,
    chat_mode: Annotated[bool, typer.Option("--chat", help="Send as a user chat message.")] = False,
    model: ModelOpt = None,
    remote_url: RemoteOpt = None,
    remote_api_key: RemoteKeyOpt = None,
    remote_model: RemoteModelOpt = None,
    ctx_size: CtxOpt = None,
    threads: ThreadsOpt = None,
    gpu_layers: GpuOpt = None,
) -> None:
    """Complete one prompt and print the result as it streams."""
    text = sys.stdin.read() if prompt == "-" else prompt
    try:
        engine = _open(
            _engine_settings(model, remote_url, remote_api_key, remote_model, ctx_size, threads, gpu_layers)
        )
        request = GenerationRequest(
            prompt=None if chat_mode else text,
            messages=[ChatMessage("user", text)] if chat_mode else None,
            max_tokens=max_tokens,
            sampling=SamplingParams(temperature=temperature, seed=seed),
            stop=stop or [],
        )
        try:
            _stream_to_console(engine, request)
        finally:
            engine.close()
    except KataribeError as exc:
        raise _fail(exc) from None


@app.command()
def info(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    model: ModelOpt = None,
    remote_url: RemoteOpt = None,
    remote_api_key: RemoteKeyOpt = None,
    remote_model: RemoteModelOpt = None,
) -> None:
    """Show the engine and model: architecture, parameters, context, template, quantization."""
    try:
        settings = _settings(
            model=model, remote_url=remote_url, remote_api_key=remote_api_key, remote_model=remote_model
        )
        data = _describe(settings)
    except KataribeError as exc:
        raise _fail(exc) from None
    if as_json:
        console.print_json(json.dumps(data))
        return
    table = Table(show_header=False, box=None)
    for key, value in data.items():
        table.add_row(f"[bold]{key}[/]", str(value))
    console.print(table)


def _describe(settings: Settings) -> dict[str, Any]:
    if settings.remote_url:
        engine = _open(settings)
        try:
            caps = engine.capabilities()
            return {
                "engine": caps.engine,
                "model": caps.model,
                "n_ctx": caps.n_ctx,
                "exact_token_counts": caps.exact_token_counts,
            }
        finally:
            engine.close()
    from kataribe.engine.default_model import default_model_path
    from kataribe.engine.gguf_meta import inspect_gguf
    from kataribe.engine.llamacpp import DEFAULT_CTX_CAP, physical_cores

    path = settings.model or default_model_path()
    info = inspect_gguf(path).summary()
    info["parameters"] = f"{info.pop('parameter_count') / 1e9:.3f}B"
    trained = info["context_length"]
    return {
        "engine": "llama.cpp (embedded)",
        **info,
        "default_context": settings.n_ctx or min(trained or DEFAULT_CTX_CAP, DEFAULT_CTX_CAP),
        "threads": settings.n_threads or physical_cores(),
        "data_dir": str(settings.data_dir),
    }


@app.command()
def version() -> None:
    """Print the version."""
    console.print(__version__)


def main() -> None:
    from kataribe.cli_models import models_app

    app.add_typer(models_app, name="models")
    app()


if __name__ == "__main__":
    main()
