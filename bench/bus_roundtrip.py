"""Request/reply over the real server: our codec and contracts versus a bare
nats-py echo of raw bytes, interleaved in one run.

    python -m bench.bus_roundtrip [--rounds 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from nats.aio.msg import Msg

from bench._bus import bench_server, percentile
from bus_contracts.codec import decode_reply, decode_request, encode
from bus_contracts.messages.start import StartTraining
from bus_contracts.messages.status import StatusRequest, TrainingStatus
from embedded_nats import connect
from job_runtime.records import JobRecord, request_digest

BLOCK = 100


def _status_reply() -> bytes:
    request = StartTraining(symbols=["SPX"], timeframe="1d", task_id="bench")
    record = JobRecord(
        task_id="bench",
        request=request,
        request_digest=request_digest(request),
        state="running",
        executor="host",
        owner="bench-host",
    )
    return encode(record.to_status(record.created_at, 10.0))


async def run(rounds: int) -> dict[str, list[float]]:
    with bench_server() as bus:
        host = await connect(bus.endpoints["host_trainer"], name="bench-host")
        client = await connect(bus.endpoints["backend"], name="bench-client")
        status_bytes = _status_reply()

        async def contract_handler(msg: Msg) -> None:
            decode_request(msg.data, StatusRequest)
            await msg.respond(status_bytes)

        async def bare_handler(msg: Msg) -> None:
            await msg.respond(msg.data)

        await host.subscribe("training.status.bench", cb=contract_handler)
        await host.subscribe("training.jobs", cb=bare_handler)
        await host.flush()
        await asyncio.sleep(0)
        await host.flush()

        async def contract_call() -> None:
            reply = await client.request(
                "training.status.bench", encode(StatusRequest()), timeout=2
            )
            assert isinstance(decode_reply(reply.data, TrainingStatus), TrainingStatus)

        async def bare_call() -> None:
            await client.request("training.jobs", b"{}", timeout=2)

        samples: dict[str, list[float]] = {"contracts": [], "bare": []}
        for _ in range(200):  # warm-up
            await contract_call()
            await bare_call()
        # Interleave blocks so that a noisy neighbour hits both sides alike.
        for _ in range(rounds // BLOCK):
            for name, call in (("contracts", contract_call), ("bare", bare_call)):
                for _ in range(BLOCK):
                    began = time.perf_counter()
                    await call()
                    samples[name].append(time.perf_counter() - began)
        await client.close()
        await host.close()
        return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3000)
    args = parser.parse_args()
    samples = asyncio.run(run(args.rounds))
    print(f"request/reply round trip over nats-server, {args.rounds} calls each, interleaved")
    print(f"{'':<28}{'p50 ms':>10}{'p99 ms':>10}")
    for name, label in (("bare", "bare nats-py echo (raw)"), ("contracts", "status via our codec")):
        data = samples[name]
        print(f"{label:<28}{percentile(data, 50) * 1e3:>10.3f}{percentile(data, 99) * 1e3:>10.3f}")
    for q in (50, 99):
        ratio = percentile(samples["contracts"], q) / percentile(samples["bare"], q)
        print(f"ratio codec/bare p{q}: {ratio:.2f}")


if __name__ == "__main__":
    main()
