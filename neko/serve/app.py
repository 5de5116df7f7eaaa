"""The ASGI app of `neko serve`: correction over HTTP, with health, metrics, OpenAPI docs and a web page.

The model loads in a thread after the server starts (`/health` answers 503 until it is ready); one
`MicroBatcher` worker then runs `Corrector.correct` on the inputs of concurrent requests together.
Corrections are sent as `dataclasses.asdict` of `neko.correct.Correction`, so fields it gains appear
in the answers as they are.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from neko.correct import Corrector
from neko.data.formats import read_examples
from neko.data.schema import Example
from neko.errors import NekoError
from neko.serve.api import (
    CorrectRequest,
    CorrectResponse,
    ErrorResponse,
    InputError,
    Limits,
    describe_validation_error,
    to_examples,
)
from neko.serve.batching import MicroBatcher, QueueFull
from neko.serve.metrics import CONTENT_TYPE, ServeMetrics

log = logging.getLogger("uvicorn.error")  # uvicorn prints this logger; a library logger stays silent

CORRECT_PATH = "/v1/correct"
DISCONNECT_POLL_S = 0.05
CLIENT_GONE = 499  # nginx's status for a client that closed the connection; nobody receives it


@dataclass(frozen=True)
class ServeSettings:
    """Request limits and batching: `max_batch` examples per model call, gathered for at most
    `max_wait_ms` after the oldest waiting request; at most `max_queue` examples wait;
    `batch_size` is `Corrector.correct`'s (inputs per forward pass)."""

    limits: Limits = field(default_factory=Limits)
    max_batch: int = 64
    max_wait_ms: float = 10.0
    max_queue: int = 1024
    batch_size: int = 16


class _Service:
    """What the endpoints share: the corrector once loaded, its batcher, and the metrics."""

    def __init__(
        self,
        load: Callable[[], Corrector],
        settings: ServeSettings,
        examples: list[Example],
        on_load_failure: Callable[[str], None] | None = None,
    ):
        self.load = load
        self.on_load_failure = on_load_failure
        self.settings = settings
        self.examples = examples
        self.metrics = ServeMetrics()
        self.corrector: Corrector | None = None
        self.batcher: MicroBatcher[Example, dict[str, Any]] | None = None
        self.load_error: str | None = None

    def start(self) -> None:
        threading.Thread(target=self._load, name="neko-load", daemon=True).start()

    def _load(self) -> None:
        try:
            corrector = self.load()
        except Exception as error:
            self.load_error = (
                str(error) if isinstance(error, NekoError) else f"{type(error).__name__}: {error}"
            )
            log.error("the model failed to load: %s", self.load_error)
            if self.on_load_failure is not None:
                self.on_load_failure(self.load_error)
            return
        settings = self.settings
        batcher: MicroBatcher[Example, dict[str, Any]] = MicroBatcher(
            lambda examples: [
                # each answer carries the gate's evidence: why its decision was taken
                asdict(c)
                for c in corrector.correct(examples, batch_size=settings.batch_size, evidence=True)
            ],
            max_batch=settings.max_batch,
            max_wait_s=settings.max_wait_ms / 1000,
            max_queue=settings.max_queue,
            on_batch=self.metrics.record_batch,
        )
        self.metrics.queue_depth.set_function(lambda: batcher.depth)
        batcher.start()
        self.corrector, self.batcher = corrector, batcher
        log.info("ready: %s", corrector.name)

    def stop(self) -> None:
        if self.batcher is not None:
            self.batcher.stop()

    @property
    def model_name(self) -> str:
        return Path(self.corrector.name).name if self.corrector is not None else ""


def create_app(
    load: Callable[[], Corrector],
    settings: ServeSettings = ServeSettings(),
    examples_file: Path | None = None,
    on_load_failure: Callable[[str], None] | None = None,
) -> FastAPI:
    """The app; `load` builds the corrector (in a thread, after start-up); `examples_file` (neko's
    JSONL) holds the examples the web page offers; `on_load_failure` is called with the reason when
    `load` fails (the command stops the server: it would never be ready)."""
    service = _Service(load, settings, read_examples(examples_file) if examples_file else [], on_load_failure)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        yield
        await asyncio.to_thread(service.stop)

    app = FastAPI(
        title="neko",
        summary="Corrects recognizer output (ASR N-best, speech translation, OCR, text errors).",
        lifespan=lifespan,
    )
    app.state.service = service
    _add_error_handlers(app)

    @app.get("/health", responses={503: {"model": ErrorResponse}})
    def health() -> JSONResponse:
        """200 with the model's name and tasks once it is loaded; 503 before (or if loading failed)."""
        if service.load_error is not None:
            return JSONResponse({"error": f"the model failed to load: {service.load_error}"}, 503)
        if service.corrector is None:
            return JSONResponse({"error": "the model is loading"}, 503)
        return JSONResponse(
            {"status": "ready", "model": service.model_name, "tasks": service.corrector.tasks}
        )

    @app.post(
        CORRECT_PATH,
        response_class=JSONResponse,
        responses={
            200: {"model": CorrectResponse},
            413: {"model": ErrorResponse},
            422: {"model": ErrorResponse},
            429: {"model": ErrorResponse},
            503: {"model": ErrorResponse},
        },
    )
    async def correct(body: CorrectRequest, request: Request) -> Response:
        """Correct each input: a string (1-best), an N-best list (best first) or an object with `id`,
        `task` and `hypotheses`. Corrections come back in input order."""
        if service.load_error is not None:
            raise HTTPException(503, f"the model failed to load: {service.load_error}")
        if service.batcher is None or service.corrector is None:
            raise HTTPException(503, "the model is loading; GET /health says when it is ready")
        try:
            examples = to_examples(body, service.corrector.tasks, settings.limits)
        except InputError as error:
            raise HTTPException(422, str(error)) from None
        try:
            job = service.batcher.submit(examples)
        except QueueFull as error:
            raise HTTPException(429, str(error)) from None
        except RuntimeError as error:
            raise HTTPException(503, str(error)) from None
        waiting = asyncio.wrap_future(job.future)
        while not waiting.done():
            await asyncio.wait({waiting}, timeout=DISCONNECT_POLL_S)
            if not waiting.done() and await request.is_disconnected():
                service.batcher.cancel(job)
                return Response(status_code=CLIENT_GONE)
        try:
            corrections = waiting.result()
        except NekoError as error:
            raise HTTPException(422, str(error)) from None
        service.metrics.record_corrections(corrections)
        return JSONResponse({"corrections": corrections, "model": service.model_name})

    @app.get("/metrics", response_class=Response)
    def metrics() -> Response:
        """Prometheus text: requests by status, examples, latency, fallbacks by reason, queue depth,
        model calls and their sizes."""
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/v1/examples")
    def demo_examples() -> dict[str, list[dict[str, Any]]]:
        """Examples the web page offers, per task (id, task, hypotheses, reference)."""
        return {
            "examples": [
                {"id": e.id, "task": e.task, "hypotheses": e.hypotheses, "reference": e.reference}
                for e in service.examples
            ]
        }

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(resources.files("neko.serve").joinpath("static/index.html").read_text("utf-8"))

    app.add_middleware(_BodyLimit, limit=settings.limits.max_body_bytes)
    app.add_middleware(_CorrectionMetrics, metrics=service.metrics)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error is `{"error": "one line"}`."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": describe_validation_error(error.errors())}, 422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        detail = str(error.detail)
        if error.status_code == 400 and detail == FASTAPI_PARSE_ERROR:
            detail = _unparsable(await request.body())
        return JSONResponse({"error": detail}, error.status_code, headers=error.headers)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"error": f"internal error: {type(error).__name__}: {error}"}, 500)


FASTAPI_PARSE_ERROR = "There was an error parsing the body"
"""FastAPI's answer to a body that json.loads fails on other than by a syntax error (which it reports
as a validation error, with where)."""


def _unparsable(body: bytes) -> str:
    """Why a JSON body FastAPI could not parse was not JSON, in one line."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"request body: not UTF-8 (byte {error.start})"
    return "request body: nested too deeply"


class _CorrectionMetrics:
    """Counts correction requests by status and times them (validation errors included)."""

    def __init__(self, app: ASGIApp, metrics: ServeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != CORRECT_PATH:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            label = "disconnected" if status[0] == CLIENT_GONE else str(status[0])
            self.metrics.requests.labels(status=label).inc()
            if status[0] == 200:
                self.metrics.latency.observe(time.perf_counter() - start)


class _BodyLimit:
    """413 for a request body over `limit` bytes, by its Content-Length or as it streams in."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            response = JSONResponse({"error": self._message}, 413)
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise HTTPException(413, self._message)  # answered by the app's error handler
            return message

        await self.app(scope, counting_receive, send)

    @property
    def _message(self) -> str:
        return f"request body: over the limit of {self.limit} bytes"
