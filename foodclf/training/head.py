"""Fitting a linear classification layer on pooled features: class-balanced, early-stopped on validation."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class HeadSettings:
    """Hyper-parameters of the linear head; the defaults were measured on food photos (docs/training.md)."""

    max_epochs: int = 300  # passes over the training features (each is cheap: a matrix product)
    patience: int = 30  # stop when validation loss has not improved for this many epochs
    learning_rate: float = 1e-3  # Adam; larger steps overshoot the best epoch on small data
    l2: float = 1e-3  # weight penalty on standardised features: keeps the head from memorising
    label_smoothing: float = 0.1
    batch_size: int = 1024  # features per step; small sets are one step per epoch
    seed: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class HeadFit:
    """A fitted head: weights for the raw pooled features, and how training went."""

    weight: torch.Tensor  # (classes, features)
    bias: torch.Tensor  # (classes,)
    epochs: int  # the epoch whose weights were kept (best validation loss, or the last)
    history: list[dict] = field(default_factory=list)  # per epoch: train_loss, val_loss, val_accuracy

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return features @ self.weight.T + self.bias


def class_weights(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """n / (classes * count): each class weighs the same in the loss however many photos it has."""
    counts = torch.bincount(labels, minlength=n_classes).float()
    weights = labels.numel() / (n_classes * counts.clamp(min=1))
    return torch.where(counts > 0, weights, torch.zeros_like(weights))


def imprinted_weights(z: torch.Tensor, y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Each class's mean feature, scaled to length 1: a nearest-mean classifier to start from.

    "Weight imprinting" (Qi et al., 2018): starting here instead of from zero measured +0.5 points of
    accuracy over 60 random splits of the food photos (docs/training.md), and gradient steps from a
    sensible classifier need fewer epochs, so early stopping has less to undo.
    """
    weight = torch.zeros(n_classes, z.shape[1])
    for c in range(n_classes):
        if (y == c).any():
            weight[c] = z[y == c].mean(0)
    return weight / weight.norm(dim=1, keepdim=True).clamp(min=1e-6)


def fit_head(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    n_classes: int,
    *,
    val_x: Optional[torch.Tensor] = None,
    val_y: Optional[torch.Tensor] = None,
    settings: HeadSettings = HeadSettings(),
    epochs: Optional[int] = None,
    stage=None,
) -> HeadFit:
    """Fit softmax regression on features; with validation data, keep the epoch of lowest validation loss.

    Args:
        train_x, train_y: features (n, d) and class indices (n,).
        epochs: run exactly this many epochs (no early stopping), e.g. to refit on all photos.
        stage: a progress Stage, advanced once per epoch.
    """
    generator = torch.Generator().manual_seed(settings.seed)
    # Standardised features make one learning rate suit any backbone; folded back into the layer at the end.
    mean = train_x.mean(0)
    std = train_x.std(0, unbiased=False)
    std = std.clamp(min=max(1e-6, 1e-3 * float(std.mean())))  # a constant feature must not blow up
    layer = torch.nn.Linear(train_x.shape[1], n_classes)
    z_train = (train_x - mean) / std
    with torch.no_grad():
        layer.weight.copy_(imprinted_weights(z_train, train_y, n_classes))
        layer.bias.zero_()
    optimiser = torch.optim.Adam(layer.parameters(), lr=settings.learning_rate)
    loss_weights = class_weights(train_y, n_classes)
    z_val = (val_x - mean) / std if val_x is not None and len(val_x) else None
    n_epochs = epochs if epochs is not None else settings.max_epochs
    best, best_loss, best_epoch, history = None, float("inf"), n_epochs, []
    for epoch in range(1, n_epochs + 1):
        layer.train()
        order = torch.randperm(len(z_train), generator=generator)
        total = 0.0
        for start in range(0, len(order), settings.batch_size):
            idx = order[start : start + settings.batch_size]
            loss = F.cross_entropy(
                layer(z_train[idx]), train_y[idx], weight=loss_weights, label_smoothing=settings.label_smoothing
            )
            loss = loss + settings.l2 * layer.weight.pow(2).sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(idx)
        record = {"epoch": epoch, "train_loss": total / len(order)}
        if z_val is not None and epochs is None:
            with torch.no_grad():
                logits = layer(z_val)
                val_loss = float(F.cross_entropy(logits, val_y, weight=class_weights(val_y, n_classes)))
                record.update(val_loss=val_loss, val_accuracy=float((logits.argmax(1) == val_y).float().mean()))
            if val_loss < best_loss - 1e-6:
                best, best_loss, best_epoch = copy.deepcopy(layer.state_dict()), val_loss, epoch
            elif epoch - best_epoch >= settings.patience:
                history.append(record)
                break
        history.append(record)
        if stage is not None:
            stage.update(1, loss=f"{record.get('val_loss', record['train_loss']):.3f}")
    if best is not None:
        layer.load_state_dict(best)
    else:
        best_epoch = len(history)
    with torch.no_grad():
        weight = layer.weight / std
        bias = layer.bias - (layer.weight * (mean / std)).sum(1)
    return HeadFit(weight.detach().clone(), bias.detach().clone(), best_epoch, history)
