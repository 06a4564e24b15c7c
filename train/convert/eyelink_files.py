"""Reading one EyeLink recording: its messages, the fixations of one eye, and the screen it records.

- **ASC** (``edf2asc``) by pymovements (``pymovements.gaze.from_asc``): samples, the tracker's ``SFIX``/``EFIX``
  events and the ``MSG`` lines. A fixation's position is the mean of its samples (pymovements' ``location``),
  its duration pymovements' ``offset − onset``. Without samples (``edf2asc -e``) the ``EFIX`` lines' own
  average positions and durations are read here (pymovements keeps no positions then); without ``EFIX``
  events fixations are detected in the samples (:mod:`.detection`). Screen: ``DISPLAY_COORDS``.
- **EDF** (the tracker's own file) by eyelinkio, where it is installed (it brings SR Research's EDF access
  library): the ``ENDFIX`` events (``axp``, ``ayp``) and messages. Screen: ``GAZE_COORDS``.
- **Eye**: ``--eye``; by default the left where both were recorded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
import warnings as py_warnings
from pathlib import Path

import numpy as np

from memgaze.errors import fail
from memgaze.train.convert.detection import Detector, detect_fixations
from memgaze.train.convert.fixations import Geometry

EYES = ("left", "right")
EFIX = re.compile(r"^EFIX\s+([LR])\s+(\d+(?:\.\d+)?)\s+(\d+(?:\.\d+)?)\s+(\d+)\s+(\S+)\s+(\S+)")


@dataclasses.dataclass(frozen=True)
class Recording:
    """Messages ``(time ms, text)``, fixations ``[n, 4]`` (onset ms, duration ms, x, y in screen pixels) and the
    screen's resolution where the file records it."""

    messages: list[tuple[float, str]]
    fixations: np.ndarray
    screen_px: tuple[int, int] | None


def load_recording(path: Path, eye: str | None, geometry: Geometry, detector: Detector) -> Recording:
    """The recording in ``path`` (``.edf`` or ASC); a one-line error for an unreadable file."""
    if not path.is_file():
        fail(f"{path} is not a file")
    return _edf(path, eye) if path.suffix.lower() == ".edf" else _asc(path, eye, geometry, detector)


def _asc(path: Path, eye: str | None, geometry: Geometry, detector: Detector) -> Recording:
    import pymovements as pm

    try:
        with py_warnings.catch_warnings():
            py_warnings.simplefilter("ignore")  # e.g. "No screen resolution found", reported by us where it matters
            gaze = pm.gaze.from_asc(path, events=True, messages=True, encoding="latin-1")
    except Exception as exc:  # pymovements raises several kinds on malformed files
        fail(f"{path}: not a readable EyeLink ASC file ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
    coords = gaze._metadata.get("DISPLAY_COORDS") if isinstance(getattr(gaze, "_metadata", None), dict) else None
    screen_px = (int(coords[2] - coords[0] + 1), int(coords[3] - coords[1] + 1)) if coords else None
    screen = geometry.screen or (geometry.with_screen(*screen_px).screen if screen_px else None)
    messages = [] if gaze.messages is None else [
        (float(t), str(c).strip()) for t, c in zip(gaze.messages["time"].to_list(), gaze.messages["content"].to_list())]
    events = gaze.events.frame
    fix = events.filter(events["name"] == "fixation_eyelink") if events.height else events
    eyes = sorted(set(fix["eye"].to_list())) if fix.height else []
    chosen = _eye(path, eye, eyes)
    if fix.height and gaze.samples.height:
        with py_warnings.catch_warnings():
            py_warnings.simplefilter("ignore")
            gaze.compute_event_properties(("location", {"position_column": "pixel"}))
        events = gaze.events.frame
        fix = events.filter((events["name"] == "fixation_eyelink") & (events["eye"] == chosen))
        location = np.array(fix["location"].to_list(), dtype=np.float64).reshape(len(fix), -1)
        column = 2 if location.shape[1] == 4 and chosen == "right" else 0
        fixations = np.column_stack([fix["onset"].to_numpy(), fix["duration"].to_numpy(), location[:, column:column + 2]])
    elif fix.height:
        fixations = _efix_lines(path, chosen)
    elif gaze.samples.height:
        pixel = np.array(gaze.samples["pixel"].to_list(), dtype=np.float64)
        column = 2 if pixel.shape[1] == 4 and chosen == "right" else 0
        fixations = detect_fixations(gaze.samples["time"].to_numpy().astype(np.float64), pixel[:, column:column + 2], screen, detector)
    else:
        fail(f"{path}: neither samples nor fixation events (EFIX)")
    return Recording(messages, np.asarray(fixations, dtype=np.float64).reshape(-1, 4), screen_px)


def _eye(path: Path, eye: str | None, eyes: list[str]) -> str:
    """The eye asked for (it must have fixations), else the left where both were recorded."""
    if eye is not None and eyes and eye not in eyes:
        fail(f"{path}: no fixation of the {eye} eye (eyes with fixations: {', '.join(eyes)})")
    return eye or ("left" if "left" in eyes or not eyes else eyes[0])


def _efix_lines(path: Path, eye: str) -> np.ndarray:
    """(onset, duration, x, y) from the EFIX lines of a file without samples: the tracker's own averages."""
    rows = []
    with open(path, encoding="latin-1") as handle:
        for line in handle:
            match = EFIX.match(line)
            if match and match.group(1) == eye[0].upper():
                x, y = (float(v) if v != "." else np.nan for v in (match.group(5), match.group(6)))
                rows.append((float(match.group(2)), float(match.group(4)), x, y))
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def _edf(path: Path, eye: str | None) -> Recording:
    try:
        import eyelinkio
    except ImportError:
        fail(f"{path}: reading EDF files needs eyelinkio (pip install eyelinkio), or convert it with SR Research's edf2asc")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the EDF library prints as it loads
            edf = eyelinkio.read_edf(str(path))
    except Exception as exc:  # eyelinkio raises several kinds on files it cannot read
        fail(f"{path}: not a readable EyeLink EDF file ({type(exc).__name__}: {exc})")
    fix = edf["discrete"]["fixations"]
    eyes = [EYES[int(code)] for code in sorted(set(fix["eye"].tolist())) if int(code) in (0, 1)]
    chosen = _eye(path, eye, eyes)
    fix = fix[fix["eye"] == EYES.index(chosen)]
    fixations = np.column_stack([fix["stime"] * 1000.0, (fix["etime"] - fix["stime"]) * 1000.0, fix["axp"], fix["ayp"]])
    messages = [(float(t) * 1000.0, m.decode("latin-1").strip() if isinstance(m, bytes) else str(m).strip())
                for t, m in zip(edf["discrete"]["messages"]["stime"], edf["discrete"]["messages"]["msg"])]
    coords = edf["info"].get("screen_coords")
    screen_px = (int(coords[0]), int(coords[1])) if coords is not None and len(coords) == 2 else None
    return Recording(messages, fixations.astype(np.float64).reshape(-1, 4), screen_px)
