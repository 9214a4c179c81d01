"""Training a new model from labelled photos: the steps shared by the CLI and the dashboard."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from db.audit import record_event
from db.engine import open_database, session_scope
from db.export_rows import ExportFilters
from db.trained_models import list_models, register_model
from foodclf.classifier import TEMPERATURE_KEY, saved_temperature
from foodclf.errors import FoodclfError
from foodclf.labels import NOT_FOOD, display_label
from foodclf.metrics import compute_metrics
from foodclf.model_registry import model_by_path
from foodclf.promotion import PromotionRefused, activate_model, compare_models, frozen_content_ids
from foodclf.settings import Settings, local_user
from foodclf.training.backbone import CURRENT, EFFICIENTNET_LITE0, STARTER, load_backbone
from foodclf.training.calibration import calibrate
from foodclf.training.data import (
    PhotoSet,
    align_labels,
    data_fingerprint,
    read_image_folder,
    read_reviews,
    stratified_split,
)
from foodclf.training.features import FeatureCache, extract_features
from foodclf.training.full import FullSettings, fine_tune
from foodclf.training.head import HeadSettings, fit_head
from foodclf.training.keep import (
    KeepSettings,
    Teacher,
    distillation,
    replay_photos,
    source_record,
    stored_photos_to_distil,
    teacher_of,
)
from foodclf.training.progress import Progress, ProgressCallback
from foodclf.training.save import save_model

log = logging.getLogger(__name__)

MODES = ("head", "full")
VAL_FRACTION = 0.2  # of each label's photos held out when no --val folder is given


@dataclass
class TrainingReport:
    """What a training run made and measured."""

    folder: Path
    name: str
    base: str
    mode: str
    labels: list[str]
    new_labels: list[str]  # labels the base model did not have
    counts: dict[str, dict[str, int]]  # "train" / "validation" -> label -> photos
    data_fingerprint: str
    validation: dict  # accuracy, top5_accuracy, macro_f1, photos, per_class... ({} without validation photos)
    hyperparameters: dict
    seconds: float
    cache_hits: int = 0  # photos whose features came from the disk cache
    computed: int = 0  # photos run through the network
    left_out: list[str] = field(default_factory=list)  # "photo: why" (duplicates, conflicts, unreadable)
    registry_id: Optional[int] = None
    kept_labels: list[str] = field(default_factory=list)  # the base model's labels kept (--base current)
    replayed: int = 0  # earlier training photos of the base model trained on again
    distilled: int = 0  # stored photos whose teacher scores were kept
    evaluation: list[str] = field(default_factory=list)  # content ids of the frozen slice, never trained on
    comparison: dict = field(default_factory=dict)  # the frozen slice: this model beside the one in use
    activated: bool = False
    refused: Optional[str] = None  # why activation was refused by the promotion gate

    def to_dict(self) -> dict:
        return {**asdict(self), "folder": str(self.folder)}

    def summary(self) -> str:
        """The report as text for a terminal."""
        lines = [f"trained {self.name} ({self.mode} on {self.base}) in {self.seconds:.0f} s: {self.folder}"]
        if self.validation:
            v = self.validation
            lines.append(
                f"  validation ({v['photos']} photos): accuracy {v['accuracy']:.1%}, "
                f"top-5 {v['top5_accuracy']:.1%}, macro F1 {v['macro_f1']:.1%}"
            )
        else:
            lines.append("  no validation photos (too few per label); measure it with `python -m foodclf evaluate`")
        train, validation = self.counts["train"], self.counts["validation"]
        lines.append(
            f"  {len(self.labels)} labels: "
            + ", ".join(
                f"{display_label(label)} ({train.get(label, 0)}+{validation.get(label, 0)})" for label in self.labels
            )
        )
        if self.new_labels:
            lines.append("  new to the base model: " + ", ".join(self.new_labels))
        lines.append(f"  features: {self.cache_hits} from the cache, {self.computed} computed")
        if self.left_out:
            lines.append(f"  {len(self.left_out)} photos left out:")
            lines += [f"    {line}" for line in self.left_out[:10]]
        if self.kept_labels:
            lines.append(
                f"  kept the base model's {len(self.kept_labels)} labels: {self.replayed} earlier training "
                f"photos replayed, its scores on {self.distilled} stored photos distilled"
            )
        if self.evaluation:
            lines.append(f"  {len(self.evaluation)} reviewed photos kept out: the frozen evaluation slice")
        if self.comparison:
            lines += ["  " + line for line in _comparison_text(self.comparison).splitlines()]
        if self.registry_id is not None:
            lines.append(
                f"  registered as model #{self.registry_id}; "
                + (
                    "now in use"
                    if self.activated
                    else f"switch to it with `python -m foodclf activate {self.registry_id}` or on the Models page"
                )
            )
        return "\n".join(lines)


def _comparison_text(comparison: dict) -> str:
    photos, verdict = comparison.get("photos", 0), comparison.get("verdict", "")
    if not photos:
        return "frozen evaluation slice: no reviewed photos in it yet, nothing to compare on"
    lines = [f"frozen evaluation slice ({photos} photos), beside the model in use: {verdict.replace('_', ' ')}"]
    lines += [f"  - {reason}" for reason in comparison.get("reasons", [])]
    for row in comparison.get("table", []):
        old = "-" if row["in use"] is None else f"{row['in use']:.1%}"
        lines.append(f"    {row['figure'][:30]:<30} {row['photos']:>5} {old:>7} -> {row['challenger']:.1%}")
    return "\n".join(lines)


def train_model(
    settings,
    source: Union[str, Path, object],
    *,
    base: str = EFFICIENTNET_LITE0,
    mode: str = "head",
    out=None,
    val=None,
    epochs: Optional[int] = None,
    seed: int = 0,
    refit: bool = True,
    register: bool = True,
    activate: bool = False,
    progress_callback: Optional[ProgressCallback] = None,
    bars: bool = False,
    keep_labels: Optional[bool] = None,
    keep: Optional[KeepSettings] = None,
    force_reason: Optional[str] = None,
) -> TrainingReport:
    """Train a model, save it as a Hugging Face folder and record it in the registry.

    Args:
        settings: model_dir, cache_dir, database_url, image_dir, device, precision, batch_size, workers.
        source: a folder laid out as `<label>/<file>`, or a db.export_rows.ExportFilters to train on
            the moderators' current decisions in the database.
        base: efficientnet-lite0 (offline), current (the model in use), or a model folder / hub id.
        mode: head (features once, a linear layer; for a CPU) or full (every layer; for a GPU).
        out: the new model's folder (default: <model_dir>/<base>-<mode>-<time>); must not exist.
        val: a labelled folder to validate on (default: a stratified 20 % of the source's photos).
        epochs: the most epochs (default: 300 for head, 10 for full).
        refit: in head mode with a held-out split, refit on all photos for the best epoch count.
        register, activate: record the model in the registry; and make it the one in use, if the promotion
            gate lets it (foodclf.promotion; see report.refused).
        progress_callback: called with (fraction done 0..1, message), e.g. for a progress bar.
        bars: draw tqdm progress bars (the CLI does).
        keep_labels: keep every label of the base model, its training photos replayed and its scores on the
            stored photos distilled (default: with base "current", unless that is Lite0's or the starter
            model's ImageNet head; see foodclf.training.keep).
        keep: how the base model's knowledge is kept (None: KeepSettings()).
        force_reason: with activate, switch even if the gate refuses; kept in the registry.

    Raises:
        FoodclfError: unusable data (fewer than 2 labels, no photos...) or an unloadable base model.
    """
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {', '.join(MODES)}, not {mode!r}")
    options = dict(
        base=base,
        mode=mode,
        out=out,
        val=val,
        epochs=epochs,
        seed=seed,
        refit=refit,
        activate=activate,
        bars=bars,
        keep_labels=keep_labels,
        keep=keep,
        force_reason=force_reason,
    )
    options["progress_callback"] = progress_callback
    if not register:  # a model kept out of the database: nothing there to record it in
        return _train_model(settings, source, register=False, **options)
    actor = local_user(settings)
    about = {"base": base, "mode": mode, "activate": activate, "source": _source_record(source)}
    _audit(settings, actor, "training_started", **about)
    try:
        report = _train_model(settings, source, register=True, **options)
    except BaseException as err:  # recorded, then raised as it was (an interrupt too)
        _audit(settings, actor, "training_failed", **about, error=type(err).__name__)
        raise
    _audit(
        settings,
        actor,
        "training_finished",
        **about,
        model=report.name,
        model_id=report.registry_id,
        accuracy=report.validation.get("accuracy"),
        seconds=round(report.seconds, 1),
    )
    return report


def _audit(settings, actor: str, action: str, /, **detail) -> None:
    with session_scope(open_database(settings)) as session:
        record_event(session, actor, action, **detail)


def _source_record(source) -> dict:
    return {"filters": source.to_dict()} if _is_filters(source) else {"folder": str(source)}


def _train_model(
    settings,
    source,
    *,
    base: str,
    mode: str,
    out,
    val,
    epochs: Optional[int],
    seed: int,
    refit: bool,
    register: bool,
    activate: bool,
    progress_callback: Optional[ProgressCallback],
    bars: bool,
    keep_labels: Optional[bool],
    keep: Optional[KeepSettings],
    force_reason: Optional[str],
) -> TrainingReport:
    started = time.perf_counter()
    created = datetime.now(timezone.utc)
    progress = Progress(progress_callback, bars)
    progress.note(0.0, "Reading the photos")
    filters = source if _is_filters(source) else None
    photo_set = read_reviews(settings, source) if filters is not None else read_image_folder(source)
    val_set = read_image_folder(val) if val is not None else None
    progress.note(0.03, f"Loading the base model {base}")
    backbone = load_backbone(settings, base)
    folder = (
        Path(out).expanduser()
        if out
        else Path(settings.model_dir).expanduser() / _default_name(backbone.name, mode, created)
    )
    _check_destination(settings, folder, register)
    base_labels = list(backbone.labels)  # before the new head replaces them
    align_labels([s for s in (photo_set, val_set) if s is not None], backbone.labels)
    keep = keep or KeepSettings()
    if keep_labels is None:
        keep_labels = base == CURRENT and backbone.name not in (EFFICIENTNET_LITE0, STARTER)
    base_row = model_by_path(settings, backbone.name) if keep_labels else None
    keeping = _keeping(settings, backbone, photo_set, base_row, keep) if keep_labels else None
    if val_set is not None:
        train, held_out = photo_set.photos, _without(val_set, photo_set.photos)
    else:
        train, held_out = stratified_split(photo_set.photos, VAL_FRACTION, seed)
    labels = _check_labels(train, held_out, photo_set, keep=base_labels if keep_labels else ())
    left_out = photo_set.left_out + (val_set.left_out if val_set else [])
    limits = dict(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_pixels)
    progress.note(0.05, "Base model loaded")

    if mode == "head":
        fit = _train_head(
            settings,
            backbone,
            labels,
            train,
            held_out,
            progress,
            limits,
            epochs,
            seed,
            refit=refit and val_set is None,
            keeping=keeping,
        )
    else:
        fit = _train_full(settings, backbone, labels, train, held_out, progress, limits, epochs, seed, keeping)
    left_out += fit["unreadable"]
    train, held_out = fit["train"], fit["validation"]

    new_labels = [label for label in labels if label not in set(base_labels)]
    counts = {"train": _counts(train), "validation": _counts(held_out)}
    record = {
        "name": folder.name,
        "created_at": created.isoformat(timespec="seconds"),
        "created_by": local_user(settings),
        "base_model": backbone.name,
        "base_is_hub_id": base not in (EFFICIENTNET_LITE0, STARTER, CURRENT) and not Path(base).expanduser().exists(),
        "license": "apache-2.0" if backbone.name == EFFICIENTNET_LITE0 else None,
        "mode": mode,
        "labels": labels,
        "new_labels": new_labels,
        "counts": counts,
        "data": {
            "source": photo_set.source,
            "validation_source": val_set.source if val_set else "stratified split",
            "photos": len(train) + len(held_out),
            "trained_on": fit["trained_on"],
            "fingerprint": data_fingerprint(train + held_out),
            "left_out": left_out,
        },
        "hyperparameters": fit["hyperparameters"],
        "validation": fit["validation_metrics"],
        "validation_note": fit["note"],
        "history": fit["history"],
        "feature_cache": {"hits": fit.get("cache_hits", 0), "computed": fit.get("computed", 0)},
        "food_gate": fit.get("food_gate"),
        "training_source": source_record(
            photo_set, filters, base_row.training_source if keeping is not None and base_row is not None else None
        ),
        "frozen_evaluation_photos": len(photo_set.evaluation),
    }
    if keeping is not None:
        record["kept"] = {
            "labels": base_labels,
            "replayed": keeping.replayed,
            "distilled": fit.get("distilled", 0),
            "taken_as_old": fit.get("taken_as_old", 0),
            "settings": keep.to_dict(),
        }
    if fit.get("val_logits") is not None and len(fit["val_targets"]):
        # Scores that mean probabilities: the temperature fitted on the validation photos travels in
        # config.json, and foodclf.classifier divides the logits by it (the refitted head keeps it).
        calibration = calibrate(fit["val_logits"], fit["val_targets"])
        setattr(fit["model"].config, TEMPERATURE_KEY, calibration.temperature)
        record["calibration"] = calibration.to_dict()
    else:
        setattr(fit["model"].config, TEMPERATURE_KEY, 1.0)  # not the base model's: this head is new
        record["calibration"] = {}
    # Full mode changes the features the gate's ImageNet head reads: kept, it called 7 of test/'s 25 pizzas
    # "not food" (bench/README.md, third round). A fine-tuned model learns "not_food" as a label instead.
    gate = backbone.gate.for_labels(labels) if backbone.gate is not None and mode == "head" else None
    progress.note(0.92, f"Saving the model to {folder}")
    save_model(fit["model"], backbone.processor, folder, record, gate)
    seconds = time.perf_counter() - started
    report = TrainingReport(
        folder=folder,
        name=folder.name,
        base=backbone.name,
        mode=mode,
        labels=labels,
        new_labels=new_labels,
        counts=counts,
        data_fingerprint=record["data"]["fingerprint"],
        validation=fit["validation_metrics"],
        hyperparameters=fit["hyperparameters"],
        seconds=seconds,
        cache_hits=fit.get("cache_hits", 0),
        computed=fit.get("computed", 0),
        left_out=left_out,
        kept_labels=base_labels if keeping is not None else [],
        replayed=keeping.replayed if keeping is not None else 0,
        distilled=fit.get("distilled", 0),
        evaluation=[p.content_id for p in photo_set.evaluation],
    )
    if register:
        progress.note(0.95, "Measuring it on the frozen evaluation photos beside the model in use")
        comparison = compare_models(settings, str(folder))
        report.comparison = comparison.to_dict()
        progress.note(0.98, "Recording the model in the registry")
        report.registry_id = _register(settings, report, record)
        if activate:
            try:
                activate_model(
                    settings,
                    report.registry_id,
                    force_reason=force_reason,
                    by=record["created_by"],
                    comparison=comparison,
                )
                report.activated = True
            except PromotionRefused as err:
                report.refused = str(err)
    progress.note(1.0, f"Trained {folder.name} in {seconds:.0f} s")
    return report


@dataclass
class _Keeping:
    """What a retrain keeps of its base model: the teacher, the stored photos it scores, the replayed photos."""

    teacher: Teacher
    distil: list
    settings: KeepSettings
    replayed: int


def _keeping(settings, backbone, photo_set: PhotoSet, base_row, keep: KeepSettings) -> _Keeping:
    """Replay the base model's own training photos into photo_set, and choose the photos to distil on."""
    evaluation = {p.content_id for p in photo_set.evaluation} | frozen_content_ids(settings)
    replay = replay_photos(
        settings, base_row.training_source if base_row is not None else None, backbone.labels, exclude=evaluation
    )
    taken = {p.content_id for p in photo_set.photos} | evaluation
    extra = [p for p in replay.photos if p.content_id not in taken]  # a moderator's current decision wins
    photo_set.photos += extra
    photo_set.left_out += replay.left_out
    distil = stored_photos_to_distil(settings, keep.distill_photos, exclude=evaluation) if keep.distill_photos else []
    return _Keeping(teacher_of(backbone, saved_temperature(backbone.model)), distil, keep, len(extra))


def _fit_head(
    settings, backbone, labels, train, held_out, progress, limits, epochs, seed, refit, share, keeping=None
) -> dict:
    """Features (cached), then the linear head: the whole of mode head, and mode full's starting point."""
    cache = FeatureCache(settings.cache_dir, backbone.fingerprint)
    photos = train + held_out
    distil = keeping.distil if keeping is not None else []
    with progress.stage(share * 0.85, len(photos) + len(distil), "Extracting features") as stage:
        features = extract_features(
            backbone, photos, cache, batch_size=settings.batch_size, workers=settings.workers, stage=stage, **limits
        )
        distil_features = (
            extract_features(
                backbone,
                distil,
                cache,
                batch_size=settings.batch_size,
                workers=settings.workers,
                stage=stage,
                **limits,
            )
            if distil
            else None
        )
    readable = {p.content_id for p in features.photos}
    row = {p.content_id: i for i, p in enumerate(features.photos)}
    train = [p for p in train if p.content_id in readable]
    held_out = [p for p in held_out if p.content_id in readable]
    _check_labels(train, held_out, None, keep=keeping.teacher.labels if keeping is not None else ())
    index = {label: i for i, label in enumerate(labels)}

    def tensors(photos):
        x = features.vectors[[row[p.content_id] for p in photos]] if photos else torch.empty(0, backbone.feature_dim)
        return x, torch.tensor([index[p.label] for p in photos], dtype=torch.long)

    train_x, train_y = tensors(train)
    val_x, val_y = tensors(held_out)
    distill, teacher_weight = None, None
    if keeping is not None:
        labelled = {p.content_id for p in photos}
        # The teacher never saw the new labels: its scores on a photo labelled with one say nothing worth
        # keeping, and pulling the old labels up on it cost the new dish 13 points (bench/learning_loop.py).
        new = {p.content_id for p in photos if p.label not in set(keeping.teacher.labels)}
        distil_photos = distil_features.photos if distil_features is not None else []
        chosen = [i for i, p in enumerate(distil_photos) if p.content_id not in new]
        distil_x = distil_features.vectors[chosen] if chosen else torch.empty(0, backbone.feature_dim)
        mask = torch.tensor([distil_photos[i].content_id in labelled for i in chosen], dtype=torch.bool)
        distill = distillation(keeping.teacher, distil_x, labels, train_x, train_y, mask, keeping.settings)
        teacher_weight = keeping.teacher.weight
    head_settings = HeadSettings(seed=seed, **({"max_epochs": epochs} if epochs else {}))
    with progress.stage(share * 0.15, head_settings.max_epochs, "Fitting the head", unit="epoch") as stage:
        fit = fit_head(
            train_x,
            train_y,
            len(labels),
            val_x=val_x if len(held_out) else None,
            val_y=val_y if len(held_out) else None,
            settings=head_settings,
            stage=stage,
            distill=distill,
            teacher_weight=teacher_weight,
        )
    val_logits = fit.logits(val_x) if held_out else None
    metrics = _metrics(val_logits, held_out, labels) if held_out else {}
    gate = _gate_record(backbone.gate, fit.logits(val_x), val_x, held_out, labels)
    note = "Validation: the held-out photos, scored by the head fitted without them."
    refit = refit and bool(held_out)
    if refit:
        # The held-out photos measured the head and chose its epoch count; now they teach it too.
        fit = fit_head(
            torch.cat([train_x, val_x]),
            torch.cat([train_y, val_y]),
            len(labels),
            settings=head_settings,
            epochs=fit.epochs,
            distill=distill,
            teacher_weight=teacher_weight,
        )
        note = (
            "Validation: the held-out photos, scored by the head fitted without them; the saved head was "
            f"then refitted on all {len(train) + len(held_out)} photos for the same {fit.epochs} epochs."
        )
    return {
        "fit": fit,
        "train": train,
        "validation": held_out,
        "unreadable": features.unreadable,
        "validation_metrics": metrics,
        "history": fit.history,
        "note": note,
        "hyperparameters": {
            **head_settings.to_dict(),
            "best_epochs": fit.epochs,
            "refit": refit,
            "precision": backbone.precision,
            "feature_dim": backbone.feature_dim,
        },
        "cache_hits": len(photos) - features.computed - len(features.unreadable),
        "computed": features.computed,
        "trained_on": len(train) + (len(held_out) if refit else 0),
        "food_gate": gate,
        "val_logits": val_logits,
        "val_targets": val_y,
        "distilled": len(distill.x) if distill is not None else 0,
        "taken_as_old": int(distill.old_only.sum()) if distill is not None else 0,
    }


def _gate_record(gate, logits: torch.Tensor, features: torch.Tensor, held_out, labels) -> Optional[dict]:
    """The not-food gate's figures on the held-out photos: accuracy with it, and how many it calls not food."""
    if gate is None:
        return None
    record = {"imagenet_food_classes": len(gate.food), "validation_accuracy": None}
    if held_out:
        gate = gate.for_labels(labels)
        scores = gate.probabilities(torch.cat([logits, gate.imagenet_logits(features)], dim=-1))
        predicted = [gate.labels[i] for i in scores.argmax(dim=-1).tolist()]
        record.update(
            validation_accuracy=sum(p == photo.label for p, photo in zip(predicted, held_out)) / len(held_out),
            validation_not_food=sum(p == NOT_FOOD and photo.label != NOT_FOOD for p, photo in zip(predicted, held_out)),
            validation_photos=len(held_out),
        )
    return record


def _train_head(
    settings, backbone, labels, train, held_out, progress, limits, epochs, seed, refit, keeping=None
) -> dict:
    result = _fit_head(
        settings, backbone, labels, train, held_out, progress, limits, epochs, seed, refit, 0.85, keeping
    )
    result["model"] = backbone.with_new_head(labels, result["fit"].weight, result["fit"].bias)
    return result


def _train_full(settings, backbone, labels, train, held_out, progress, limits, epochs, seed, keeping=None) -> dict:
    # Linear probe first, then every layer ("LP-FT", Kumar et al. 2022): a fitted head does not send
    # large random gradients into the pretrained layers during the first epochs. When keeping the base
    # model's labels, the probe is distilled from it and the replayed photos are among `train`; the
    # fine-tuning itself learns from the labelled photos only.
    head = _fit_head(settings, backbone, labels, train, held_out, progress, limits, None, seed, False, 0.2, keeping)
    train, held_out = head["train"], head["validation"]  # the readable ones
    full_settings = FullSettings(seed=seed, **({"max_epochs": epochs} if epochs else {}))
    workers = settings.workers if backbone.device.type == "cuda" else 0  # on a CPU the model needs both cores
    with progress.stage(0.65, full_settings.max_epochs * len(train), "Fine-tuning") as stage:
        fit = fine_tune(
            backbone,
            labels,
            train,
            held_out,
            settings=full_settings,
            workers=workers,
            limits=limits,
            head=(head["fit"].weight, head["fit"].bias),
            stage=stage,
        )
    metrics = _metrics(fit.val_logits, held_out, labels) if fit.val_logits is not None else {}
    return {
        "model": fit.model,
        "train": train,
        "validation": held_out,
        "unreadable": head["unreadable"],
        "val_logits": fit.val_logits,
        "val_targets": torch.tensor([labels.index(p.label) for p in held_out]),
        "distilled": head["distilled"],
        "taken_as_old": head["taken_as_old"],
        "validation_metrics": metrics,
        "history": fit.history,
        "note": f"Validation: the held-out photos, scored at the kept epoch ({fit.epochs}).",
        "hyperparameters": {
            **full_settings.to_dict(),
            "best_epochs": fit.epochs,
            "precision": backbone.precision,
            "head": head["hyperparameters"],
            "head_validation": head["validation_metrics"],
        },
        "cache_hits": head["cache_hits"],
        "computed": head["computed"],
        "trained_on": len(train),
        # No gate is kept in full mode (see train_model): fine-tuning moves the features its ImageNet head reads.
        "food_gate": None,
    }


def _metrics(logits: torch.Tensor, photos, labels) -> dict:
    scores = logits.float().softmax(-1).numpy()
    metrics = compute_metrics([p.label for p in photos], scores, labels, top_k=5)
    return {
        **metrics.headline(),
        "per_class": metrics.per_class,
        "loss": float(
            torch.nn.functional.cross_entropy(logits.float(), torch.tensor([labels.index(p.label) for p in photos]))
        ),
    }


def _check_labels(train, held_out, photo_set: Optional[PhotoSet], keep=()) -> list[str]:
    """The new model's labels (sorted): the photos' and the kept ones; refuses data it cannot learn from."""
    labels = sorted({p.label for p in train} | set(keep))
    if len(labels) < 2 or not train:
        where = f" in {photo_set.source}" if photo_set else ""
        raise FoodclfError(
            f"Training needs photos of at least 2 labels{where}; found "
            + (", ".join(labels) if labels else "none")
            + ". Add photos, or loosen the filters."
        )
    unknown = sorted({p.label for p in held_out} - set(labels))
    if unknown:
        raise FoodclfError(
            "The validation photos have labels with no training photos: "
            + ", ".join(unknown)
            + ". Add training photos of them, or leave them out of the validation folder."
        )
    return labels


def _without(val_set: PhotoSet, train) -> list:
    """Validation photos that are not also training photos (a copy in both would flatter the figures)."""
    seen = {p.content_id for p in train}
    val_set.left_out += [
        f"{p.name}: also a training photo, so not used to validate" for p in val_set.photos if p.content_id in seen
    ]
    return [p for p in val_set.photos if p.content_id not in seen]


def _check_destination(settings, folder: Path, register: bool) -> None:
    """Refuse a taken folder or registry name before training, not after."""
    if folder.exists():
        raise FoodclfError(f"{folder} exists already; choose a new folder with --out.")
    if register:
        with session_scope(open_database(settings)) as session:
            if any(model.name == folder.name for model in list_models(session)):
                raise FoodclfError(f"A model named {folder.name!r} is already registered; choose another --out.")


def _counts(photos) -> dict[str, int]:
    labels, n = np.unique([p.label for p in photos], return_counts=True) if photos else ([], [])
    return {str(label): int(count) for label, count in zip(labels, n)}


def _is_filters(source) -> bool:
    return not isinstance(source, (str, Path))


def _default_name(base: str, mode: str, when: datetime) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", Path(base).name.lower()).strip("-") or "model"
    return f"{slug}-{mode}-{when:%Y%m%d-%H%M%S}"


def _register(settings, report: TrainingReport, record: dict) -> int:
    metrics = {
        "validation": {k: v for k, v in report.validation.items() if k != "per_class"},
        "mode": report.mode,
        "data_fingerprint": report.data_fingerprint,
        "new_labels": report.new_labels,
        "seconds": round(report.seconds, 1),
        "calibration": record["calibration"],
        "frozen_evaluation": {k: v for k, v in report.comparison.items() if k not in ("challenger", "champion")}
        | _headline(report.comparison),
    }
    with session_scope(open_database(settings)) as session:
        row = register_model(
            session,
            name=report.name,
            path=str(report.folder.resolve()),
            base_model=report.base,
            labels=report.labels,
            metrics=metrics,
            train_size=record["data"]["trained_on"],
            created_by=record["created_by"],
            training_source=record["training_source"],
        )
        return row.id


def _headline(comparison: dict) -> dict:
    """Accuracy and macro F1 of both models on the frozen slice, flat, for the registry's table."""
    out = {}
    for side in ("challenger", "champion"):
        figures = comparison.get(side) or {}
        out.update({f"{side}_{key}": figures.get(key) for key in ("accuracy", "macro_f1", "model")})
    return out


# Bases a dashboard user can train from: (value for train_model, what people read).
TRAINING_BASES = {
    "current": "The model in use now (keeps its labels, learns the new ones)",
    "efficientnet-lite0": "EfficientNet-Lite0 (ImageNet weights, offline; fast on a CPU)",
}


def train_from_reviews(
    settings: Settings, filters: ExportFilters, *, base: str, mode: str = "head", activate: bool = False, progress=None
) -> dict:
    """Train a model on the moderators' current decisions and register it; a summary of plain values.

    Args:
        settings: the dashboard's settings, with `reviewer` set to who started the run.
        filters: the decisions to learn from.
        base, mode: see train_model.
        progress: called with (fraction done, message).

    Raises:
        FoodclfError: too few labels or photos, or a base that cannot be loaded.
    """
    report = train_model(settings, filters, base=base, mode=mode, activate=activate, progress_callback=progress)
    return {
        "registry_id": report.registry_id,
        "name": report.name,
        "labels": len(report.labels),
        "new_labels": list(report.new_labels),
        "photos": sum(report.counts["train"].values()) + sum(report.counts["validation"].values()),
        "seconds": round(report.seconds, 1),
        "validation": {k: v for k, v in report.validation.items() if k != "per_class"},
        "left_out": len(report.left_out),
        "activated": report.activated,
        "refused": report.refused,
        "comparison": {k: v for k, v in report.comparison.items() if k in ("photos", "verdict", "reasons", "table")},
    }
