"""The eye-tracker commands of ``python -m memgaze.train.convert``: ``eyelink``, ``tobii``, ``pupil-core``,
``pupil-cloud`` and ``gazepoint``, each turning an export and the folder of images shown into
``DST/gaze/fixations.csv`` (and ``DST/images/``), with the per-user counts."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import typer

from memgaze.console import WarningCounter
from memgaze.errors import fail
from memgaze.train.convert.detection import Detector
from memgaze.train.convert.fixations import Geometry, Read, Stimuli, place_fixations, write_gaze
from memgaze.train.convert.viewing import Screen, parse_size, read_rects

EXPORTS = typer.Argument(..., help="The export file(s).")
STIMULI = typer.Option(..., "--stimuli", help="The folder of the images shown (found by file name, any extension).")
OUT = typer.Option(..., "--out", help="Dataset root to write: OUT/gaze/fixations.csv (other users' rows kept) and OUT/images/.")
SCREEN = typer.Option(None, "--screen", help="Screen resolution WxH in pixels (e.g. 1920x1080).")
SCREEN_CM = typer.Option(None, "--screen-cm", help="Width of the screen's picture in cm (for degrees of visual angle).")
DISTANCE_CM = typer.Option(None, "--distance-cm", help="Viewing distance in cm (for degrees of visual angle).")
PLACEMENT = typer.Option("fit", "--placement", help="Where an image was shown when the export does not say: fit (scaled to the screen, centred, letterboxed) or native (own size, centred).")
RECTS = typer.Option(None, "--rects", help="CSV image,x,y,width,height: where each image was shown (screen pixels).")
SIGMA_DEG = typer.Option(1.0, "--sigma-deg", help="Blur of each fixation in degrees of visual angle (needs --screen, --screen-cm, --distance-cm).")
SIGMA_PX = typer.Option(None, "--sigma-px", help="Blur of each fixation in image pixels (overrides --sigma-deg).")
USER = typer.Option(None, "--user", help="The viewer's name (default: from the export).")
DETECT = typer.Option("idt", "--detect", help="Where the export has samples only: idt (dispersion) or ivt (velocity).")
DISPERSION = typer.Option(1.0, "--dispersion-deg", help="I-DT dispersion threshold in degrees.")
VELOCITY = typer.Option(30.0, "--velocity-deg-s", help="I-VT velocity threshold in degrees per second.")
MIN_DURATION = typer.Option(None, "--min-duration-ms", help="Shortest fixation detected (default: I-DT 100, I-VT 60).")
SURFACE = typer.Option("image", "--surface", help="What the mapped surface is: image (the image itself) or screen (the screen it was shown on).")
IMAGE = typer.Option(None, "--image", help="The image every fixation was on (default: from --events, or the surface's name).")
EVENTS = typer.Option(None, "--events", help="Events naming the image shown from then on (Core: annotations.csv; Cloud: events.csv).")


def _geometry(screen: Optional[str], screen_cm: Optional[float], distance_cm: Optional[float], placement: str,
              rects: Optional[Path], sigma_deg: float, sigma_px: Optional[float], screen_in_export: bool = False) -> Geometry:
    size = parse_size(screen, "--screen") if screen else None
    if (screen_cm is None) != (distance_cm is None):
        fail("give both --screen-cm and --distance-cm (degrees of visual angle need both)")
    if screen_cm is not None and (screen_cm <= 0 or (distance_cm or 0) <= 0):
        fail("--screen-cm and --distance-cm must be positive")
    if screen_cm is not None and size is None and not screen_in_export:
        fail("--screen-cm and --distance-cm come with the screen's resolution: give --screen WxH")
    if sigma_deg <= 0 or (sigma_px is not None and sigma_px <= 0):
        fail("--sigma-deg and --sigma-px must be positive")
    physical = (screen_cm, distance_cm) if screen_cm is not None and distance_cm is not None else None
    display = Screen(size[0], size[1], screen_cm, distance_cm) if size else None
    return Geometry(display, placement, read_rects(rects) if rects else {}, sigma_deg, sigma_px, physical)


def _convert(kind: str, exports: list[Path], stimuli_dir: Path, out: Path, geometry: Geometry,
             read: Callable[[WarningCounter, Stimuli], tuple[Read, Geometry]], extra: dict[str, object]) -> None:
    """Read the export, place its fixations on the stimuli, write OUT/gaze/ and print the per-user counts."""
    warnings = WarningCounter(f"{kind} export")
    stimuli = Stimuli(stimuli_dir)
    found, geometry = read(warnings, stimuli)
    placed, tally = place_fixations(found, stimuli, geometry, warnings)
    warnings.summary()
    screen = geometry.screen
    record = {
        "format": kind, "exports": [str(p) for p in exports], "stimuli": str(stimuli_dir),
        "screen": None if screen is None else {"width_px": screen.width_px, "height_px": screen.height_px,
                                               "width_cm": screen.width_cm, "distance_cm": screen.distance_cm,
                                               "pixels_per_degree": screen.pixels_per_degree()},
        "placement": geometry.placement, "rects": len(geometry.rects),
        "sigma": {"px": geometry.sigma_px} if geometry.sigma_px else {"deg": geometry.sigma_deg}, **extra,
    }
    write_gaze(out, placed, tally, found.users, stimuli, record)


def _pupil_command(kind: str, reader: Callable[..., Read]) -> Callable[..., None]:
    """The command of one Pupil Labs surface export (both take the same options)."""

    def command(exports: list[Path] = EXPORTS, stimuli: Path = STIMULI, out: Path = OUT, screen: Optional[str] = SCREEN,
                screen_cm: Optional[float] = SCREEN_CM, distance_cm: Optional[float] = DISTANCE_CM, placement: str = PLACEMENT,
                rects: Optional[Path] = RECTS, sigma_deg: float = SIGMA_DEG, sigma_px: Optional[float] = SIGMA_PX,
                surface: str = SURFACE, user: Optional[str] = USER, image: Optional[str] = IMAGE, events: Optional[Path] = EVENTS) -> None:
        geometry = _geometry(screen, screen_cm, distance_cm, placement, rects, sigma_deg, sigma_px)
        _convert(kind, exports, stimuli, out, geometry,
                 lambda warnings, s: (reader(exports, surface, user, image, events, lambda n: s.find(n) is not None, warnings), geometry),
                 {"surface": surface})

    return command


def add_commands(app: typer.Typer) -> None:
    """Register the eye-tracker commands on ``app``."""

    @app.command()
    def eyelink(exports: list[Path] = EXPORTS, stimuli: Path = STIMULI, out: Path = OUT, screen: Optional[str] = SCREEN,
                screen_cm: Optional[float] = SCREEN_CM, distance_cm: Optional[float] = DISTANCE_CM, placement: str = PLACEMENT,
                rects: Optional[Path] = RECTS, sigma_deg: float = SIGMA_DEG, sigma_px: Optional[float] = SIGMA_PX,
                user: Optional[str] = USER, eye: Optional[str] = typer.Option(None, "--eye", help="left or right (default: left where both)."),
                image_message: Optional[str] = typer.Option(None, "--image-message", help="Regex of the MSG naming the image in its first group (default: Data Viewer's !V IMGLOAD)."),
                detect: str = DETECT, dispersion_deg: float = DISPERSION, velocity_deg_s: float = VELOCITY,
                min_duration_ms: Optional[float] = MIN_DURATION) -> None:
        """EyeLink ASC files (edf2asc; read by pymovements) or EDF files (read by eyelinkio), one viewer per file."""
        from memgaze.train.convert.eyelink import read_eyelink

        geometry = _geometry(screen, screen_cm, distance_cm, placement, rects, sigma_deg, sigma_px, screen_in_export=True)
        detector = Detector(detect, dispersion_deg, velocity_deg_s, min_duration_ms)

        def read(warnings: WarningCounter, _: Stimuli) -> tuple[Read, Geometry]:
            return read_eyelink(exports, user, eye, image_message, geometry, detector, warnings)

        _convert("EyeLink", exports, stimuli, out, geometry, read, {"detector_if_no_efix": detector.describe()})

    @app.command()
    def tobii(exports: list[Path] = EXPORTS, stimuli: Path = STIMULI, out: Path = OUT, screen: Optional[str] = SCREEN,
              screen_cm: Optional[float] = SCREEN_CM, distance_cm: Optional[float] = DISTANCE_CM, placement: str = PLACEMENT,
              rects: Optional[Path] = RECTS, sigma_deg: float = SIGMA_DEG, sigma_px: Optional[float] = SIGMA_PX,
              detect: str = DETECT, dispersion_deg: float = DISPERSION, velocity_deg_s: float = VELOCITY,
              min_duration_ms: Optional[float] = MIN_DURATION) -> None:
        """Tobii Pro Lab data exports (TSV), one viewer per participant."""
        from memgaze.train.convert.tobii import read_tobii

        geometry = _geometry(screen, screen_cm, distance_cm, placement, rects, sigma_deg, sigma_px)
        detector = Detector(detect, dispersion_deg, velocity_deg_s, min_duration_ms)
        _convert("Tobii Pro Lab", exports, stimuli, out, geometry,
                 lambda warnings, _: (read_tobii(exports, geometry.screen, detector, warnings), geometry),
                 {"detector_if_unclassified": detector.describe()})

    from memgaze.train.convert.pupil import read_pupil_cloud, read_pupil_core

    for name, kind, reader, doc in (
        ("pupil-core", "Pupil Core", read_pupil_core, "Pupil Core surface fixations (Pupil Player: fixations_on_surface_<name>.csv)."),
        ("pupil-cloud", "Pupil Cloud", read_pupil_cloud, "Pupil Cloud / Neon Marker Mapper fixations (fixations.csv of the enrichment export)."),
    ):
        app.command(name, help=doc)(_pupil_command(kind, reader))

    @app.command()
    def gazepoint(exports: list[Path] = EXPORTS, stimuli: Path = STIMULI, out: Path = OUT, screen: Optional[str] = SCREEN,
                  screen_cm: Optional[float] = SCREEN_CM, distance_cm: Optional[float] = DISTANCE_CM, placement: str = PLACEMENT,
                  rects: Optional[Path] = RECTS, sigma_deg: float = SIGMA_DEG, sigma_px: Optional[float] = SIGMA_PX,
                  user: Optional[str] = USER) -> None:
        """Gazepoint CSV (FPOGX/FPOGY fixations, as fractions of the screen)."""
        from memgaze.train.convert.gazepoint import read_gazepoint

        geometry = _geometry(screen, screen_cm, distance_cm, placement, rects, sigma_deg, sigma_px)
        _convert("Gazepoint", exports, stimuli, out, geometry,
                 lambda warnings, _: (read_gazepoint(exports, user, warnings), geometry), {})
