"""``make demo``: the whole system on this machine, on real S&P 500 bars.

Starts the embedded nats-server and a host trainer, trains the default
strategy through the backend adapter with a live progress bar, prints the
metrics, fetches the model over the bus into another folder, predicts with it,
then stops everything it started.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
from rich.console import Console

from backend_adapter.console import class_table, performance_table, render_progress
from backend_adapter.router import HostUnavailable, TrainingRouter
from bus_contracts.messages.progress import Completed
from bus_contracts.messages.start import StartTraining
from embedded_nats import NatsServer, load_or_create
from embedded_nats.paths import PROJECT_ROOT, state_dir
from host_trainer.child import HostTrainerProcess

DATA_DIR = PROJECT_ROOT / "data"
HOST_READY_TIMEOUT_S = 60.0


async def _wait_for_host(router: TrainingRouter, host: HostTrainerProcess) -> None:
    deadline = time.monotonic() + HOST_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if host.process.poll() is not None:
            raise RuntimeError(f"host trainer exited; see {host.log_path}")
        try:
            await router.health()
            return
        except HostUnavailable:
            await asyncio.sleep(0.1)
    raise TimeoutError(f"host trainer not ready in {HOST_READY_TIMEOUT_S} s; see {host.log_path}")


async def _train(console: Console, work: Path, host: HostTrainerProcess) -> int:
    async with TrainingRouter() as router:
        console.print("waiting for the host trainer to register on the bus…")
        await _wait_for_host(router, host)
        health = await router.health(detailed=True)
        console.print(
            f"host trainer [bold]{health.host_id}[/] is up: "
            + ", ".join(f"{d.device} ({d.name})" for d in health.devices)
        )
        request = StartTraining(symbols=["SPX"], timeframe="1d")
        console.print(
            f"\ntraining strategy [bold]{request.strategy.name}[/] on SPX daily bars "
            f"({len(request.strategy.indicators)} indicators, "
            f"{sum(len(f.sets) for f in request.strategy.fuzzy_sets)} fuzzy features, "
            f"MLP {request.strategy.model.hidden_layers}, up to "
            f"{request.strategy.training.epochs} epochs with early stopping)"
        )
        accepted = await router.start(request)
        console.print(
            f"job [bold]{accepted.task_id}[/] accepted by {accepted.executor} "
            f"({accepted.host_id}); progress on {accepted.progress_subject}"
        )
        final = await render_progress(router.progress(accepted.task_id), console, "training")
        if not isinstance(final, Completed):
            console.print(f"[red]job did not complete: {final}[/]")
            return 1
        performance = await router.performance(accepted.task_id)
        console.print(performance_table(performance))
        console.print(class_table(performance))
        console.print(f"model saved by the host trainer in {performance.artifact.model_path}")

        fetched_dir = work / "fetched"
        model_dir = await router.fetch_model(accepted.task_id, fetched_dir)
        console.print(f"\nmodel fetched over the bus into [bold]{model_dir}[/]")
    return _predict(console, model_dir)


def _predict(console: Console, model_dir: Path) -> int:
    from training_engine.artifact import load_model  # noqa: PLC0415 - torch only when needed

    model = load_model(model_dir)
    predictions = model.predict_detailed(DATA_DIR / "SPX_1d.csv")
    last = slice(-100, None)
    counts = Counter(predictions.classes[last])
    console.print(
        "predictions for the last 100 bars on the CPU: "
        + ", ".join(f"{name} {counts.get(name, 0)}" for name in model.labels)
    )
    for when, label, probs in list(
        zip(predictions.timestamps, predictions.classes, predictions.probabilities, strict=True)
    )[-5:]:
        shown = "  ".join(f"{n} {p:.2f}" for n, p in zip(model.labels, probs, strict=True))
        console.print(f"  {str(when)[:10]}  {label:<5} ({shown})")
    return 0


def main() -> int:
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s %(message)s")
    console = Console(highlight=False)
    work = state_dir() / "demo"
    work.mkdir(parents=True, exist_ok=True, mode=0o700)
    passwords = load_or_create(work)
    server = NatsServer(
        store_dir=work / "jetstream", passwords=passwords, log_file=work / "nats-server.log"
    )
    info = server.start()
    console.print(f"nats-server {info.url} (monitoring {info.monitoring_url}) — state in {work}")
    host: HostTrainerProcess | None = None
    try:
        host = HostTrainerProcess(
            url=info.url,
            password=passwords["host_trainer"],
            work_dir=work,
            host_id="demo-host",
            settings={
                "data_dir": str(DATA_DIR),
                "models_dir": str(work / "models" / "host"),
                "metrics_port": "0",
            },
        )
        os.environ.update(
            NATS_URL=info.url,
            NATS_USER="backend",
            NATS_PASSWORD=passwords["backend"],
            TRAINING_MODELS_DIR=str(work / "models" / "local"),
        )
        return asyncio.run(_train(console, work, host))
    finally:
        if host is not None:
            host.stop()
        server.stop()
        left = psutil.Process().children(recursive=True)
        console.print(
            "stopped the host trainer and nats-server"
            + ("" if not left else f"; [red]left running: {[p.pid for p in left]}[/]")
        )


if __name__ == "__main__":
    sys.exit(main())
