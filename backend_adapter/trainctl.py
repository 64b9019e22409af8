"""``trainctl``: start, watch and inspect training jobs from a shell.

Human output by default, ``--json`` for scripts. Exit codes scripts can trust:

    0  success (a started job completed, a query answered)
    1  the job failed
    2  bad input (the request or the arguments), one line saying which field
    3  unreachable (no NATS, or no host trainer for host-only questions)
    4  the job was cancelled
    5  no such job
    6  conflict (wrong state for that action, task id reused)
    7  internal error on the other side (with its error id)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console

from backend_adapter.console import class_table, performance_table, render_progress
from backend_adapter.router import HostUnavailable, TrainingRouter
from bus_contracts.codec import decode_request, encode
from bus_contracts.errors import ContractError, ServiceError
from bus_contracts.messages.jobs import ListJobs
from bus_contracts.messages.progress import Cancelled, Completed, Failed, ProgressEvent
from bus_contracts.messages.start import StartTraining
from embedded_nats import BusUnreachable
from training_engine.errors import EngineError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_UNREACHABLE = 0, 1, 2, 3
EXIT_CANCELLED, EXIT_NOT_FOUND, EXIT_CONFLICT, EXIT_INTERNAL = 4, 5, 6, 7
_EXIT_BY_CODE = {
    400: EXIT_BAD_INPUT,
    413: EXIT_BAD_INPUT,
    422: EXIT_BAD_INPUT,
    404: EXIT_NOT_FOUND,
    409: EXIT_CONFLICT,
}


class Output:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.console = Console(stderr=False, highlight=False)

    def emit(self, message: msgspec.Struct, human: Callable[[], None]) -> None:
        if self.as_json:
            sys.stdout.write(encode(message).decode() + "\n")
            sys.stdout.flush()
        else:
            human()

    def error(self, text: str) -> None:
        if self.as_json:
            sys.stdout.write(json.dumps({"error": text}) + "\n")
        else:
            Console(stderr=True).print(f"[red]error:[/] {text}", highlight=False)


def build_request(args: argparse.Namespace) -> StartTraining:
    """The request from ``--request FILE`` (JSON) and/or the flags, validated strictly."""
    body: dict[str, Any] = {}
    if args.request:
        body = json.loads(Path(args.request).read_text())
    if args.symbols:
        body["symbols"] = args.symbols
    if args.timeframe:
        body["timeframe"] = args.timeframe
    if args.task_id:
        body["task_id"] = args.task_id
    if args.device:
        body["device"] = args.device
    for flag, key in (("start_date", "start_date"), ("end_date", "end_date")):
        if getattr(args, flag):
            body[key] = getattr(args, flag)
    if args.epochs is not None:
        body.setdefault("strategy", {}).setdefault("training", {})["epochs"] = args.epochs
    return decode_request(json.dumps(body).encode(), StartTraining)


async def _follow(router: TrainingRouter, task_id: str, out: Output) -> int:
    events = router.progress(task_id)
    final: ProgressEvent | None
    if out.as_json:
        final = None
        async for event in events:
            out.emit(event, lambda: None)
            final = event
    else:
        final = await render_progress(events, out.console, task_id)
    match final:
        case Completed(result=result):
            if not out.as_json:
                out.console.print(
                    f"completed: test accuracy {result.test_accuracy:.4f}, macro F1 "
                    f"{result.test_macro_f1:.4f} (always the training majority class: "
                    f"{result.baseline_accuracy:.4f}; `trainctl performance` has more); "
                    f"model {result.model_path}"
                )
            return EXIT_OK
        case Failed(error=error):
            if not out.as_json:
                out.error(f"job {task_id} failed: {error.message}")
            return EXIT_FAILED
        case Cancelled():
            return EXIT_CANCELLED
        case _:
            # The events ended without a final one: the job's owner went away.
            status = await router.status(task_id)
            reason = status.error.message if status.error else "no final event"
            out.error(f"job {task_id} is {status.state}: {reason}")
            return EXIT_FAILED


async def cmd_start(router: TrainingRouter, args: argparse.Namespace, out: Output) -> int:
    accepted = await router.start(build_request(args))
    out.emit(
        accepted,
        lambda: out.console.print(
            f"job [bold]{accepted.task_id}[/] {accepted.state} on {accepted.executor} "
            f"({accepted.host_id}, device {accepted.device})"
        ),
    )
    if args.detach and accepted.executor == "local" and not router.connected:
        # Without the bus the job lives in this process: leaving would end it.
        Console(stderr=True).print(
            "NATS is not reachable: the job runs in this process, so trainctl stays "
            "with it (--detach needs the bus)",
            highlight=False,
        )
    elif args.detach:
        return EXIT_OK
    return await _follow(router, accepted.task_id, out)


async def cmd_watch(router: TrainingRouter, args: argparse.Namespace, out: Output) -> int:
    return await _follow(router, args.task_id, out)


async def cmd_status(router: TrainingRouter, args: argparse.Namespace, out: Output) -> int:
    status = await router.status(args.task_id)

    def human() -> None:
        line = f"{status.task_id}: {status.state}"
        if status.phase:
            line += f", {status.phase.replace('_', ' ')}"
        line += f", {status.percent:.0f}%"
        if status.total_epochs:
            line += f", epoch {status.epoch}/{status.total_epochs}"
        line += f" on {status.executor} ({status.host_id})"
        out.console.print(line)
        if status.error:
            out.console.print(f"error {status.error.code}: {status.error.message}")

    out.emit(status, human)
    return EXIT_OK


async def cmd_stop(router: TrainingRouter, args: argparse.Namespace, out: Output) -> int:
    status = await router.stop(args.task_id, reason=args.reason)
    out.emit(status, lambda: out.console.print(f"stop sent to {status.task_id} ({status.state})"))
    return EXIT_OK


async def cmd_performance(router: TrainingRouter, args: argparse.Namespace, out: Output) -> int:
    performance = await router.performance(args.task_id)

    def human() -> None:
        out.console.print(performance_table(performance))
        out.console.print(class_table(performance))

    out.emit(performance, human)
    return EXIT_OK


async def cmd_jobs(router: TrainingRouter, args: argparse.Namespace, out: Output) -> int:
    if not router.connected:
        raise HostUnavailable("NATS is not reachable: no job registry to list")
    listing = await router.jobs(ListJobs(states=args.state or None, limit=args.limit))

    def human() -> None:
        for job in listing.jobs:
            out.console.print(
                f"{job.task_id:<34} {job.state:<10} {job.percent:5.0f}%  "
                f"{job.executor:<5} {','.join(job.symbols)} {job.timeframe}"
            )
        out.console.print(f"{len(listing.jobs)} of {listing.total} jobs")

    out.emit(listing, human)
    return EXIT_OK


async def cmd_health(router: TrainingRouter, args: argparse.Namespace, out: Output) -> int:
    report = await router.health(detailed=args.detailed)

    def human() -> None:
        out.console.print(
            f"{report.host_id}: {report.status}, {report.jobs_running} running, "
            f"{report.jobs_queued} queued, up {report.uptime_s:.0f} s"
        )
        for device in report.devices:
            out.console.print(f"  {device.device}: {device.name}")

    out.emit(report, human)
    return EXIT_OK if report.status != "degraded" else EXIT_FAILED


async def cmd_fetch_model(router: TrainingRouter, args: argparse.Namespace, out: Output) -> int:
    path = await router.fetch_model(args.task_id, Path(args.dest))
    if out.as_json:
        sys.stdout.write(json.dumps({"task_id": args.task_id, "model_path": str(path)}) + "\n")
    else:
        out.console.print(f"model of {args.task_id} saved to {path}")
    return EXIT_OK


COMMANDS: dict[str, Callable[[TrainingRouter, argparse.Namespace, Output], Awaitable[int]]] = {
    "start": cmd_start,
    "watch": cmd_watch,
    "status": cmd_status,
    "stop": cmd_stop,
    "performance": cmd_performance,
    "jobs": cmd_jobs,
    "health": cmd_health,
    "fetch-model": cmd_fetch_model,
}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="trainctl",
        description="Train strategies on the host GPU over NATS, or in the container.",
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    root.add_argument("--json", action="store_true", help="machine-readable output")
    root.add_argument("-v", "--verbose", action="store_true", help="log routing decisions")
    sub = root.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start a job and follow it")
    start.add_argument("symbols", nargs="*", help="e.g. SPX IXIC")
    start.add_argument("--timeframe", "-t")
    start.add_argument("--request", help="a JSON file with the whole request")
    start.add_argument("--task-id")
    start.add_argument("--epochs", type=int)
    start.add_argument("--device")
    start.add_argument("--start-date")
    start.add_argument("--end-date")
    start.add_argument("--detach", action="store_true", help="return once accepted")
    for name in ("watch", "status", "performance"):
        sub.add_parser(name).add_argument("task_id")
    stop = sub.add_parser("stop")
    stop.add_argument("task_id")
    stop.add_argument("--reason", default="stopped with trainctl")
    jobs = sub.add_parser("jobs")
    jobs.add_argument(
        "--state",
        action="append",
        choices=["queued", "running", "completed", "failed", "cancelled", "lost"],
    )
    jobs.add_argument("--limit", type=int, default=50)
    health = sub.add_parser("health")
    health.add_argument("--detailed", action="store_true")
    fetch = sub.add_parser("fetch-model")
    fetch.add_argument("task_id")
    fetch.add_argument("dest")
    return root


async def run(args: argparse.Namespace) -> int:
    out = Output(args.json)
    try:
        async with TrainingRouter() as router:
            return await COMMANDS[args.command](router, args, out)
    except ContractError as exc:
        out.error(str(exc))
        return EXIT_BAD_INPUT
    except (OSError, json.JSONDecodeError) as exc:
        if isinstance(exc, BusUnreachable):
            out.error(str(exc))
            return EXIT_UNREACHABLE
        out.error(f"{exc}")
        return EXIT_BAD_INPUT
    except HostUnavailable as exc:
        out.error(str(exc))
        return EXIT_UNREACHABLE
    except ServiceError as exc:
        suffix = f" (error id {exc.error_id})" if exc.error_id else ""
        out.error(f"{exc.message}{suffix}")
        return _EXIT_BY_CODE.get(exc.code, EXIT_INTERNAL)
    except EngineError as exc:  # fetch-model: a destination taken, an archive that fails checks
        out.error(exc.message)
        return _EXIT_BY_CODE.get(exc.code, EXIT_INTERNAL)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR,
        format="%(levelname)s %(name)s %(message)s",
    )
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
