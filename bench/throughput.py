"""Classification throughput: foodclf's batch path against the plain way, the model's own limit and the machine's.

    python bench/throughput.py [--model DIR] [--images DIR] [--n N] [--batch-size B] [--no-candidates]

Runs, in one process and on the same photos:
  0. the machine's own limit: large square matmuls in fp32 and bf16 (a roofline's compute ceiling), and
     the same for the matmul shapes the model's Linear layers run (what those layers could reach at best)
  1. plain:  transformers.pipeline("image-classification") called once per photo, fp32
  2-3. PyTorch fp32: the raw model forward on pre-made tensors at the batch size, then foodclf's batch path
  4-5. PyTorch with fast arithmetic (bf16 where native): raw forward, batch path
  6-7. the default (FOODCLF_ENGINE=auto, FOODCLF_PRECISION=auto: OpenVINO bf16 on this CPU): raw, batch path
  8. end to end: foodclf's ingest (decode, classify, store photo and prediction) into a fresh database,
     then the same storing only the photo files (8a) and nothing (8b): what the rows and the files cost
     (each the median of 3 runs)
  9. FOODCLF_PRECISION=int8 (OpenVINO, quantised by NNCF on the bench's photos and checked as a user's would
     be; if its check refuses it, said and then timed with the check waived): raw forward, batch path, ingest
  and the candidates measured and not kept (--no-candidates skips them): OpenVINO fp32, torch.compile
  (inductor) bf16, int8 dynamic quantisation of the Linear layers, ONNX Runtime fp32 (when installed).
Prints photos/second, each stage's share of the matmul peak of its arithmetic (the model's FLOPs per photo
counted with torch's FlopCounterMode), each one's top-1 agreement with PyTorch fp32 and its largest score
difference, the one-off preparation (conversion, compilation) and the ratios.
Without --model it builds a ViT-Base with 101 labels: exactly the cost of the default nateraw/food model,
which cannot be downloaded here. Its body is random; its head is fitted to the photos the stages do not
measure (see build_vit_base), so its agreement figures are a trained head's, not a random model's ties.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from db.engine import close_database, open_database  # noqa: E402
from foodclf import engines, ingest  # noqa: E402
from foodclf.classifier import cpu_has_native_bf16, forget_classifiers, load_classifier, pick_device  # noqa: E402
from foodclf.engines import LogitsAndFeatures, import_openvino  # noqa: E402
from foodclf.images import find_images, load_image  # noqa: E402
from foodclf.ingest import ingest_photos  # noqa: E402
from foodclf.labels import FOOD101_LABELS  # noqa: E402
from foodclf.settings import Settings  # noqa: E402
from foodclf.store import open_store  # noqa: E402

DEFAULT_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "food-photos" / "pizza_steak_sushi"
SEED = 1337
BURN_IN = 2  # batches run before timing: allocator and oneDNN kernels warm up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model folder (default: a random ViT-Base with 101 labels)")
    parser.add_argument("--images", default=str(DEFAULT_IMAGES), help="folder of photos")
    parser.add_argument("--n", type=int, default=96, help="photos to classify in each stage")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-candidates", action="store_true", help="skip the runtimes measured and not kept")
    args = parser.parse_args()

    torch.manual_seed(SEED)
    found = find_images([args.images])
    paths = found[: args.n]
    if not paths:
        sys.exit(f"no photos under {args.images}; pass --images DIR")
    # The default ViT-Base's head is fitted to photos the stages do not measure (see build_vit_base).
    model_dir = args.model or build_vit_base(Path(tempfile.mkdtemp(prefix="foodclf-bench-")), found[args.n :][:256])
    device = pick_device(args.device)
    cache = tempfile.mkdtemp(prefix="foodclf-bench-cache-")  # a cold cache: the conversion is measured
    base = Settings(
        model=str(model_dir),
        device=args.device,
        batch_size=args.batch_size,
        workers=args.workers,
        top_k=0,
        cache_dir=cache,
    )

    print(
        f"machine: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, device {device}, native bf16 on CPU: {cpu_has_native_bf16()}"
    )
    print(f"model: {model_dir}   photos: {len(paths)} from {args.images}   batch size: {args.batch_size}")

    peaks = {"fp32": matmul_peak(torch.float32, device), "bf16": matmul_peak(torch.bfloat16, device)}
    print(f"matmul peak: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s (2048² squares)")
    plain = time_plain_pipeline(model_dir, paths, device)
    fp32 = load_classifier(base.replace(precision="fp32", engine="torch"))
    print(f"model load: {fp32.load_seconds:.1f} s (once per process; weights fingerprint included)")
    batches = pixel_batches(fp32, paths, args.batch_size)
    flops = flops_per_photo(fp32, batches[0])
    print(f"model: {flops / 1e9:.2f} GFLOP per photo (FlopCounterMode, one forward at the batch size)")
    linear_flops = shapes_ceiling(fp32, batches[0], peaks, flops)

    rows, reference = [], None

    def row(name, rate, peak, logits=None, prepare=0.0):
        nonlocal reference
        agreement = ""
        if logits is not None:
            if reference is None:
                reference = logits
            agreement = agreement_text(logits, reference, fp32.model.config.num_labels)
        rows.append((name, rate, peak, agreement, prepare))

    row("1 plain pipeline, per photo, fp32", plain, peaks["fp32"])
    rate, logits = time_raw(lambda b: fp32._forward(b).logits, batches, device)
    row("2 PyTorch raw forward, fp32", rate, peaks["fp32"], logits)
    print(margin_text(logits, fp32.model.config.num_labels))
    ours32, _ = time_batch_path(fp32, paths)
    row("3 PyTorch batch path, fp32", ours32, peaks["fp32"])
    forget_classifiers()
    torch_fast = load_classifier(base.replace(precision="auto", engine="torch"))
    fast_peak = peaks["bf16"] if torch_fast.precision == "bf16" else peaks["fp32"]
    rate, logits = time_raw(lambda b: torch_fast._forward(b).logits, batches, device)
    row(f"4 PyTorch raw forward, {torch_fast.precision}", rate, fast_peak, logits)
    rate, _ = time_batch_path(torch_fast, paths)
    row(f"5 PyTorch batch path, {torch_fast.precision}", rate, fast_peak)
    forget_classifiers()
    default = load_classifier(base.replace(precision="auto", engine="auto"))
    name = f"{default.engine.name} {default.precision}"
    default_peak = peaks["bf16"] if default.precision == "bf16" else peaks["fp32"]
    rate, logits = time_raw(lambda b: default._forward(b).logits, batches, device)
    row(f"6 default raw forward ({name})", rate, default_peak, logits, default.engine.prepare_seconds)
    ours_default, _ = time_batch_path(default, paths)
    row(f"7 default batch path ({name})", ours_default, default_peak)
    if default.engine.name == "openvino":
        openvino_breakdown(fp32, fp32.float_pixels(batches[0]), linear_flops, peaks["bf16"])
    stored = time_ingest(default, base, paths)
    row(f"8 ingest end to end ({name})", stored, default_peak)
    # Where ingest's time goes: the same run storing only the photo files, then storing nothing.
    row("8a  ingest, photo files only (no rows)", time_ingest(default, base, paths, store=_files_only), default_peak)
    row("8b  ingest, nothing stored", time_ingest(default, base, paths, store=_nothing), default_peak)
    if default.engine.name == "openvino":
        int8_stages(base, paths, batches, device, peaks, row)
    if not args.no_candidates:
        candidates(fp32, base, batches, device, peaks, row)

    print()
    print(f"{'stage':<44} {'photos/s':>9} {'ms/photo':>9} {'GFLOP/s':>8} {'of peak':>8} {'prepare':>8}  top-1 vs 2")
    for name, rate, peak, agreement, prepare in rows:
        achieved = rate * flops / 1e9
        ready = f"{prepare:7.1f}s" if prepare else ""
        figures = f"{rate:9.2f} {1000 / rate:9.1f} {achieved:8.0f} {achieved / peak:8.1%}"
        print(f"{name:<44} {figures} {ready:>8}  {agreement}")
    print()
    by = {name.split(" ")[0]: rate for name, rate, *_ in rows}
    print(
        f"3/2 = {by['3'] / by['2']:5.2f}   5/4 = {by['5'] / by['4']:5.2f}   7/6 = {by['7'] / by['6']:5.2f}   "
        f"7/1 = {by['7'] / by['1']:5.2f}   7/3 = {by['7'] / by['3']:5.2f}   8/7 = {by['8'] / by['7']:5.2f}   "
        f"8/8b = {by['8'] / by['8b']:5.2f}   8a/8b = {by['8a'] / by['8b']:5.2f}"
    )


def int8_stages(base: Settings, paths, batches, device, peaks, row) -> None:
    """Stage 9: FOODCLF_PRECISION=int8 as a user gets it (quantised on the stored photos, checked, or refused)."""
    forget_classifiers()
    settings = base.replace(precision="int8", engine="openvino", image_dir=calibration_folder(paths))
    int8 = load_classifier(settings)
    if not int8.engine.int8:
        # Refused (its check on the held-out calibration photos failed): said, then timed with the check waived,
        # in a fresh cache (the refusal is kept), so the table still shows what int8 would give and keep.
        print(f"int8: refused as a user would see it ({int8.engine.note}); timed below with its check waived")
        forget_classifiers()
        with mock.patch.object(engines, "INT8_AGREEMENT", 0.0):
            settings = settings.replace(cache_dir=tempfile.mkdtemp(prefix="foodclf-bench-cache-"))
            int8 = load_classifier(settings)
    if not int8.engine.int8:
        print(f"int8: not measured ({int8.engine.note})")
        return
    rate, logits = time_raw(lambda b: int8._forward(b).logits, batches, device)
    row("9 OpenVINO int8 raw forward", rate, peaks["bf16"], logits, int8.engine.prepare_seconds)
    rate, _ = time_batch_path(int8, paths)
    row("9a OpenVINO int8 batch path", rate, peaks["bf16"])
    row("9b int8 ingest end to end", time_ingest(int8, settings, paths), peaks["bf16"])


def candidates(fp32, base: Settings, batches, device, peaks, row) -> None:
    """Runtimes measured against the default and not kept (bench/README.md says why)."""
    forget_classifiers()
    openvino32 = load_classifier(base.replace(precision="fp32", engine="openvino"))
    rate, logits = time_raw(lambda b: openvino32._forward(b).logits, batches, device)
    row("c1 OpenVINO raw forward, fp32", rate, peaks["fp32"], logits, openvino32.engine.prepare_seconds)
    batches = [fp32.float_pixels(b).contiguous() for b in batches]  # the others run the model itself: floats
    module = LogitsAndFeatures(fp32.model, None).eval()
    if device.type == "cpu":
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True  # weights as constants: lets inductor fold and pre-pack them
    started = time.perf_counter()
    compiled = torch.compile(module)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled(batches[0])
        seconds = time.perf_counter() - started
        rate, logits = time_raw(lambda b: compiled(b)[0], batches, device)
    row("c2 torch.compile raw forward, bf16", rate, peaks["bf16"], logits, seconds)
    with warnings.catch_warnings():  # deprecated in favour of torchao (not installed): measured as it is
        warnings.simplefilter("ignore")
        quantized = torch.ao.quantization.quantize_dynamic(fp32.model, {torch.nn.Linear}, dtype=torch.qint8)
    with torch.inference_mode():
        rate, logits = time_raw(lambda b: quantized(pixel_values=b).logits, batches, device)
    row("c3 int8 dynamic (Linear) raw forward", rate, peaks["bf16"], logits)
    try:
        import onnx  # noqa: F401  (torch.onnx.export needs it beside the runtime)
        import onnxruntime
    except ImportError:
        print("ONNX Runtime: not installed (pip install onnx onnxruntime to measure it)")
        return
    started = time.perf_counter()
    path = Path(tempfile.mkdtemp(prefix="foodclf-bench-onnx-")) / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (batches[0],), path, input_names=["x"], dynamic_axes={"x": {0: "batch"}}, dynamo=False
        )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    seconds = time.perf_counter() - started
    rate, logits = time_raw(lambda b: torch.from_numpy(session.run(None, {"x": b.numpy()})[0]), batches, device)
    row("c4 ONNX Runtime raw forward, fp32", rate, peaks["fp32"], logits, seconds)


def agreement_text(logits: torch.Tensor, reference: torch.Tensor, n: int) -> str:
    """Top-1 agreement of the model's own head (its first n logits: not the not-food gate's), the largest
    difference of its softmax scores, and, where the top-1 moved, how close fp32's own top two were on those
    photos (a near-tie that any rounding reorders, or a real change of answer)."""
    ours, theirs = logits[:, :n].float(), reference[:, :n].float()
    moved = ours.argmax(1) != theirs.argmax(1)
    gap = (ours.softmax(1) - theirs.softmax(1)).abs().max().item()
    text = f"{1 - moved.float().mean().item():6.1%}  max |Δscore| {gap:.4f}"
    if moved.any():
        top2 = theirs.softmax(1).topk(2, dim=1).values
        margins = (top2[:, 0] - top2[:, 1])[moved]
        text += f"  moved: {int(moved.sum())}, fp32's top-2 margin there ≤ {margins.max().item():.3f}"
    return text


def margin_text(logits: torch.Tensor, n: int) -> str:
    """How decided the model's fp32 answers (stage 2's logits; the first n are its own head's) are on the photos
    measured: the share whose top two scores are within 0.05 (where bf16's or int8's rounding can reorder them),
    which sets how hard top-1 agreement is."""
    top2 = logits[:, :n].float().softmax(1).topk(2, dim=1).values
    margins = top2[:, 0] - top2[:, 1]
    return (
        f"fp32 answers: top-2 score margin median {margins.median().item():.3f}; "
        f"{(margins < 0.05).float().mean().item():.1%} of the photos within 0.05"
    )


def cpu_name() -> str:
    """The CPU's model name and its matrix features, from /proc/cpuinfo (platform.processor() is empty here)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    wanted = [f for f in ("avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8") if f in flags]
    return f"{name} ({', '.join(wanted) or 'no bf16/int8 matrix units'})"


def pixel_batches(classifier, paths, batch_size) -> list[torch.Tensor]:
    """Full batches only: a last, smaller one would make torch.compile compile again inside the timing."""
    images = [load_image(p, side=classifier.decode_side).image for p in paths]
    return [
        classifier.preprocess(images[i : i + batch_size]) for i in range(0, len(images) - batch_size + 1, batch_size)
    ]


def shapes_ceiling(classifier, batch, peaks, flops: float) -> float:
    """The best the model's Linear layers could do: each one's matmul shape, timed alone, in fp32 and bf16.

    Returns the Linear layers' FLOPs per photo (0 for a convolutional network, where this says little)."""
    shapes, hooks = [], []

    def record(module, args, output):  # (rows, in, out) of the matmul this Linear ran
        shapes.append((args[0].numel() // args[0].shape[-1], module.in_features, module.out_features))

    for module in classifier.model.modules():
        if isinstance(module, torch.nn.Linear):
            hooks.append(module.register_forward_hook(record))
    try:
        with torch.inference_mode():
            classifier.model(pixel_values=classifier.float_pixels(batch))
    finally:
        for hook in hooks:
            hook.remove()
    linear_flops = sum(2 * m * k * n for m, k, n in shapes) / len(batch)
    share = linear_flops / flops
    line = f"Linear layers: {share:.0%} of the model's FLOPs in {len(shapes)} matmuls"
    if share < 0.5:
        print(line + " (a convolutional network: the matmul ceiling says little about it)")
        return 0.0
    for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        seconds = sum(_best_mm_seconds(m, k, n, dtype, classifier.device) for m, k, n in shapes)
        rate = linear_flops * len(batch) / seconds / 1e9
        line += f"; at their own shapes, alone: {name} {rate:.0f} GFLOP/s ({rate / peaks[name]:.0%} of peak)"
    print(line)
    return linear_flops


def openvino_breakdown(classifier, batch, linear_flops: float, peak: float) -> None:
    """Where OpenVINO's bf16 forward spends its time, by kind of operation (its own profiler), and what its
    matrix layers reach: the measured reason the whole model stays under the matmul peak."""
    ov = import_openvino()
    module = LogitsAndFeatures(classifier.model, None).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converted = ov.convert_model(module, example_input=batch)
    compiled = ov.Core().compile_model(
        converted, "CPU", {"INFERENCE_PRECISION_HINT": "bf16", "PERFORMANCE_HINT": "LATENCY", "PERF_COUNT": "YES"}
    )
    request = compiled.create_infer_request()
    pixels = batch.numpy()
    for _ in range(BURN_IN):
        request.infer({0: pixels})
    kinds: dict[str, float] = {}
    runs = 4
    for _ in range(runs):
        request.infer({0: pixels})
        for op in request.profiling_info:
            kinds[op.node_type] = kinds.get(op.node_type, 0.0) + op.real_time.total_seconds() / runs
    total = sum(kinds.values())
    top = sorted(kinds.items(), key=lambda kv: -kv[1])[:6]
    print("OpenVINO bf16, time by kind of operation: " + ", ".join(f"{k} {v / total:.0%}" for k, v in top))
    matrix = kinds.get("FullyConnected", 0.0)  # the Linear layers (attention's own products are "MatMul")
    if linear_flops and matrix:
        rate = linear_flops * len(batch) / matrix / 1e9
        print(
            f"  its Linear layers (FullyConnected): {rate:.0f} GFLOP/s ({rate / peak:.0%} of the bf16 peak) for "
            f"{matrix / total:.0%} of the time; the rest (attention's softmax, layer norms, GELU, transposes) "
            "moves memory more than it multiplies"
        )


_MM_CACHE: dict = {}


def _best_mm_seconds(m: int, k: int, n: int, dtype, device, repeats: int = 5) -> float:
    key = (m, k, n, dtype)
    if key not in _MM_CACHE:
        a = torch.randn(m, k, device=device).to(dtype)
        b = torch.randn(k, n, device=device).to(dtype)
        torch.mm(a, b)
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            torch.mm(a, b)
            synchronize(device)
            best = min(best, time.perf_counter() - started)
        _MM_CACHE[key] = best
    return _MM_CACHE[key]


def matmul_peak(dtype, device, n: int = 2048, repeats: int = 8) -> float:
    """GFLOP/s of n×n matmuls in `dtype`: the most this machine's matrix units give a model, measured."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    for _ in range(2):  # warm-up: oneDNN picks and caches its kernel
        torch.mm(a, b)
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):  # the best of several: the ceiling, not the average under other load
        started = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best / 1e9


def flops_per_photo(classifier, batch) -> float:
    """The model's floating-point operations per photo (multiply-adds count two), counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        classifier._forward(batch)
    return counter.get_total_flops() / len(batch)


INGEST_RUNS = 3  # each into a fresh database; the median is printed (one run moves ±10 % on a shared VM)


def time_ingest(classifier, base: Settings, paths, store=None) -> float:
    """foodclf's ingest, the whole way: read, decode, classify, store the file and the rows (a temp SQLite).
    The median photos/s of INGEST_RUNS runs, each into a fresh database and image folder.

    store: instead of ingest's own storing step (to see what the rows and the files each cost).
    """
    rates = []
    for _ in range(INGEST_RUNS):
        work = Path(tempfile.mkdtemp(prefix="foodclf-bench-ingest-"))
        settings = base.replace(database_url=f"sqlite:///{work / 'bench.db'}", image_dir=str(work / "images"))
        engine = open_database(settings)
        photos = [(None, p) for p in paths]
        with mock.patch("foodclf.ingest.store_group", store or ingest.store_group):
            started = time.perf_counter()
            outcomes = list(ingest_photos(engine, settings, classifier, photos, source="folder", added_by="bench"))
            seconds = time.perf_counter() - started
        close_database(settings)
        failed = [o for o in outcomes if not o.ok]
        if failed:
            print(f"ingest: {len(failed)} of {len(outcomes)} photos not stored")
        rates.append(len(paths) / seconds)
    return statistics.median(rates)


def calibration_folder(paths) -> str:
    """An image folder of the bench's photos for int8's calibration and check (in use: the stored photos in
    FOODCLF_IMAGE_DIR). They are among the photos timed and compared; in use the photos classified are new."""
    folder = Path(tempfile.mkdtemp(prefix="foodclf-bench-calibration-"))
    for n, path in enumerate(reversed(paths)):
        (folder / f"{n:05d}{Path(path).suffix.lower()}").symlink_to(Path(path).resolve())
    return str(folder)


def _files_only(engine, settings, group, source, added_by):
    store = open_store(settings.image_dir)
    for _, _, loaded, _ in group:
        store.save(loaded)  # the file, written and fsync'd as ingest writes it
    return _nothing(engine, settings, group, source, added_by)


def _nothing(engine, settings, group, source, added_by):
    return [ingest.IngestOutcome(index, name, "stored", loaded.content_id) for index, name, loaded, _ in group]


def build_vit_base(folder: Path, head_photos=()) -> Path:
    """A ViT-Base/16 at 224 px with the 101 Food-101 labels (nateraw/food's shape and cost): its body randomly
    initialised, its classification layer fitted to `head_photos` (labelled by their folder's name) when there
    are enough, so that its scores are a trained head's, not a random model's near-ties.

    No trained ViT weights can be had offline. A random body's features still tell the shared photos' three
    dishes apart (about half of held-out photos right against a third by chance), so the fitted head's top-1
    has real margins, and int8's or bf16's agreement with fp32 on it is a measurement, if a harsher one than
    a trained body's (a weaker model has more photos near a tie)."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    config = ViTConfig(
        id2label=dict(enumerate(FOOD101_LABELS)), label2id={label: i for i, label in enumerate(FOOD101_LABELS)}
    )
    processor = ViTImageProcessor(
        size={"height": 224, "width": 224}, image_mean=[0.5] * 3, image_std=[0.5] * 3, resample=2
    )
    model = ViTForImageClassification(config).eval()
    dishes = sorted({Path(path).parent.name for path in head_photos})
    if len(head_photos) >= HEAD_MIN_PHOTOS and len(dishes) >= 2:
        fit_head(model, processor, head_photos, dishes)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


HEAD_MIN_PHOTOS = 30


def fit_head(model, processor, photos, dishes) -> None:
    """Fit the model's classification layer (a linear probe, L2-regularised) to the photos' folder names."""
    started = time.perf_counter()
    labels = list(FOOD101_LABELS)
    rows = [labels.index(dish) if dish in labels else i for i, dish in enumerate(dishes)]  # a dish's Food-101 row
    target = torch.tensor([dishes.index(Path(path).parent.name) for path in photos])
    module = LogitsAndFeatures(model, "classifier").eval()
    features = []
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        for i in range(0, len(photos), 16):
            images = [load_image(path).image for path in photos[i : i + 16]]
            pixels = processor(images=images, return_tensors="pt")["pixel_values"]
            features.append(module(pixels)[1].float())
    x = torch.cat(features)
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    weight = torch.zeros(x.shape[1], len(dishes), requires_grad=True)
    bias = torch.zeros(len(dishes), requires_grad=True)
    optimiser = torch.optim.LBFGS([weight, bias], max_iter=200)
    standardised = (x - mean) / std

    def loss():
        optimiser.zero_grad()
        value = torch.nn.functional.cross_entropy(standardised @ weight + bias, target) + 1e-2 * weight.square().sum()
        value.backward()
        return value

    optimiser.step(loss)
    with torch.no_grad():
        layer = model.classifier
        layer.weight.zero_()
        layer.bias.fill_(float(bias.min()) - 20.0)  # the other 98 dishes: never the top-1
        layer.weight[rows] = (weight / std[:, None]).T  # the standardisation folded into the layer
        layer.bias[rows] = bias - (mean / std) @ weight
        right = (standardised @ weight + bias).argmax(1).eq(target).float().mean().item()
    print(
        f"ViT-Base: random body, head fitted to {len(photos)} other photos ({', '.join(dishes)}) in "
        f"{time.perf_counter() - started:.0f} s; right on {right:.0%} of them"
    )


def synchronize(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_plain_pipeline(model_dir, paths, device) -> float:
    """What a user writes first: the transformers pipeline, one photo per call."""
    from transformers import pipeline

    classify = pipeline("image-classification", model=str(model_dir), device=device)
    for path in paths[:BURN_IN]:
        classify(str(path))
    synchronize(device)
    started = time.perf_counter()
    for path in paths:
        classify(str(path), top_k=len(FOOD101_LABELS))
    synchronize(device)
    return len(paths) / (time.perf_counter() - started)


def time_raw(forward, batches, device) -> tuple[float, torch.Tensor]:
    """photos/s of `forward` over pixel batches made beforehand (no decoding), and its logits."""
    with torch.inference_mode():
        for batch in batches[:BURN_IN]:
            forward(batch)
        synchronize(device)
        started = time.perf_counter()
        outputs = [forward(batch) for batch in batches]
        synchronize(device)
        seconds = time.perf_counter() - started
    return sum(len(b) for b in batches) / seconds, torch.cat([o.float().cpu() for o in outputs])


def time_batch_path(classifier, paths) -> tuple[float, list[str]]:
    """foodclf's streaming path: files in, sorted scores out, decoding overlapped with the model."""
    for _ in classifier.classify_many(paths[: BURN_IN * classifier.batch_size]):
        pass
    synchronize(classifier.device)
    started = time.perf_counter()
    labels = [item.result.highest_probability_class for item in classifier.classify_many(paths)]
    synchronize(classifier.device)
    return len(paths) / (time.perf_counter() - started), labels


if __name__ == "__main__":
    main()
