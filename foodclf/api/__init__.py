"""The HTTP API (see foodclf.api.app.create_app): what food a photo shows; answers land in the review queue."""
