"""Which OpenCV is installed and what it was built with (GStreamer, a GUI), read from its build information.

A Jetson's JetPack OpenCV has GStreamer (CSI cameras through ``nvarguscamerasrc``) and a GTK window;
pip's ``opencv-python-headless`` has neither. Both questions are answered from
``cv2.getBuildInformation()``, so they cost nothing and open no device.
"""

from __future__ import annotations

import importlib
import re
from types import ModuleType

from memgaze.errors import fail

CV2_MISSING = (
    "OpenCV (cv2) is not installed: on a Jetson use JetPack's (sudo apt-get install python3-opencv), "
    "elsewhere pip install opencv-python (with a window) or opencv-python-headless"
)
GUI_BACKENDS = ("GTK+", "GTK2", "GTK3", "QT", "Cocoa", "Win32 UI", "Wayland", "FRAMEBUFFER")


def require_cv2() -> ModuleType:
    """The ``cv2`` module; a one-line error that says what to install when it does not import."""
    try:
        return importlib.import_module("cv2")
    except ImportError as exc:
        fail(f"{CV2_MISSING} ({exc})")


def _value(line: str) -> str:
    return line.split(":", 1)[1].strip() if ":" in line else ""


def _section(info: str, title: str) -> list[str]:
    """The indented lines under ``title:`` (up to the next line indented as little as the title)."""
    lines = info.splitlines()
    for index, line in enumerate(lines):
        if line.strip().startswith(f"{title}:"):
            indent = len(line) - len(line.lstrip())
            body = [line]
            for follower in lines[index + 1:]:
                if follower.strip() and len(follower) - len(follower.lstrip()) <= indent:
                    break
                body.append(follower)
            return body
    return []


def gstreamer_in(info: str) -> bool:
    """True when the build information text lists GStreamer as ``YES`` under Video I/O."""
    return any(re.match(r"\s*GStreamer:\s*YES", line) for line in _section(info, "Video I/O"))


def v4l2_in(info: str) -> bool:
    """True when the build information text lists V4L/V4L2 (USB cameras on Linux) as ``YES`` under Video I/O."""
    return any(re.match(r"\s*v4l/v4l2:\s*YES", line, re.IGNORECASE) for line in _section(info, "Video I/O"))


def numpy_built_against(info: str) -> str | None:
    """The numpy version OpenCV's Python bindings were compiled against (``numpy: ... (ver 1.21.5)``), None if unsaid."""
    match = re.search(r"numpy:.*\(ver ([\d.]+)\)", info)
    return match.group(1) if match else None


def gui_in(info: str) -> bool:
    """True when the build information text names a GUI backend (OpenCV 4.6+: ``GUI: GTK3``; older: ``GTK+: YES``)."""
    section = _section(info, "GUI")
    if not section:
        return False
    head = _value(section[0]).upper()
    if head and head != "NONE":
        return True
    return any(
        line.strip().startswith(f"{name}:") and _value(line).upper().startswith("YES")
        for line in section[1:] for name in GUI_BACKENDS
    )


def build_information(cv2: ModuleType | None = None) -> str:
    """``cv2.getBuildInformation()`` of the installed OpenCV (one-line error without one)."""
    return str((cv2 or require_cv2()).getBuildInformation())


def has_gstreamer(cv2: ModuleType | None = None) -> bool:
    """True when this OpenCV can open GStreamer pipelines (``cv2.CAP_GSTREAMER``)."""
    return gstreamer_in(build_information(cv2))


def has_gui(cv2: ModuleType | None = None) -> bool:
    """True when this OpenCV can open a window (``cv2.imshow``); pip's headless wheels cannot."""
    return gui_in(build_information(cv2))
