"""Inference runtimes: what runs a loaded model's forward pass (PyTorch or OpenVINO).

The classifier keeps one path (`preprocess -> _forward -> postprocess`); an engine only replaces what
`_forward` calls to turn a pixel batch into logits and pooled features. Measured on this project's 2-core
VMs (bench/README.md): on the Intel Xeon (AMX) OpenVINO's bf16 forward is 3.4x PyTorch's (channels-last)
bf16 one for EfficientNet-Lite0 (435 against 129 photos/s) and 1.5x for ViT-Base (27.7 against 18.6); on
the AMD EPYC (AVX512-BF16) about 2x and 1.6x (346-469 against 187-226, 21.3 against 13.5), at 100 % top-1
agreement with fp32 on 300 real photos with a trained Lite0. ONNX Runtime, PyTorch's int8 dynamic quantisation and
torch.compile were measured too and lost or tied on both CPUs (compile also costs 11-14 s per model in
every process), so they are not kept. `auto` picks OpenVINO on a CPU and PyTorch on a GPU (OpenVINO's CPU
plugin does not drive CUDA GPUs; no GPU was lent to measure more).
FOODCLF_PRECISION=int8 runs OpenVINO on a model NNCF quantised (quantized_model): 1.2-1.7x bf16. Not
`auto`'s choice: it needs stored photos to calibrate on, 10-50 s once per model, and a check that it keeps
the float model's answers, which only the user's own photos can make.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

from foodclf.settings import ENGINES

log = logging.getLogger(__name__)

ENGINE_NAMES = {"torch": "PyTorch", "openvino": "OpenVINO"}  # as a person reads them (sidebar, Models page)

# FOODCLF_PRECISION=int8: stored photos read for calibration (NNCF's default subset is 300; 64 gave the figures in
# bench/README.md), and the share of further ones whose top-1 the int8 model must keep.
INT8_PHOTOS = 96
INT8_MIN_PHOTOS = 32
INT8_AGREEMENT = 0.99
# How models are quantised (kept_in_float's layers, NNCF's settings): part of a kept int8 model's file name, so a
# copy or a refusal made another way is not read back as this one. Change it with the quantisation.
INT8_RECIPE = "float-pixels-gelu"

# (logits, pooled features or None): what an engine's runner gives back for a pixel batch, as float32 on the CPU.
Runner = Callable[[torch.Tensor], tuple[torch.Tensor, Optional[torch.Tensor]]]


@dataclass
class Engine:
    """The runtime a classifier's forward pass goes through, as chosen and as it turned out."""

    name: str  # torch or openvino: what runs
    runner: Optional[Runner] = None  # None: PyTorch eager (the classifier's own forward)
    prepare_seconds: float = 0.0  # conversion, quantisation and compilation, paid once per process and model
    note: str = ""  # why it is not the one asked for (a fallback), for the sidebar and logs
    int8: bool = False  # the forward pass runs OpenVINO's int8 model (FOODCLF_PRECISION=int8)


def import_openvino():
    """The openvino module, with its usage telemetry off; raises ImportError when it is not installed.

    OpenVINO's model converter sends usage data to Intel unless a consent file in the home folder says no
    (its `openvino_telemetry` package); an internal tool must not, and offline it would only wait. When that
    package cannot be imported the converter uses its own do-nothing stub, so it is made unimportable here,
    for this process only, before openvino is first imported.
    """
    if "openvino" not in sys.modules:
        sys.modules.setdefault("openvino_telemetry", None)  # None in sys.modules: `import` raises ImportError
    import openvino  # an optional runtime, imported when first used: its absence is a fallback, not an error

    return openvino


def openvino_available() -> bool:
    try:
        import_openvino()
    except ImportError:
        return False
    return True


def pick_engine(setting: str, device: torch.device, zero_shot: bool, has_openvino: bool) -> tuple[str, str]:
    """The engine to run and, when it is not the one asked for, why (a line for the log and the sidebar).

    auto: OpenVINO on a CPU where it is installed (the fastest measured there), else PyTorch.
    """
    if setting not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {setting!r}")
    if setting == "torch":
        return "torch", ""
    if zero_shot:
        note = "" if setting == "auto" else f"FOODCLF_ENGINE={setting} does not run zero-shot (CLIP) models"
        return "torch", note
    if device.type != "cpu":
        note = "" if setting == "auto" else f"FOODCLF_ENGINE=openvino runs on the CPU only, not on {device}"
        return "torch", note
    if not has_openvino:
        note = "" if setting == "auto" else "FOODCLF_ENGINE=openvino: the openvino package is not installed"
        return "torch", note
    return "openvino", ""


def prepare_engine(
    setting: str,
    model: torch.nn.Module,
    *,
    head_module: Optional[str],
    precision: str,
    device: torch.device,
    example: torch.Tensor,
    zero_shot: bool = False,
    cache_dir: Optional[str] = None,
    fingerprint: str = "",
    int8_photos: Optional[Callable[[], Sequence[torch.Tensor]]] = None,
    pixels=None,
) -> Engine:
    """Choose and build the engine for a loaded model; any failure falls back to PyTorch with a log line.

    Args:
        setting: FOODCLF_ENGINE (auto, torch or openvino).
        head_module: the classification layer whose input is the embedding (None: logits only).
        precision: fp32, bf16 or fp16, as the classifier resolved it (with int8: for the layers left in float).
        example: a batch as the classifier's preprocess makes them (conversion traces it; its size is kept).
        cache_dir: where converted OpenVINO models are kept between processes (None: not kept).
        fingerprint: the model's weights fingerprint, naming its converted copy.
        int8_photos: FOODCLF_PRECISION=int8: quantise for OpenVINO (see quantized_model), calibrating on the
            pixel batches of stored photos this returns (called only when a model is quantised, not when its
            int8 copy is read back); where that cannot be done the model runs in `precision`, and the engine's
            note says why. None: no int8.
        pixels: the classifier's PixelRecipe, when its batches are the recipe's uint8 ones (PixelRecipe.uint8):
            OpenVINO then takes those and normalises them as its graph's first operations (0.06 ms a photo,
            measured: bench/README.md); PyTorch normalises them itself (Classifier.float_pixels).
    """
    # Only where OpenVINO could be picked is it imported (0.7 s): not for `torch`, a GPU or a CLIP model.
    could_run = setting != "torch" and device.type == "cpu" and not zero_shot
    name, note = pick_engine(setting, device, zero_shot, could_run and openvino_available())
    if note:
        log.warning("%s; running on PyTorch instead.", note)
    if name == "torch":
        if int8_photos is not None:
            note = "; ".join(filter(None, [note, f"FOODCLF_PRECISION=int8 runs on OpenVINO only: running {precision}"]))
            log.warning("FOODCLF_PRECISION=int8 runs on OpenVINO only; running %s.", precision)
        return Engine("torch", note=note)
    started = time.perf_counter()
    try:
        runner, int8_note = _openvino_runner(
            model, head_module, precision, example, cache_dir, fingerprint, int8_photos, pixels
        )
    except Exception as err:  # noqa: BLE001  (a runtime's own errors vary by version: every one means "use PyTorch")
        note = f"FOODCLF_ENGINE={setting}: {name} could not run this model ({type(err).__name__}: {err})"
        log.warning("%s; running on PyTorch instead.", note)
        return Engine("torch", note=note)
    seconds = time.perf_counter() - started
    if int8_note:
        log.warning("%s; running %s.", int8_note, precision)
    log.info("prepared the %s engine in %.1f s", name, seconds)
    return Engine(name, runner, seconds, note=int8_note, int8=int8_photos is not None and not int8_note)


class LogitsAndFeatures(torch.nn.Module):
    """The model's logits and the pooled features its classification layer reads, as one module: what every
    engine runs (PyTorch calls it, OpenVINO converts it), so embeddings and the not-food gate see the same."""

    def __init__(self, model: torch.nn.Module, head_module: Optional[str]):
        super().__init__()
        self.model = model
        self.head_module = head_module

    def forward(self, pixel_values: torch.Tensor):
        if self.head_module is None:
            return (self.model(pixel_values=pixel_values).logits,)
        captured: list[torch.Tensor] = []
        head = self.model.get_submodule(self.head_module)
        hook = head.register_forward_hook(lambda module, args, output: captured.append(args[0]))
        try:
            logits = self.model(pixel_values=pixel_values).logits
        finally:
            hook.remove()
        return logits, captured[0].flatten(1)


def _openvino_runner(
    model, head_module, precision: str, example, cache_dir, fingerprint: str, int8_photos, pixels
) -> tuple[Runner, str]:
    """OpenVINO's runner for the model, and why it is not int8 when int8 was asked for (int8_photos not None)."""
    ov = import_openvino()
    core = ov.Core()
    module = LogitsAndFeatures(model, head_module).eval()
    float_example = pixels.normalize(example).contiguous() if pixels is not None else example
    path = _cache_path(ov, cache_dir, fingerprint, float_example)
    converted = _converted_model(ov, core, module, float_example, path)  # kept with float input, as traced
    if pixels is not None:
        converted = _uint8_input(ov, converted, pixels)
    # bf16 runs on the CPU's AMX / AVX512-BF16 units; f32 keeps PyTorch's fp32 answers exactly.
    hint = "bf16" if precision == "bf16" else "f32"
    # Threads not pinned to cores: the decoding threads share the cores with the model, and a pinned thread
    # cannot move off a core one of them holds. Ingest on the 2-core bench machine, 15 interleaved runs each:
    # 129 photos/s unpinned against 124 pinned (bench/README.md).
    config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False}
    int8_note = ""
    if int8_photos is not None:
        transformer = any("attention" in type(m).__name__.lower() for m in model.modules())
        int8_path = None
        if path is not None:  # quantised with the uint8 input in place (calibrated on its batches): kept apart
            int8_path = path.with_name(f"{path.stem}{'-u8' if pixels is not None else ''}-{INT8_RECIPE}-int8.xml")
        quantized, int8_note = quantized_model(core, converted, int8_photos, config, int8_path, transformer)
        converted = quantized if quantized is not None else converted
    compiled = core.compile_model(converted, "CPU", config)
    request = compiled.create_infer_request()
    has_features = head_module is not None

    def run(pixel_values: torch.Tensor):
        # One request, used by one forward at a time: the classifier's lock serialises callers.
        outputs = request.infer({0: pixel_values.contiguous().numpy()})  # the dtype the model takes (see above)
        logits = torch.from_numpy(outputs[0].copy())
        features = torch.from_numpy(outputs[1].copy()) if has_features else None
        return logits, features

    run(example)  # the first inference allocates and picks kernels: paid here, not by the first photo
    return run, int8_note


def quantized_model(
    core, converted, int8_photos: Callable[[], Sequence[torch.Tensor]], config: dict, path, transformer: bool
):
    """The model quantised to int8 by NNCF's post-training quantisation, or None and why not.

    Calibrated on stored photos (activation ranges need real photos), then checked: on further stored photos
    the int8 model's top-1 must agree with the float model's on at least INT8_AGREEMENT of them, else the
    float model runs. Measured (bench/README.md): ViT-Base 26.9 -> 40.3 photos/s, Lite0 358 -> 444,
    at 99.7 % top-1 agreement with fp32 on the 300 shared photos for a trained Lite0. Kept beside the
    converted model once made; a refusal is kept there too, so a model that failed its check is not
    quantised again at every start.

    Returns:
        (the int8 model, "") or (None, a line saying why it is not used).
    """
    if path is not None and path.is_file() and path.with_suffix(".bin").is_file():
        try:
            return core.read_model(str(path)), ""
        except RuntimeError as err:  # a truncated copy: quantise again
            log.warning("could not read the int8 model %s (%s); quantising again", path, err)
    refused = path.with_suffix(".refused") if path is not None else None
    if refused is not None and refused.is_file():  # checked before: not quantised again at every start
        return None, refused.read_text(encoding="utf-8").strip()
    calibration = list(int8_photos())  # read only now: a start that finds the int8 copy reads no photo
    photos = sum(len(batch) for batch in calibration)
    if photos < INT8_MIN_PHOTOS:
        return None, (
            f"FOODCLF_PRECISION=int8 is calibrated on stored photos: it needs at least {INT8_MIN_PHOTOS}, "
            f"there are {photos}"
        )
    try:
        import nncf  # imported only for int8: 1-2 s
    except ImportError:
        return None, "FOODCLF_PRECISION=int8: the nncf package is not installed"
    pixels = torch.cat(calibration)
    check = max(INT8_MIN_PHOTOS // 4, len(pixels) // 3)  # the last third: photos the calibration did not see
    fit, held_out = pixels[:-check], pixels[-check:]
    batches = [fit[i : i + 16].numpy() for i in range(0, len(fit), 16)]
    kind = nncf.ModelType.TRANSFORMER if transformer else None
    float_layers = kept_in_float(converted)
    ignored = nncf.IgnoredScope(names=float_layers) if float_layers else None
    quantized = nncf.quantize(
        converted, nncf.Dataset(batches), subset_size=len(fit), model_type=kind, ignored_scope=ignored
    )
    ours = _top1(core.compile_model(quantized, "CPU", config), held_out)
    theirs = _top1(core.compile_model(converted, "CPU", config), held_out)
    agreement = float((ours == theirs).mean())
    if agreement < INT8_AGREEMENT:
        why = (
            f"FOODCLF_PRECISION=int8: its top-1 agreed with the float model's on {agreement:.0%} of {check} stored "
            f"photos, under {INT8_AGREEMENT:.0%}"
        )
        if refused is not None:  # remembered for this model (the cache folder's file can be deleted to retry)
            try:
                refused.parent.mkdir(parents=True, exist_ok=True)
                refused.write_text(why + "\n", encoding="utf-8")
            except OSError as err:
                log.warning("could not remember the int8 refusal in %s (%s)", refused, err)
        return None, why
    log.info(
        "quantised to int8: top-1 agrees with the float model on %.0f%% of %d stored photos", 100 * agreement, check
    )
    if path is not None:
        _save_converted(import_openvino(), quantized, path)
    return quantized, ""


def kept_in_float(converted) -> list[str]:
    """The layers int8 leaves in float (their OpenVINO names): where int8's rounding moved the top-1 most.

    - The convolution reading the pixels (1-3 % of a photo's FLOPs): NNCF's own accuracy-control search, on the
      bench's ViT-Base, reverted it first. ViT-Base's top-1 kept: 92.7 -> 95.8 % of 96 photos, same speed.
    - The Linear layers reading a GELU's output (a transformer's MLP outputs; a convnet's with GELU): those
      values are lopsided, a long positive tail over a short negative one, so int8's grid fits them worst.
      95.8 -> 99.0 %, at 1.5x bf16's speed instead of 1.7x (a third of ViT-Base's FLOPs stay in bf16).
    Measured on the bench's ViT-Base (bench/README.md).
    """
    layers = converted.get_ordered_ops()
    first = next((op for op in layers if op.get_type_name() == "Convolution"), None)
    after_gelu = [
        op for op in layers if op.get_type_name() == "MatMul" and op.input_value(0).get_node().get_type_name() == "Gelu"
    ]
    return [op.get_friendly_name() for op in ([first] if first is not None else []) + after_gelu]


def _top1(compiled, pixels: torch.Tensor):
    request = compiled.create_infer_request()
    return (
        torch.cat(
            [
                torch.from_numpy(request.infer({0: pixels[i : i + 16].numpy()})[0].copy())
                for i in range(0, len(pixels), 16)
            ]
        )
        .argmax(1)
        .numpy()
    )


def _uint8_input(ov, converted, pixels):
    """The converted model taking the recipe's uint8 batches (N, H, W, 3): converting, normalising and
    transposing them become the graph's first operations (in its profile: a transpose, a convert and one
    multiply-add, 0.06 ms a photo for Lite0 on the bench machine, against 0.3 ms a photo saved in the
    decoding threads)."""
    from openvino.preprocess import PrePostProcessor

    steps = PrePostProcessor(converted)
    first = steps.input(0)
    first.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    first.model().set_layout(ov.Layout("NCHW"))
    # (x / 255 - mean) / std, as PixelRecipe.normalize: (x - 255 mean) / (255 std).
    first.preprocess().convert_element_type(ov.Type.f32).mean([255.0 * m for m in pixels.mean]).scale(
        [255.0 * s for s in pixels.std]
    )
    return steps.build()


def _cache_path(ov, cache_dir, fingerprint: str, example) -> Optional[Path]:
    """Where this model's converted copy is kept (None: not kept)."""
    if not (cache_dir and fingerprint):
        return None
    height, width = example.shape[-2:]
    version = ov.__version__.split("-")[0]
    return Path(cache_dir) / "openvino" / f"{fingerprint[:32]}-{height}x{width}-ov{version}.xml"


def _converted_model(ov, core, module, example, path: Optional[Path]):
    """The model in OpenVINO's form: read from `path` when this model was converted before, else traced."""
    if path is not None:
        if path.is_file() and path.with_suffix(".bin").is_file():
            try:
                return core.read_model(str(path))
            except RuntimeError as err:  # a truncated copy (a process killed while writing): convert again
                log.warning("could not read the converted model %s (%s); converting again", path, err)
    with torch.no_grad(), warnings.catch_warnings():
        # Tracing warns about every Python branch of the model (and that tracing is deprecated): nothing a
        # person can act on; the converted model is checked against PyTorch's answers by the tests.
        warnings.simplefilter("ignore")
        converted = ov.convert_model(module, example_input=example)
    batch, channels, height, width = example.shape
    converted.reshape([-1, channels, height, width])  # any batch size
    if path is not None:
        _save_converted(ov, converted, path)
    return converted


def _save_converted(ov, converted, path: Path) -> None:
    """Write the converted model beside others, atomically (another process may be reading or writing it)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
            tmp = Path(scratch) / path.name
            ov.save_model(converted, str(tmp), compress_to_fp16=False)
            os.replace(tmp.with_suffix(".bin"), path.with_suffix(".bin"))
            os.replace(tmp, path)
    except OSError as err:  # a read-only cache only costs the next process the conversion
        log.warning("could not keep the converted model in %s (%s)", path.parent, err)
