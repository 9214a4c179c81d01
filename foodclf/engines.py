"""Inference runtimes: what runs a loaded model's forward pass (PyTorch or OpenVINO).

The classifier keeps one path (`preprocess -> _forward -> postprocess`); an engine only replaces what
`_forward` calls to turn a pixel batch into logits and pooled features. Measured on the 2-core Xeon
(AMX) this project runs on (bench/README.md): OpenVINO's bf16 forward is 3.4x PyTorch's (channels-last)
bf16 one for EfficientNet-Lite0 (435 against 129 photos/s) and 1.5x for ViT-Base (27.7 against 18.6),
at 100 % top-1 agreement with fp32 on 300 real photos with a trained Lite0. ONNX Runtime, int8 dynamic
quantisation and torch.compile were measured too and lost or tied on this CPU (compile also costs 11-14 s
per model in every process), so they are not kept. `auto` picks OpenVINO on a CPU and
PyTorch on a GPU (OpenVINO's CPU plugin does not drive CUDA GPUs; no GPU was lent to measure more).
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
from typing import Callable, Optional

import torch

from foodclf.settings import ENGINES

log = logging.getLogger(__name__)

ENGINE_NAMES = {"torch": "PyTorch", "openvino": "OpenVINO"}  # as a person reads them (sidebar, Models page)

# (logits, pooled features or None): what an engine's runner gives back for a pixel batch, as float32 on the CPU.
Runner = Callable[[torch.Tensor], tuple[torch.Tensor, Optional[torch.Tensor]]]


@dataclass
class Engine:
    """The runtime a classifier's forward pass goes through, as chosen and as it turned out."""

    name: str  # torch or openvino: what runs
    runner: Optional[Runner] = None  # None: PyTorch eager (the classifier's own forward)
    prepare_seconds: float = 0.0  # conversion and compilation, paid once per process and model
    note: str = ""  # why it is not the one asked for (a fallback), for the sidebar and logs


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
) -> Engine:
    """Choose and build the engine for a loaded model; any failure falls back to PyTorch with a log line.

    Args:
        setting: FOODCLF_ENGINE (auto, torch or openvino).
        head_module: the classification layer whose input is the embedding (None: logits only).
        precision: fp32, bf16 or fp16, as the classifier resolved it.
        example: a pixel batch as the model gets them (conversion traces it; its height and width are kept).
        cache_dir: where converted OpenVINO models are kept between processes (None: not kept).
        fingerprint: the model's weights fingerprint, naming its converted copy.
    """
    # Only where OpenVINO could be picked is it imported (0.7 s): not for `torch`, a GPU or a CLIP model.
    could_run = setting != "torch" and device.type == "cpu" and not zero_shot
    name, note = pick_engine(setting, device, zero_shot, could_run and openvino_available())
    if note:
        log.warning("%s; running on PyTorch instead.", note)
    if name == "torch":
        return Engine("torch", note=note)
    started = time.perf_counter()
    try:
        runner = _openvino_runner(model, head_module, precision, example, cache_dir, fingerprint)
    except Exception as err:  # noqa: BLE001  (a runtime's own errors vary by version: every one means "use PyTorch")
        note = f"FOODCLF_ENGINE={setting}: {name} could not run this model ({type(err).__name__}: {err})"
        log.warning("%s; running on PyTorch instead.", note)
        return Engine("torch", note=note)
    seconds = time.perf_counter() - started
    log.info("prepared the %s engine in %.1f s", name, seconds)
    return Engine(name, runner, seconds)


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


def _openvino_runner(model, head_module, precision: str, example, cache_dir, fingerprint: str) -> Runner:
    ov = import_openvino()
    core = ov.Core()
    module = LogitsAndFeatures(model, head_module).eval()
    converted = _converted_model(ov, core, module, example, cache_dir, fingerprint)
    # bf16 runs on the CPU's AMX / AVX512-BF16 units; f32 keeps PyTorch's fp32 answers exactly.
    hint = "bf16" if precision == "bf16" else "f32"
    # Threads not pinned to cores: the decoding threads share the cores with the model, and a pinned thread
    # cannot move off a core one of them holds. Ingest on the 2-core bench machine, 15 interleaved runs each:
    # 129 photos/s unpinned against 124 pinned (bench/README.md).
    config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False}
    compiled = core.compile_model(converted, "CPU", config)
    request = compiled.create_infer_request()
    has_features = head_module is not None

    def run(pixel_values: torch.Tensor):
        # One request, used by one forward at a time: the classifier's lock serialises callers.
        outputs = request.infer({0: pixel_values.float().contiguous().numpy()})
        logits = torch.from_numpy(outputs[0].copy())
        features = torch.from_numpy(outputs[1].copy()) if has_features else None
        return logits, features

    run(example)  # the first inference allocates and picks kernels: paid here, not by the first photo
    return run


def _converted_model(ov, core, module, example, cache_dir, fingerprint: str):
    """The model in OpenVINO's form: read from the cache when this model was converted before, else traced."""
    path = None
    if cache_dir and fingerprint:
        height, width = example.shape[-2:]
        version = ov.__version__.split("-")[0]
        path = Path(cache_dir) / "openvino" / f"{fingerprint[:32]}-{height}x{width}-ov{version}.xml"
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
