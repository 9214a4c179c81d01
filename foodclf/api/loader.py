"""The model: loaded once per process in a background thread, so /healthz answers at once.

The model in use is the dashboard's: the active trained model, else FOODCLF_MODEL. The same
thread looks again every minute, so a model activated in the dashboard is picked up without
a restart (the old one keeps answering until the new one is loaded).
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from foodclf.api.errors import ApiError
from foodclf.classifier import Classifier, load_classifier
from foodclf.errors import FoodclfError
from foodclf.model_registry import active_model_name
from foodclf.settings import Settings

log = logging.getLogger(__name__)

# How often the registry is read for a newly activated model; the dashboard caches it as long.
REFRESH_SECONDS = 60.0


class ModelSlot:
    """Holds the shared classifier once it is loaded, or the reason it could not be."""

    def __init__(self, classifier: Classifier | None = None):
        self.classifier = classifier
        self.error: str | None = None
        self._name: str | None = None  # what `classifier` was loaded from
        self._failed: str | None = None  # a name that would not load: not retried every minute
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._first_load = threading.Event()

    @property
    def ready(self) -> bool:
        return self.classifier is not None

    def start_loading(self, settings: Settings, resolve: Callable[[], str] | None = None) -> None:
        """Load (and keep following) the active model in a daemon thread; a given classifier is kept."""
        if self.ready or self._thread is not None:
            return
        resolve = resolve or (lambda: active_model_name(settings))
        self._thread = threading.Thread(
            target=self._follow, args=(settings, resolve), name="foodclf-model-load", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop following the registry (at shutdown); a load in progress finishes on its own."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the first load to finish (tests, scripts); True when the model is ready."""
        if self._thread is not None:
            self._first_load.wait(timeout)
        return self.ready

    def get(self) -> Classifier:
        """The classifier, or a 503 saying why there is none yet."""
        classifier = self.classifier
        if classifier is not None:
            return classifier
        if self.error:
            raise ApiError(503, self.error, code="model_unavailable")
        raise ApiError(503, "The model is still loading; try again in a few seconds.", headers={"Retry-After": "5"})

    def _follow(self, settings: Settings, resolve: Callable[[], str]) -> None:
        while True:
            name = self._resolve(settings, resolve)
            if name not in (self._name, self._failed):
                self._load(settings, name)
            self._first_load.set()
            if self._stop.wait(REFRESH_SECONDS):
                return

    def _resolve(self, settings: Settings, resolve: Callable[[], str]) -> str:
        try:
            return resolve()
        except Exception as err:  # noqa: BLE001  (no database must not cost the API its model)
            log.warning(
                "could not read the active model from the database (%s); using %s", err, self._name or settings.model
            )
            return self._name or settings.model

    def _load(self, settings: Settings, name: str) -> None:
        try:
            classifier = load_classifier(settings, name)
        except FoodclfError as err:
            message = str(err)
        except Exception as err:  # noqa: BLE001  (any failure must show in /readyz, not kill the thread)
            log.exception("the model %s could not be loaded", name)
            message = f"The model could not be loaded ({type(err).__name__}); see the server log."
        else:
            # Requests already running keep the classifier they were handed.
            self.classifier, self._name, self._failed, self.error = classifier, name, None, None
            log.info("classifying with %s (%s)", name, classifier.short_fingerprint)
            return
        self._failed = name
        log.error("the model %s could not be loaded: %s", name, message)
        if self.classifier is None:
            self.error = message
        # else: keep answering with the model already loaded
