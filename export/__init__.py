"""Export: ONNX, INT8 Q/DQ quantization, TensorRT engines and the deploy bundle, `memgaze-export`."""
