"""``host-trainer``: run the service, check a running one, show the configuration.

    host-trainer serve  [--config FILE]   run until SIGTERM/SIGINT; SIGHUP reloads FILE
    host-trainer check  [--config FILE]   exit 0 when a healthy host answers, else 1
    host-trainer config [--config FILE]   print the effective settings (no secrets)

The config file defaults to ``$HOST_TRAINER_CONFIG``; without one, the defaults
and the environment apply. An invalid configuration exits 2 and names every key
at fault.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import msgspec
import nats.errors
from nats.aio.client import Client
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

from bus_contracts.codec import decode_reply, encode
from bus_contracts.messages.health import HealthReport, HealthRequest
from bus_contracts.messages.performance import TrainingPerformance
from embedded_nats import BusAuthRefused, BusEndpoint, BusUnreachable, connect
from embedded_nats.credentials import credentials_file, env_var, load_or_create
from embedded_nats.paths import state_dir
from host_trainer.config import CONFIG_ENV, ConfigError, HostConfig, load_config, redact_url
from host_trainer.health import DeviceProbe, HealthMonitor
from host_trainer.logging_setup import configure_logging, set_level
from host_trainer.manager import JobManager, ManagerConfig
from host_trainer.metrics import HostMetrics, MetricsServer, serve_metrics
from host_trainer.service import TrainingHostService, service_version
from job_runtime import JobRecord, JobRegistry

log = logging.getLogger("host_trainer")

EXIT_OK = 0
EXIT_UNHEALTHY = 1
EXIT_CONFIG = 2
EXIT_DEADLINE = 70
HARD_EXIT_AFTER_S = 9.5
"""After a stop signal the process is gone within this, whatever hangs."""
SAMPLE_INTERVAL_S = 5.0
CONNECT_TIMEOUT_S = 2.0
RECONNECT_MAX_DELAY_S = 5.0

_T = TypeVar("_T")


# ---- wiring: the one place that knows how the job manager is built ----------------


async def open_jobs(config: HostConfig, nc: Client, metrics: HostMetrics) -> JobManager:
    """The host's JobService: a JobManager on the JetStream registry."""
    js = nc.jetstream()
    registry = await JobRegistry.open(js, config.subjects)
    manager = JobManager(
        _manager_config(config), js=js, registry=registry, subjects=config.subjects
    )

    def finished(
        record: JobRecord, seconds: float, performance: TrainingPerformance | None
    ) -> None:
        metrics.job_finished(record.state, seconds)
        if performance is not None:
            training = performance.training
            metrics.add_samples(training.train_samples * training.epochs_run)
        counts = manager.counts()
        metrics.set_jobs(running=counts.running, queued=counts.queued)

    manager.on_job_finished.append(finished)
    return manager


def _manager_config(config: HostConfig) -> ManagerConfig:
    return config


# ---- serve ------------------------------------------------------------------------


class HostRunner:
    """One ``host-trainer serve``: connect, start, wait for a signal, stop in time."""

    def __init__(self, config: HostConfig, config_path: Path | None) -> None:
        self.config = config
        self.config_path = config_path
        self.stopping = asyncio.Event()
        self.nc: Client | None = None
        self.manager: JobManager | None = None
        self.service: TrainingHostService | None = None
        self.metrics_server: MetricsServer | None = None
        self.registry = CollectorRegistry()
        self.metrics = HostMetrics(self.registry)
        self.probe = DeviceProbe()
        self._sampler: asyncio.Task[None] | None = None
        self._denied: list[str] = []
        self._user: str | None = None

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        try:
            try:
                started = await self._unless_stopped(self._start_up())
            except (BusAuthRefused, StartupError) as exc:
                log.error("host.start_failed error=%s", exc)
                await self.shutdown()
                return EXIT_CONFIG
            except Exception:
                log.exception("host.start_failed")
                await self.shutdown()
                return EXIT_UNHEALTHY
            if started:
                log.info(
                    "host.ready host_id=%s root=%s version=%s metrics=%s",
                    self.config.host_id,
                    self.config.subject_root,
                    service_version(),
                    self.metrics_server.url if self.metrics_server else "off",
                )
                await self.stopping.wait()
            await self.shutdown()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        return EXIT_OK

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        if self.stopping.is_set():
            log.info("host.already_stopping signal=%s", sig.name)
            return
        log.info("host.stopping signal=%s host_id=%s", sig.name, self.config.host_id)
        self.stopping.set()
        # Whatever hangs, a service manager sees the process end in bounded time.
        watchdog = threading.Timer(HARD_EXIT_AFTER_S, _hard_exit)
        watchdog.daemon = True
        watchdog.start()

    async def _unless_stopped(self, work: Awaitable[_T]) -> _T | None:
        """``work``'s result, or None (work cancelled) if a stop signal comes first."""
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self.stopping.wait())
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None

    async def _start_up(self) -> bool:
        self.nc = await self._connect()
        self.manager = await open_jobs(self.config, self.nc, self.metrics)
        manager = self.manager
        health = HealthMonitor(
            self.config, manager.counts, accepting=lambda: manager.accepting, probe=self.probe
        )
        self.service = TrainingHostService(
            self.nc, manager, self.config, metrics=self.metrics, health=health
        )
        await self.service.start()
        if self._denied:  # the server refused our subscriptions (start() flushed)
            raise StartupError(
                f"NATS user {self._user} may not subscribe to {', '.join(self._denied)} "
                f"(subject_root {self.config.subject_root!r})"
            )
        self._start_metrics()
        self._sampler = asyncio.create_task(self._sample(), name="host-sampler")
        return True

    async def _connect(self) -> Client:
        """Connect with a bounded time per try, retrying until it works (the bus
        may start after the host); once connected nats-py reconnects for ever."""
        endpoint = BusEndpoint.from_environment("host_trainer")
        if self.config.nats_url:
            endpoint = dataclasses.replace(endpoint, url=self.config.nats_url)
        self._user = endpoint.user
        delay = 0.25
        while True:
            try:
                return await connect(
                    endpoint,
                    name=f"host-trainer-{self.config.host_id}",
                    connect_timeout_s=CONNECT_TIMEOUT_S,
                    reconnect=True,
                    error_cb=self._on_nats_error,
                )
            except BusAuthRefused:
                raise
            except BusUnreachable as exc:
                log.warning(
                    "nats.unreachable url=%s retry_in_s=%.2f error=%s",
                    redact_url(endpoint.url),
                    delay,
                    exc,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_DELAY_S)

    async def _on_nats_error(self, exc: Exception) -> None:
        text = str(exc)
        if "permissions violation" in text.lower():
            log.error("nats.permission_denied error=%s", text)
            denied = re.search(r'subscription to "([^"]+)"', text)
            if denied:
                self._denied.append(denied.group(1))
        else:
            log.warning("nats.error error=%s", text)

    def _start_metrics(self) -> None:
        if self.config.metrics_port < 0:
            return
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        try:
            self.metrics_server, _ = serve_metrics(
                self.registry, self.config.metrics_host, self.config.metrics_port
            )
        except OSError as exc:  # a taken port must not take the host down
            log.error(
                "metrics.unavailable host=%s port=%d error=%s",
                self.config.metrics_host,
                self.config.metrics_port,
                exc,
            )

    async def _sample(self) -> None:
        """Keep the gauges fresh between scrapes: jobs, and GPU memory and load."""
        assert self.manager is not None
        while True:
            counts = self.manager.counts()
            self.metrics.set_jobs(running=counts.running, queued=counts.queued)
            try:
                self.metrics.set_devices(await asyncio.to_thread(self.probe.devices))
            except Exception as exc:  # noqa: BLE001 - sampling must never end the host
                log.warning("metrics.sample_failed error=%s", exc)
            await asyncio.sleep(SAMPLE_INTERVAL_S)

    def reload(self) -> None:
        """SIGHUP: reread the file; apply what may change, log what needs a restart."""
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            log.error("config.reload_failed problems=%s", str(exc).replace("\n", "; "))
            return
        applied, refused = self.config.reload(new)
        shown = new.public_dict()
        for key in refused:
            log.warning("config.reload_refused key=%s value=%s needs=restart", key, shown[key])
        if not applied:
            log.info("config.reloaded changes=none")
            return
        self.config = msgspec.structs.replace(self.config, **applied)
        set_level(self.config.log_level)
        if self.manager is not None:
            self.manager.reload(_manager_config(self.config))
        if self.service is not None:
            self.service.update_config(self.config)
        log.info("config.reloaded applied=%s", json.dumps(applied, sort_keys=True))

    async def shutdown(self) -> None:
        """Stop taking jobs, end running ones with a reason, stop serving, close."""
        deadline = time.monotonic() + HARD_EXIT_AFTER_S - 0.5
        if self.service is not None:
            self.service.begin_drain()
        if self._sampler is not None:
            self._sampler.cancel()
        if self.manager is not None:
            budget = max(0.1, min(self.config.shutdown_timeout_s, deadline - time.monotonic() - 2))
            try:
                await asyncio.wait_for(
                    self.manager.shutdown(reason="host shutdown", timeout_s=budget), budget + 0.5
                )
            except TimeoutError:
                log.error("host.jobs_shutdown_timeout timeout_s=%.1f", budget)
        if self.service is not None:
            await self.service.stop(timeout_s=0.5)
        if self.metrics_server is not None:
            await asyncio.to_thread(self.metrics_server.stop)
        if self.nc is not None and not self.nc.is_closed:
            left = max(0.1, deadline - time.monotonic())
            try:
                await asyncio.wait_for(self.nc.drain(), left)
            except (TimeoutError, nats.errors.Error) as exc:
                log.warning("nats.drain_incomplete error=%s", exc)
                await self.nc.close()
        log.info("host.stopped host_id=%s", self.config.host_id)


class StartupError(RuntimeError):
    """The host cannot serve as configured (the bus refused what it needs)."""


def _hard_exit() -> None:
    log.critical("host.stop_deadline_exceeded after_s=%.1f", HARD_EXIT_AFTER_S)
    logging.shutdown()
    os._exit(EXIT_DEADLINE)


async def serve(config_path: Path | None) -> int:
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(f"host-trainer: invalid configuration\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(config.log_level)
    log.info(
        "host.starting host_id=%s config=%s nats_url=%s",
        config.host_id,
        config_path or "(none)",
        redact_url(config.nats_url) if config.nats_url else "(discovered)",
    )
    return await HostRunner(config, config_path).run()


# ---- check ------------------------------------------------------------------------


def check_endpoint(config: HostConfig) -> BusEndpoint:
    """Who ``check`` connects as: the read-only observer user (the host's own user
    may not send requests), unless ``NATS_USER`` names a user of the deployment's."""
    endpoint = BusEndpoint.from_environment("observer")
    if os.environ.get("NATS_USER") == "host_trainer":
        password = os.environ.get(env_var("observer"))
        if password is None and credentials_file(state_dir()).exists():
            password = load_or_create(state_dir())["observer"]
        endpoint = BusEndpoint(url=endpoint.url, user="observer", password=password)
    if config.nats_url:
        endpoint = dataclasses.replace(endpoint, url=config.nats_url)
    return endpoint


async def check(
    config: HostConfig, timeout_s: float = 2.0, endpoint: BusEndpoint | None = None
) -> tuple[int, str]:
    """Ask ``<root>.health``: (exit code, one line saying why)."""
    endpoint = endpoint or check_endpoint(config)
    url = redact_url(endpoint.url)
    try:
        nc = await connect(
            endpoint,
            name="host-trainer-check",
            connect_timeout_s=timeout_s,
            reconnect=False,
            fail_fast=True,
            error_cb=_quiet,
        )
    except BusAuthRefused:
        return EXIT_UNHEALTHY, f"unhealthy: NATS at {url} refused user {endpoint.user}"
    except BusUnreachable:
        return EXIT_UNHEALTHY, f"unhealthy: NATS at {url} is not reachable"
    subject = config.subjects.health
    try:
        msg = await nc.request(subject, encode(HealthRequest()), timeout=timeout_s)
    except nats.errors.NoRespondersError:
        return EXIT_UNHEALTHY, f"unhealthy: no host trainer is serving {subject}"
    except nats.errors.TimeoutError:
        return EXIT_UNHEALTHY, f"unhealthy: no answer on {subject} within {timeout_s:g} s"
    finally:
        await nc.close()
    try:
        report = decode_reply(msg.data, HealthReport)
    except ValueError as exc:
        return EXIT_UNHEALTHY, f"unhealthy: unreadable answer on {subject}: {exc}"
    if not isinstance(report, HealthReport):
        return (
            EXIT_UNHEALTHY,
            f"unhealthy: {subject} answered error {report.code}: {report.message}",
        )
    line = (
        f"{report.status}: host {report.host_id} version {report.version}, "
        f"{report.jobs_running} running, {report.jobs_queued} queued, "
        f"up {report.uptime_s:.0f} s"
    )
    return (EXIT_OK if report.status == "ok" else EXIT_UNHEALTHY), line


async def _quiet(exc: Exception) -> None:
    """``check`` prints one line; connection errors show up in it, not as logs."""


# ---- main -------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="host-trainer", description="Train neural-network strategies on this host's GPU."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("serve", "run the host trainer until SIGTERM or SIGINT (SIGHUP reloads the config)"),
        ("check", "exit 0 if a healthy host trainer answers on the bus, else 1"),
        ("config", "print the effective configuration as JSON (passwords masked)"),
    ):
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument(
            "--config",
            type=Path,
            default=os.environ.get(CONFIG_ENV) or None,
            help=f"TOML file (default: ${CONFIG_ENV}; none: defaults and environment)",
        )
        if name == "check":
            command.add_argument("--timeout-s", type=float, default=2.0, help="answer within")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config_path: Path | None = args.config
    if args.command == "serve":
        return asyncio.run(serve(config_path))
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        if args.command == "check":
            print("invalid configuration: " + str(exc).replace("\n", "; "))
            return EXIT_UNHEALTHY
        print(f"host-trainer: invalid configuration\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "check":
        code, line = asyncio.run(check(config, args.timeout_s))
        print(line)
        return code
    print(json.dumps(config.public_dict(), indent=2))
    return EXIT_OK
