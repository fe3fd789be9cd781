"""Progress of a fine-tuning run on screen: a rich bar (terminal) or one line every few seconds (logs, devices)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def rich_progress_callback() -> Any:
    """A transformers TrainerCallback drawing a rich progress bar with the running loss and ETA."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from transformers import TrainerCallback

    class RichProgress(TrainerCallback):
        def __init__(self) -> None:
            self.progress = Progress(
                TextColumn("[bold]training"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            self.task: Any = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.progress.start()
            self.task = self.progress.add_task("train", total=state.max_steps, loss="–")

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.progress.update(self.task, completed=state.global_step)

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            if logs and "loss" in logs:
                self.progress.update(self.task, loss=f"{float(logs['loss']):.4f}")

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.progress.stop()

    return RichProgress()


def line_progress_callback(say: Callable[[str], None], every_s: float = 15.0) -> Any:
    """A transformers TrainerCallback that says 'step n/N, loss, elapsed, ETA' at most every `every_s` seconds and
    at the last step (for `--quiet` runs, logs and the device run, where a bar cannot redraw)."""
    from transformers import TrainerCallback

    class LineProgress(TrainerCallback):
        def __init__(self) -> None:
            self.started = 0.0
            self.last = 0.0
            self.loss = float("nan")

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.started = self.last = time.perf_counter()
            say(f"training: {state.max_steps} steps")

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            if logs and "loss" in logs:
                self.loss = float(logs["loss"])

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            now = time.perf_counter()
            done, total = state.global_step, max(state.max_steps, 1)
            if now - self.last < every_s and done < total:
                return
            self.last = now
            elapsed = now - self.started
            eta = elapsed / max(done, 1) * (total - done)
            loss = "–" if self.loss != self.loss else f"{self.loss:.4f}"  # NaN: no loss logged yet
            say(f"training: step {done}/{total}, loss {loss}, {elapsed:.0f}s elapsed, ETA {eta:.0f}s")

    return LineProgress()
