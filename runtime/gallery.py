"""``memgaze-run --report DIR``: a ranked gallery, for people who would rather look than read.

One static page (``DIR/index.html``) with the photos sorted by score, most memorable first, each a thumbnail
with its heatmap laid over it and its peak marked, its score, rank and file name; a histogram of the
scores (inline SVG); the model card's name and licence; and the run's settings. The folder holds the page
and ``thumbs/`` (JPEGs), nothing else: it works offline and can be copied anywhere. ``index.html#plain``
shows the photos without their heatmaps.

Files that could not be scored (empty, unreadable, truncated, undecodable) are listed apart, below the ranking,
with their errors; they are never ranked.

Thumbnails are written while the run goes, from the image the model was given (a JPEG decoded at reduced
size), into a work folder that replaces ``DIR`` when the run ends, Ctrl-C included (the gallery then
holds what was scored); ``--resume`` goes on with it (:mod:`memgaze.runtime.gallery_work`).
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import cv2
import numpy as np

from memgaze import __version__
from memgaze.runtime.collection import GALLERY_MARKER as MARKER  # a folder holding it may be replaced, never scored
from memgaze.runtime.gallery_work import Entry, WorkFolder, check_target
from memgaze.runtime.overlay import colorize
from memgaze.runtime.pipeline import RunSummary
from memgaze.runtime.prediction import Failure, Prediction, heatmap_peak
from memgaze.runtime.sinks import Sink, encode_jpeg

THUMB_SIDE = 320  # longer side of a thumbnail, pixels
EAGER = 48  # thumbnails loaded at once; the rest load as the page scrolls to them
BINS = 20  # of the score histogram, over the range the scores span (rounded out to 0.01)

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1f2328;background:#fafbfc}
header,section.about{max-width:1200px;margin:0 auto;padding:1em 1.5em}
h1{margin:.2em 0;font-size:1.6em}.lead{color:#57606a;margin:.3em 0}
section.about{display:flex;flex-wrap:wrap;gap:2em;align-items:flex-start}
table.settings{border-collapse:collapse;font-size:.85em}
table.settings th{text-align:left;padding:.2em .8em .2em 0;color:#57606a;font-weight:normal;vertical-align:top}
table.settings td{padding:.2em 0;word-break:break-all}
main.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:14px;padding:1em 1.5em;max-width:1600px;margin:0 auto}
figure.photo{margin:0;background:#fff;border:1px solid #d0d7de;border-radius:6px;overflow:hidden}
.frame{position:relative;line-height:0;background:#eaeef2}
.frame img{width:100%;height:auto;display:block}
.frame img.heat{position:absolute;left:0;top:0;height:100%;opacity:.45}
.frame .peak{position:absolute;width:14px;height:14px;margin:-9px 0 0 -9px;border:2px solid #fff;border-radius:50%;box-shadow:0 0 2px #000}
#plain:target .heat,#plain:target .peak{display:none}
figcaption{padding:.45em .6em;font-size:.85em;line-height:1.35}
.rank{color:#57606a}.score{font-size:1.15em}.file{display:block;word-break:break-all}.where{color:#57606a}
.toggle a{margin:0 .3em}
section.failed{max-width:1200px;margin:1em auto 2em;padding:0 1.5em}
section.failed h2{font-size:1.2em;color:#9a6700}
table.failed{border-collapse:collapse;font-size:.9em}table.failed td,table.failed th{text-align:left;padding:.3em 1em .3em 0;border-bottom:1px solid #d0d7de}
"""


def card_text(name: str, licence: str, bundle: Path) -> tuple[str, str]:
    """The model card's name and licence as the page shows them (the bundle's folder name, "not stated" without a card)."""
    return name or bundle.resolve().name, licence or "not stated"


def label(prediction: Prediction) -> str:
    """A photo's file name; a video frame's file, frame and time."""
    name = prediction.file or f"source {prediction.source} frame {prediction.index}"
    if prediction.file_frame is not None:
        name += f" · frame {prediction.file_frame}"
        if prediction.timestamp is not None:
            name += f" ({prediction.timestamp:.2f} s)"
    return name


def thumbnail(image: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    """``image`` shrunk so its longer side is at most ``side`` (INTER_AREA)."""
    height, width = image.shape[:2]
    scale = side / max(height, width)
    if scale >= 1:
        return image
    return cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)


def histogram_svg(scores: list[float], width: int = 360, height: int = 140) -> str:
    """The scores' histogram as inline SVG: BINS bins over the range they span, rounded out to 0.01."""
    low = math.floor(min(scores) * 100) / 100
    high = max(low + 0.01, math.ceil(max(scores) * 100) / 100)
    counts, edges = np.histogram(scores, bins=BINS, range=(low, high))
    top, axis, bar_w = int(counts.max()), height - 20, (width - 20) / BINS
    bars = "".join(
        f"<rect x='{10 + i * bar_w:.1f}' y='{axis - count / top * (axis - 16):.1f}' width='{bar_w - 1:.1f}' "
        f"height='{count / top * (axis - 16):.1f}' fill='#0b6fb8'><title>{edges[i]:.3f}–{edges[i + 1]:.3f}: {count}</title></rect>"
        for i, count in enumerate(counts.tolist())
    )
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img' "
            f"aria-label='histogram of {len(scores)} scores'>{bars}"
            f"<line x1='10' y1='{axis}' x2='{width - 10}' y2='{axis}' stroke='#57606a'/>"
            f"<text x='10' y='{height - 4}' font-size='11'>{low:.2f}</text>"
            f"<text x='{width - 10}' y='{height - 4}' font-size='11' text-anchor='end'>{high:.2f}</text>"
            f"<text x='10' y='12' font-size='11'>{top} in the fullest bin</text></svg>")


class GallerySink(Sink):
    """Writes the ranked gallery into ``folder``; ``card`` is (model name, licence), ``settings`` (label → text) the
    run's settings, and ``run`` the run's summary, read when the run ends (frames, time, unreadable files).

    ``resume``: go on with the gallery of an earlier run (:mod:`memgaze.runtime.gallery_work`). The folder is checked
    when the sink is made, before any scoring."""

    wants_images = True

    def __init__(self, folder: str, card: tuple[str, str], settings: dict[str, str], run: RunSummary | None = None,
                 resume: bool = False) -> None:
        self.folder = Path(folder)
        check_target(self.folder, MARKER)
        self.card = card
        self.settings = settings
        self.run = run
        self._work: WorkFolder | None = WorkFolder(self.folder, resume)

    @property
    def entries(self) -> list[Entry]:
        """Every row so far, the earlier run's first when resumed (one that this run scored again is left out)."""
        assert self._work is not None
        earlier, now = self._work.entries[:self._work.earlier], self._work.entries[self._work.earlier:]
        again = {entry.key for entry in now}
        return [entry for entry in earlier if entry.key not in again] + now

    def write(self, result: Prediction, annotated: np.ndarray | None) -> None:
        if result.image is None or self._work is None:
            return
        thumb = thumbnail(result.image)
        height, width = thumb.shape[:2]
        stem = f"thumbs/{self._work.next_number:06d}"
        (self._work.path / f"{stem}.jpg").write_bytes(encode_jpeg(thumb))
        (self._work.path / f"{stem}.heat.jpg").write_bytes(encode_jpeg(colorize(result.heatmap, (width, height))))
        x, y = heatmap_peak(result.heatmap, (height, width))
        key = (result.source or 0, result.file or f"frame {result.index}", result.file_frame)
        identity = None if result.file_bytes is None or result.file_mtime_ns is None else (result.file_bytes, result.file_mtime_ns)
        self._work.add(Entry(key, label(result), result.score, result.peak, (x / width, y / height),
                             f"{stem}.jpg", f"{stem}.heat.jpg", (width, height), result.file_frame is not None, identity=identity))

    def write_failure(self, failure: Failure) -> None:
        if self._work is not None:
            identity = None if failure.file_bytes is None or failure.file_mtime_ns is None else (failure.file_bytes, failure.file_mtime_ns)
            self._work.add(Entry((failure.source, failure.file, None), failure.file, error=failure.error, identity=identity))

    def close(self) -> None:
        """Write the page and put the folder in place (also after Ctrl-C: the gallery of what was scored)."""
        if self._work is None:
            return
        entries = self.entries
        work, self._work = self._work, None
        work.finish({"index.html": self.page(entries), MARKER: f"memgaze {__version__}\n"})

    def page(self, entries: list[Entry] | None = None) -> str:
        """The gallery's HTML: ``entries`` (default: this run's) by score, highest first (ties by name), then the files
        that could not be scored, apart and not ranked."""
        esc = html.escape
        entries = self.entries if entries is None else entries
        ranked = sorted((e for e in entries if e.score is not None), key=lambda e: (-(e.score or 0.0), e.name))
        failed = sorted((e for e in entries if e.error), key=lambda e: e.name)
        name, licence = self.card
        rows = {"model": name, "licence": licence, **self.settings, **self._run_lines()}
        table = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows.items())
        figures = "\n".join(self._figure(rank, entry) for rank, entry in enumerate(ranked, 1))
        histogram = histogram_svg([e.score or 0.0 for e in ranked]) if ranked else "<p>nothing was scored</p>"
        what = "images" if any(e.video for e in ranked) else "photos"
        return (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='generator' content='memgaze {esc(__version__)}'>"
            "<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>memgaze: {len(ranked)} {what} by memorability</title><style>{STYLE}</style></head><body>"
            f"<header><h1>{len(ranked)} {what}, most memorable first</h1>"
            f"<p class='lead'>Scored by {esc(name)} (licence: {esc(licence)}). The overlay is the model's heatmap "
            "(what it shows: 'heatmap' below), the ring its peak. Scores are the model's prediction of memorability, in [0, 1].</p>"
            "<p class='toggle'>Heatmaps: <a href='#'>on</a>·<a href='#plain'>off</a></p></header>"
            f"<section class='about'><figure class='histogram'>{histogram}<figcaption>scores</figcaption></figure>"
            f"<table class='settings'>{table}</table></section>"
            f"<div id='plain'><main class='grid'>\n{figures}\n</main></div>{failures_section(failed)}</body></html>\n"
        )

    def _run_lines(self) -> dict[str, str]:
        run = self.run
        if run is None:
            return {}
        unreadable = str(run.undecodable)
        if run.unreadable_names:
            unreadable += f" ({', '.join(run.unreadable_names)}{', …' if run.undecodable > len(run.unreadable_names) else ''})"
        earlier = {"scored by an earlier run (resumed)": str(run.resumed)} if run.resumed else {}
        return {"scored": f"{run.frames} in {run.seconds:.1f} s ({run.fps:.1f}/s)", **earlier,
                "could not be scored (listed below the ranking)": unreadable, "ended": run.end_reason or "–"}

    @staticmethod
    def _figure(rank: int, entry: Entry) -> str:
        esc = html.escape
        width, height = entry.size_wh
        lazy = " loading='lazy'" if rank > EAGER else ""
        left, top = entry.peak_at
        frame = (f"<div class='frame'><img class='thumb' src='{entry.thumb}' width='{width}' height='{height}' "
                 f"alt='{esc(entry.name)}'{lazy}><img class='heat' src='{entry.heat}' alt=''{lazy}>"
                 f"<span class='peak' style='left:{left * 100:.1f}%;top:{top * 100:.1f}%'></span></div>")
        return (
            f"<figure class='photo' data-rank='{rank}' data-score='{entry.score or 0.0:.6f}' data-file='{esc(entry.name)}'>{frame}"
            f"<figcaption><span class='rank'>#{rank}</span> <b class='score'>{entry.score or 0.0:.3f}</b>"
            f"<span class='file'>{esc(entry.name)}</span>"
            f"<span class='where'>peak at ({entry.peak[0]}, {entry.peak[1]}) px</span></figcaption></figure>"
        )


def failures_section(failed: list[Entry]) -> str:
    """The files that could not be scored, apart from the ranking: each file and why."""
    if not failed:
        return ""
    rows = "".join(f"<tr class='failed' data-file='{html.escape(e.name)}'><td>{html.escape(e.name)}</td>"
                   f"<td>{html.escape(e.error or '')}</td></tr>" for e in failed)
    return (f"<section class='failed'><h2>{len(failed)} file{'s' if len(failed) > 1 else ''} could not be scored (not ranked)</h2>"
            f"<table class='failed'><tr><th>file</th><th>why</th></tr>{rows}</table></section>")
