"""Fitting a linear classification layer on pooled features: class-balanced, early-stopped on validation."""

from __future__ import annotations

import contextlib
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


@dataclass
class Distillation:
    """A teacher's scores to keep while fitting: knowledge distillation (Hinton et al., 2015) as in
    "Learning without Forgetting" (Li and Hoiem, 2016), on photos with or without a label.

    Each photo's new-head scores over the teacher's labels are pulled towards the teacher's, softened by
    `temperature`. For a photo taken to show one of the teacher's own labels (`old_only`), the softmax runs
    over every label, so the new labels learn to stay low on it; for the others, only over the teacher's
    labels, so the teacher (which never saw the new dishes) says nothing about them.
    """

    x: torch.Tensor  # (m, d) raw pooled features
    targets: torch.Tensor  # (m, k) teacher probabilities at `temperature`, columns in the teacher's order
    old_index: torch.Tensor  # (k,) the column of each teacher label in the new head
    old_only: torch.Tensor  # (m,) bool
    weight: float = 1.0
    temperature: float = 2.0

    def loss(self, logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The distillation loss of new-head logits (for the photos `rows`), scaled by T^2 as Hinton et al."""
        scaled = logits / self.temperature
        restricted = F.log_softmax(scaled[:, self.old_index], dim=1)
        full = F.log_softmax(scaled, dim=1)[:, self.old_index]
        log_p = torch.where(self.old_only[rows, None], full, restricted)
        return -(self.targets[rows] * log_p).sum(1).mean() * self.temperature**2 * self.weight


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
    distill: Optional[Distillation] = None,
    teacher_weight: Optional[torch.Tensor] = None,
) -> HeadFit:
    """Fit softmax regression on features; with validation data, keep the epoch of lowest validation loss.

    Args:
        train_x, train_y: features (n, d) and class indices (n,).
        epochs: run exactly this many epochs (no early stopping), e.g. to refit on all photos.
        stage: a progress Stage, advanced once per epoch.
        distill: a teacher's scores to keep (a retrain that keeps the current model's labels).
        teacher_weight: (k, d) the teacher's layer, rows in distill.old_index order: where a label with no
            training photo starts from.
    """
    with _few_threads(train_x.numel() + (distill.x.numel() if distill is not None else 0)):
        return _fit_head(train_x, train_y, n_classes, val_x, val_y, settings, epochs, stage, distill, teacher_weight)


@contextlib.contextmanager
def _few_threads(elements: int):
    """One thread for small problems: thousands of tiny steps, each slower split over threads (measured: a
    200-epoch fit on 80 photos took 11.5 s with 2 threads on a busy 2-core machine, 0.3 s with one)."""
    before = torch.get_num_threads()
    if elements < 4_000_000 and before > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _fit_head(train_x, train_y, n_classes, val_x, val_y, settings, epochs, stage, distill, teacher_weight) -> HeadFit:
    generator = torch.Generator().manual_seed(settings.seed)
    # Standardised features make one learning rate suit any backbone; folded back into the layer at the end.
    every_x = train_x if distill is None else torch.cat([train_x, distill.x])
    mean = every_x.mean(0)
    std = every_x.std(0, unbiased=False)
    std = std.clamp(min=max(1e-6, 1e-3 * float(std.mean())))  # a constant feature must not blow up
    layer = torch.nn.Linear(train_x.shape[1], n_classes)
    z_train = (train_x - mean) / std
    z_distill = (distill.x - mean) / std if distill is not None else None
    with torch.no_grad():
        weight = imprinted_weights(z_train, train_y, n_classes)
        if teacher_weight is not None and distill is not None:
            # A kept label without photos starts from the teacher's own direction (in standardised units).
            missing = weight.norm(dim=1) == 0
            start = teacher_weight * std
            start = start / start.norm(dim=1, keepdim=True).clamp(min=1e-6)
            for row, column in enumerate(distill.old_index.tolist()):
                if missing[column]:
                    weight[column] = start[row]
        layer.weight.copy_(weight)
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
            if z_distill is not None and len(z_distill):
                rows = (
                    torch.randperm(len(z_distill), generator=generator)[: settings.batch_size]
                    if len(z_distill) > settings.batch_size
                    else torch.arange(len(z_distill))
                )
                loss = loss + distill.loss(layer(z_distill[rows]), rows)
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
