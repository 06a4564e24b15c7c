"""Which stimulus was on the screen when: a timeline of (time, image name or None for "nothing shown")
built from an export's messages or events, looked up at each fixation's onset."""

from __future__ import annotations

import bisect
import dataclasses
from typing import Generic, TypeVar

Shown = TypeVar("Shown")


@dataclasses.dataclass
class Timeline(Generic[Shown]):
    """Onsets (sorted on :meth:`add`) of what was shown from then on: an image name, or None."""

    times: list[float] = dataclasses.field(default_factory=list)
    shown: list[Shown | None] = dataclasses.field(default_factory=list)

    def add(self, time: float, what: Shown | None) -> None:
        """From ``time`` on, ``what`` is shown (None: no image)."""
        at = bisect.bisect_right(self.times, time)
        self.times.insert(at, time)
        self.shown.insert(at, what)

    def at(self, time: float) -> Shown | None:
        """What was shown at ``time`` (None before the first entry)."""
        at = bisect.bisect_right(self.times, time) - 1
        return self.shown[at] if at >= 0 else None

    def __bool__(self) -> bool:
        return bool(self.times)
