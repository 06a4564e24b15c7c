"""TensorRT plans without torch or onnx: the build recipe per TensorRT version, the fit rule, the builder.

``recipe`` and ``fit`` are plain Python (they run anywhere and are tested here); ``build`` imports
``tensorrt`` when it is called.
"""
