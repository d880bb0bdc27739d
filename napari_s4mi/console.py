"""Engine events on a terminal: a progress bar with the loss, validation lines and messages (CLI and demo)."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from .core.events import Checkpoint, Done, Message, Progress, Stage, Validation


def drive(events: Iterable) -> Done | None:
    """Print events with a progress bar (one per stage of a pipeline); returns the last Done event."""
    from tqdm import tqdm

    done = None
    with tqdm(unit="step", dynamic_ncols=True, file=sys.stderr) as bar:
        for event in events:
            if isinstance(event, Progress):
                if bar.total != event.total:
                    bar.reset(total=event.total)
                bar.n = event.step
                bar.set_postfix(loss=f"{event.loss:.4f}", refresh=False)
                bar.refresh()
            elif isinstance(event, Stage):
                bar.write(f"stage {event.index}/{event.count}: {event.name} -> {event.run_dir}")
                bar.set_description(event.name)
            elif isinstance(event, Validation):
                text = " ".join(f"{k}={v:.3f}" for k, v in event.metrics.items())
                bar.write(f"step {event.step}: {text}{' (best)' if event.best else ''}")
            elif isinstance(event, Message):
                bar.write(f"{event.level}: {event.text}")
            elif isinstance(event, Checkpoint) and event.kind == "last":
                bar.set_postfix_str(f"saved step {event.step}")
            elif isinstance(event, Done):
                done = event
    return done
