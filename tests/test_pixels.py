"""The model's pixels: the fast recipe gives the processor's pixels, and photos are decoded at the model's scale."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter
from transformers import AutoImageProcessor

from foodclf.classifier import forget_classifiers, load_classifier
from foodclf.images import MODEL_SIDE, decode_image, find_images
from foodclf.pixels import decode_side, pixel_recipe
from foodclf.starter_model import efficientnet_lite0
from foodclf.training.backbone import load_backbone
from shared_data import FOOD_PHOTOS
from tiny_models import build_tiny_timm

# Sizes around the resize and crop (224 / 256): square, both orientations, odd, smaller than the crop.
SIZES = [(512, 512), (512, 384), (383, 511), (300, 200), (200, 300), (256, 256), (224, 224), (100, 80), (1000, 257)]


def blurred_noise(size, seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(2))


def jpeg(size, fmt="JPEG") -> bytes:
    buffer = io.BytesIO()
    blurred_noise(size).save(buffer, fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def lite0_processor():
    return efficientnet_lite0()[1]


def levels(a, b) -> tuple[float, float]:
    """Largest and mean difference, in 0-255 levels (the processors normalise to [-1, 1] with std 0.5)."""
    diff = (a - b).abs() * 127.5
    return float(diff.max()), float(diff.mean())


def test_the_recipe_gives_the_lite0_processors_pixels(lite0_processor):
    recipe = pixel_recipe(lite0_processor)
    assert recipe is not None and (recipe.side, recipe.crop) == (256, (224, 224))
    for n, size in enumerate(SIZES):
        image = blurred_noise(size, seed=n)
        expected = lite0_processor(images=[image], return_tensors="pt")["pixel_values"]
        ours = recipe([image])
        assert ours.shape == expected.shape == (1, 3, 224, 224)
        largest, mean = levels(ours, expected)
        assert largest < 2.5 and mean < 0.1, (size, largest, mean)  # rounding (two levels at most), not another picture


def test_the_uint8_batch_normalised_is_the_float_batch(lite0_processor):
    recipe = pixel_recipe(lite0_processor)
    images = [blurred_noise(size, seed=n) for n, size in enumerate(SIZES[:4])]
    batch = recipe.uint8(images)
    assert batch.dtype == torch.uint8 and batch.shape == (4, 224, 224, 3)  # a quarter of the float batch's bytes
    expected = (batch.permute(0, 3, 1, 2).double() / 255 - 0.5) / 0.5  # (x / 255 - mean) / std, in float64
    assert torch.allclose(recipe.normalize(batch).double(), expected, atol=1e-6)
    assert recipe(images).is_contiguous() and recipe(images).equal(recipe.normalize(batch))


@pytest.mark.skipif(not FOOD_PHOTOS.is_dir(), reason="the shared food photos are not here")
def test_on_real_photos_the_recipe_and_the_processor_agree(lite0_processor):
    recipe = pixel_recipe(lite0_processor)
    images = [decode_image(path.read_bytes()).image for path in find_images([FOOD_PHOTOS / "test"])]
    diff = (recipe(images) - lite0_processor(images=images, return_tensors="pt")["pixel_values"]).abs() * 127.5
    # 0.3 % of values one level apart, a handful more (bicubic's overshoot clipped at a sharp edge) up to 8.
    assert float(diff.mean()) < 0.01 and float((diff > 1.5).float().mean()) < 1e-4 and float(diff.max()) <= 8.5


def test_processors_it_does_not_know_are_used_as_they_are(tiny_model_dir):
    vit = AutoImageProcessor.from_pretrained(tiny_model_dir)  # ViT: a torchvision-backend squash to 32 x 32
    assert pixel_recipe(vit) is None
    assert decode_side(vit) == 32
    assert decode_side(object()) == MODEL_SIDE  # nothing known: decoded as before, shorter side up to 512


def test_a_large_jpeg_is_decoded_at_the_models_scale_and_others_as_before():
    photo = jpeg((1024, 768))
    assert decode_image(photo, side=128).image.size == (512, 384)  # the decoder's 1/2 scale keeps >= 2 x 128
    assert decode_image(photo).image.size == (683, 512)  # no side: the shorter side at most 512, as always
    assert decode_image(photo, side=256).image.size == (683, 512)  # under 4 x 256: decoded whole, resized
    assert decode_image(jpeg((1024, 768), "PNG"), side=128).image.size == (683, 512)  # only JPEGs have scales
    loaded = decode_image(photo, side=128)
    assert (loaded.width, loaded.height) == (1024, 768)  # the photo's own size is what is recorded


def test_the_classifier_and_training_decode_and_preprocess_alike(settings, tmp_path):
    model = build_tiny_timm(tmp_path / "timm")
    forget_classifiers()
    classifier = load_classifier(settings.replace(model=str(model)))
    backbone = load_backbone(settings, base=str(model))
    assert classifier.pixels is not None and classifier.decode_side == backbone.decode_side == 32
    path = tmp_path / "big.jpg"
    path.write_bytes(jpeg((400, 300)))
    [item] = classifier.classify_many([path])
    assert item.loaded.image.size == (100, 75)  # decoded at 1/4: both sides still >= 2 x 32
    image = item.loaded.image
    batch = classifier.preprocess([image])  # the recipe's uint8 batch, normalised by the engine
    assert batch.dtype == torch.uint8 and batch.shape == (1, 32, 32, 3)
    assert classifier.float_pixels(batch).equal(backbone.preprocess([image]))
    assert classifier.float_pixels(batch).equal(classifier.pixels([image]))


def test_what_the_recipe_cannot_copy_exactly_is_left_to_the_processor():
    from types import SimpleNamespace

    from torchvision import transforms

    def timm_like(*steps):
        return SimpleNamespace(val_transforms=transforms.Compose(list(steps)))

    normalise = transforms.Normalize([0.5] * 3, [0.5] * 3)
    plain = timm_like(transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(), normalise)
    assert pixel_recipe(plain) is not None
    padded = timm_like(transforms.Resize(200), transforms.CenterCrop(224), transforms.ToTensor(), normalise)
    assert pixel_recipe(padded) is None  # torchvision pads a crop larger than the photo
    squashed = timm_like(transforms.Resize((224, 224)), transforms.CenterCrop(224), transforms.ToTensor(), normalise)
    assert pixel_recipe(squashed) is None
    assert pixel_recipe(timm_like(transforms.Resize(256), transforms.ToTensor(), normalise)) is None
    # HF processors: the side their resize keeps, unless a crop or a cap makes it unknowable here.
    assert decode_side(SimpleNamespace(size={"shortest_edge": 224})) == 224
    assert decode_side(SimpleNamespace(size={"shortest_edge": 224}, do_center_crop=True)) == MODEL_SIDE
    assert decode_side(SimpleNamespace(size={"shortest_edge": 224, "longest_edge": 1333})) == MODEL_SIDE
    assert decode_side(SimpleNamespace(size={"height": 384, "width": 600})) == 512  # never above MODEL_SIDE
