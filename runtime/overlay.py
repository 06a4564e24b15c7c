"""Annotated frames with OpenCV only: colour-mapped heatmap blended on the frame, score bar, FPS, peak."""

from __future__ import annotations

import cv2
import numpy as np

BAR_HEIGHT_FRACTION = 0.05


def colorize(heatmap: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """Heatmap ``[h, w]`` → BGR uint8 ``[H, W, 3]`` (``size_wh`` = (W, H)), scaled to its own max, JET colours."""
    peak = float(heatmap.max())
    scaled = cv2.convertScaleAbs(heatmap.astype(np.float32), alpha=255.0 / peak if peak > 0 else 0.0)
    return cv2.applyColorMap(cv2.resize(scaled, size_wh, interpolation=cv2.INTER_LINEAR), cv2.COLORMAP_JET)


def annotate(
    frame: np.ndarray, heatmap: np.ndarray, score: float, peak: tuple[int, int], fps: float, label: str = "",
    alpha: float = 0.45,
) -> np.ndarray:
    """A new BGR image: ``frame`` with the heatmap blended in, a score bar on top, the score, FPS, the peak marked,
    and ``label`` (what the heatmap is) under the score."""
    height, width = frame.shape[:2]
    out = cv2.addWeighted(frame, 1.0 - alpha, colorize(heatmap, (width, height)), alpha, 0.0)
    bar = max(4, int(round(height * BAR_HEIGHT_FRACTION)))
    cv2.rectangle(out, (0, 0), (width - 1, bar), (40, 40, 40), thickness=-1)
    cv2.rectangle(out, (0, 0), (int(round((width - 1) * min(max(score, 0.0), 1.0))), bar), (0, 200, 255), thickness=-1)
    scale = max(0.3, width / 900.0)
    thickness = max(1, int(round(scale * 2)))
    text_y = bar + int(22 * scale) + 2
    cv2.putText(out, f"memorability {score:.2f}", (4, text_y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    if label:
        small = scale * 0.6
        cv2.putText(out, f"map: {label}", (4, text_y + int(20 * scale) + 2), cv2.FONT_HERSHEY_SIMPLEX, small, (255, 255, 255),
                    max(1, thickness // 2), cv2.LINE_AA)
    cv2.putText(out, f"{fps:.1f} FPS", (4, height - 6), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    cv2.drawMarker(out, peak, (255, 255, 255), cv2.MARKER_CROSS, max(8, width // 20), thickness)
    return out
