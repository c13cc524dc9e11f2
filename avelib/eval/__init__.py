"""Evaluation: metrics, post-processing, result tables."""
