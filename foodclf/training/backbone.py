"""The model a new one starts from: its pooled features, and the same network with a new head."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Optional, Sequence

import torch

from foodclf.classifier import (
    float_precision,
    is_zero_shot,
    load_error_message,
    load_pretrained,
    looks_local,
    pick_device,
    read_config,
    weights_fingerprint,
)
from foodclf.errors import ModelUnavailable
from foodclf.food_gate import FoodGate, imagenet_food_gate, load_food_gate
from foodclf.model_registry import active_model_name
from foodclf.pixels import PixelRecipe, decode_side, pixel_recipe
from foodclf.starter_model import EFFICIENTNET_LITE0, STARTER, efficientnet_lite0, imagenet_labels

log = logging.getLogger(__name__)

CURRENT = "current"  # the model moderators use now: the active trained model, else FOODCLF_MODEL


@dataclass
class Backbone:
    """A loaded image-classification model whose head's input is the photo's pooled features."""

    name: str  # efficientnet-lite0, a hub id or a folder (for "current": the model in use)
    model: torch.nn.Module
    processor: Any
    labels: list[str]
    head_name: str  # the classification Linear, e.g. "classifier" or "timm_model.classifier"
    device: torch.device
    precision: str  # fp32 or bf16 (fp16 on a GPU) for feature extraction
    fingerprint: str = ""  # weights, labels and preprocessing: what cached features are keyed by
    # The not-food gate a new model keeps beside its new head: the ImageNet head, read from the base
    # before with_new_head replaces it (None for bases without one, e.g. a ViT trained on Food-101).
    gate: Optional[FoodGate] = None

    @property
    def head(self) -> torch.nn.Linear:
        return self.model.get_submodule(self.head_name)

    @property
    def feature_dim(self) -> int:
        return self.head.in_features

    @cached_property
    def decode_side(self) -> int:
        """The side photos are decoded at, at least: the classifier's, so features match what serving sees."""
        return decode_side(self.processor)

    @cached_property
    def pixels(self) -> Optional[PixelRecipe]:
        """The classifier's fast preprocessing for this processor (foodclf.pixels), read once."""
        return pixel_recipe(self.processor)

    def preprocess(self, images) -> torch.Tensor:
        """RGB PIL images -> the pixel batch the model expects (the classifier's own preprocessing)."""
        if self.pixels is not None:
            return self.pixels(images)
        return self.processor(images=list(images), return_tensors="pt")["pixel_values"]

    def features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Pixel batch -> pooled features (float32, CPU): what the classification layer sees."""
        captured: list[torch.Tensor] = []
        hook = self.head.register_forward_hook(lambda module, args, output: captured.append(args[0]))
        try:
            with torch.inference_mode(), _autocast(self.device, self.precision):
                self.model(pixel_values=pixel_values.to(self.device))
        finally:
            hook.remove()
        return captured[0].detach().float().cpu()

    def with_new_head(self, labels: Sequence[str], weight=None, bias=None) -> torch.nn.Module:
        """The network with a classification layer for `labels` (this backbone's model is changed).

        Args:
            weight, bias: the layer's values (None: freshly initialised, for fine-tuning).
        """
        old = self.head
        new = torch.nn.Linear(old.in_features, len(labels), device=old.weight.device)
        with torch.no_grad():
            if weight is not None:
                new.weight.copy_(torch.as_tensor(weight))
                new.bias.copy_(torch.as_tensor(bias))
        parent_name, _, child = self.head_name.rpartition(".")
        setattr(self.model.get_submodule(parent_name), child, new)
        config = self.model.config
        config.id2label = dict(enumerate(labels))
        config.label2id = {label: i for i, label in enumerate(labels)}
        config.num_labels = len(labels)
        _timm_label_fields(config, labels)
        self.labels = list(labels)
        return self.model


def load_backbone(settings, base: str = EFFICIENTNET_LITE0) -> Backbone:
    """Load the base model for training: efficientnet-lite0 (offline), current, a hub id or a folder.

    Raises:
        ModelUnavailable: the base cannot be loaded or has no single classification layer to replace.
    """
    device = pick_device(settings.device)
    precision = float_precision(settings.precision, device)  # int8 serves only: features are float
    name = active_model_name(settings) if base == CURRENT else base
    if name in (EFFICIENTNET_LITE0, STARTER):  # the starter model is Lite0's ImageNet head and a gate
        name = EFFICIENTNET_LITE0
        model, processor = efficientnet_lite0()
    else:
        model, processor = _load_pretrained(name)
    model = model.to(device).eval()
    id2label = model.config.id2label
    labels = [str(id2label[i]) for i in range(len(id2label))]
    backbone = Backbone(name, model, processor, labels, _head_name(model, name), device, precision)
    backbone.fingerprint = _fingerprint(backbone)
    backbone.gate = _gate(backbone)
    return backbone


def _gate(backbone: Backbone) -> Optional[FoodGate]:
    """The base's not-food gate: its own ImageNet head (Lite0, the starter model) or the one it carries."""
    head = backbone.head
    if backbone.name == EFFICIENTNET_LITE0:
        return imagenet_food_gate(imagenet_labels(), head.weight, head.bias, backbone.head_name)
    gate = load_food_gate(backbone.name, backbone.labels) if looks_local(backbone.name) else None
    if gate is None or gate.has_head:
        return gate
    # A folder whose outputs are ImageNet's (a copy of the starter model): its head becomes the gate's.
    return imagenet_food_gate(imagenet_labels(), head.weight, head.bias, backbone.head_name)


def _load_pretrained(model_id: str):
    config, offline = read_config(
        model_id, missing=f"There is no model folder at {model_id}; give --base a model folder or hub id."
    )
    if is_zero_shot(config):
        raise ModelUnavailable(
            f"{model_id} is a zero-shot (CLIP-style) model with no classification layer to retrain; "
            f"use --base {EFFICIENTNET_LITE0} or an image-classification model."
        )
    try:
        return load_pretrained(model_id, offline)
    except (OSError, ValueError, KeyError) as err:
        raise ModelUnavailable(load_error_message(model_id, err)) from err


def _head_name(model: torch.nn.Module, base: str) -> str:
    """The classification layer: the last Linear with one output per label."""
    n_labels = model.config.num_labels
    names = [
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and module.out_features == n_labels
    ]
    if not names:
        raise ModelUnavailable(
            f"Cannot find the classification layer of {base} (a Linear layer with {n_labels} outputs), "
            f"so it cannot be retrained; use --base {EFFICIENTNET_LITE0}."
        )
    return names[-1]


def _fingerprint(backbone: Backbone) -> str:
    processor = getattr(backbone.processor, "to_dict", dict)()
    digest = hashlib.sha256(weights_fingerprint(backbone.model, backbone.labels).encode())
    digest.update(json.dumps(processor, sort_keys=True, default=str).encode())
    digest.update(backbone.precision.encode())  # bf16 features differ from fp32 ones
    return digest.hexdigest()


def _autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def _timm_label_fields(config, labels: Sequence[str]) -> None:
    """A reloaded timm model's config keeps `label_names` and `num_classes`, and saving writes them before
    id2label: left stale, a retrained model reloads with the old labels or LABEL_0.. (issue #12)."""
    if hasattr(config, "label_names"):
        config.label_names = list(labels)
    if hasattr(config, "num_classes"):
        config.num_classes = len(labels)
