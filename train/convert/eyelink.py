"""EyeLink recordings, ASC (SR Research's ``edf2asc`` output, read by pymovements) or EDF (read by eyelinkio,
where it is installed): fixations of one eye and the ``MSG`` lines (:mod:`.eyelink_files`), placed on the
images the messages name.

- **User**: one per file, its stem (``p01.asc`` → ``p01``), or ``--user`` for a single file.
- **Image shown**: Data Viewer's integration message ``!V IMGLOAD FILL|CENTER|TOP_LEFT <file> [x y [w h]]``
  names the image and, with its coordinates, where it was drawn (``CENTER``: its centre at x, y; ``TOP_LEFT``:
  its corner; width and height if it was scaled; ``FILL``: the whole screen). Or ``--image-message REGEX``:
  a message matching it names the image in its first group (placed as ``--placement`` says). The image is
  on from its message until the next one or ``TRIAL_RESULT`` / ``!V CLEAR``; a fixation's onset decides.
- **Screen**: ``--screen``, else the one the file records (ASC ``DISPLAY_COORDS``, EDF ``GAZE_COORDS``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from memgaze.console import WarningCounter
from memgaze.errors import fail
from memgaze.train.convert.detection import Detector
from memgaze.train.convert.eyelink_files import EYES, load_recording
from memgaze.train.convert.fixations import Fixation, Geometry, Read, RectSpec
from memgaze.train.convert.timeline import Timeline
from memgaze.train.convert.viewing import Rect, Screen

IMGLOAD = re.compile(r"^!V\s+IMGLOAD\s+(FILL|CENTER|TOP_LEFT)\s+(\S+)((?:\s+-?\d+(?:\.\d+)?)*)\s*$", re.IGNORECASE)
END_OF_IMAGE = re.compile(r"^(TRIAL_RESULT\b|!V\s+CLEAR\b)", re.IGNORECASE)


def read_eyelink(paths: list[Path], user: str | None, eye: str | None, image_message: str | None, geometry: Geometry,
                 detector: Detector, warnings: WarningCounter) -> tuple[Read, Geometry]:
    """Fixations of every file (one user each), and the geometry on the screen given or the files record."""
    if user is not None and len(paths) > 1:
        fail("--user names the viewer of a single file; with several files each file's name is its user")
    if eye is not None and eye not in EYES:
        fail(f"--eye must be one of {', '.join(EYES)}, got {eye!r}")
    pattern = _compile(image_message)
    read = Read()
    for path in paths:
        geometry = _read_file(path, user or path.stem, eye, pattern, geometry, detector, read, warnings)
    return read, geometry


def _compile(image_message: str | None) -> re.Pattern[str] | None:
    if image_message is None:
        return None
    try:
        pattern = re.compile(image_message)
    except re.error as exc:
        fail(f"--image-message {image_message!r} is not a regular expression ({exc})")
    if pattern.groups < 1:
        fail(f"--image-message {image_message!r} needs a group that captures the image name, e.g. 'image (\\S+)'")
    return pattern


def _read_file(path: Path, user: str, eye: str | None, pattern: re.Pattern[str] | None, geometry: Geometry,
               detector: Detector, read: Read, warnings: WarningCounter) -> Geometry:
    recording = load_recording(path, eye, geometry, detector)
    if geometry.screen is None and recording.screen_px is not None:
        geometry = geometry.with_screen(*recording.screen_px)
    timeline = _timeline(recording.messages, pattern, geometry.screen)
    if not timeline:
        fail(f"{path}: no message names an image (expected '!V IMGLOAD ...' lines, or give --image-message REGEX)")
    read.users.add(user)
    for onset, duration, x, y in recording.fixations:
        shown = timeline.at(onset)
        if shown is None:
            read.drop(user, warnings, "no image shown", f"{path}: fixation at {onset:.0f} ms while no image was shown; dropped")
            continue
        name, rect = shown
        if not (np.isfinite(x) and np.isfinite(y)):
            read.drop(user, warnings, "no position", f"{path}: fixation at {onset:.0f} ms has no valid samples; dropped")
            continue
        read.add(Fixation(user, name, float(x), float(y), float(duration), "screen_px", rect))
    return geometry


def _timeline(messages: list[tuple[float, str]], pattern: re.Pattern[str] | None, screen: Screen | None) -> Timeline[tuple[str, RectSpec | None]]:
    """Which image was on the screen when, from the messages (with where IMGLOAD drew it)."""
    timeline: Timeline[tuple[str, RectSpec | None]] = Timeline()
    for time, text in messages:
        if pattern is not None:
            match = pattern.search(text)
            if match:
                timeline.add(float(time), (match.group(1), None))
        elif match := IMGLOAD.match(text):
            timeline.add(float(time), (match.group(2), imgload_rect(match.group(1).upper(), match.group(3), screen)))
        if END_OF_IMAGE.match(text):
            timeline.add(float(time), None)
    return timeline


def imgload_rect(mode: str, numbers: str, screen: Screen | None) -> RectSpec:
    """Where an IMGLOAD message drew the image: ``FILL`` the whole screen; ``CENTER x y [w h]`` centred on
    (x, y); ``TOP_LEFT x y [w h]`` from (x, y); at the image's own size where no size is given."""
    values = [float(v) for v in numbers.split()]
    if mode == "FILL":
        return Rect(0.0, 0.0, float(screen.width_px), float(screen.height_px)) if screen is not None else None
    if len(values) < 2:
        return None
    x, y = values[:2]
    if len(values) >= 4:
        w, h = values[2:4]
        return Rect(x - w / 2, y - h / 2, w, h) if mode == "CENTER" else Rect(x, y, w, h)
    if mode == "CENTER":
        return lambda wh: Rect(x - wh[0] / 2, y - wh[1] / 2, float(wh[0]), float(wh[1]))
    return lambda wh: Rect(x, y, float(wh[0]), float(wh[1]))
