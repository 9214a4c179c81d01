"""The model, loaded once per process in a background thread so /healthz answers at once."""

from __future__ import annotations

import logging
import threading

from foodclf.api.errors import ApiError
from foodclf.classifier import Classifier, load_classifier
from foodclf.errors import FoodclfError
from foodclf.settings import Settings

log = logging.getLogger(__name__)


class ModelSlot:
    """Holds the shared classifier once it is loaded, or the reason it could not be."""

    def __init__(self, classifier: Classifier | None = None):
        self.classifier = classifier
        self.error: str | None = None
        self._thread: threading.Thread | None = None

    @property
    def ready(self) -> bool:
        return self.classifier is not None

    def start_loading(self, settings: Settings) -> None:
        """Load in a daemon thread; a slow or failed load never blocks startup or shutdown."""
        if self.ready or self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._load, args=(settings,), name="foodclf-model-load", daemon=True
        )
        self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the load to finish (tests, the CLI); True when the model is ready."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.ready

    def get(self) -> Classifier:
        """The classifier, or a 503 saying why there is none yet."""
        if self.classifier is not None:
            return self.classifier
        if self.error:
            raise ApiError(503, self.error, code="model_unavailable")
        raise ApiError(503, "The model is still loading; try again in a few seconds.",
                       headers={"Retry-After": "5"})

    def _load(self, settings: Settings) -> None:
        try:
            self.classifier = load_classifier(settings)
        except FoodclfError as err:
            self.error = str(err)
            log.error("the model could not be loaded: %s", err)
        except Exception as err:  # noqa: BLE001  (any failure must show in /readyz, not kill a thread silently)
            self.error = "The model could not be loaded; see the server log."
            log.exception("the model could not be loaded: %s", err)
