"""Human output of trainctl and the demo: a live progress bar and result tables."""

from __future__ import annotations

from collections.abc import AsyncIterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from bus_contracts.messages.performance import TrainingPerformance
from bus_contracts.messages.progress import (
    BatchProgress,
    BatchSizeReduced,
    Cancelled,
    Completed,
    EpochEnded,
    Failed,
    PhaseChanged,
    ProgressEvent,
    Queued,
    Started,
)


async def render_progress(
    events: AsyncIterator[ProgressEvent], console: Console, title: str
) -> ProgressEvent | None:
    """Draw a live bar (phase, epoch, loss, ETA) until the final event; return it."""
    final: ProgressEvent | None = None
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task(title, total=100.0, detail="waiting")
        async for event in events:
            detail = _detail(event)
            if detail is not None:
                progress.update(bar, completed=event.percent, detail=detail)
            if isinstance(event, Started):
                progress.console.print(
                    f"running on [bold]{event.executor}[/] ({event.host_id}, {event.device})"
                )
            elif isinstance(event, BatchSizeReduced):
                progress.console.print(
                    f"[yellow]out of memory: batch {event.old_batch_size} → "
                    f"{event.new_batch_size}[/]"
                )
            if isinstance(event, Completed | Failed | Cancelled):
                final = event
    return final


def _detail(event: ProgressEvent) -> str | None:
    match event:
        case Queued(queue_position=position):
            return f"queued (position {position})"
        case Started():
            return "started"
        case PhaseChanged(phase=phase):
            return phase.replace("_", " ")
        case BatchProgress(epoch=epoch, epochs=epochs, loss=loss):
            return f"epoch {epoch}/{epochs}  loss {loss:.4f}"
        case EpochEnded(metrics=m, epochs=epochs):
            return (
                f"epoch {m.epoch}/{epochs}  loss {m.train_loss:.4f}  "
                f"val {m.val_loss:.4f}  val acc {m.val_accuracy:.3f}"
            )
        case Completed():
            return "completed"
        case Failed(error=error):
            return f"failed: {error.message}"
        case Cancelled(reason=reason):
            return f"cancelled: {reason}"
        case _:
            return None


def performance_table(performance: TrainingPerformance) -> Table:
    test, training = performance.test, performance.training
    table = Table(
        title=f"job {performance.task_id} ({performance.executor}, {performance.host_id})"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("test accuracy", f"{test.accuracy:.4f}"),
        ("baseline: train majority", f"{test.baseline_accuracy:.4f}"),
        ("baseline: test majority", f"{test.test_majority_accuracy:.4f}"),
        ("test macro F1", f"{test.macro_f1:.4f}"),
        ("test loss", f"{test.loss:.4f}"),
        ("test samples", str(test.samples)),
        ("epochs run", f"{training.epochs_run}{' (early stop)' if training.early_stopped else ''}"),
        ("best epoch", str(training.best_epoch)),
        ("training time", f"{training.duration_s:.1f} s"),
        ("samples / s", f"{training.samples_per_s:,.0f}"),
        ("device", performance.resources.device),
        ("peak RSS", f"{performance.resources.peak_rss_bytes / 2**20:.0f} MiB"),
        ("model version", performance.artifact.model_version),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def class_table(performance: TrainingPerformance) -> Table:
    table = Table(title="per class (test)")
    for column in ("class", "precision", "recall", "F1", "support"):
        table.add_column(column, justify="right")
    for name, metrics in performance.test.per_class.items():
        table.add_row(
            name,
            f"{metrics.precision:.3f}",
            f"{metrics.recall:.3f}",
            f"{metrics.f1:.3f}",
            str(metrics.support),
        )
    return table
