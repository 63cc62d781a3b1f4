"""Progress bars (rich) for long steps; a no-op when not asked for."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

Advance = Callable[[int], None]


@contextmanager
def progress_bar(description: str, total: int | None, enabled: bool) -> Iterator[Progress | None]:
    """Yield a rich Progress with one task (id 0) when enabled, else None."""
    if not enabled:
        yield None
        return
    columns = (
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as bar:
        bar.add_task(description, total=total)
        yield bar


def advancer(bar: Progress | None) -> Advance:
    if bar is None:
        return lambda _n: None
    return lambda n: bar.advance(bar.task_ids[0], n)
