"""The HTTP API: the platform asks what food a photo shows; answers land in the review queue."""

from foodclf.api.app import create_app

__all__ = ["create_app"]
