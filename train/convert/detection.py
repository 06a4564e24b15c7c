"""Fixations from raw gaze samples, for exports that hold samples only, by pymovements' detectors.

pymovements (pymovements.readthedocs.io) converts screen pixels to degrees of visual angle from the screen's
size and the viewing distance (``Gaze.pix2deg``), to velocities (``Gaze.pos2vel``), detects the fixations
(``Gaze.detect``) and averages each one's pixel position (``location``). The two documented algorithms:

- **I-DT** (Salvucci & Goldberg 2000): a window of samples is a fixation while its dispersion
  (max x − min x + max y − min y) stays under ``dispersion_deg`` degrees for at least ``min_duration_ms``.
  Defaults 1.0° and 100 ms, the values of that paper.
- **I-VT** (Salvucci & Goldberg 2000; Olsen 2012 for Tobii's filter): samples slower than
  ``velocity_deg_s`` degrees per second are fixation samples; runs of at least ``min_duration_ms`` are
  fixations. Defaults 30°/s and 60 ms, the defaults of Tobii's I-VT fixation filter.
"""

from __future__ import annotations

import dataclasses
import warnings as py_warnings

import numpy as np

from memgaze.errors import fail
from memgaze.train.convert.viewing import Screen

METHODS = ("idt", "ivt")


@dataclasses.dataclass(frozen=True)
class Detector:
    """A fixation detector and its parameters (see the module's docstring for their defaults)."""

    method: str = "idt"
    dispersion_deg: float = 1.0
    velocity_deg_s: float = 30.0
    min_duration_ms: float | None = None

    def describe(self) -> dict[str, object]:
        """The algorithm and the parameters that apply to it (for the conversion record)."""
        if self.method == "idt":
            return {"method": "I-DT", "dispersion_deg": self.dispersion_deg, "min_duration_ms": self.minimum_ms}
        return {"method": "I-VT", "velocity_deg_s": self.velocity_deg_s, "min_duration_ms": self.minimum_ms}

    @property
    def minimum_ms(self) -> float:
        return self.min_duration_ms if self.min_duration_ms is not None else (100.0 if self.method == "idt" else 60.0)


def detect_fixations(time_ms: np.ndarray, xy_px: np.ndarray, screen: Screen | None, detector: Detector) -> np.ndarray:
    """Fixations in samples ``time_ms`` ``[n]`` and screen-pixel ``xy_px`` ``[n, 2]`` (NaN where lost):
    float64 ``[m, 4]`` of (onset ms, duration ms, x, y)."""
    import polars as pl
    import pymovements as pm

    if detector.method not in METHODS:
        fail(f"--detect must be one of {', '.join(METHODS)}, got {detector.method!r}")
    if screen is None or screen.width_cm is None or screen.distance_cm is None:
        fail("detecting fixations in samples needs the viewing geometry: --screen WxH, --screen-cm and --distance-cm")
    if len(time_ms) < 2:
        return np.zeros((0, 4))
    time_ms, xy_px = _regular(np.asarray(time_ms, np.float64), np.asarray(xy_px, np.float64))
    rate = 1000.0 / float(time_ms[1] - time_ms[0])
    experiment = pm.Experiment(
        screen_width_px=screen.width_px, screen_height_px=screen.height_px, screen_width_cm=screen.width_cm,
        screen_height_cm=screen.width_cm * screen.height_px / screen.width_px, distance_cm=screen.distance_cm,
        origin="upper left", sampling_rate=rate,
    )
    samples = pl.DataFrame({"time": np.asarray(time_ms, np.float64), "x": xy_px[:, 0], "y": xy_px[:, 1]})
    samples = samples.with_columns(pl.col("x").fill_nan(None), pl.col("y").fill_nan(None))
    with py_warnings.catch_warnings():
        py_warnings.simplefilter("ignore")  # pymovements' notes on experimental features
        gaze = pm.Gaze(samples=samples, experiment=experiment, pixel_columns=["x", "y"], time_column="time", time_unit="ms")
        gaze.pix2deg()
        if detector.method == "idt":
            gaze.detect("idt", dispersion_threshold=detector.dispersion_deg, minimum_duration=int(detector.minimum_ms))
        else:
            gaze.pos2vel()
            gaze.detect("ivt", velocity_threshold=detector.velocity_deg_s, minimum_duration=int(detector.minimum_ms))
        if gaze.events.frame.height == 0:
            return np.zeros((0, 4))
        gaze.compute_event_properties(("location", {"position_column": "pixel"}))
    frame = gaze.events.frame
    location = np.array(frame["location"].to_list(), dtype=np.float64).reshape(-1, 2)
    return np.column_stack([frame["onset"].to_numpy(), frame["duration"].to_numpy(), location]).astype(np.float64)


def _regular(time_ms: np.ndarray, xy_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The samples on a regular clock (pymovements' detectors need one): the median interval, missing samples
    (gaps between trials or recording blocks, lost tracking) NaN, so no fixation spans them."""
    order = np.argsort(time_ms, kind="stable")
    time_ms, xy_px = time_ms[order], xy_px[order]
    step = float(np.median(np.diff(time_ms)))
    if step <= 0:
        fail("the export's sample timestamps do not increase")
    index = np.rint((time_ms - time_ms[0]) / step).astype(np.int64)
    grid = np.full((int(index[-1]) + 1, 2), np.nan)
    grid[index] = xy_px
    return time_ms[0] + step * np.arange(len(grid)), grid
