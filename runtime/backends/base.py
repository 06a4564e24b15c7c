"""The small interface every inference backend implements."""

from __future__ import annotations

import abc
from types import TracebackType

import numpy as np


class Backend(abc.ABC):
    """Scores uint8 BGR frames: ``infer(images [N,H,W,3], users [N] | None) -> (scores [N], heatmaps [N,1,h,w])``."""

    name: str
    precision: str

    @property
    @abc.abstractmethod
    def input_size(self) -> tuple[int, int]:
        """Model input ``(H, W)``; frames must be resized to it."""

    @abc.abstractmethod
    def infer(self, images: np.ndarray, users: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Run the model on a batch; returns float32 scores ``[N]`` and heatmaps ``[N,1,h,w]``."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the session, engine and buffers."""

    def describe(self) -> str:
        """One line for the console: backend, precision and details."""
        return f"{self.name} {self.precision}"

    def __enter__(self) -> Backend:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
