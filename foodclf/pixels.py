"""The model's pixels: one preprocessing for training and serving, and the side decoding must keep.

A timm model's processor (EfficientNet-Lite0, the starter model, every model `train` writes) resizes
the shorter side, crops the centre and normalises, one photo at a time through torchvision's PIL
transforms: about 3 ms a photo on this project's CPU, as much as OpenVINO's whole Lite0 forward pass.
`PixelRecipe` does the same steps in one PIL call (resize straight into the crop's box, so the pixels
outside the crop are never computed) and normalises the batch at once: 1.7 ms. Its pixels differ from
torchvision's by rounding only (on the 300 shared photos: 0.3 % of values one level of 255 apart,
0.0008 % more, at most 8 levels: clipped overshoot at edges).
The classifier takes the recipe's uint8 batch (PixelRecipe.uint8) and normalises it where the model runs
(OpenVINO in its graph, PyTorch on the model's device); training takes the float batch (PixelRecipe.__call__),
the same pixels. Other processors (ViT's torchvision backend, CLIP...) are used as they are.
Part of the training feature cache's key: change PIXELS_VERSION with the recipe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image

from foodclf.images import MODEL_SIDE

PIXELS_VERSION = "resize-into-crop-1"

# torchvision's interpolation names -> Pillow's filters (the ones timm configs use)
_RESAMPLE = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


@dataclass(frozen=True)
class PixelRecipe:
    """Resize the shorter side to `side`, crop the centre to `crop`, normalise: timm's evaluation transforms."""

    side: int
    crop: tuple[int, int]  # height, width
    resample: Image.Resampling
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __call__(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """RGB images -> a float32 pixel batch (N, 3, height, width) on the CPU, contiguous."""
        return self.normalize(self.uint8(images)).contiguous()

    def uint8(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """RGB images resized and cropped, not yet normalised: a uint8 batch (N, height, width, 3).

        What the classifier's decoding threads make and its engines take: a quarter of the float batch's bytes,
        and no float arithmetic on the cores the decoders share with the model (OpenVINO normalises inside its
        graph, PyTorch where the model runs; see normalize).
        """
        return torch.from_numpy(np.stack([np.asarray(self._resized_crop(image)) for image in images]))

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """A uint8 batch (N, height, width, 3) -> float32 (N, 3, height, width), normalised, on the batch's device.

        Channels-last in memory (the shape NCHW, the layout NHWC): what a channels-last conv net takes as it is.
        """
        scale = torch.tensor([1.0 / (255.0 * s) for s in self.std], device=batch.device).view(1, 3, 1, 1)
        shift = torch.tensor([-m / s for m, s in zip(self.mean, self.std)], device=batch.device).view(1, 3, 1, 1)
        return batch.permute(0, 3, 1, 2).float().mul_(scale).add_(shift)

    def _resized_crop(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        # torchvision's Resize(int): the shorter side becomes `side`, the longer int(side * long / short).
        if width <= height:
            new_width, new_height = self.side, int(self.side * height / width)
        else:
            new_width, new_height = int(self.side * width / height), self.side
        crop_height, crop_width = self.crop  # at most `side` (pixel_recipe), so inside the resized photo
        # torchvision's CenterCrop: offsets rounded half to even, as Python's round.
        top = int(round((new_height - crop_height) / 2.0))
        left = int(round((new_width - crop_width) / 2.0))
        sx, sy = width / new_width, height / new_height
        box = (left * sx, top * sy, (left + crop_width) * sx, (top + crop_height) * sy)
        return image.resize((crop_width, crop_height), self.resample, box=box)


def pixel_recipe(processor) -> Optional[PixelRecipe]:
    """The recipe doing what `processor` does, or None when it is not timm's plain evaluation transforms."""
    transforms = getattr(getattr(processor, "val_transforms", None), "transforms", None)
    if not transforms or [type(t).__name__ for t in transforms] not in (
        ["Resize", "CenterCrop", "MaybeToTensor", "Normalize"],
        ["Resize", "CenterCrop", "ToTensor", "Normalize"],
    ):
        return None
    resize, crop, _, normalize = transforms
    size = resize.size if isinstance(resize.size, int) else list(resize.size)
    if isinstance(size, list) and len(size) == 1:
        size = size[0]
    interpolation = getattr(resize.interpolation, "value", str(resize.interpolation))
    if not isinstance(size, int) or resize.max_size is not None or interpolation not in _RESAMPLE:
        return None  # an exact (height, width) resize or a capped one: left to the processor
    crop_size = tuple(int(v) for v in crop.size)
    crop_size = crop_size if len(crop_size) == 2 else (crop_size[0], crop_size[0])
    if max(crop_size) > size:
        return None  # a crop larger than the resized photo: torchvision pads it; left to the processor
    return PixelRecipe(
        side=size,
        crop=crop_size,
        resample=_RESAMPLE[interpolation],
        mean=tuple(float(v) for v in torch.as_tensor(normalize.mean).flatten()),
        std=tuple(float(v) for v in torch.as_tensor(normalize.std).flatten()),
    )


def decode_side(processor) -> int:
    """The shorter side this processor resizes photos to (foodclf.images.decode_image decodes a JPEG four times
    as large at a reduced scale). MODEL_SIDE for processors not known to need less."""
    recipe = pixel_recipe(processor)
    if recipe is not None:
        return recipe.side
    size = getattr(processor, "size", None)
    crop = getattr(processor, "do_center_crop", None) or getattr(processor, "crop_pct", None)
    values = {key: getattr(size, key, None) if not isinstance(size, dict) else size.get(key) for key in _SIZE_KEYS}
    if crop or values["longest_edge"] or any(values[key] for key in _LIMIT_KEYS):
        return MODEL_SIDE
    if values["height"] and values["width"]:
        return min(MODEL_SIDE, max(values["height"], values["width"]))  # a squash to (height, width)
    if values["shortest_edge"]:
        return min(MODEL_SIDE, values["shortest_edge"])
    return MODEL_SIDE


_LIMIT_KEYS = ("max_height", "max_width", "min_pixels", "max_pixels")
_SIZE_KEYS = ("height", "width", "shortest_edge", "longest_edge") + _LIMIT_KEYS
