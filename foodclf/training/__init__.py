"""Training new models from labelled photos (`python -m foodclf train`); see docs/training.md."""
