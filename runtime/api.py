"""The Python API: ``memgaze.load(bundle) -> Model``; ``Model.predict(images)`` and ``Model.stream(sources)``.

``memgaze`` re-exports ``load``, ``Model``, ``Prediction`` and ``MemgazeError`` from here on first access;
``memgaze-run`` is a thin command line over this module. It imports the runtime (numpy, OpenCV; ONNX
Runtime or TensorRT when a model is loaded), never torch or onnx.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType
from typing import Sequence, Union, overload

import numpy as np

from memgaze import builtin
from memgaze.console import WarningCounter
from memgaze.errors import MemgazeError, fail
from memgaze.media import UnreadableImage, decode_image_for, read_image_for, resize_frame
from memgaze.runtime.backends import open_backend
from memgaze.runtime.backends.base import Backend
from memgaze.runtime.bundle import Bundle, load_bundle
from memgaze.runtime.capture import ReconnectPolicy
from memgaze.runtime.pipeline import Stream, batch_of
from memgaze.runtime.prediction import Prediction, engine_predictions
from memgaze.runtime.sources import CaptureOptions, FrameSource, capture_wh, open_source, source_spec
from memgaze.trt.recipe import MAX_BATCH

__all__ = ["Model", "Prediction", "Stream", "load", "MemgazeError"]

Image = Union[np.ndarray, str, Path, bytes]
SourceArg = Union[str, int, Path]


def check_image(image: object, model_hw: tuple[int, int], position: int | None = None) -> tuple[np.ndarray, tuple[int, int] | None]:
    """``image`` as a uint8 BGR ``[H, W, 3]`` array, and its full (H, W) when a path's (or an encoded file's bytes')
    JPEG was decoded smaller for a model of input ``model_hw`` (:func:`memgaze.media.read_image_for`), else None;
    one-line error otherwise."""
    where = "" if position is None else f" (image {position})"
    if isinstance(image, (str, Path)):
        try:
            return read_image_for(Path(image), model_hw)
        except UnreadableImage as exc:
            fail(f"cannot read an image from {image}{where}: {exc}")
    if isinstance(image, bytes):
        try:
            return decode_image_for(image, model_hw)
        except UnreadableImage as exc:
            fail(f"cannot decode an image from {len(image)} bytes{where}: {exc}")
    if not isinstance(image, np.ndarray):
        fail(f"expected a numpy uint8 BGR image [H, W, 3] or a path, got {type(image).__name__}{where}")
    if image.dtype != np.uint8:
        fail(f"expected a uint8 image, got {image.dtype}{where}; convert with (x * 255).clip(0, 255).astype(np.uint8) "
             "if it holds floats in [0, 1]")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        fail(f"expected a 3-channel BGR image, got a grayscale one of shape {image.shape}{where}; "
             "convert with cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)")
    if image.ndim == 3 and image.shape[2] == 4:
        fail(f"expected a 3-channel BGR image, got 4 channels (BGRA/RGBA){where}; "
             "convert with cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)")
    if image.ndim != 3 or image.shape[2] != 3:
        fail(f"expected an image of shape [H, W, 3], got {image.shape}{where}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        fail(f"the image is empty (shape {image.shape}){where}")
    return image, None


class Model:
    """A deploy bundle opened on a backend, conditioned on one user (generic by default)."""

    def __init__(self, bundle: Bundle, backend: Backend, user: int | None) -> None:
        self.bundle = bundle
        self.backend = backend
        self.user = user

    @property
    def input_size(self) -> tuple[int, int]:
        """The model's input (H, W); every image is resized to it."""
        return self.backend.input_size

    @property
    def users(self) -> list[str]:
        """The users the bundle knows (index 0 = generic viewer)."""
        return list(self.bundle.users)

    def describe(self) -> str:
        """One line: backend, precision and model file."""
        return self.backend.describe()

    def __repr__(self) -> str:
        """The model's name, backend, precision, input size and viewer, e.g. ``Model('memgaze-lite0-resmem v4',
        onnxruntime int8, input 224x224, viewer generic of 1)``."""
        name = self.bundle.manifest.card.get("name") or self.bundle.root.name
        height, width = self.input_size
        viewer = self.users[self.user or 0]
        return (f"Model({name!r}, {self.backend.name} {self.backend.precision}, input {width}x{height}, "
                f"viewer {viewer} of {len(self.users)})")

    @property
    def map_label(self) -> str:
        """What the heatmap shows, as the overlay says it: the chosen user's predicted gaze, or what the bundle's
        model card says of its generic map (e.g. what drives the predicted memorability, not gaze); "" if unknown."""
        if self.user:
            return f"{self.users[self.user]}'s predicted gaze"
        return self.bundle.manifest.card.get("map", "")

    @overload  # a str or bytes is one image, not a sequence of them: this overload is tried first
    def predict(self, images: Image, *, keep_images: bool = False) -> Prediction: ...  # type: ignore[overload-overlap]

    @overload
    def predict(self, images: Sequence[Image], *, keep_images: bool = False) -> list[Prediction]: ...

    def predict(self, images: Image | Sequence[Image], *, keep_images: bool = False) -> Prediction | list[Prediction]:
        """Score one image (uint8 BGR ``[H, W, 3]`` array of any size, a path, or an image file's bytes) or a list of
        them (batched). A list is decoded and scored ``MAX_BATCH`` at a time, so memory does not grow with its length
        beyond the predictions themselves; each keeps its decoded image as ``image`` only with ``keep_images``."""
        if isinstance(images, (np.ndarray, str, Path, bytes)):
            return self.predict_checked([check_image(images, self.input_size)], keep_images=keep_images)[0]
        if not isinstance(images, Sequence):
            fail(f"expected an image or a list of images, got {type(images).__name__}")
        if len(images) == 0:
            fail("predict() got an empty list of images")
        predictions: list[Prediction] = []
        for start in range(0, len(images), MAX_BATCH):
            chunk = [check_image(image, self.input_size, start + i) for i, image in enumerate(images[start:start + MAX_BATCH])]
            predictions += self.predict_checked(chunk, first_index=start, keep_images=keep_images)
        return predictions

    def predict_checked(self, checked: list[tuple[np.ndarray, tuple[int, int] | None]], *, first_index: int = 0,
                        keep_images: bool = False) -> list[Prediction]:
        """One engine call for images already checked (:func:`check_image`: each an image and its full (H, W) when it
        was decoded smaller, else None), numbered from ``first_index``."""
        start = time.perf_counter()
        images = [image for image, _ in checked]
        batch = batch_of([resize_frame(image, self.input_size) for image in images])
        resized = time.perf_counter()
        users = None if self.user is None else np.full(len(images), self.user, np.int64)
        scores, heatmaps = self.backend.infer(batch, users)
        inferred = time.perf_counter()
        timings = {"pre": (resized - start) * 1000.0, "infer": (inferred - resized) * 1000.0}
        predictions = engine_predictions(
            scores, heatmaps, [full_shape or image.shape for image, full_shape in checked],
            [{"timings": dict(timings), "index": index, "image": image if keep_images else None}
             for index, (image, _) in enumerate(checked, first_index)])
        post = (time.perf_counter() - inferred) * 1000.0
        for prediction in predictions:
            prediction.timings["post"] = post
        return predictions

    def open_sources(self, sources: SourceArg | Sequence[SourceArg], options: CaptureOptions,
                     recursive: bool = True) -> list[FrameSource]:
        """Open each source (cameras asked for a capture size near the model's; folders with their sub-folders when
        ``recursive``); all or none stay open."""
        items = [sources] if isinstance(sources, (str, int, Path)) else list(sources)
        if not items:
            fail("stream() got an empty list of sources")
        specs = [source_spec(item, recursive) for item in items]
        wanted_wh = capture_wh(options, self.input_size)
        opened: list[FrameSource] = []
        try:
            for spec in specs:
                opened.append(open_source(spec, wanted_wh, options.rate, model_hw=self.input_size,
                                          rtsp_transport=options.rtsp_transport))
        except BaseException:
            for source in opened:
                source.close()
            raise
        return opened

    def stream(
        self,
        sources: SourceArg | Sequence[SourceArg],
        *,
        input_width: int | None = None,
        input_height: int | None = None,
        input_rate: float | None = None,
        max_frames: int | None = None,
        reconnect: int = 5,
        warnings: WarningCounter | None = None,
        batch: int | None = MAX_BATCH,
        decode_threads: int | None = None,
        recursive: bool = True,
        rtsp_transport: str = "auto",
        keep_images: bool = False,
    ) -> Stream:
        """Predictions for every frame of one source or several.

        A source is what ``memgaze-run --source`` takes (an image or video file, a folder, a glob, a text file of
        paths, a URL, ``csi://N``, ``v4l2:///dev/videoN``, a GStreamer pipeline) or an int camera index. When every
        source is a file or collection, the files are read in order (folders with their sub-folders when
        ``recursive``), decoded on ``decode_threads`` threads (default: every core) and scored ``batch`` per engine
        call; each prediction names its ``file``. With a live source among them (or ``batch=None``), a batch is the
        newest frame of each source, files are read in step and live sources keep only their newest frame. Cameras are asked for
        ``input_width`` × ``input_height`` at ``input_rate`` (default: a mode near the model's size). An rtsp:// source
        gets RTP over ``rtsp_transport``: auto (OpenCV's default: TCP, UDP when the server refuses TCP), tcp or udp.
        Each prediction carries its decoded frame as ``image`` only with ``keep_images`` (e.g. to draw an overlay);
        :meth:`Stream.rows` also gives a :class:`memgaze.runtime.prediction.Failure` for each file that could not be read."""
        options = CaptureOptions(input_width, input_height, input_rate, rtsp_transport)
        opened = self.open_sources(sources, options, recursive)
        try:
            return Stream(self.backend, opened, user=self.user, max_frames=max_frames, policy=ReconnectPolicy(attempts=reconnect),
                          warnings=warnings, batch=batch, threads=decode_threads, keep_images=keep_images)
        except BaseException:
            for source in opened:
                source.close()
            raise

    def close(self) -> None:
        """Release the backend."""
        self.backend.close()

    def __enter__(self) -> Model:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def load(
    bundle: str | Path | None = None,
    backend: str = "auto",
    precision: str | None = None,
    user: str | None = None,
    *,
    threads: int | None = None,
    providers: list[str] | None = None,
    build: bool = False,
) -> Model:
    """Open a deploy bundle (checksums verified; a built-in model's name, e.g. ``"memgaze-lite2-resmem"``, opens that
    one; None: the default built-in model, :mod:`memgaze.builtin`) on ``backend``
    (auto | tensorrt | onnxruntime) at ``precision`` (int8 | fp16 | fp32, default the best available), predicting
    ``user``'s gaze (default: the generic viewer). ``build``: build a TensorRT plan here when none fits this GPU
    (as ``memgaze-run`` does on first use)."""
    opened = load_bundle(builtin.resolve(bundle))
    user_index = opened.user_index(user)
    engine = open_backend(opened, backend, precision, threads=threads, providers=providers, build=build)
    return Model(opened, engine, user_index)
