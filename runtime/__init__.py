"""Runtime: backends, frame sources, pipeline and sinks, `memgaze-run`. Never imports torch or onnx."""
