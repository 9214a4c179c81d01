"""Tiny randomly initialised models, built by the tests themselves: nothing downloads."""

from __future__ import annotations

from pathlib import Path

import torch

from foodclf.labels import FOOD101_LABELS


def build_tiny_vit(folder: Path, labels=FOOD101_LABELS, seed: int = 0) -> Path:
    """A 2-layer ViT on 32px images with the given labels, saved as a hub-style folder."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(seed)
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        num_channels=3,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    model = ViTForImageClassification(config).eval()
    model.save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def build_tiny_clip(folder: Path, seed: int = 0) -> Path:
    """A tiny CLIP with a byte-level vocabulary, so any category name tokenises."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    torch.manual_seed(seed)
    chars = sorted(ByteLevel.alphabet())
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(tokens)}
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": 77,
            "projection_dim": 16,
            "bos_token_id": vocab["<|startoftext|>"],
            "eos_token_id": vocab["<|endoftext|>"],
            "pad_token_id": vocab["<|endoftext|>"],
        },
        vision_config={
            "image_size": 32,
            "patch_size": 8,
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "projection_dim": 16,
        },
        projection_dim=16,
    )
    CLIPModel(config).eval().save_pretrained(folder)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def build_tiny_timm(folder: Path, labels=("pizza", "steak"), seed: int = 0) -> Path:
    """A tiny timm network in transformers' TimmWrapper, saved as Lite0 models are.

    timm's test_convnext: its test_efficientnet gives the same features for every photo at initialisation.
    """
    from transformers import TimmWrapperConfig, TimmWrapperForImageClassification

    torch.manual_seed(seed)
    pretrained_cfg = {
        "input_size": [3, 32, 32],
        "interpolation": "bilinear",
        "crop_pct": 1.0,
        "crop_mode": "center",
        "mean": [0.5, 0.5, 0.5],
        "std": [0.5, 0.5, 0.5],
    }
    config = TimmWrapperConfig(
        architecture="test_convnext", id2label=dict(enumerate(labels)), pretrained_cfg=pretrained_cfg
    )
    model = TimmWrapperForImageClassification(config).eval()
    model.save_pretrained(folder)  # the processor's settings travel in config.json (pretrained_cfg)
    return folder
