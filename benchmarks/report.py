"""Report writers: one small document model rendered to Markdown and to a self-contained HTML page,
plus the matplotlib (Agg) plots the reports embed.

The JSON results are the source of truth; ``report.md`` and ``report.html`` in an output folder
are rebuilt from every result JSON found there, so latency, accuracy and training speed measured
into one folder read as one report.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, Union

from memgaze.atomic import atomic_path, write_text

Cell = Union[str, int, float, None]


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Cell]]


@dataclass
class Figure:
    """A PNG in the report's folder (``file`` is its name there)."""

    file: str
    caption: str


Block = Union[Heading, Para, Bullets, Table, Figure]


@dataclass
class Document:
    title: str
    machine_line: str
    blocks: list[Block] = field(default_factory=list)


def fmt(value: Cell, digits: int = 2) -> str:
    """A table cell as text: floats with ``digits`` decimals (3 significant below 1), None as ``–``."""
    if value is None:
        return "–"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        if value != 0 and abs(value) < 1:
            return f"{value:.3g}"
        return f"{value:,.{digits}f}"
    return str(value)


def _md_cell(value: Cell) -> str:
    return fmt(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(doc: Document) -> str:
    """The document as GitHub-flavoured Markdown; figures link the PNGs beside it."""
    lines = [f"# {doc.title}", "", f"**Machine:** {doc.machine_line}", ""]
    for block in doc.blocks:
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Para):
            lines += [block.text, ""]
        elif isinstance(block, Bullets):
            lines += [f"- {item}" for item in block.items] + [""]
        elif isinstance(block, Table):
            lines.append("| " + " | ".join(_md_cell(h) for h in block.headers) + " |")
            lines.append("|" + "|".join("---" for _ in block.headers) + "|")
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            lines.append("")
        elif isinstance(block, Figure):
            lines += [f"![{block.caption}]({block.file})", "", f"*{block.caption}*", ""]
    return "\n".join(lines)


_CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;max-width:1080px;
margin:2em auto;padding:0 1em;color:#1f2328;line-height:1.45}
h1{border-bottom:2px solid #d0d7de;padding-bottom:.3em}h2{margin-top:1.8em;color:#0b4f8a}
.machine{background:#f6f8fa;border-left:4px solid #0b4f8a;padding:.6em 1em;font-size:.92em}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}
th,td{border:1px solid #d0d7de;padding:.35em .7em;text-align:right}
th{background:#f6f8fa}td:first-child,th:first-child{text-align:left}
tr:nth-child(even) td{background:#fbfcfd}
figure{margin:1.2em 0}figure img{max-width:100%;border:1px solid #eaeef2}
figcaption{color:#57606a;font-size:.9em}
"""


def to_html(doc: Document, folder: Path) -> str:
    """The document as one self-contained HTML page: PNGs from ``folder`` inlined as data URIs."""
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{esc(doc.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(doc.title)}</h1>",
        f"<p class='machine'><b>Machine:</b> {esc(doc.machine_line)}</p>",
    ]
    for block in doc.blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{esc(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            parts.append(f"<p>{esc(block.text)}</p>")
        elif isinstance(block, Bullets):
            parts.append("<ul>" + "".join(f"<li>{esc(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{esc(h)}</th>" for h in block.headers)
            body = "".join(
                "<tr>" + "".join(f"<td>{esc(fmt(c))}</td>" for c in row) + "</tr>" for row in block.rows
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(block, Figure):
            data = base64.b64encode((folder / block.file).read_bytes()).decode("ascii")
            parts.append(
                f"<figure><img alt='{esc(block.caption)}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{esc(block.caption)}</figcaption></figure>"
            )
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_documents(doc: Document, folder: Path) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` for ``doc`` into ``folder``."""
    md, page = folder / "report.md", folder / "report.html"
    write_text(md, to_markdown(doc))
    write_text(page, to_html(doc, folder))
    return md, page


# ---- plots -------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False})
    return plt


def _save(fig, path: Path) -> None:  # type: ignore[no-untyped-def]
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=130, bbox_inches="tight")
    _pyplot().close(fig)


def plot_latency_bars(labels: Sequence[str], p50: Sequence[float], p99: Sequence[float], path: Path,
                      title: str) -> None:
    """Horizontal bars at p50 with a whisker to p99 (ms); log scale when the range is wide."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(labels) + 1.2))
    y = list(range(len(labels)))[::-1]
    colors = plt.get_cmap("tab10").colors
    ax.barh(y, p50, color=[colors[i % 10] for i in range(len(labels))], alpha=0.85, label="p50")
    ax.errorbar(p50, y, xerr=[[0] * len(p50), [b - a for a, b in zip(p50, p99)]], fmt="none",
                ecolor="#333", capsize=3, lw=1, label="p50 → p99")
    for yi, a in zip(y, p50):
        ax.text(a, yi, f" {a:.2f}", va="center", ha="left", fontsize=8)
    ax.set_yticks(y, labels)
    ax.set_xlabel("latency per call (ms)")
    if max(p99) / max(min(p50), 1e-9) > 30:
        ax.set_xscale("log")
    ax.set_title(title)
    ax.legend(loc="upper right", frameon=False)
    _save(fig, path)


def plot_scatter(points: Sequence[tuple[str, float, float]], path: Path, xlabel: str, ylabel: str,
                 title: str) -> None:
    """One labelled point per (label, x, y), e.g. accuracy against latency."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    colors = plt.get_cmap("tab10").colors
    for i, (label, x, y) in enumerate(points):
        ax.scatter([x], [y], s=60, color=colors[i % 10], zorder=3)
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.margins(0.25)
    _save(fig, path)


def plot_bars(labels: Sequence[str], values: Sequence[float], path: Path, xlabel: str, title: str, digits: int = 1) -> None:
    """Simple labelled horizontal bars (e.g. training images/s), each value printed with ``digits`` decimals."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(labels) + 1.2))
    y = list(range(len(labels)))[::-1]
    colors = plt.get_cmap("tab10").colors
    ax.barh(y, values, color=[colors[i % 10] for i in range(len(labels))], alpha=0.85)
    for yi, v in zip(y, values):
        ax.text(v, yi, f" {v:.{digits}f}", va="center", ha="left", fontsize=8)
    ax.set_yticks(y, labels)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    _save(fig, path)
