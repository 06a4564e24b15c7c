"""OpenCV build detection (GStreamer, GUI) from real and recorded build information, and the missing-cv2 error."""

from __future__ import annotations

import subprocess
import sys

import cv2
import pytest

from memgaze.cv2_build import gstreamer_in, gui_in, has_gstreamer, has_gui, require_cv2
from memgaze.errors import MemgazeError

# Abridged getBuildInformation() of JetPack 5's OpenCV 4.5.4 (old GUI layout) and of a Qt desktop wheel.
JETPACK5 = """
  GUI:
    GTK+:                        YES (ver 3.24.20)
      GThread :                  YES (ver 2.64.6)
      GtkGlExt:                  NO

  Video I/O:
    FFMPEG:                      YES
    GStreamer:                   YES (1.16.3)
    v4l/v4l2:                    YES (linux/videodev2.h)
"""
DESKTOP_QT = """
  GUI:                           QT5
    QT:                          YES (ver 5.15.13 )
  Video I/O:
    FFMPEG:                      YES
    GStreamer:                   NO
"""
HEADLESS = """
  GUI:                           NONE
    VTK support:                 NO
  Video I/O:
    GStreamer:                   NO
  Parallel framework:            pthreads
"""


@pytest.mark.parametrize(
    ("info", "gstreamer", "gui"), [(JETPACK5, True, True), (DESKTOP_QT, False, True), (HEADLESS, False, False), ("", False, False)]
)
def test_build_information_parsing(info: str, gstreamer: bool, gui: bool) -> None:
    assert gstreamer_in(info) is gstreamer
    assert gui_in(info) is gui


def test_gstreamer_outside_video_io_does_not_count() -> None:
    assert not gstreamer_in("  Other:\n    GStreamer:   YES\n  Video I/O:\n    GStreamer:  NO\n")


def test_installed_opencv_agrees_with_its_own_capabilities() -> None:
    info = cv2.getBuildInformation()
    assert has_gstreamer() is gstreamer_in(info)
    assert has_gui(cv2) is gui_in(info)
    assert require_cv2() is cv2


def test_missing_cv2_is_one_line_that_says_what_to_install() -> None:
    code = (
        "import sys\n"
        "sys.modules['cv2'] = None\n"  # makes `import cv2` raise ImportError
        "from memgaze.cv2_build import require_cv2\n"
        "from memgaze.errors import run_cli\n"
        "run_cli(require_cv2)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "python3-opencv" in lines[0] and "opencv-python" in lines[0]


def test_require_cv2_raises_memgaze_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(MemgazeError, match="not installed"):
        require_cv2()
