"""Training without labels: an external memorability model (ResMem, or any ONNX model) as the teacher
(:mod:`.external_teacher`, :mod:`.resmem`) and the unlabelled frames it scores once, cached (:mod:`.unlabelled_frames`)."""
