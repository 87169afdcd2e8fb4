"""Evaluation: the streaming evaluator, test-time augmentation and tiling, metrics, boundary
trimaps, CRF parameter search and the reports written next to a model."""
