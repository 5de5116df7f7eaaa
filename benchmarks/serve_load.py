"""Load test of `neko serve` on loopback, against offline batched correction of the same inputs.

N clients (threads, one connection each) send requests of 1-5 inputs drawn from a pool of examples
of a data file, for T seconds, to a `neko serve` subprocess on 127.0.0.1. Reported: requests and
examples per second, latency percentiles, errors, the server's resident memory over time (after
the model loaded, after warm-up, at its peak and at the end), and how many requests and examples one
model call served. Then, in this process, `Corrector.correct` on the whole pool (start-up excluded)
gives the offline examples/s, and the ratio is printed.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/serve_load.py [--clients 16] [--seconds 60]
        [--model models/neko-small] [--data data/asr/test.jsonl.gz] [--pool 320]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from neko.correct import Corrector
from neko.correct.model_dir import resolve_model_dir
from neko.data.formats import read_examples
from neko.data.schema import Example

ROOT = Path(__file__).resolve().parents[1]
MAX_CLIENTS = 64
MAX_SECONDS = 600
WARM_UP_S = 10.0
MEMORY_EVERY_S = 0.5


@dataclass
class ClientLog:
    latencies: list[float] = field(default_factory=list)
    examples: int = 0
    errors: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model: Path, port: int, args: argparse.Namespace, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "neko.cli", "serve", "--model", str(model), "--port", str(port)]
    command += ["--batch-size", str(args.batch_size), "--max-batch", str(args.max_batch)]
    command += ["--max-wait-ms", str(args.max_wait_ms), "--device", "cpu"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with log.open("w") as handle:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with status {process.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the server was not ready within {timeout:.0f} s")


def client(url: str, pool: list[Example], seed: int, deadline: float, log: ClientLog) -> None:
    """Requests of 1-5 random pool examples until `deadline`; every answer is checked for its ids."""
    rng = random.Random(seed)
    with httpx.Client(base_url=url, timeout=120) as http:
        while time.monotonic() < deadline:
            batch = rng.sample(pool, rng.randint(1, 5))
            body = {"inputs": [{"id": e.id, "task": e.task, "hypotheses": e.hypotheses} for e in batch]}
            started = time.perf_counter()
            try:
                response = http.post("/v1/correct", json=body)
            except httpx.HTTPError as error:
                log.errors.append(f"{type(error).__name__}: {error}")
                continue
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                log.errors.append(f"{response.status_code}: {response.text[:200]}")
                continue
            ids = [c["id"] for c in response.json()["corrections"]]
            if ids != [e.id for e in batch]:
                log.errors.append(f"answer for {ids} to a request for {[e.id for e in batch]}")
                continue
            log.latencies.append(elapsed)
            log.examples += len(batch)


def sample_memory(process: psutil.Process, stop: threading.Event, samples: list[tuple[float, int]]) -> None:
    start = time.monotonic()
    while not stop.wait(MEMORY_EVERY_S):
        try:
            samples.append((time.monotonic() - start, process.memory_info().rss))
        except psutil.NoSuchProcess:
            return


def batch_sizes(url: str) -> tuple[float, float]:
    """Mean requests and examples per model call, from the server's /metrics."""
    values = {
        sample.name: sample.value
        for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text)
        for sample in family.samples
        if not sample.labels
    }
    calls = values["neko_batch_requests_count"] or 1
    return values["neko_batch_requests_sum"] / calls, values["neko_batch_examples_sum"] / calls


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def offline_rate(model: Path, pool: list[Example], batch_size: int) -> tuple[float, float]:
    """Examples/s of `Corrector.correct` on the pool, after a warm-up call; and the seconds it took."""
    corrector = Corrector.from_pretrained(model, device="cpu")
    corrector.correct(pool[:batch_size], batch_size=batch_size)
    started = time.perf_counter()
    corrector.correct(pool, batch_size=batch_size)
    elapsed = time.perf_counter() - started
    return len(pool) / elapsed, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model directory; default: the default model")
    parser.add_argument("--data", default=str(ROOT / "data" / "asr" / "test.jsonl.gz"))
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--pool", type=int, default=320, help="distinct examples requests draw from")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--max-wait-ms", type=float, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not 1 <= args.clients <= MAX_CLIENTS or not 0 < args.seconds <= MAX_SECONDS:
        parser.error(f"--clients must be 1-{MAX_CLIENTS} and --seconds at most {MAX_SECONDS}")

    model = resolve_model_dir(args.model)
    examples = read_examples(args.data)
    pool = random.Random(args.seed).sample(examples, min(args.pool, len(examples)))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as scratch:
        server_log = Path(scratch) / "server.log"
        server = start_server(model, port, args, server_log)
        try:
            wait_ready(url, server)
            memory: list[tuple[float, int]] = []
            stop_sampling = threading.Event()
            sampler = threading.Thread(
                target=sample_memory, args=(psutil.Process(server.pid), stop_sampling, memory), daemon=True
            )
            sampler.start()
            logs = [ClientLog() for _ in range(args.clients)]
            started = time.monotonic()
            deadline = started + args.seconds
            threads = [
                threading.Thread(target=client, args=(url, pool, args.seed + i, deadline, log), daemon=True)
                for i, log in enumerate(logs)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(args.seconds + 180)
            elapsed = time.monotonic() - started
            stop_sampling.set()
            sampler.join()
            per_request, per_call = batch_sizes(url)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
        if any(thread.is_alive() for thread in threads):
            print(server_log.read_text()[-2000:], file=sys.stderr)
            raise SystemExit("a client did not finish")

    latencies = sorted(x for log in logs for x in log.latencies)
    errors = [e for log in logs for e in log.errors]
    served = sum(log.examples for log in logs)
    rate = served / elapsed
    offline, offline_s = offline_rate(model, pool, args.batch_size)
    mib = 1 << 20
    at_ready = memory[0][1] / mib
    warm = next((rss for t, rss in memory if t >= WARM_UP_S), memory[-1][1]) / mib
    every = [
        next(rss for t, rss in memory if t >= mark) / mib for mark in range(0, int(memory[-1][0]) + 1, 10)
    ]
    peak = max(rss for _, rss in memory) / mib
    end = memory[-1][1] / mib

    print(f"\n`neko serve` {model.name}: {args.clients} clients x {elapsed:.0f} s, 1-5 inputs per request")
    data = Path(args.data).resolve()
    shown = data.relative_to(ROOT) if data.is_relative_to(ROOT) else data
    print(f"from {len(pool)} examples of {shown}; batch size {args.batch_size}, max batch")
    print(f"{args.max_batch}, max wait {args.max_wait_ms:g} ms; offline: Corrector.correct on the pool\n")
    print("| measure | value |")
    print("| --- | --- |")
    rows = [
        ("requests answered", f"{len(latencies)} ({len(latencies) / elapsed:.1f}/s)"),
        ("examples/s served", f"{rate:.1f}"),
        (
            "examples/s offline (batched, start-up excluded)",
            f"{offline:.1f} ({len(pool)} in {offline_s:.1f} s)",
        ),
        ("served / offline", f"{rate / offline:.2f}"),
        (
            "latency p50 / p95 / p99",
            " / ".join(f"{percentile(latencies, q) * 1000:.0f} ms" for q in (50, 95, 99)),
        ),
        ("errors", f"{len(errors)}" + (f" (first: {errors[0]})" if errors else "")),
        ("requests / examples per model call", f"{per_request:.1f} / {per_call:.1f}"),
        (
            "server RSS: at start / after 10 s / peak / end",
            f"{at_ready:.0f} / {warm:.0f} / {peak:.0f} / {end:.0f} MiB",
        ),
        ("server RSS every 10 s", ", ".join(f"{rss:.0f}" for rss in every) + " MiB"),
    ]
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
