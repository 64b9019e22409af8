"""ops/prometheus: the scrape config and the alert rules.

Read with the strict YAML-subset reader; checked by promtool too where it is
installed (config, rules, and the rule unit tests in alerts.test.yml).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from . import miniyaml
from .helpers import OPS

PROMETHEUS = OPS / "prometheus"

# What the project exports (the issue's list), plus Prometheus' own `up`.
EXPORTED = {
    "up",
    "training_host_jobs_active",
    "training_host_jobs_queued",
    "training_host_jobs_finished_total",
    "training_host_job_duration_seconds",
    "training_host_gpu_memory_used_bytes",
    "training_host_gpu_memory_total_bytes",
    "training_host_gpu_utilization_ratio",
    "training_host_request_duration_seconds",
    "training_router_breaker_state",
    "training_router_routes_total",
    "training_router_fallbacks_total",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset", "inf", "nan",
}  # fmt: skip


def load(name: str) -> Any:
    return miniyaml.loads((PROMETHEUS / name).read_text())


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads: not functions, labels, or keywords."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # label values
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        following = text[match.end() :].lstrip()
        if following.startswith("(") or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def exported(name: str) -> bool:
    if name in EXPORTED:
        return True
    return any(name.endswith(s) and name.removesuffix(s) in EXPORTED for s in HISTOGRAM_SUFFIXES)


def rules() -> list[dict[str, Any]]:
    return [rule for group in load("alerts.yml")["groups"] for rule in group["rules"]]


def test_scrape_config_targets_loopback() -> None:
    config = load("prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"host-trainer", "nats", "training-backend"}
    trainer = jobs["host-trainer"]
    assert trainer["metrics_path"] == "/metrics"
    assert trainer["static_configs"] == [{"targets": ["127.0.0.1:9464"]}]
    for job in jobs.values():
        for static in job["static_configs"]:
            for target in static["targets"]:
                assert target.startswith("127.0.0.1:"), target
    for rule_file in config["rule_files"]:
        assert (PROMETHEUS / rule_file).is_file()


def test_alert_rules_are_complete() -> None:
    by_name = {rule["alert"]: rule for rule in rules()}
    assert set(by_name) == {
        "HostTrainerDown",
        "TrainingJobsFailing",
        "GpuMemoryNearFull",
        "TrainingBreakerOpen",
    }
    for name, rule in by_name.items():
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, name
        assert re.fullmatch(r"[0-9]+[smh]", rule["for"]), name
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"]["summary"], name
        assert rule["annotations"]["description"], name
    assert by_name["HostTrainerDown"]["for"] == "1m"
    assert by_name["GpuMemoryNearFull"]["for"] == "5m"
    assert by_name["TrainingBreakerOpen"]["for"] == "5m"
    assert 'outcome="failed"' in by_name["TrainingJobsFailing"]["expr"]
    assert "> 0.9" in by_name["GpuMemoryNearFull"]["expr"]
    assert "== 2" in by_name["TrainingBreakerOpen"]["expr"]


def test_alerts_read_only_metrics_the_project_exports() -> None:
    jobs = {job["job_name"] for job in load("prometheus.yml")["scrape_configs"]}
    for rule in rules():
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        unknown = {name for name in names if not exported(name)}
        assert not unknown, f"{rule['alert']} reads {unknown}, which nothing exports"
        for job in re.findall(r'job="([^"]+)"', rule["expr"]):
            assert job in jobs, f"{rule['alert']} watches job {job}, which is not scraped"


def test_metric_name_extraction() -> None:
    expr = 'sum by (instance) (rate(a_total{x="b c"}[5m])) / on(instance) b_bytes > 0.9 and up'
    assert metric_names(expr) == {"a_total", "b_bytes", "up"}


def test_alert_metrics_exist_in_the_code() -> None:
    """The names the rules read are the names the metrics code registers."""
    prometheus_client = pytest.importorskip("prometheus_client")
    host = pytest.importorskip("host_trainer.metrics")
    router = pytest.importorskip("backend_adapter.metrics")
    registry = prometheus_client.CollectorRegistry()
    host.HostMetrics(registry)
    router.RouterMetrics(registry)
    samples = {sample.name for family in registry.collect() for sample in family.samples} | {
        family.name for family in registry.collect()
    }
    for rule in rules():
        for name in metric_names(rule["expr"]) - {"up"}:
            assert name in samples, f"{rule['alert']}: {name} is not registered"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed here (Debian: apt-get install prometheus)")
    return found


@pytest.mark.parametrize(
    "command",
    [
        ["check", "config", "prometheus.yml"],
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts.test.yml"],
    ],
    ids=["config", "rules", "rule-tests"],
)
def test_promtool(command: list[str]) -> None:
    result = subprocess.run(
        [promtool(), *command],
        cwd=PROMETHEUS,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_yaml_subset_reader_refuses_what_it_does_not_know() -> None:
    assert miniyaml.loads('a:\n  - "x"\n  - b: 1\n    c: ["d"]\n') == {
        "a": ["x", {"b": 1, "c": ["d"]}]
    }
    for text in ("a: &anchor 1\n", "a: |\n  text\n", "a: x # comment\n", "a: 1\na: 2\n"):
        with pytest.raises(ValueError, match="line"):
            miniyaml.loads(text)


@pytest.mark.parametrize(
    "path",
    [
        OPS / "prometheus" / "prometheus.yml",
        OPS / "prometheus" / "alerts.yml",
        OPS / "prometheus" / "alerts.test.yml",
        OPS / "docker" / "compose.yaml",
    ],
    ids=lambda p: p.name,
)
def test_yaml_subset_reader_agrees_with_pyyaml(path: Path) -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not a dependency; checked where present")
    assert miniyaml.loads(path.read_text()) == yaml.safe_load(path.read_text())
