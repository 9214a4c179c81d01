"""Writing a trained model: a Hugging Face folder, its model card (README.md) and training.json."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Optional

import torch
from PIL import Image

from foodclf.classifier import quiet_transformers
from foodclf.errors import FoodclfError
from foodclf.food_gate import FoodGate, load_food_gate
from foodclf.labels import NOT_FOOD, display_label

CARD_NAME = "README.md"
RECORD_NAME = "training.json"


def save_model(model: torch.nn.Module, processor, folder, record: dict, gate: Optional[FoodGate] = None) -> Path:
    """Write the model folder in one step: built beside `folder`, checked by reloading, then renamed.

    Args:
        record: what training.json holds (see foodclf.training.train); the model card is made from it.
        gate: the not-food gate to keep beside the model (foodclf.food_gate), or None.

    Raises:
        FoodclfError: the folder exists already, or the saved model does not reload to the same outputs.
    """
    quiet_transformers()
    folder = Path(folder).expanduser()
    if folder.exists():
        raise FoodclfError(f"{folder} exists already; choose a new folder with --out.")
    folder.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        model.save_pretrained(temp)
        # A timm model keeps its preprocessing in config.json (pretrained_cfg); its processor saves nothing.
        if not hasattr(model.config, "pretrained_cfg"):
            processor.save_pretrained(temp)
        if gate is not None:
            gate.save(temp)
        (temp / RECORD_NAME).write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
        (temp / CARD_NAME).write_text(model_card(record), encoding="utf-8")
        check_reload(temp, model, processor, gate)
        # mkdtemp makes a private folder; the dashboard may run as another user and must read it.
        for path in [temp, *temp.iterdir()]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        temp.rename(folder)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return folder


def check_reload(folder: Path, model: torch.nn.Module, processor, gate: Optional[FoodGate] = None) -> None:
    """Load the folder as any user would (offline) and check it gives the same pixels, logits and gate."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    reloaded = AutoModelForImageClassification.from_pretrained(folder, local_files_only=True).eval()
    reloaded_processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
    probe = Image.new("RGB", (80, 60), (180, 120, 60))
    pixels = processor(images=[probe], return_tensors="pt")["pixel_values"]
    again = reloaded_processor(images=[probe], return_tensors="pt")["pixel_values"]
    device = next(model.parameters()).device
    with torch.inference_mode():
        expected = model.eval()(pixel_values=pixels.to(device)).logits.float().cpu()
        got = reloaded(pixel_values=again).logits.float()
    if pixels.shape != again.shape or not torch.allclose(expected, got, atol=1e-3, rtol=1e-3):
        raise FoodclfError(
            f"The model saved in {folder} does not reproduce the trained model's outputs, so it was not kept; "
            "please report this with the base model's name."
        )
    if [reloaded.config.id2label[i] for i in range(reloaded.config.num_labels)] != list(
        model.config.id2label[i] for i in range(model.config.num_labels)
    ):
        raise FoodclfError(f"The model saved in {folder} lost its labels, so it was not kept; please report this.")
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    reloaded_gate = load_food_gate(folder, labels)
    if (gate is None) != (reloaded_gate is None) or (
        gate is not None and reloaded_gate.fingerprint() != gate.for_labels(labels).fingerprint()
    ):
        raise FoodclfError(
            f"The not-food gate saved in {folder} does not reload as trained, so the model was not "
            "kept; please report this."
        )


def _gate_section(gate: Optional[dict]) -> list[str]:
    if not gate:
        return []
    lines = [
        "## Not-food gate",
        "",
        "The base model's ImageNet head is kept beside the new one (`food_gate.json`, `food_gate.safetensors`): "
        f"its {gate['imagenet_food_classes']} food classes against the other "
        f"{1000 - gate['imagenet_food_classes']} give the probability that a photo is not food, shown as "
        f"`{NOT_FOOD}`; the labels above share the rest. foodclf applies it; loaded with transformers alone, "
        "the model has no gate.",
    ]
    if gate.get("validation_accuracy") is not None:
        lines += [
            "",
            f"On the validation photos: accuracy {gate['validation_accuracy']:.1%} with the gate "
            f"({gate['validation_not_food']} of {gate['validation_photos']} called not food).",
        ]
    return lines + [""]


def model_card(record: dict) -> str:
    """README.md for the model folder: what it is, what it was trained on, how well it did."""
    validation = record.get("validation") or {}
    counts = record["counts"]
    base = record["base_model"]
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: image-classification",
        "tags: [foodclf, image-classification, food]",
    ]
    if record.get("license"):
        lines.append(f"license: {record['license']}")
    if record.get("base_is_hub_id"):
        lines.append(f"base_model: {base}")
    lines += [
        "---",
        "",
        f"# {record['name']}",
        "",
        f"A food photo classifier trained by `python -m foodclf train` on {record['created_at']} "
        f"by {record['created_by']}, from **{base}** in mode `{record['mode']}`.",
        "",
        f"- Labels: {len(record['labels'])}; new to the base model: " + (", ".join(record["new_labels"]) or "none"),
        f"- Data: {record['data']['source']}: {record['data']['photos']} photos "
        f"({sum(counts['train'].values())} to train, {sum(counts['validation'].values())} to validate); "
        f"fingerprint `{record['data']['fingerprint'][:16]}`",
        f"- {record['validation_note']}",
        "",
        "## Validation",
        "",
    ]
    if validation:
        k = next((key for key in validation if key.startswith("top") and key.endswith("_accuracy")), None)
        lines += [
            "| accuracy | " + (f"{k.split('_')[0]} accuracy | " if k else "") + "macro F1 | photos |",
            "|---|" + ("---|" if k else "") + "---|---|",
            f"| {validation['accuracy']:.1%} | "
            + (f"{validation[k]:.1%} | " if k else "")
            + f"{validation['macro_f1']:.1%} | {validation['photos']} |",
        ]
    else:
        lines.append("No validation photos (too few photos per label); measure it with `python -m foodclf evaluate`.")
    lines += ["", "## Labels", "", "| label | train | validation |", "|---|---|---|"]
    lines += [
        f"| {display_label(label)} (`{label}`) | {counts['train'].get(label, 0)} | "
        f"{counts['validation'].get(label, 0)} |"
        for label in record["labels"]
    ]
    lines += [
        "",
        *_gate_section(record.get("food_gate")),
        "## Use",
        "",
        "```python",
        "from transformers import AutoImageProcessor, AutoModelForImageClassification",
        "",
        'model = AutoModelForImageClassification.from_pretrained("path/to/this/folder")',
        'processor = AutoImageProcessor.from_pretrained("path/to/this/folder")',
        "```",
        "",
        "or `FOODCLF_MODEL=path/to/this/folder`, or switch to it on the dashboard's Models page.",
        "",
        "## Training",
        "",
        "```json",
        json.dumps(record["hyperparameters"], indent=2),
        "```",
        "",
        "The full record (counts, data fingerprint, history) is in `training.json`.",
        "",
        "## Limitations",
        "",
        "The model knows only the labels above, and only as well as the moderators' labels it learned from; "
        + (
            "a photo of something else gets one of them unless the not-food gate calls it not food. "
            if record.get("food_gate")
            else "a photo of anything else gets one of these labels. "
        )
        + "Validation photos come from the same source as "
        "the training photos, so accuracy on new kinds of photos may be lower: measure it with "
        "`python -m foodclf evaluate --model <folder> --data <labelled folder>`.",
        "",
    ]
    return "\n".join(lines)
