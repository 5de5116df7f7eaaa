"""`neko serve`: load a model once and answer correction requests over HTTP until stopped."""

from __future__ import annotations

import socket
from typing import Annotated

import typer

from neko.cli_support import DeviceOption, ModelOption, start_up
from neko.errors import NekoError

GRACEFUL_SHUTDOWN_S = 30


def serve_command(
    model: ModelOption = None,
    host: Annotated[str, typer.Option("--host", help="the address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="the port to listen on")] = 8000,
    device: DeviceOption = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="inputs per forward pass")] = 16,
    max_batch: Annotated[
        int, typer.Option("--max-batch", min=1, help="examples of concurrent requests per model call")
    ] = 64,
    max_wait_ms: Annotated[
        float, typer.Option("--max-wait-ms", min=0, help="how long a request waits for others to batch with")
    ] = 10.0,
    max_queue: Annotated[
        int, typer.Option("--max-queue", min=1, help="examples that may wait; beyond, requests get 429")
    ] = 1024,
) -> None:
    """Serve corrections: POST /v1/correct, GET /health, /metrics, /docs, and a web page at /.

    SIGTERM or Ctrl-C stops taking connections, answers the requests in flight, then exits.
    """
    with start_up():
        import uvicorn

        from neko.correct import Corrector
        from neko.correct.model_dir import check_model_files, read_model_info, resolve_model_dir
        from neko.resources import DEMO_EXAMPLES, candidates
        from neko.serve.app import ServeSettings, create_app

    model_dir = resolve_model_dir(model)
    check_model_files(model_dir)
    read_model_info(model_dir)
    if max_batch < batch_size:
        raise NekoError(f"--max-batch ({max_batch}) must be at least --batch-size ({batch_size})")
    check_listen(host, port)
    settings = ServeSettings(
        max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue, batch_size=batch_size
    )
    examples = next((path for path in candidates(DEMO_EXAMPLES) if path.is_file()), None)

    def load() -> Corrector:
        """Load the model; the collector is back on (its objects frozen) while the server runs."""
        with start_up():
            return Corrector.from_pretrained(model_dir, device=device)

    failure: list[str] = []

    def stop(reason: str) -> None:
        failure.append(reason)
        server.should_exit = True

    app = create_app(load, settings, examples_file=examples, on_load_failure=stop)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=host, port=port, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, log_level="info"
        )
    )
    typer.echo(f"neko serve: {model_dir} on http://{host}:{port}/ (loading the model)", err=True)
    server.run()
    if failure:
        raise NekoError(f"the model failed to load: {failure[0]}")


def check_listen(host: str, port: int) -> None:
    """A one-line error, before the server starts, when it could not listen on `host`:`port` (an
    unknown address, a port in use or one it may not take)."""
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            probe.bind(address)
    except OSError as error:
        raise NekoError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
