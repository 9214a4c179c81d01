"""foodclf: tag food photos with a Hugging Face image classifier."""

__version__ = "0.1.0"
