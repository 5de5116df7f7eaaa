"""A `neko serve` app running in a thread on a free loopback port, and a corrector whose calls the
test can hold and count."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from fastapi import FastAPI

from neko.correct import Corrector


def free_socket() -> socket.socket:
    """A listening socket on 127.0.0.1 at a port the system picked."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


@contextmanager
def running(app: FastAPI, timeout: float = 20) -> Iterator[str]:
    """Serve `app` in a thread (uvicorn, lifespan on) for the block; yields its base URL."""
    sock = free_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()


def wait_ready(url: str, timeout: float = 30) -> dict:
    """Poll /health until it answers 200; its JSON."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{url}/health", timeout=5)
            if response.status_code == 200:
                return response.json()
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} was not ready within {timeout} s")


class Recorder:
    """Replaces `corrector.correct`: records the inputs of every call; while `held`, calls wait for
    `release()` (so requests pile up in the queue)."""

    def __init__(self, corrector: Corrector) -> None:
        self.corrector = corrector
        self.original = corrector.correct
        self.calls: list[list] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        corrector.correct = self  # type: ignore[method-assign]

    def __call__(self, examples, **options):
        self.calls.append(list(examples))
        self.entered.set()
        assert self.gate.wait(30), "a held model call was never released"
        return self.original(examples, **options)

    def hold(self) -> None:
        self.entered.clear()
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()

    def reset(self) -> None:
        self.calls.clear()
        self.release()


def same_answer(answer: dict, expected: dict) -> bool:
    """Whether two corrections agree; the gate's evidence scores only to float tolerance, since a row's
    logits move in the last bits with what it was batched with."""
    import pytest

    plain = {k: v for k, v in answer.items() if k != "evidence"}
    if plain != {k: v for k, v in expected.items() if k != "evidence"}:
        return False
    found, wanted = answer.get("evidence") or {}, expected.get("evidence") or {}
    numbers = [k for k, v in wanted.items() if isinstance(v, float)]
    if {k: v for k, v in found.items() if k not in numbers} != {
        k: v for k, v in wanted.items() if k not in numbers
    }:
        return False
    return [found[k] for k in numbers] == pytest.approx([wanted[k] for k in numbers], rel=1e-4, abs=1e-4)
