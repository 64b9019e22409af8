"""Realistic instances of every message, as a host trainer and an adapter send them."""

from __future__ import annotations

import datetime as dt

import msgspec

import bus_contracts as bc

T0 = dt.datetime(2025, 3, 14, 9, 26, 53, 589000, tzinfo=dt.UTC)
TASK = "bt-20250314-0001"
HOST = "gpu-box-1"

EPOCH_1 = bc.EpochMetrics(
    epoch=1,
    train_loss=1.0712,
    train_accuracy=0.4113,
    val_loss=1.0523,
    val_accuracy=0.4402,
    learning_rate=1e-3,
    duration_s=0.84,
    samples_per_s=281_503.2,
    batch_size=256,
)
SUMMARY = bc.ResultSummary(
    test_accuracy=0.4631,
    test_macro_f1=0.4012,
    baseline_accuracy=0.3875,
    epochs_run=37,
    early_stopped=True,
    duration_s=41.7,
    model_version="v3",
    model_path="models/neuro_fuzzy_default/SPX_MSFT_1d_v3",
    artifact_name="neuro_fuzzy_default/SPX_MSFT_1d_v3.tar",
)
FAILURE = bc.ErrorInfo(code=404, message="data/QQQ_1d.csv: file not found", field="symbols[1]")
STATUS = bc.TrainingStatus(
    task_id=TASK,
    state="completed",
    executor="host",
    host_id=HOST,
    device="cuda:0",
    phase="saving",
    percent=100.0,
    epoch=37,
    total_epochs=50,
    metrics={"val_loss": 0.9931, "val_accuracy": 0.4702},
    symbols=["SPX", "MSFT"],
    timeframe="1d",
    strategy="neuro_fuzzy_default",
    created_at=T0,
    started_at=T0 + dt.timedelta(seconds=0.2),
    finished_at=T0 + dt.timedelta(seconds=42),
    heartbeat_at=T0 + dt.timedelta(seconds=41),
    result=SUMMARY,
)

CUSTOM_STRATEGY = bc.Strategy(
    name="rsi-macd-fast",
    indicators=[
        bc.IndicatorSpec(id="rsi_7", type="rsi", params={"period": 7}),
        bc.IndicatorSpec(id="macd", type="macd", params={"fast": 8, "slow": 21}),
        bc.IndicatorSpec(id="bb", type="bbands", params={"stddev": 2.5}),
    ],
    fuzzy_sets=[
        bc.FuzzySetSpec(
            indicator="rsi_7",
            sets={
                "oversold": bc.Trapezoidal(a=0, b=0, c=20, d=35),
                "neutral": bc.Triangular(a=30, b=50, c=70),
                "overbought": bc.Trapezoidal(a=65, b=80, c=100, d=100),
            },
        ),
        bc.FuzzySetSpec(
            indicator="macd.signal",
            sets={"down": bc.Gaussian(mean=-1, sigma=0.5), "up": bc.Gaussian(mean=1, sigma=0.5)},
        ),
        bc.FuzzySetSpec(
            indicator="bb.percent_b",
            sets={
                "low": bc.Triangular(a=-0.5, b=0, c=0.5),
                "high": bc.Triangular(a=0.5, b=1, c=1.5),
            },
        ),
    ],
    labels=bc.ZigZagLabels(threshold=0.02, lookahead_bars=10),
    model=bc.ModelSpec(hidden_layers=[128, 64, 32], activation="gelu", dropout=0.1),
    training=bc.TrainingSpec(
        epochs=200,
        batch_size="auto",
        learning_rate=3e-4,
        split=bc.SplitSpec(train=0.6, validation=0.2, test=0.2),
        class_weighting="none",
        early_stopping=bc.EarlyStoppingSpec(patience=20, min_delta=0.0),
        seed=7,
    ),
)

REQUESTS: list[bc.Request] = [
    bc.StartTraining(
        task_id=TASK,
        symbols=["SPX", "MSFT", "BRK.B"],
        timeframe="1d",
        start_date=dt.date(2005, 1, 3),
        end_date=dt.date(2024, 12, 31),
        strategy=CUSTOM_STRATEGY,
        device="cuda:1",
        mixed_precision="bf16",
        progress_interval_s=0.25,
    ),
    bc.StartTraining(symbols=["IXIC"], timeframe="1h"),
    bc.StatusRequest(),
    bc.StopTraining(reason="superseded by bt-20250314-0002"),
    bc.PerformanceRequest(),
    bc.ListJobs(states=["running", "queued"], executor="local", limit=10),
    bc.HealthRequest(detailed=True),
]

PERFORMANCE = bc.TrainingPerformance(
    task_id=TASK,
    executor="host",
    host_id=HOST,
    training=bc.TrainingMetrics(
        final_train_loss=0.95,
        final_train_accuracy=0.49,
        final_val_loss=0.99,
        final_val_accuracy=0.47,
        best_val_loss=0.98,
        best_epoch=27,
        epochs_run=37,
        early_stopped=True,
        duration_s=41.7,
        samples_per_s=265_000.0,
        train_samples=8_912,
        val_samples=1_909,
        batch_size=256,
    ),
    test=bc.TestMetrics(
        accuracy=0.4631,
        loss=1.01,
        macro_precision=0.41,
        macro_recall=0.40,
        macro_f1=0.4012,
        per_class={
            "BUY": bc.ClassMetrics(precision=0.45, recall=0.52, f1=0.48, support=712),
            "HOLD": bc.ClassMetrics(precision=0.50, recall=0.48, f1=0.49, support=740),
            "SELL": bc.ClassMetrics(precision=0.28, recall=0.20, f1=0.23, support=458),
        },
        confusion_matrix=[[370, 250, 92], [260, 355, 125], [200, 166, 92]],
        labels=["BUY", "HOLD", "SELL"],
        baseline_accuracy=0.3875,
        samples=1_910,
    ),
    model=bc.ModelInfo(
        architecture="MLP(30 -> 64 -> 32 -> 3, relu, dropout 0.2)",
        parameters=4_163,
        size_bytes=18_411,
        feature_names=["rsi_14_low", "rsi_14_neutral", "rsi_14_high"],
        input_features=30,
        classes=["BUY", "HOLD", "SELL"],
    ),
    resources=bc.ResourceUsage(
        device="cuda:0",
        device_name="NVIDIA H200",
        mixed_precision="bf16",
        peak_gpu_memory_bytes=52_428_800,
        peak_rss_bytes=1_288_490_188,
    ),
    artifact=bc.ArtifactRef(
        model_version="v3",
        model_path="models/neuro_fuzzy_default/SPX_MSFT_1d_v3",
        checksum_sha256="9f" * 32,
        object_name="neuro_fuzzy_default/SPX_MSFT_1d_v3.tar",
    ),
    history=[EPOCH_1],
)


REPLIES: list[bc.Reply] = [
    bc.TrainingAccepted(
        task_id=TASK,
        state="queued",
        executor="host",
        host_id=HOST,
        device="cuda:0",
        progress_subject=f"training.progress.{TASK}",
        queue_position=2,
        created=False,
    ),
    STATUS,
    bc.TrainingStatus(
        task_id="bt-2",
        state="failed",
        executor="local",
        host_id="local",
        error=FAILURE,
    ),
    PERFORMANCE,
    bc.JobList(jobs=[STATUS], total=14),
    bc.HealthReport(
        status="ok",
        host_id=HOST,
        version="0.1.0",
        uptime_s=3_600.5,
        jobs_running=1,
        jobs_queued=2,
        max_concurrent_jobs=1,
        accepting_jobs=True,
        devices=[
            bc.DeviceInfo(
                device="cuda:0",
                name="NVIDIA H200",
                memory_total_bytes=150_000_000_000,
                memory_used_bytes=1_000_000_000,
                memory_reserved_bytes=1_200_000_000,
                utilization_ratio=0.93,
            )
        ],
        rss_bytes=310_000_000,
        system_memory_total_bytes=137_000_000_000,
        system_memory_available_bytes=120_000_000_000,
        disk_free_bytes=60_000_000_000,
        recent_errors=0,
        request_latency={"training.start": bc.LatencySummary(count=12, p50_s=4e-4, p99_s=2e-3)},
    ),
    bc.ErrorReply(
        code=500,
        message="internal error",
        error_id="e-7f3a",
        details={"retry": False, "hosts": ["gpu-box-1"], "nested": {"n": 1.5}},
    ),
]

_EVENT = {"task_id": TASK, "timestamp": T0}
EVENTS: list[bc.ProgressEvent] = [
    bc.Queued(seq=1, percent=0.0, queue_position=0, executor="host", host_id=HOST, **_EVENT),
    bc.Started(
        seq=2, percent=0.0, executor="host", host_id=HOST, device="cuda:0", pid=4242, **_EVENT
    ),
    bc.PhaseChanged(
        seq=3, percent=3.0, phase="computing_features", message="30 features", **_EVENT
    ),
    bc.BatchProgress(
        seq=4,
        percent=11.2,
        epoch=1,
        epochs=50,
        batch=20,
        batches=35,
        loss=1.08,
        samples_per_s=280_000.0,
        **_EVENT,
    ),
    bc.BatchSizeReduced(
        seq=5, percent=11.3, old_batch_size=4096, new_batch_size=2048, reason="CUDA OOM", **_EVENT
    ),
    bc.EpochEnded(seq=6, percent=11.7, epochs=50, metrics=EPOCH_1, best=True, **_EVENT),
    bc.Completed(seq=7, percent=100.0, result=SUMMARY, **_EVENT),
    bc.Failed(seq=7, percent=3.0, error=FAILURE, **_EVENT),
    bc.Cancelled(seq=7, percent=40.0, reason="requested by user", **_EVENT),
]


def message_types(base: type) -> list[type]:
    """Every public message class of ``base`` (Request or Reply) the package exports."""
    exported = (getattr(bc, name) for name in bc.__all__)
    return [t for t in exported if isinstance(t, type) and issubclass(t, base) and t is not base]


def as_json(msg: msgspec.Struct) -> dict[str, object]:
    """A message as the plain JSON object a client would send."""
    decoded: dict[str, object] = msgspec.json.decode(msgspec.json.encode(msg))
    return decoded
