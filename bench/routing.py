"""How fast the backend adapter decides where a job runs, in one run: host
present, host absent (no responders), NATS down, breaker open.

Decision time is from ``start()`` to the routing decision (what the router's
``training_router_decision_seconds`` measures); ``start()`` total adds the
host's acceptance or the local claim and worker launch.

    python -m bench.routing [--starts 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from prometheus_client import CollectorRegistry

from backend_adapter import TrainingRouter
from backend_adapter.settings import RouterSettings
from bench._bus import BenchBus, bench_server, percentile, quick_request
from bus_contracts.codec import decode_request
from bus_contracts.messages.start import StartTraining
from embedded_nats import BusEndpoint, connect

DECISION_SUM = "training_router_decision_seconds_sum"


def _request(task_id: str) -> StartTraining:
    return decode_request(json.dumps(quick_request(task_id)).encode(), StartTraining)


async def measure(
    router: TrainingRouter, registry: CollectorRegistry, prefix: str, starts: int
) -> tuple[list[float], list[float], set[str]]:
    decisions: list[float] = []
    totals: list[float] = []
    routes: set[str] = set()
    for n in range(starts):
        before = registry.get_sample_value(DECISION_SUM) or 0.0
        began = time.perf_counter()
        accepted = await router.start(_request(f"{prefix}-{n}"))
        totals.append(time.perf_counter() - began)
        decisions.append((registry.get_sample_value(DECISION_SUM) or 0.0) - before)
        routes.add(accepted.executor)
    return decisions, totals, routes


async def scenario(
    bus: BenchBus,
    work: Path,
    name: str,
    root: str,
    starts: int,
    *,
    endpoint: BusEndpoint | None = None,
    prepare: Callable[[TrainingRouter], Awaitable[None]] | None = None,
) -> tuple[str, list[float], list[float], set[str]]:
    registry = CollectorRegistry()
    settings = RouterSettings.from_env(
        environ={},
        subject_root=root,
        models_dir=work / name,
        start_timeout_s=2.0,
        connect_timeout_s=1.0,
    )
    router = TrainingRouter(
        settings, metrics_registry=registry, endpoint=endpoint or bus.endpoints["backend"]
    )
    async with router:
        if prepare is not None:
            await prepare(router)
        decisions, totals, routes = await measure(router, registry, name, starts)
    return name, decisions, totals, routes


async def _open_breaker(router: TrainingRouter) -> None:
    for _ in range(router.settings.breaker_failure_threshold):
        ticket = router.breaker.try_acquire()
        assert ticket is not None
        ticket.failure()
    assert router.breaker.state == "open"


async def run(starts: int) -> None:
    with bench_server(subject_roots="*.training") as bus, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        host = bus.host("bench-route", "present.training", max_queued_jobs="256")
        client = await connect(bus.endpoints["backend"], name="bench-ready")
        try:
            await host.wait_ready(client)
            results = [
                await scenario(bus, work, "present", "present.training", starts),
                await scenario(bus, work, "absent", "absent.training", starts),
                await scenario(
                    bus,
                    work,
                    "nats-down",
                    "down.training",
                    starts,
                    endpoint=BusEndpoint("nats://127.0.0.1:9", "backend", "x"),
                ),
                await scenario(
                    bus, work, "breaker-open", "open.training", starts, prepare=_open_breaker
                ),
            ]
        finally:
            await client.close()
            host.stop()

    print(f"routing decisions, {starts} starts each (ms)")
    print(f"{'':<14}{'route':<8}{'decision p50':>14}{'p99':>8}{'start() p50':>13}{'p99':>8}")
    p50 = {}
    for name, decisions, totals, routes in results:
        p50[name] = percentile(decisions, 50)
        print(
            f"{name:<14}{','.join(sorted(routes)):<8}"
            f"{percentile(decisions, 50) * 1e3:>14.3f}{percentile(decisions, 99) * 1e3:>8.3f}"
            f"{percentile(totals, 50) * 1e3:>13.3f}{percentile(totals, 99) * 1e3:>8.3f}"
        )
    print(f"decision absent / present (p50): {p50['absent'] / p50['present']:.2f} (target ≤ 2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=30)
    asyncio.run(run(parser.parse_args().starts))


if __name__ == "__main__":
    main()
