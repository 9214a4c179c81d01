"""Mode `full`: fine-tune the whole network on augmented photos (made for a GPU)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from foodclf.errors import FoodclfError
from foodclf.images import load_image
from foodclf.training.data import LabelledPhoto
from foodclf.training.head import class_weights


@dataclass(frozen=True)
class FullSettings:
    """Hyper-parameters of full fine-tuning."""

    max_epochs: int = 10
    patience: int = 3  # epochs without a better validation loss before stopping
    batch_size: int = 32
    learning_rate: float = 1e-4  # small steps keep what the pretrained layers know
    weight_decay: float = 0.05
    freeze_batchnorm: bool = True  # keep the pretrained running statistics (as Keras advises for EfficientNet)
    label_smoothing: float = 0.1
    seed: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class PhotoDataset(torch.utils.data.Dataset):
    """Photos decoded on demand, augmented for training, as the backbone's processor expects them."""

    def __init__(self, photos: Sequence[LabelledPhoto], label_index: dict, backbone, augment: bool, limits: dict):
        self.photos, self.label_index, self.backbone = list(photos), label_index, backbone
        self.limits = limits
        self.augment = _augmentation(_input_size(backbone)) if augment else None

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, i: int):
        photo = self.photos[i]
        try:
            image = load_image(photo.path, **self.limits).image
        except FoodclfError:
            image = None  # dropped by _collate
        if image is not None and self.augment is not None:
            image = self.augment(image)
        pixels = self.backbone.preprocess([image])[0] if image is not None else None
        return pixels, self.label_index[photo.label]


@dataclass
class FullFit:
    """The fine-tuned network and how training went."""

    model: torch.nn.Module
    epochs: int
    history: list[dict]
    val_logits: Optional[torch.Tensor]  # of the kept epoch, in validation order


def fine_tune(
    backbone,
    labels: Sequence[str],
    train: Sequence[LabelledPhoto],
    val: Sequence[LabelledPhoto],
    *,
    settings: FullSettings = FullSettings(),
    workers: int = 0,
    limits: Optional[dict] = None,
    head=None,
    stage=None,
) -> FullFit:
    """Train every layer with a new head for `labels`; keep the epoch with the lowest validation loss.

    Args:
        head: (weight, bias) to start the new layer from, e.g. a fitted linear head (None: random).

    Photos must be readable; one that fails anyway is dropped from its batch.
    """
    torch.manual_seed(settings.seed)
    limits = limits or {}
    index = {label: i for i, label in enumerate(labels)}
    model = backbone.with_new_head(labels, *(head or (None, None)))
    device = backbone.device
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    loader = _loader(PhotoDataset(train, index, backbone, True, limits), settings, workers, shuffle=True)
    val_loader = _loader(PhotoDataset(val, index, backbone, False, limits), settings, workers, shuffle=False)
    steps = max(1, settings.max_epochs * len(loader))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps)))
    weights = class_weights(torch.tensor([index[p.label] for p in train]), len(labels)).to(device)
    best, best_loss, best_epoch, history, best_logits = None, float("inf"), 0, [], None
    for epoch in range(1, settings.max_epochs + 1):
        model.train()
        if settings.freeze_batchnorm:
            # Batch statistics of a few dozen food photos are a poor stand-in for ImageNet's; updating them
            # shifts every activation at once and undoes the fitted head (measured: see docs/training.md).
            for module in model.modules():
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    module.eval()
        total, seen = 0.0, 0
        for pixels, targets in loader:
            if pixels is None:
                continue
            with _autocast(device, backbone.precision):
                logits = model(pixel_values=pixels.to(device)).logits
            loss = F.cross_entropy(
                logits.float(), targets.to(device), weight=weights, label_smoothing=settings.label_smoothing
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total, seen = total + float(loss.detach()) * len(targets), seen + len(targets)
            if stage is not None:
                stage.update(len(targets))
        record = {"epoch": epoch, "train_loss": total / max(seen, 1)}
        val_logits, val_targets = _predict(model, val_loader, device, backbone.precision)
        if val_logits is not None:
            val_loss = float(F.cross_entropy(val_logits, val_targets))
            record.update(val_loss=val_loss, val_accuracy=float((val_logits.argmax(1) == val_targets).float().mean()))
            if val_loss < best_loss:
                best_loss, best_epoch, best_logits = val_loss, epoch, val_logits
                best = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        history.append(record)
        if val_logits is not None and epoch - best_epoch >= settings.patience:
            break
    if best is not None:
        model.load_state_dict(best)
    else:
        best_epoch = len(history)
    return FullFit(model.eval(), best_epoch, history, best_logits)


def _predict(model, loader, device, precision):
    outputs, targets = [], []
    model.eval()
    with torch.inference_mode(), _autocast(device, precision):
        for pixels, batch_targets in loader:
            if pixels is not None:
                outputs.append(model(pixel_values=pixels.to(device)).logits.float().cpu())
                targets.append(batch_targets)
    if not outputs:
        return None, None
    return torch.cat(outputs), torch.cat(targets)


def _loader(dataset, settings: FullSettings, workers: int, shuffle: bool):
    generator = torch.Generator().manual_seed(settings.seed)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=settings.batch_size,
        shuffle=shuffle,
        num_workers=workers,
        collate_fn=_collate,
        generator=generator,
    )


def _collate(batch):
    good = [(pixels, target) for pixels, target in batch if pixels is not None]
    if not good:
        return None, torch.empty(0, dtype=torch.long)
    return torch.stack([p for p, _ in good]), torch.tensor([t for _, t in good])


def _input_size(backbone) -> int:
    """The side of the square the processor makes, found by preprocessing a blank image."""
    return int(backbone.preprocess([Image.new("RGB", (64, 64))]).shape[-1])


def _augmentation(side: int):
    from torchvision.transforms import v2 as T

    # Crops then the processor's own resize/crop: the network sees food at many scales and places.
    resize = max(side, round(side / 0.875))
    return T.Compose(
        [
            T.RandomResizedCrop(resize, scale=(0.4, 1.0), interpolation=T.InterpolationMode.BICUBIC),
            T.RandomHorizontalFlip(),
            T.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2),
        ]
    )


def _autocast(device: torch.device, precision: str):
    # bf16 only: fp16 training would need loss scaling, and fp32 is the safe fallback.
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
