"""The classifier: photos in, sorted class scores out.

The pipeline is split as in transformers' own pipelines: `preprocess` (PIL -> tensors),
`_forward` (tensors -> logits, no I/O) and `postprocess` (logits -> sorted scores), so the
batch path in `foodclf.batching` can overlap the first with the second.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import socket
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple, Sequence

import torch
from huggingface_hub import constants
from PIL import Image
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModelForImageClassification,
    AutoModelForZeroShotImageClassification,
    AutoProcessor,
)
from transformers.utils import logging as hf_logging

from foodclf.batching import classify_stream
from foodclf.engines import INT8_PHOTOS, Engine, LogitsAndFeatures, prepare_engine
from foodclf.errors import FoodclfError, ModelUnavailable
from foodclf.food_gate import FoodGate, load_food_gate
from foodclf.images import MODEL_SIDE, load_image
from foodclf.labels import FOOD101_LABELS, display_label
from foodclf.pixels import PixelRecipe, decode_side, pixel_recipe
from foodclf.settings import DEFAULT_MODEL, Settings
from foodclf.starter_model import STARTER, ensure_starter_model, starter_note
from foodclf.store import ImageStore, open_store

log = logging.getLogger(__name__)

# The prompt CLIP compares each photo to; "a type of food" steers it to dishes.
ZERO_SHOT_TEMPLATE = "a photo of {}, a type of food."


@dataclass(frozen=True)
class ClassificationResult:
    """What the model says about one photo."""

    class_scores: list[dict]  # [{"label": str, "score": float}], highest first
    highest_probability_class: str
    uncertain: bool
    model_id: str
    fingerprint: str
    latency_ms: float = 0.0
    # Every score, in the model's label order (score_labels): stored compactly with each prediction.
    all_scores: tuple[float, ...] = ()
    score_labels: tuple[str, ...] = ()
    # The pooled features the model's head read (L2-normalised), from the same forward pass: similar photos.
    embedding: tuple[float, ...] = field(default=(), repr=False)

    @property
    def top_score(self) -> float:
        return self.class_scores[0]["score"]

    def to_dict(self) -> dict:
        return {
            "class_scores": [dict(s) for s in self.class_scores],
            "highest_probability_class": self.highest_probability_class,
            "uncertain": self.uncertain,
            "model": {"id": self.model_id, "fingerprint": self.fingerprint},
        }


@dataclass(frozen=True)
class Uncertainty:
    """When a result is flagged for a moderator's eyes first."""

    below: float = 0.5  # top score under this
    margin: float = 0.1  # or top-1 minus top-2 under this

    def __call__(self, scores: Sequence[float]) -> bool:
        top = scores[0]
        second = scores[1] if len(scores) > 1 else 0.0
        return top < self.below or (top - second) < self.margin


class Forward(NamedTuple):
    """One forward pass: the logits, and the pooled features the head read (None when the model has no head found)."""

    logits: torch.Tensor
    features: torch.Tensor | None


@dataclass
class Classifier:
    """A loaded model with its processor; call `classify` with RGB PIL images."""

    model_id: str
    model: torch.nn.Module
    processor: object
    labels: list[str]
    device: torch.device
    precision: str  # "fp32", "bf16", "fp16" or "int8" (OpenVINO only): the arithmetic of the forward pass
    fingerprint: str
    uncertainty: Uncertainty = field(default_factory=Uncertainty)
    top_k: int = 5
    zero_shot: bool = False
    temperature: float = 1.0  # logits are divided by it before the softmax (saved with the model; see TEMPERATURE_KEY)
    load_seconds: float = 0.0
    gate: FoodGate | None = None  # the not-food gate (foodclf.food_gate), applied in postprocess
    note: str = ""  # what a person must know about this model, e.g. that it is the offline starter model
    head_module: str | None = None  # the classification layer, whose input is the photo's embedding
    engine: Engine = field(default_factory=lambda: Engine("torch"))  # what runs the forward pass (foodclf.engines)
    pixels: PixelRecipe | None = None  # the fast equivalent of the processor, where there is one (foodclf.pixels)
    decode_side: int = MODEL_SIDE  # the shorter side photos are decoded at, at least (foodclf.pixels.decode_side)
    channels_last: bool = False  # the model's weights are channels-last, so its inputs are made so too
    # How the batch path reads files and groups them (see foodclf.batching).
    batch_size: int = 16
    workers: int = 2
    max_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000
    _text_embeds: torch.Tensor | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def short_fingerprint(self) -> str:
        return self.fingerprint[:12]

    @property
    def input_size(self) -> int:
        """The side, in pixels, of what the model sees (224 for most); decoding needs no more than twice it."""
        processor = getattr(self.processor, "image_processor", self.processor)
        sides = []
        for attribute in ("crop_size", "size"):
            value = getattr(processor, attribute, None)
            value = value if isinstance(value, dict) else getattr(value, "__dict__", {}) or {}
            sides += [v for v in value.values() if isinstance(v, int)]
        return max(sides, default=224)

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """RGB images -> the model's input batch on the CPU: with a pixel recipe, its uint8 batch (N, H, W, 3),
        normalised by the engine (see PixelRecipe.uint8); else the processor's float32 batch (N, 3, H, W)."""
        if self.pixels is not None:
            return self.pixels.uint8(images)
        processor = getattr(self.processor, "image_processor", self.processor)
        return processor(images=list(images), return_tensors="pt")["pixel_values"]

    def float_pixels(self, batch: torch.Tensor) -> torch.Tensor:
        """What `preprocess` gave -> the float pixels the model itself takes (N, 3, H, W), on the batch's device."""
        return self.pixels.normalize(batch) if batch.dtype == torch.uint8 else batch

    def _forward(self, pixel_values: torch.Tensor) -> Forward:
        """Pixel batch -> logits and pooled features (float32, CPU). No I/O, no Python per image."""
        if self.engine.runner is not None:
            logits, features = self.engine.runner(pixel_values)
            if self.gate is not None and self.gate.has_head:
                logits = torch.cat([logits, self.gate.imagenet_logits(features)], dim=-1)
            return Forward(logits, torch.nn.functional.normalize(features, dim=-1) if features is not None else None)
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        if self.device.type == "cuda":
            # Page-locked, so the copy runs by DMA beside the CPU's decoding of the next batch (not measured
            # here: no GPU was lent to this project; see bench/README.md).
            pixel_values = pixel_values.pin_memory()
        # A uint8 batch is copied as it is (a quarter of the bytes) and normalised where the model runs.
        pixel_values = self.float_pixels(pixel_values.to(self.device, non_blocking=True))
        pixel_values = pixel_values.contiguous(memory_format=layout)
        features = None
        with torch.inference_mode(), self._autocast():
            if self.zero_shot:
                image_embeds = self.model.get_image_features(pixel_values=pixel_values)
                image_embeds = _as_tensor(image_embeds)
                image_embeds = image_embeds / image_embeds.norm(dim=-1, keepdim=True)
                logits = self.model.logit_scale.exp() * image_embeds @ self._text_embeds.T
                features = image_embeds
            elif self.gate is not None and self.gate.has_head:
                logits, features = LogitsAndFeatures(self.model, self.gate.head_module)(pixel_values)
                logits = torch.cat([logits.float(), self.gate.imagenet_logits(features)], dim=-1)
            elif self.head_module is not None:
                logits, features = LogitsAndFeatures(self.model, self.head_module)(pixel_values)
            else:
                logits = self.model(pixel_values=pixel_values).logits
        if features is not None:
            features = torch.nn.functional.normalize(features.float().flatten(1), dim=-1).cpu()
        return Forward(logits.float().cpu(), features)

    def postprocess(
        self,
        logits: torch.Tensor,
        top_k: int | None = None,
        latency_ms: float = 0.0,
        features: torch.Tensor | None = None,
    ):
        """Logits (and the pass's features) -> one ClassificationResult per row, sorted, top_k clamped."""
        k = self.top_k if top_k is None else top_k
        k = len(self.labels) if k <= 0 else min(k, len(self.labels))
        if self.temperature != 1.0:
            # The calibration temperature scales the dish head's logits (the gate's ImageNet ones follow them).
            dishes = len(self.gate.dish_labels) if self.gate is not None and self.gate.dish_labels else logits.shape[1]
            logits = torch.cat([logits[:, :dishes] / self.temperature, logits[:, dishes:]], dim=1)
        probabilities = self.gate.probabilities(logits) if self.gate is not None else logits.softmax(dim=-1)
        scores, indices = probabilities.sort(dim=-1, descending=True)
        results = []
        labels = tuple(self.labels)
        embeddings = features.tolist() if features is not None else [()] * len(logits)
        rows = zip(scores.tolist(), indices.tolist(), probabilities.tolist(), embeddings)
        for row_scores, row_indices, row_all, embedding in rows:
            class_scores = [
                {"label": self.labels[i], "score": float(s)} for i, s in zip(row_indices[:k], row_scores[:k])
            ]
            results.append(
                ClassificationResult(
                    class_scores=class_scores,
                    highest_probability_class=class_scores[0]["label"],
                    uncertain=self.uncertainty(row_scores),
                    model_id=self.model_id,
                    fingerprint=self.fingerprint,
                    latency_ms=latency_ms,
                    all_scores=tuple(row_all),
                    score_labels=labels,
                    embedding=tuple(embedding),
                )
            )
        return results

    def classify(self, images: Sequence[Image.Image], top_k: int | None = None) -> list[ClassificationResult]:
        """Classify RGB images as one batch.

        Args:
            images: RGB PIL images (see foodclf.images.load_image).
            top_k: how many classes per image; 0 means all; None uses the setting.

        Returns:
            One ClassificationResult per image, in order.
        """
        if not images:
            return []
        started = time.perf_counter()
        output = self.run(self.preprocess(images))
        latency_ms = (time.perf_counter() - started) * 1000 / len(images)
        return self.postprocess(output.logits, top_k, latency_ms, output.features)

    def classify_image(self, image: Image.Image, top_k: int | None = None) -> ClassificationResult:
        """Classify one RGB image."""
        return self.classify([image], top_k)[0]

    def run(self, pixel_values: torch.Tensor) -> Forward:
        """The forward pass, serialised: one model shared by threads must not run twice at once."""
        with self._lock:
            return self._forward(pixel_values)

    def classify_many(self, sources: Iterable, top_k: int | None = None, **options) -> Iterator:
        """Stream sources (paths, bytes, files) through the batch path; see foodclf.batching."""
        return classify_stream(self, sources, top_k=top_k, **options)

    def _autocast(self):
        if self.precision == "fp32":
            return torch.autocast(self.device.type, enabled=False)
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def describe(self) -> dict:
        """Plain facts for a sidebar or /readyz."""
        return {
            "id": self.model_id,
            "fingerprint": self.fingerprint,
            "labels": len(self.labels),
            "device": str(self.device),
            "precision": self.precision,
            "engine": self.engine.name,
            "engine_note": self.engine.note,
            "zero_shot": self.zero_shot,
            "load_seconds": round(self.load_seconds, 2),
            "engine_seconds": round(self.engine.prepare_seconds, 2),
            "not_food_gate": self.gate is not None,
            "note": self.note,
        }


def is_convnet(model: torch.nn.Module) -> bool:
    """Whether the network is made of convolutions (more than a ViT's one patch embedding)."""
    return sum(isinstance(module, torch.nn.Conv2d) for module in model.modules()) > 1


def classification_layer(model: torch.nn.Module) -> str | None:
    """The name of the model's classification layer (the last Linear with one output per label), or None."""
    n_labels = getattr(model.config, "num_labels", None)
    names = [
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and module.out_features == n_labels
    ]
    return names[-1] if names else None


def _as_tensor(output) -> torch.Tensor:
    # transformers 5 returns the projected embeddings as pooler_output; 4.x returned the tensor.
    return output if isinstance(output, torch.Tensor) else output.pooler_output


# ---- device and precision -------------------------------------------------------------------


def pick_device(setting: str = "auto") -> torch.device:
    """auto: the GPU when there is one, else the CPU."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise ModelUnavailable(f"FOODCLF_DEVICE is {setting}, but no CUDA GPU is visible; use auto or cpu.")
    return torch.device(setting)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX); emulated bf16 is slower."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def pick_precision(setting: str, device: torch.device) -> str:
    """auto: bf16 (fp16 on GPUs without it) where the hardware runs it natively, else fp32. int8 (CPU only) is
    passed on: the engine quantises (foodclf.engines.quantized_model)."""
    if setting != "auto":
        if device.type == "cpu" and setting == "fp16":
            raise ModelUnavailable("FOODCLF_PRECISION=fp16 needs a GPU; use auto, fp32, bf16 or int8 on the CPU.")
        if device.type != "cpu" and setting == "int8":
            raise ModelUnavailable("FOODCLF_PRECISION=int8 runs on the CPU (OpenVINO); use auto, bf16 or fp16 here.")
        return setting
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def float_precision(setting: str, device: torch.device) -> str:
    """The arithmetic PyTorch runs in: pick_precision, with int8 (OpenVINO serving only) taken as auto."""
    return pick_precision("auto" if setting == "int8" else setting, device)


# ---- loading --------------------------------------------------------------------------------

# Models kept loaded: the one in use and one other (the one before a switch, or one being
# evaluated); loading a third releases the least recently used. A released model that something
# still holds (a request in flight, a page) is reused rather than loaded a second time.
KEEP_MODELS = 2

_CACHE: OrderedDict[tuple, Classifier] = OrderedDict()  # model key -> classifier, least recently used first
_VIEWS: dict[tuple, Classifier] = {}  # view key -> classifier sharing a cached model's weights
_RELEASED: weakref.WeakValueDictionary[tuple, Classifier] = weakref.WeakValueDictionary()
_CACHE_LOCK = threading.Lock()


def load_classifier(settings: Settings, model: str | None = None) -> Classifier:
    """The classifier for these settings, loaded once per process (see KEEP_MODELS).

    With FOODCLF_MODEL unset, the default hub model falls back to the built-in starter model when the hub
    cannot be reached (and the classifier's `note` says so); `starter` asks for that model directly.

    Args:
        settings: model, device, precision, thresholds and zero-shot labels.
        model: a hub id, a folder or `starter`, overriding settings.model.

    Raises:
        ModelUnavailable: the model cannot be loaded; the message says how to fix it.
    """
    model_id = model or settings.model
    # Only the default model from settings, FOODCLF_MODEL unset, may give way to the starter model.
    fallback = model_id == settings.model == DEFAULT_MODEL and not settings.model_chosen
    key = (model_id, fallback, settings.device, settings.precision, settings.zero_shot_labels)
    options = dict(
        uncertainty=Uncertainty(settings.uncertain_below, settings.uncertain_margin),
        top_k=settings.top_k,
        batch_size=settings.batch_size,
        workers=settings.workers,
        max_bytes=settings.max_upload_bytes,
        max_pixels=settings.max_pixels,
    )
    view_key = key + tuple(sorted((name, repr(value)) for name, value in options.items()))
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
        else:
            _CACHE[key] = _still_held(key) or _load(model_id, settings, fallback)
            while len(_CACHE) > KEEP_MODELS:
                _release(next(iter(_CACHE)))
        if view_key not in _VIEWS:
            # Same weights, lock and text embeddings; only the per-settings knobs differ.
            _VIEWS[view_key] = _RELEASED.pop(view_key, None) or dataclasses.replace(_CACHE[key], **options)
        return _VIEWS[view_key]


def loaded_models() -> list[str]:
    """The ids of the models this process keeps loaded, least recently used first."""
    with _CACHE_LOCK:
        return [key[0] for key in _CACHE]


def forget_classifiers() -> None:
    """Drop cached models (after switching the active model, to retry a load, or in tests); the next load re-reads."""
    with _CACHE_LOCK:
        _CACHE.clear()
        _VIEWS.clear()
        _RELEASED.clear()


def _release(key: tuple) -> None:
    """Stop holding a model: it is freed once no request or page holds it (caller holds _CACHE_LOCK)."""
    del _CACHE[key]
    for view_key in [k for k in _VIEWS if k[: len(key)] == key]:
        _RELEASED[view_key] = _VIEWS.pop(view_key)
    log.info("released the model %s", key[0])


def _still_held(key: tuple) -> Classifier | None:
    """A released classifier of this model that is still alive somewhere, to share instead of reloading."""
    for view_key, view in list(_RELEASED.items()):
        if view_key[: len(key)] == key:
            return view
    return None


def _load(model_id: str, settings: Settings, fallback: bool = False) -> Classifier:
    started = time.perf_counter()
    device = pick_device(settings.device)
    int8 = pick_precision(settings.precision, device) == "int8"
    precision = float_precision(settings.precision, device)  # int8: what loads, and runs if int8 cannot
    if model_id == STARTER:
        classifier = _load_starter(settings, device, precision, offline=False)
    else:
        offline = local_files_only(model_id)
        try:
            classifier = _load_model(model_id, settings, device, precision, offline)
        except ModelUnavailable:
            if not (offline and fallback):
                raise
            # FOODCLF_MODEL unset, the default hub model not in the local cache, no hub: the starter
            # model rather than nothing, and said plainly (sidebar, CLI, logs), never silently.
            classifier = _load_starter(settings, device, precision, offline=True)
            log.warning("%s", classifier.note)
    gate_head = classifier.gate is not None and classifier.gate.has_head
    classifier.engine = prepare_engine(
        settings.engine,
        classifier.model,
        head_module=classifier.gate.head_module if gate_head else classifier.head_module,
        precision=precision,
        device=device,
        example=classifier.preprocess([Image.new("RGB", (classifier.input_size,) * 2)]),
        pixels=classifier.pixels,
        zero_shot=classifier.zero_shot,
        cache_dir=settings.cache_dir,
        fingerprint=classifier.fingerprint,
        int8_photos=(lambda: calibration_batches(classifier, settings.image_dir)) if int8 else None,
    )
    if classifier.engine.int8:
        classifier.precision = "int8"
    classifier.load_seconds = time.perf_counter() - started
    log.info(
        "loaded %s (%s, %s, %s engine) in %.1f s",
        classifier.model_id,
        device,
        classifier.precision,
        classifier.engine.name,
        classifier.load_seconds,
    )
    return classifier


def calibration_batches(classifier: Classifier, image_dir: str) -> list[torch.Tensor]:
    """Pixel batches of up to INT8_PHOTOS stored photos, for int8's calibration and check: the first the image
    folder lists (named by content hash, so in no meaningful order), read without listing a large store whole.
    None from an object store (s3://...): int8 then says it found no photos."""
    store = open_store(image_dir)
    if not isinstance(store, ImageStore) or not store.root.is_dir():
        return []
    images = []
    with os.scandir(store.root) as entries:
        for entry in entries:
            if len(images) >= INT8_PHOTOS:
                break
            if entry.name.startswith(".") or not entry.is_file():
                continue
            try:
                images.append(load_image(entry.path, side=classifier.decode_side).image)
            except FoodclfError:  # not a photo we can read: the next one
                continue
    size = classifier.batch_size
    return [classifier.preprocess(images[i : i + size]) for i in range(0, len(images), size)]


def _load_model(model_id: str, settings: Settings, device, precision: str, offline: bool) -> Classifier:
    config, offline = read_config(
        model_id,
        offline=offline,
        missing=(
            f"There is no model folder at {model_id}. Set FOODCLF_MODEL to a folder written by "
            "`save_pretrained` (or by `python -m foodclf train`), or to a Hugging Face hub id, "
            f"or to {STARTER} for the built-in starter model."
        ),
    )
    try:
        if is_zero_shot(config):
            return _load_zero_shot(model_id, settings, device, precision, offline)
        model, processor = load_pretrained(model_id, offline)
        return _image_classifier(model_id, model, processor, device, precision)
    except ModelUnavailable:
        raise
    except (OSError, ValueError, KeyError) as err:
        raise ModelUnavailable(load_error_message(model_id, err)) from err


def _load_starter(settings: Settings, device, precision: str, offline: bool) -> Classifier:
    folder = ensure_starter_model(settings)
    try:
        model, processor = load_pretrained(str(folder), offline=True)
        classifier = _image_classifier(str(folder), model, processor, device, precision)
    except (OSError, ValueError, KeyError) as err:
        raise ModelUnavailable(
            f"The starter model in {folder} cannot be loaded ({err}); delete that folder to rebuild it."
        ) from err
    classifier.model_id = STARTER
    classifier.note = starter_note(classifier.gate, offline)
    return classifier


class _DropMessages(logging.Filter):
    """Drops log records whose message starts with one of `prefixes`; lets everything else through."""

    def __init__(self, *prefixes: str):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


# timm models (EfficientNet-Lite0, the starter model, every model trained here) have a PIL image processor
# only; transformers asks for its torchvision one first and says so on every load. Nothing to act on.
_TORCHVISION_FALLBACK = _DropMessages("Requested torchvision backend is not available")


def quiet_transformers() -> None:
    """Before loading with transformers: no download bars (ours are the ones people read), no fallback note."""
    hf_logging.disable_progress_bar()
    # A filter on the one logger that says it, so every other transformers warning still shows.
    logging.getLogger("transformers.models.auto.image_processing_auto").addFilter(_TORCHVISION_FALLBACK)


def read_config(model_id: str, *, missing: str, offline: bool | None = None):
    """A model's config from its folder or the hub, and whether the hub is out of reach (offline).

    Serving and training both open models through this and load_pretrained.

    Raises:
        ModelUnavailable: `missing` for a folder that is not there; else why the model cannot be had.
    """
    quiet_transformers()
    if looks_local(model_id) and not Path(model_id).expanduser().is_dir():
        raise ModelUnavailable(missing)
    offline = local_files_only(model_id) if offline is None else offline
    try:
        return AutoConfig.from_pretrained(model_id, local_files_only=offline), offline
    except (OSError, ValueError, KeyError) as err:
        raise ModelUnavailable(load_error_message(model_id, err)) from err


def load_pretrained(model_id: str, offline: bool):
    """An image-classification model (in eval mode) and its image processor: (model, processor)."""
    quiet_transformers()
    processor = AutoImageProcessor.from_pretrained(model_id, local_files_only=offline)
    model = AutoModelForImageClassification.from_pretrained(model_id, local_files_only=offline)
    return model.eval(), processor


def is_zero_shot(config) -> bool:
    return getattr(config, "model_type", "") in ("clip", "siglip", "siglip2") or hasattr(config, "text_config")


def looks_local(model_id: str) -> bool:
    return model_id.startswith((".", "/", "~")) or Path(model_id).expanduser().exists()


def local_files_only(model_id: str) -> bool:
    """Whether to load a hub id from the local cache only: the hub cannot be reached, or HF_HUB_OFFLINE says so."""
    # Without a network, the hub client retries for half a minute; a quick probe lets us
    # go straight to the local cache (and a plain message if the model is not there).
    return not looks_local(model_id) and (constants.HF_HUB_OFFLINE or not _hub_reachable())


def _hub_reachable(timeout: float = 3.0) -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _image_classifier(model_id: str, model, processor, device: torch.device, precision: str) -> Classifier:
    model = model.to(device).eval()
    channels_last = is_convnet(model)
    if channels_last:
        # oneDNN's (and cuDNN's) convolutions run fastest on channels-last tensors: Lite0's bf16 forward in
        # PyTorch went from 49 to 84 photos/s on this project's CPU; a ViT (one patch convolution) is left as is.
        model = model.to(memory_format=torch.channels_last)
    id2label = model.config.id2label
    labels = [str(id2label[i]) for i in range(len(id2label))]
    gate = load_food_gate(model_id, labels) if looks_local(model_id) else None
    fingerprint = weights_fingerprint(model, labels)
    head = classification_layer(model)
    if gate is not None:
        # The gate changes every answer, so it is part of what the fingerprint names.
        fingerprint = hashlib.sha256(f"{fingerprint}:{gate.fingerprint()}".encode()).hexdigest()
        gate, labels = gate.to(device), gate.labels
    return Classifier(
        model_id=model_id,
        model=model,
        processor=processor,
        labels=labels,
        device=device,
        precision=precision,
        fingerprint=fingerprint,
        gate=gate,
        temperature=saved_temperature(model),
        head_module=head,
        pixels=pixel_recipe(processor),
        decode_side=decode_side(processor),
        channels_last=channels_last,
    )


def _load_zero_shot(model_id: str, settings: Settings, device, precision, offline=False) -> Classifier:
    processor = AutoProcessor.from_pretrained(model_id, local_files_only=offline)
    model = AutoModelForZeroShotImageClassification.from_pretrained(model_id, local_files_only=offline)
    model = model.to(device).eval()
    labels = list(settings.zero_shot_labels) or list(FOOD101_LABELS)
    prompts = [ZERO_SHOT_TEMPLATE.format(display_label(label).lower()) for label in labels]
    tokens = processor.tokenizer(prompts, padding=True, return_tensors="pt").to(device)
    with torch.inference_mode():
        text = _as_tensor(model.get_text_features(**tokens)).float()
    classifier = Classifier(
        model_id=model_id,
        model=model,
        processor=processor,
        labels=labels,
        device=device,
        precision=precision,
        fingerprint=weights_fingerprint(model, labels),
        zero_shot=True,
    )
    classifier._text_embeds = text / text.norm(dim=-1, keepdim=True)
    return classifier


# config.json key of the temperature fitted at the end of training (foodclf.training.calibration):
# logits are divided by it before the softmax, so scores read as probabilities.
TEMPERATURE_KEY = "foodclf_temperature"


def saved_temperature(model: torch.nn.Module) -> float:
    """The calibration temperature saved with a model (1.0: none)."""
    value = getattr(model.config, TEMPERATURE_KEY, None)
    return float(value) if isinstance(value, (int, float)) and value > 0 else 1.0


def weights_fingerprint(model: torch.nn.Module, labels: Sequence[str]) -> str:
    """sha256 of every weight tensor (by name) and the label list: same weights, same id."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        data = tensor.detach().to("cpu").contiguous()
        digest.update(str(data.dtype).encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    digest.update("\n".join(labels).encode())
    return digest.hexdigest()


def load_error_message(model_id: str, err: Exception) -> str:
    if looks_local(model_id):
        return (
            f"Could not load a model from the folder {model_id!r}: {err}. "
            "The folder needs config.json, the weights and preprocessor_config.json "
            "(as `save_pretrained` writes them); set FOODCLF_MODEL to such a folder."
        )
    return (
        f"Could not load the model {model_id!r} from the Hugging Face hub: the hub cannot be reached "
        "from this machine, or there is no such model. "
        "To work offline, download it once on a machine with network "
        "(`huggingface-cli download` or `save_pretrained`) and set FOODCLF_MODEL=/path/to/model-folder, "
        "or train one here with `python -m foodclf train`, "
        f"or use the built-in starter model (FOODCLF_MODEL={STARTER}; it needs no network)."
    )
