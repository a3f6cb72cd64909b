"""The person detector: pretrained person and pose models, tracking and retail behaviour rules.

`detector.py` wires the stages; `models/` holds the converted model files, their provenance and
licence. Imported on first use through the detector registry, so processes that run only the
motion baseline never load ONNX Runtime.
"""
