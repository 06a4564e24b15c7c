"""The runtime's resize (memgaze.media.resize_frame: INTER_LINEAR to 2× the model size, then INTER_AREA)
against the reference it replaced (INTER_AREA straight to the model size), within stated tolerances.

Tolerances: mean |Δpixel| ≤ 1.5 grey levels (0.91 measured on real 720p/1080p frames by
``memgaze-bench resize``), and on the model's output |Δscore| ≤ 0.01 with heatmap CC ≥ 0.99.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from memgaze.media import jpeg_wh, read_image_for, resize_frame
from memgaze.runtime.backends import open_backend
from memgaze.runtime.bundle import load_bundle
from memgaze.correlation import pearson
from runtime_fixtures import make_bundle, synthetic_frame

PIXEL_TOLERANCE = 1.5
SCORE_TOLERANCE = 0.01
CC_TOLERANCE = 0.99


def camera_frame(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A camera-sized BGR frame with detail at every scale: a scene upscaled, plus smoothed noise (texture)."""
    rng = np.random.default_rng(seed)
    scene = cv2.resize(synthetic_frame(seed, 96), (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    texture = cv2.GaussianBlur(rng.normal(0, 40, (height, width, 3)).astype(np.float32), (0, 0), 2.0)
    return np.clip(scene + texture, 0, 255).astype(np.uint8)


def reference(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("width, height", [(1280, 720), (1920, 1080)])
def test_resize_is_close_to_inter_area_in_pixels(width: int, height: int) -> None:
    frame = camera_frame(width, height)
    size = (128, 128)
    ours, ref = resize_frame(frame, size), reference(frame, size)
    assert ours.shape == (128, 128, 3) and ours.dtype == np.uint8
    assert np.abs(ours.astype(np.int16) - ref).mean() <= PIXEL_TOLERANCE
    # The tolerance tells resizes apart: INTER_LINEAR straight to the model size (aliasing) falls outside it.
    linear = cv2.resize(frame, (128, 128), interpolation=cv2.INTER_LINEAR)
    assert np.abs(linear.astype(np.int16) - ref).mean() > PIXEL_TOLERANCE


def test_small_frames_and_enlarging_keep_the_old_resize() -> None:
    frame = camera_frame(200, 150)  # less than twice the model size: INTER_AREA alone, as before
    assert np.array_equal(resize_frame(frame, (128, 128)), reference(frame, (128, 128)))
    assert resize_frame(frame, (150, 200)) is frame
    small = frame[:40, :50]
    assert np.array_equal(resize_frame(small, (64, 64)), cv2.resize(small, (64, 64), interpolation=cv2.INTER_LINEAR))
    assert np.array_equal(resize_frame(camera_frame(1280, 720), (128, 128), prescale=1),
                          reference(camera_frame(1280, 720), (128, 128)))


def test_model_output_is_within_tolerance_of_inter_area(tmp_path: Path) -> None:
    bundle = load_bundle(make_bundle(tmp_path / "bundle", size=64, personalized=False))
    frames = [camera_frame(1280, 720, seed) for seed in range(4)]
    with open_backend(bundle, "onnxruntime", "fp32", threads=1) as engine:
        ours = engine.infer(np.stack([resize_frame(f, (64, 64)) for f in frames]))
        ref = engine.infer(np.stack([reference(f, (64, 64)) for f in frames]))
    assert np.abs(ours[0] - ref[0]).max() <= SCORE_TOLERANCE
    assert min(pearson(a[0], b[0]) for a, b in zip(ours[1], ref[1])) >= CC_TOLERANCE


def test_jpeg_is_decoded_smaller_within_the_same_tolerance(tmp_path: Path) -> None:
    frame = camera_frame(1280, 720)
    photo, png = tmp_path / "photo.jpg", tmp_path / "photo.png"
    cv2.imwrite(str(photo), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
    cv2.imwrite(str(png), frame)
    assert jpeg_wh(photo) == (1280, 720) and jpeg_wh(png) is None
    # 1/2 keeps 640×360 ≥ 2 × 128 on both sides; 1/4 (320×180) would not.
    image, full = read_image_for(photo, (128, 128))
    assert image is not None and image.shape == (360, 640, 3) and full == (720, 1280)
    assert read_image_for(photo, (64, 64))[0].shape == (180, 320, 3)  # 1/4 for a smaller model
    assert read_image_for(photo, (400, 400))[1] is None  # too small to shrink: decoded in full
    whole, none = read_image_for(png, (128, 128))
    assert none is None and np.array_equal(whole, frame)  # not a JPEG: read in full
    full_decode = cv2.imread(str(photo))
    ours, ref = resize_frame(image, (128, 128)), reference(frame, (128, 128))
    assert np.abs(ours.astype(np.int16) - ref).mean() <= PIXEL_TOLERANCE
    assert np.abs(resize_frame(full_decode, (128, 128)).astype(np.int16) - ref).mean() <= PIXEL_TOLERANCE
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00")
    assert jpeg_wh(tmp_path / "broken.jpg") is None
