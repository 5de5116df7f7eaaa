"""`neko serve`: the HTTP contract, bad requests and limits, micro-batching of concurrent requests,
clients that go away, metrics, and a SIGTERM with requests in flight."""

from __future__ import annotations

import gc
import os
import shutil
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, fields
from pathlib import Path

import httpx
import pytest
import torch
import uvicorn
from prometheus_client.parser import text_string_to_metric_families
from safetensors.torch import save_file
from serve_fixtures import Recorder, free_socket, running, same_answer, wait_ready
from typer.testing import CliRunner

from neko.cli import _register_commands
from neko.cli import app as app_cli
from neko.correct import Correction, Corrector
from neko.correct.gate import DECISIONS
from neko.data.schema import Example
from neko.errors import NekoError
from neko.serve.api import Limits
from neko.serve.app import ServeSettings, create_app
from neko.serve.batching import MicroBatcher, QueueFull

ROOT = Path(__file__).resolve().parents[1]
LIMITS = Limits(max_body_bytes=4096, max_inputs=8, max_hypotheses=4, max_hypothesis_chars=200)
SETTINGS = ServeSettings(limits=LIMITS, max_batch=64, max_wait_ms=5, max_queue=16, batch_size=16)


@pytest.fixture(scope="module")
def reference(model_path) -> Corrector:
    """A second corrector from the same files: what the server's answers must equal."""
    return Corrector.from_pretrained(model_path, device="cpu")


@pytest.fixture(scope="module")
def served(model_path):
    """(base URL, Recorder of the server's corrector, the app) of one server for the module."""
    corrector = Corrector.from_pretrained(model_path, device="cpu")
    recorder = Recorder(corrector)
    app = create_app(lambda: corrector, SETTINGS, examples_file=ROOT / "examples" / "demo.jsonl")
    with running(app) as url:
        wait_ready(url)
        yield url, recorder, app
    recorder.release()


@pytest.fixture
def server(served):
    url, recorder, app = served
    recorder.reset()
    yield url, recorder, app
    recorder.release()


def post(url: str, body, **options) -> httpx.Response:
    return httpx.post(f"{url}/v1/correct", json=body, timeout=options.pop("timeout", 30), **options)


def metric_values(url: str) -> dict[tuple[str, tuple], float]:
    """/metrics as {(sample name, sorted labels): value}."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def wait_for(condition, timeout: float = 10, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


# --- the contract ---------------------------------------------------------------------------------------


def test_every_input_form_is_corrected_like_the_corrector_does(server, reference):
    url, recorder, _ = server
    body = {
        "task": "asr",
        "inputs": [
            ["the cat sad", "the cat sat"],
            "she sells sea shells",
            {"id": "mine", "task": "ocr", "hypotheses": ["numbers 0 1 2"]},
        ],
    }
    response = post(url, body)
    assert response.status_code == 200, response.text
    answer = response.json()
    expected = reference.correct(
        [
            Example("0", "asr", ["the cat sad", "the cat sat"]),
            Example("1", "asr", ["she sells sea shells"]),
            Example("mine", "ocr", ["numbers 0 1 2"]),
        ],
        batch_size=SETTINGS.batch_size,
        evidence=True,
    )
    assert answer == {"corrections": [asdict(c) for c in expected], "model": "tiny"}
    assert [c["id"] for c in answer["corrections"]] == ["0", "1", "mine"]
    assert {"id", "text", "fell_back", "reason"} <= set(answer["corrections"][0])
    assert len(recorder.calls) == 1


def test_answers_carry_every_field_of_the_correction(server):
    url, _, _ = server
    response = post(url, {"task": "tec", "inputs": ["she go home"]})
    assert response.status_code == 200
    [answer] = response.json()["corrections"]
    assert set(answer) >= {f.name for f in fields(Correction)}
    assert answer["decision"] in DECISIONS and set(answer["evidence"]) >= {"margin", "familiarity"}


def test_health_is_503_until_the_model_is_loaded(model_path):
    loaded = threading.Event()

    def load() -> Corrector:
        assert loaded.wait(20)
        return Corrector.from_pretrained(model_path, device="cpu")

    with running(create_app(load, SETTINGS)) as url:
        health = httpx.get(f"{url}/health", timeout=5)
        assert (health.status_code, health.json()) == (503, {"error": "the model is loading"})
        early = post(url, {"task": "asr", "inputs": ["a"]})
        assert early.status_code == 503
        assert "loading" in early.json()["error"]
        loaded.set()
        assert wait_ready(url) == {"status": "ready", "model": "tiny", "tasks": ["asr", "st", "ocr", "tec"]}


def test_health_reports_a_model_that_failed_to_load():
    def load() -> Corrector:
        raise OSError("no such model")

    with running(create_app(load, SETTINGS)) as url:
        wait_for(lambda: "failed" in httpx.get(f"{url}/health", timeout=5).text, what="the failure")
        health = httpx.get(f"{url}/health", timeout=5)
        assert health.status_code == 503
        assert health.json() == {"error": "the model failed to load: OSError: no such model"}
        request = post(url, {"task": "asr", "inputs": ["a"]})  # it will never be ready: say why
        assert (request.status_code, request.json()) == (503, health.json())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"inputs": ["a"]}, "inputs[0].task: missing; name it in the input or for the whole request"),
        ({"task": "zz", "inputs": ["a"]}, "task: unknown task 'zz'; the model knows asr, st, ocr, tec"),
        (
            {"task": "asr", "inputs": ["a", {"task": "xx", "hypotheses": ["b"]}]},
            "inputs[1].task: unknown task 'xx'; the model knows asr, st, ocr, tec",
        ),
        (
            {"task": "asr", "inputs": ["a", 5]},
            "inputs[1]: expected a string, a list of hypotheses or an object with 'hypotheses', got int",
        ),
        ({"task": "asr", "inputs": [["a", 1]]}, "inputs[0].hypotheses[1]: Input should be a valid string"),
        (
            {"task": "asr", "inputs": [{"id": 3, "hypotheses": ["a"]}]},
            "inputs[0].id: Input should be a valid string",
        ),
        (
            {"task": "asr", "inputs": [{"id": "1", "hypotheses": ["a"]}, "b"]},
            "inputs[1]: id '1' is used twice (first at inputs[0])",
        ),
        (
            {"task": "asr", "inputs": [{"hypotheses": []}]},
            "inputs[0].hypotheses: List should have at least 1",
        ),
        (
            {"task": "asr", "inputs": [{"hypotheses": ["a"], "score": 1}]},
            "inputs[0].score: Extra inputs are not",
        ),
        ({"task": "asr", "inputs": []}, "inputs: List should have at least 1 item"),
        ({"task": "asr"}, "inputs: Field required"),
        ({"task": "asr", "inputs": ["a"], "beams": 4}, "beams: Extra inputs are not permitted"),
        ([["a"]], "request body: expected a JSON object"),
        ({"task": "asr", "inputs": ["a"] * 9}, "inputs: 9 inputs, the limit is 8 per request"),
        ({"task": "asr", "inputs": [["a"] * 5]}, "inputs[0].hypotheses: 5 hypotheses, the limit is 4"),
        (
            {"task": "asr", "inputs": ["a", ["b", "c" * 201]]},
            "inputs[1].hypotheses[1]: 201 characters, the limit is 200",
        ),
        (
            {"task": "asr", "inputs": ["the end <|end|> is near"]},
            "inputs[0].hypotheses[0]: holds '<|end|>', written like one of the model's markers",
        ),
    ],
)
def test_bad_requests_get_422_with_one_line_naming_the_field(server, body, message):
    url, recorder, _ = server
    response = post(url, body)
    assert response.status_code == 422
    assert response.json()["error"].startswith(message)
    assert "\n" not in response.json()["error"]
    assert recorder.calls == []


def test_unparsable_and_missing_bodies(server):
    url, _, _ = server
    headers = {"content-type": "application/json"}
    broken = httpx.post(f"{url}/v1/correct", content=b'{"task": ', headers=headers, timeout=10)
    assert broken.status_code == 422
    assert broken.json()["error"].startswith("request body: invalid JSON")
    surrogate = b'{"task": "asr", "inputs": [["a", "x \\ud800"]]}'  # JSON may escape what UTF-8 cannot hold
    lone = httpx.post(f"{url}/v1/correct", content=surrogate, headers=headers, timeout=10)
    assert (lone.status_code, lone.json()["error"]) == (
        422,
        "inputs[0].hypotheses[1]: holds a lone surrogate (U+D800), not text",
    )
    empty = httpx.post(f"{url}/v1/correct", timeout=10)
    assert (empty.status_code, empty.json()["error"]) == (
        422,
        'request body: missing; expected {"task": ..., "inputs": [...]}',
    )
    latin1 = httpx.post(
        f"{url}/v1/correct", content=b'{"task": "asr", "inputs": ["caf\xe9"]}', headers=headers
    )
    assert (latin1.status_code, latin1.json()["error"]) == (400, "request body: not UTF-8 (byte 31)")
    deep = httpx.post(f"{url}/v1/correct", content=b"[" * 1900 + b"]" * 1900, headers=headers, timeout=10)
    assert (deep.status_code, deep.json()["error"]) == (400, "request body: nested too deeply")


def test_bodies_over_the_limit_get_413_declared_or_streamed(server):
    url, recorder, _ = server
    big = {"task": "asr", "inputs": [["word " * 39] * 4] * 8}  # within every other limit
    declared = post(url, big)
    assert declared.status_code == 413
    assert declared.json() == {"error": "request body: over the limit of 4096 bytes"}

    def chunks():
        for _ in range(10):
            yield b" " * 1000

    streamed = httpx.post(f"{url}/v1/correct", content=chunks(), timeout=10)
    assert "content-length" not in streamed.request.headers
    assert streamed.status_code == 413
    assert recorder.calls == []


def test_a_full_queue_gets_429(server):
    url, recorder, _ = server
    recorder.hold()
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(post, url, {"task": "asr", "inputs": ["a"]})
        assert recorder.entered.wait(10)
        queued = [pool.submit(post, url, {"task": "asr", "inputs": ["b"] * 8}) for _ in range(2)]
        _, _, app = server
        wait_for(lambda: app.state.service.batcher.depth == 16, what="16 queued examples")
        refused = post(url, {"task": "asr", "inputs": ["c"]})
        recorder.release()
        assert [f.result().status_code for f in (first, *queued)] == [200, 200, 200]
    assert refused.status_code == 429
    assert refused.json()["error"] == "the queue is full (16 examples waiting, limit 16); retry later"


# --- batching -------------------------------------------------------------------------------------------


def test_concurrent_requests_share_one_model_call_and_each_gets_its_own_answers(server, reference):
    url, recorder, app = server
    bodies = [
        {
            "task": ("asr", "ocr", "st", "tec")[i % 4],
            "inputs": [f"the cat sat {i}", ["sea shells", f"sea {i}"]],
        }
        for i in range(6)
    ]
    recorder.hold()
    with ThreadPoolExecutor(len(bodies) + 1) as pool:
        blocker = pool.submit(post, url, {"task": "asr", "inputs": ["the quick brown fox"]})
        assert recorder.entered.wait(10)
        futures = [pool.submit(post, url, body) for body in bodies]
        wait_for(lambda: app.state.service.batcher.depth == 12, what="all requests queued")
        recorder.release()
        answers = [f.result() for f in futures]
        assert blocker.result().status_code == 200
    assert [a.status_code for a in answers] == [200] * len(bodies)
    assert len(recorder.calls) == 2, "the six queued requests should be served by one model call"
    batch = recorder.calls[1]
    assert len(batch) == 12
    expected = [asdict(c) for c in reference.correct(batch, batch_size=SETTINGS.batch_size, evidence=True)]
    by_request = {id(example): i for i, example in enumerate(batch)}
    assert len(by_request) == 12
    served = [c for answer in answers for c in answer.json()["corrections"]]
    assert sorted(map(str, served)) == sorted(map(str, expected))
    for body, answer in zip(bodies, answers, strict=True):
        corrections = answer.json()["corrections"]
        assert [c["id"] for c in corrections] == ["0", "1"]
        assert {c["task"] for c in corrections} == {body["task"]}
    samples = metric_values(url)
    assert (
        samples[("neko_batch_requests_bucket", (("le", "4.0"),))] < samples[("neko_batch_requests_count", ())]
    )


def test_a_client_that_goes_away_frees_its_place_in_the_queue(server):
    url, recorder, app = server
    recorder.hold()
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(post, url, {"task": "asr", "inputs": ["stays"]})
        assert recorder.entered.wait(10)
        with pytest.raises(httpx.ReadTimeout):
            post(url, {"task": "asr", "inputs": ["leaves", "early"]}, timeout=0.5)
        wait_for(lambda: app.state.service.batcher.depth == 0, what="the queue to empty")
        recorder.release()
        assert first.result().status_code == 200
    assert [[e.hypotheses for e in call] for call in recorder.calls] == [[["stays"]]]
    assert metric_values(url)[("neko_requests_total", (("status", "disconnected"),))] >= 1


def test_batcher_splits_results_and_isolates_a_failing_request():
    calls = []

    def run(items: list[int]) -> list[int]:
        calls.append(list(items))
        if any(item < 0 for item in items):
            raise ValueError("negative")
        return [item * 10 for item in items]

    batcher: MicroBatcher[int, int] = MicroBatcher(run, max_batch=5, max_wait_s=0.2, max_queue=8)
    jobs = [batcher.submit(items) for items in ([1, 2], [3], [-1], [4, 5, 6])]
    with pytest.raises(QueueFull):
        batcher.submit([7, 8])
    batcher.start()
    results = [job.future.result(timeout=10) if job.items != [-1] else None for job in jobs]
    with pytest.raises(ValueError, match="negative"):
        jobs[2].future.result(timeout=10)
    batcher.stop(timeout=10)
    assert results == [[10, 20], [30], None, [40, 50, 60]]
    assert calls[0] == [1, 2, 3, -1]  # at most max_batch examples, whole jobs only
    assert calls[1:] == [[1, 2], [3], [-1], [4, 5, 6]]


# --- metrics and docs -----------------------------------------------------------------------------------


def test_metrics_count_requests_examples_fallbacks_and_latency(server):
    url, _, _ = server
    before = metric_values(url)
    answer = post(url, {"task": "asr", "inputs": ["the cat", "sea shells", "a dog"]}).json()
    post(url, {"task": "nope", "inputs": ["x"]})
    after = metric_values(url)

    def grew(name: str, *labels: tuple[str, str]) -> float:
        key = (name, tuple(sorted(labels)))
        return after.get(key, 0) - before.get(key, 0)

    assert grew("neko_requests_total", ("status", "200")) == 1
    assert grew("neko_requests_total", ("status", "422")) == 1
    assert grew("neko_examples_total") == 3
    assert grew("neko_request_latency_seconds_count") == 1
    reasons = [c["reason"] for c in answer["corrections"] if c["fell_back"]]
    for reason in set(reasons):
        assert grew("neko_fallbacks_total", ("reason", reason)) == reasons.count(reason)
    assert after[("neko_queue_depth", ())] == 0
    assert grew("neko_model_calls_total") == 1


def test_openapi_docs_describe_the_correction_endpoint(server):
    url, _, _ = server
    schema = httpx.get(f"{url}/openapi.json", timeout=10).json()
    operation = schema["paths"]["/v1/correct"]["post"]
    assert {"200", "413", "422", "429"} <= set(operation["responses"])
    assert "hypotheses" in schema["components"]["schemas"]["InputObject"]["properties"]
    correction = schema["components"]["schemas"]["CorrectionOut"]
    assert {"decision", "fell_back"} <= set(correction["required"])
    assert correction["properties"]["decision"]["enum"] == list(DECISIONS)
    assert httpx.get(f"{url}/docs", timeout=10).status_code == 200


# --- shutdown -------------------------------------------------------------------------------------------


def test_sigterm_answers_requests_in_flight_then_stops(model_path, reference):
    """uvicorn in the main thread (where it takes SIGTERM) with the clients in another."""
    corrector = Corrector.from_pretrained(model_path, device="cpu")
    app = create_app(lambda: corrector, ServeSettings(max_wait_ms=1000))
    sock = free_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=10))
    bodies = [{"task": "asr", "inputs": [f"the cat sat {i}"]} for i in range(3)]
    answers: list[httpx.Response] = []

    def clients() -> None:
        try:
            wait_ready(url)
            with ThreadPoolExecutor(3) as pool:
                futures = [pool.submit(post, url, body) for body in bodies]
                wait_for(lambda: app.state.service.batcher.depth == 3, what="three queued requests")
                os.kill(os.getpid(), signal.SIGTERM)
                answers.extend(f.result() for f in futures)
        finally:
            server.should_exit = True  # never leave the test hanging

    previous = signal.signal(signal.SIGTERM, lambda *_: None)  # uvicorn re-raises SIGTERM to this once done
    thread = threading.Thread(target=clients, daemon=True)
    try:
        thread.start()
        server.run(sockets=[sock])
        thread.join(30)
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()
    assert server._captured_signals == [signal.SIGTERM]
    assert [a.status_code for a in answers] == [200, 200, 200]
    for body, answer in zip(bodies, answers, strict=True):
        [expected] = reference.correct(body["inputs"], task="asr", evidence=True)
        [found] = answer.json()["corrections"]
        assert same_answer(found, asdict(expected))
    assert not app.state.service.batcher._worker.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health", timeout=2)


def test_serve_command_rejects_a_missing_model_before_listening(tmp_path):
    if not any(command.name == "serve" for command in app_cli.registered_commands):
        _register_commands()  # as `main` does
    result = CliRunner().invoke(app_cli, ["serve", "--model", str(tmp_path / "nothing"), "--port", "0"])
    assert isinstance(result.exception, NekoError)
    assert str(tmp_path / "nothing") in str(result.exception)
    assert "\n" not in str(result.exception)


class RecordingServer:
    """Stands in for `uvicorn.Server`: records what it was asked to serve, serves nothing."""

    def __init__(self, started: dict):
        self.started = started

    def __call__(self, config: uvicorn.Config) -> RecordingServer:
        self.started.update(app=config.app, host=config.host, port=config.port)
        return self

    def run(self) -> None:
        pass


def test_serve_command_builds_the_app_with_the_demo_examples(model_path, monkeypatch):
    if not any(command.name == "serve" for command in app_cli.registered_commands):
        _register_commands()
    started = {}
    monkeypatch.setattr(uvicorn, "Server", RecordingServer(started))
    result = CliRunner().invoke(app_cli, ["serve", "--model", str(model_path), "--port", "0"])
    assert result.exit_code == 0, result.output
    assert started["port"] == 0 and started["host"] == "127.0.0.1"
    assert started["app"].state.service.examples  # examples/demo.jsonl, for the page's picker


def test_serve_command_stops_with_one_line_when_the_model_fails_to_load(model_path, tmp_path):
    if not any(command.name == "serve" for command in app_cli.registered_commands):
        _register_commands()
    broken = tmp_path / "broken"
    shutil.copytree(model_path, broken)
    save_file({"x": torch.zeros(1)}, broken / "model.safetensors")  # none of the model's weights
    result = CliRunner().invoke(app_cli, ["serve", "--model", str(broken), "--port", "0"])
    assert isinstance(result.exception, NekoError), result.output
    message = str(result.exception)
    assert message.startswith("the model failed to load: ") and str(broken) in message
    assert "missing" in message and "\n" not in message


def test_serve_command_refuses_a_port_it_cannot_listen_on(model_path):
    if not any(command.name == "serve" for command in app_cli.registered_commands):
        _register_commands()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app_cli, ["serve", "--model", str(model_path), "--port", str(port)])
    assert isinstance(result.exception, NekoError)
    assert str(result.exception).startswith(f"cannot listen on 127.0.0.1:{port}: ")


def test_the_served_model_loads_without_the_collector_which_is_on_while_serving(model_path, monkeypatch):
    if not any(command.name == "serve" for command in app_cli.registered_commands):
        _register_commands()
    started = {}
    monkeypatch.setattr(uvicorn, "Server", RecordingServer(started))
    assert CliRunner().invoke(app_cli, ["serve", "--model", str(model_path), "--port", "0"]).exit_code == 0
    load, during = Corrector.from_pretrained, []

    def recording_load(*args, **kwargs):
        during.append(gc.isenabled())
        return load(*args, **kwargs)

    monkeypatch.setattr(Corrector, "from_pretrained", recording_load)
    frozen = gc.get_freeze_count()
    corrector = started["app"].state.service.load()
    assert corrector.name == str(model_path)
    assert during == [False] and gc.isenabled() and gc.get_freeze_count() > frozen
