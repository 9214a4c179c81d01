"""Measuring a model on labelled photos (`python -m foodclf evaluate`); the figures are in foodclf.metrics."""
