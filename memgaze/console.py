"""Console output shared by the CLIs: one rich console on stderr and counted warnings."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.markup import escape

console = Console(stderr=True, highlight=False)


class WarningCounter:
    """Prints one warning line per problem and a per-kind count at the end.

    A problem met again (the same message: a split read by several stages of one run) is neither
    printed nor counted twice."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.counts: Counter[str] = Counter()
        self._seen: set[str] = set()

    def warn(self, kind: str, message: str) -> None:
        """Print ``warning: message`` and count it under ``kind``, the first time it is given."""
        if message in self._seen:
            return
        self._seen.add(message)
        self.counts[kind] += 1
        console.print(f"[yellow]warning:[/yellow] {escape(message)}", markup=True, soft_wrap=True)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> None:
        """Print the counts, if any warning was given."""
        if self.counts:
            parts = ", ".join(f"{n} {kind}" for kind, n in sorted(self.counts.items()))
            console.print(f"{self.what}: skipped {self.total} ({parts})")
