"""Head-mode accuracy on the shared food photos, recipe by recipe (issue #12's accuracy targets).

    python bench/accuracy.py [--data DIR] [--splits 20] [--recipes a,b,...] [--cache DIR]

Extracts EfficientNet-Lite0 features of all 300 photos once (cached on disk: the photo, its mirror image
and a few augmented crops), then for each recipe fits the head as `train` does (20 % held out for early
stopping, then refitted on all) and measures:
  - train/ -> test/ (the README's figure; target >= 97 %);
  - the mean over N random stratified 225 / 75 splits of all 300 photos (target >= 96 %).
The "px" recipes change what the backbone sees instead: input size (224 to 384), centre crop or the whole
photo, bf16 or fp32 features (for training, for serving, or both), and features averaged over several
sizes or with the mirror image (multi-scale / multi-view), each view of the 300 photos extracted once and
cached by the backbone's fingerprint. `--recipes px` runs only those.
The "tail" recipes (`--recipes tail`; the third round) fine-tune the last blocks instead: the frozen early
blocks run once per photo and per augmented view, their output at the input of blocks[5] is cached in one
file, and the last stage(s), conv_head and bn2 are trained on it from the fitted linear head; the first of
them, "tail baseline", is the linear head on the same cached activations, the reference for the others.
Prints one line per recipe, with the paired difference from the first recipe (the default) over the same
splits. Not a test: the numbers move with the recipe, and it takes minutes.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import random
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from foodclf.images import DECODE_VERSION, load_image  # noqa: E402
from foodclf.settings import Settings  # noqa: E402
from foodclf.training.backbone import _fingerprint, load_backbone  # noqa: E402
from foodclf.training.data import read_image_folder, stratified_split  # noqa: E402
from foodclf.training.features import FeatureCache, augmented_view, extract_features  # noqa: E402
from foodclf.training.head import HeadSettings, class_weights, fit_head  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "food-photos" / "pizza_steak_sushi"
SEED = 0
VIEWS = 4  # augmented crops per photo, cached beside the photo's own features


def mirrored_features(backbone, photos, cache: FeatureCache) -> torch.Tensor:
    """Features of each photo flipped left to right (cached under '<content id>-mirror')."""
    out, todo = {}, []
    for p in photos:
        vector = cache.get(f"{p.content_id}-mirror")
        if vector is None:
            todo.append(p)
        else:
            out[p.content_id] = vector
    for start in range(0, len(todo), 16):
        batch = todo[start : start + 16]
        images = [ImageOps.mirror(load_image(p.path).image) for p in batch]
        for p, vector in zip(batch, backbone.features(backbone.preprocess(images)).numpy()):
            cache.put(f"{p.content_id}-mirror", vector)
            out[p.content_id] = vector
    return torch.from_numpy(np.stack([out[p.content_id] for p in photos])).float()


def held_out_split(y, seed):
    """(train rows, validation rows): a stratified 20 % held out, as foodclf.training.train does."""
    rng = random.Random(seed)
    by_label = {}
    for i in range(len(y)):
        by_label.setdefault(int(y[i]), []).append(i)
    val = []
    for label in sorted(by_label):
        group = by_label[label][:]
        rng.shuffle(group)
        val += group[: max(1, round(len(group) * 0.2))]
    return [i for i in range(len(y)) if i not in set(val)], val


def fit_like_train(x, y, n_classes, recipe, seed, extra=None):
    """As foodclf.training.train: stratified 20 % held out for the epoch count, then refit on all.

    extra: (views (n, v, d)) augmented features of the same photos, added as more training rows.
    """
    settings = HeadSettings(seed=seed, **recipe.get("head", {}))
    idx = list(range(len(y)))
    train, val = held_out_split(y, seed)

    def rows(ids):
        xs, ys = [x[ids]], [y[ids]]
        if extra is not None:
            for v in range(extra.shape[1]):
                xs.append(extra[ids, v])
                ys.append(y[ids])
        return torch.cat(xs), torch.cat(ys)

    tx, ty = rows(train)
    fit = fit_head(tx, ty, n_classes, val_x=x[val], val_y=y[val], settings=settings)
    ax, ay = rows(idx)
    return fit_head(ax, ay, n_classes, settings=settings, epochs=fit.epochs)


def predict(fit, x, mirror, recipe):
    logits = fit.logits(x)
    if recipe.get("tta"):
        logits = logits.softmax(1) + fit.logits(mirror).softmax(1)
    return logits.argmax(1)


def sklearn_probe(x, y, x_test, recipe, seed):
    """L-BFGS logistic regression on standardised features, C chosen by 5-fold CV (as CLIP's linear probes)."""
    warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")  # its coming defaults
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(
        StandardScaler(),
        LogisticRegressionCV(
            Cs=recipe.get("Cs", [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]), cv=5, max_iter=2000, random_state=seed
        ),
    )
    model.fit(x.numpy(), y.numpy())
    return torch.from_numpy(model.predict_proba(x_test.numpy()))


RECIPES = {
    "baseline": {},
    "tta-flip": {"tta": True},
    "train-flip": {"train": "mirror"},
    "train-flip+tta": {"train": "mirror", "tta": True},
    "train-views": {"train": "views"},
    "train-views+flip": {"train": "views+mirror"},
    "train-views+flip+tta": {"train": "views+mirror", "tta": True},
    "l2=3e-3": {"head": {"l2": 3e-3}},
    "l2=3e-4": {"head": {"l2": 3e-4}},
    "smooth=0.2": {"head": {"label_smoothing": 0.2}},
    "train-flip+tta,l2=3e-3": {"train": "mirror", "tta": True, "head": {"l2": 3e-3}},
    "train-views+flip+tta,l2=3e-3": {"train": "views+mirror", "tta": True, "head": {"l2": 3e-3}},
    "mean-flip": {"features": "mean-mirror"},
    "imagenet-logits": {"features": "imagenet"},
    "mean-flip+imagenet": {"features": "mean-mirror+imagenet"},
    "l2-normalised": {"features": "unit"},
    "sklearn-logreg": {"probe": "sklearn"},
    "sklearn-logreg+mean-flip": {"probe": "sklearn", "features": "mean-mirror"},
    "sklearn-logreg+imagenet": {"probe": "sklearn", "features": "imagenet"},
}

# What the backbone sees (the second round): a view is (input size, centre-crop fraction, precision of the
# forward pass, mirrored). "train" views are averaged into the features the head learns from ("rows": each
# is extra training rows instead), "serve" views into the features it is measured on. bf16 is what this
# CPU serves in by default (FOODCLF_PRECISION=auto). Each view of the 300 photos is extracted once and
# cached by the backbone's fingerprint, which covers the preprocessing and the precision.
SERVED = (224, 0.875, "bf16", False)  # today's: timm's Lite0 preprocessing, bf16


def view(size=224, crop=0.875, precision="bf16", mirror=False):
    return (size, crop, precision, mirror)


def pixels(train, serve=None, rows=False):
    return {"pixels": {"train": train, "serve": serve or train, "rows": rows}}


PIXEL_RECIPES = {
    "px 224 bf16 (default)": pixels([SERVED]),
    "px 224 fp32": pixels([view(precision="fp32")]),
    "px 224 fp32 train, bf16 serve": pixels([view(precision="fp32")], [SERVED]),
    **{f"px {s} bf16": pixels([view(s)]) for s in (256, 288, 320, 384)},
    **{f"px {s} fp32": pixels([view(s, precision="fp32")]) for s in (256, 288, 320, 384)},
    **{f"px {s} fp32 train, bf16 serve": pixels([view(s, precision="fp32")], [view(s)]) for s in (288, 320)},
    **{f"px {s} full image (crop 1.0) bf16": pixels([view(s, 1.0)]) for s in (224, 288)},
    "px mean of 224+288 bf16": pixels([view(224), view(288)]),
    "px mean of 224+288+320 bf16": pixels([view(224), view(288), view(320)]),
    "px mean of 224+288 fp32": pixels([view(224, precision="fp32"), view(288, precision="fp32")]),
    "px 288 mean of crop .875+1.0 bf16": pixels([view(288), view(288, 1.0)]),
    "px 288 mean of photo+mirror bf16": pixels([view(288), view(288, mirror=True)]),
    "px rows 224+288+320, serve 288 bf16": pixels([view(224), view(288), view(320)], [view(288)], rows=True),
    "px mean of 192+224+288 bf16": pixels([view(192), view(224), view(288)]),
    "px mean of 224+288+320 and mirrors bf16": pixels(
        [view(s, mirror=m) for s in (224, 288, 320) for m in (False, True)]
    ),
    "px 224 and 288 side by side bf16": {**pixels([view(224), view(288)]), "concat": True},
    "px mean of 224+288+320 bf16 + sklearn-logreg": {**pixels([view(224), view(288), view(320)]), "probe": "sklearn"},
}
RECIPES.update(PIXEL_RECIPES)


# The third round: partial fine-tuning. The frozen early blocks run once per photo and per augmented view
# (augmented_view: a seeded random crop, flipped half the time; view 0 is the photo itself, as served); their
# output at the input of blocks[5] (14 x 14 x 112) is cached, and the last blocks, conv_head and bn2 are
# trained on it with a new classifier started from the fitted linear head ("LP-FT", Kumar et al. 2022).
TAIL_VIEWS = 8  # augmented views per photo, beside the photo itself


@dataclasses.dataclass(frozen=True)
class TailSettings:
    cut: str = "b6"  # what is trained: "head" (conv_head + bn2), "b6" (+ blocks[6]), "b5" (+ blocks[5])
    max_epochs: int = 15  # an epoch: each training photo once, in one of its views drawn at random
    patience: int = 4
    learning_rate: float = 1e-4  # pretrained layers (AdamW, cosine); the classifier gets 10x
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    batch_size: int = 32
    batchnorm: str = "eval"  # eval: ImageNet's running statistics kept; train: batch statistics
    plain_share: float = 0.0  # chance of the photo itself instead of a random view (0: uniform over views)
    views: int = TAIL_VIEWS
    refit: bool = True  # as head mode: 20 % held out for the epoch count, then refit on all


def tail_activations(backbone, photos, path: Path, views: int = TAIL_VIEWS) -> torch.Tensor:
    """(photos, 1 + views, 112, 14, 14) bf16: the input of blocks[5] for each photo and view (cached file)."""
    if path.exists():
        return torch.load(path)
    net = backbone.model.timm_model
    out = torch.empty(len(photos), 1 + views, 112, 14, 14, dtype=torch.bfloat16)
    began = time.perf_counter()
    for i, p in enumerate(photos):
        image = load_image(p.path).image
        images = [image] + [augmented_view(image, p.content_id, v) for v in range(views)]
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            h = net.bn1(net.conv_stem(backbone.preprocess(images)))
            for block in net.blocks[:5]:
                h = block(h)
        out[i] = h.to(torch.bfloat16)
        if i % 50 == 0:
            print(f"  tail activations {i}/{len(photos)} {time.perf_counter() - began:.0f} s", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, path)
    return out


def tail_parts(net, cut: str):
    """(frozen part after the cache, trained part before pooling)."""
    frozen = {"b5": [], "b6": [net.blocks[5]], "head": [net.blocks[5], net.blocks[6]]}[cut]
    trained = {"b5": [net.blocks[5], net.blocks[6]], "b6": [net.blocks[6]], "head": []}[cut]
    return torch.nn.Sequential(*frozen), torch.nn.Sequential(*trained, net.conv_head, net.bn2)


def tail_inputs(backbone, acts: torch.Tensor, cut: str) -> torch.Tensor:
    """The cached activations run through the frozen blocks between the cache and the cut."""
    frozen, _ = tail_parts(backbone.model.timm_model, cut)
    if not len(frozen):
        return acts
    flat = acts.flatten(0, 1)
    outs = []
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        for start in range(0, len(flat), 256):
            outs.append(frozen(flat[start : start + 256]).to(torch.bfloat16))
    out = torch.cat(outs)
    return out.view(*acts.shape[:2], *out.shape[1:])


class TailNet(torch.nn.Module):
    def __init__(self, trained, weight, bias):
        super().__init__()
        self.trained = trained
        self.classifier = torch.nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.classifier.weight.copy_(weight)
            self.classifier.bias.copy_(bias)

    def forward(self, h):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            pooled = self.trained(h).mean((2, 3))
        return self.classifier(pooled.float())


def train_tail(backbone, inputs, y, n_classes, head, ts: TailSettings, seed, val=None, epochs=None):
    """Train the tail on (n, views, ...) inputs; val: (plain-view inputs, labels). Returns (net, best epoch)."""
    torch.manual_seed(seed)
    _, trained = tail_parts(backbone.model.timm_model, ts.cut)
    net = TailNet(copy.deepcopy(trained), *head)
    pretrained = list(net.trained.parameters())
    optimiser = torch.optim.AdamW(
        [
            {"params": pretrained, "lr": ts.learning_rate},
            {"params": net.classifier.parameters(), "lr": ts.learning_rate * 10},
        ],
        weight_decay=ts.weight_decay,
    )
    n = len(y)
    per_epoch = math.ceil(n / ts.batch_size)
    total = (epochs or ts.max_epochs) * per_epoch
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))
    weights = class_weights(y, n_classes)
    g = torch.Generator().manual_seed(seed)
    n_views = min(inputs.shape[1], 1 + ts.views)
    best, best_loss, best_epoch = None, float("inf"), 0
    for epoch in range(1, (epochs or ts.max_epochs) + 1):
        net.train()
        if ts.batchnorm == "eval":
            for m in net.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()
        order = torch.randperm(n, generator=g)
        pick = torch.randint(0, n_views, (n,), generator=g)
        if ts.plain_share:
            pick = torch.where(torch.rand(n, generator=g) < ts.plain_share, 0, pick)
        for start in range(0, n, ts.batch_size):
            rows = order[start : start + ts.batch_size]
            x = inputs[rows, pick[rows]].float()
            loss = torch.nn.functional.cross_entropy(
                net(x), y[rows], weight=weights, label_smoothing=ts.label_smoothing
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
        if val is not None:
            net.eval()
            with torch.inference_mode():
                val_loss = float(torch.nn.functional.cross_entropy(net(val[0].float()), val[1]))
            if val_loss < best_loss:
                best_loss, best_epoch = val_loss, epoch
                best = copy.deepcopy(net.state_dict())
            if epoch - best_epoch >= ts.patience:
                break
    if best is not None:
        net.load_state_dict(best)
    return net.eval(), best_epoch or (epochs or ts.max_epochs)


def fit_tail_like_train(backbone, inputs, pooled, y, n_classes, ts: TailSettings, seed):
    """The linear head as head mode fits it, then the tail from it: 20 % held out for the epoch count, then
    (refit) trained again on all photos for that many epochs, from the head fitted on all."""
    train, val = held_out_split(y, seed)
    train, val = torch.tensor(train), torch.tensor(val)
    first = fit_like_train(pooled[train], y[train], n_classes, {}, seed)
    net, epochs = train_tail(
        backbone, inputs[train], y[train], n_classes, (first.weight, first.bias), ts, seed, val=(inputs[val, 0], y[val])
    )
    if not ts.refit:
        return net
    head = fit_like_train(pooled, y, n_classes, {}, seed)
    return train_tail(backbone, inputs, y, n_classes, (head.weight, head.bias), ts, seed, epochs=epochs)[0]


def tail_recipe(**changes):
    return {"tail": TailSettings(**changes)}


TAIL_RECIPES = {
    "tail baseline (linear head)": {"tail": None},
    "tail head-only": tail_recipe(cut="head"),
    "tail b6": tail_recipe(cut="b6"),
    "tail b6 bn-train": tail_recipe(cut="b6", batchnorm="train"),
    "tail b6 lr3e-4": tail_recipe(cut="b6", learning_rate=3e-4),
    "tail b6 lr3e-5": tail_recipe(cut="b6", learning_rate=3e-5),
    "tail b6 no-views": tail_recipe(cut="b6", views=0),
    "tail b6 plain-half": tail_recipe(cut="b6", plain_share=0.5),
    "tail b6 no-refit": tail_recipe(cut="b6", refit=False),
    "tail b6 wd0.3": tail_recipe(cut="b6", weight_decay=0.3),
    "tail b5": tail_recipe(cut="b5"),
    "tail b5 plain-half": tail_recipe(cut="b5", plain_share=0.5),
}
RECIPES.update(TAIL_RECIPES)


def with_preprocessing(backbone, *, input_size: int, crop_pct: float, precision: str):
    """The Lite0 backbone seeing other pixels: its square input size and centre-crop fraction, and precision.

    The network is shared; the processor and fingerprint are new (so the features are cached apart). A model
    trained this way would have to save the same pretrained_cfg in config.json, where a timm model's
    processor is read back from, to serve on the same pixels.
    """
    cfg = dict(backbone.model.config.pretrained_cfg, input_size=[3, input_size, input_size], crop_pct=crop_pct)
    changed = dataclasses.replace(backbone, processor=type(backbone.processor)(pretrained_cfg=cfg), precision=precision)
    changed.fingerprint = _fingerprint(changed)
    return changed


class Views:
    """Features of all photos per view, from the feature cache or one pass of the network per view."""

    def __init__(self, backbone, photos, cache_dir):
        self.backbone, self.photos, self.cache_dir = backbone, photos, cache_dir
        self.done: dict[tuple, torch.Tensor] = {}

    def __call__(self, spec) -> torch.Tensor:
        if spec not in self.done:
            size, crop, precision, mirror = spec
            began = time.perf_counter()
            backbone = with_preprocessing(self.backbone, input_size=size, crop_pct=crop, precision=precision)
            cache = FeatureCache(self.cache_dir, backbone.fingerprint)
            if mirror:
                vectors = mirrored_features(backbone, self.photos, cache)
            else:
                features = extract_features(backbone, self.photos, cache, batch_size=16, workers=2)
                assert len(features.photos) == len(self.photos), features.unreadable
                vectors = features.vectors
            self.done[spec] = vectors
            print(f"  view {spec}: {time.perf_counter() - began:.0f} s ({cache.misses} computed)", flush=True)
        return self.done[spec]

    def mean(self, specs) -> torch.Tensor:
        return torch.stack([self(spec) for spec in specs]).mean(0)


def transform(x, mirror, kind: str, head):
    """The features a recipe learns from: the photo's, averaged with its mirror image, ImageNet logits added."""
    if "mean-mirror" in kind:
        x = (x + mirror) / 2
    if kind == "unit":
        x = x / x.norm(dim=1, keepdim=True)
    if "imagenet" in kind:
        x = torch.cat([x, x @ head[0].T + head[1]], 1)
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--recipes", help="comma-separated names or their beginnings, e.g. px (default: all)")
    parser.add_argument("--cache", default="data/cache", help="feature cache folder")
    args = parser.parse_args()
    torch.manual_seed(SEED)
    settings = Settings(cache_dir=args.cache, device="cpu", precision="auto")
    started = time.perf_counter()
    backbone = load_backbone(settings)
    root = Path(args.data)
    train_set, test_set = read_image_folder(root / "train").photos, read_image_folder(root / "test").photos
    photos = train_set + test_set
    labels = sorted({p.label for p in photos})
    y = torch.tensor([labels.index(p.label) for p in photos])
    chosen = [name for want in (args.recipes or "").split(",") for name in RECIPES if name.startswith(want)]
    x = views = mirror = imagenet_head = None
    if any(
        "pixels" not in RECIPES[name] and "tail" not in RECIPES[name] for name in chosen
    ):  # the first round's features
        cache = FeatureCache(settings.cache_dir, backbone.fingerprint)
        features = extract_features(backbone, photos, cache, views=VIEWS, batch_size=16, workers=2)
        assert len(features.photos) == len(photos), features.unreadable
        x, views = features.vectors, features.views
        mirror = mirrored_features(backbone, photos, cache)
        imagenet_head = (backbone.head.weight.detach().float(), backbone.head.bias.detach().float())
        print(
            f"features of {len(photos)} photos (+ mirror, + {VIEWS} views) in {time.perf_counter() - started:.0f} s, "
            f"{backbone.precision}",
            flush=True,
        )
    n_train = len(train_set)
    views_of = Views(backbone, photos, settings.cache_dir)
    acts = pooled = None
    tail_inputs_of: dict[str, torch.Tensor] = {}
    if any("tail" in RECIPES[name] for name in chosen):
        began = time.perf_counter()
        acts = tail_activations(
            backbone, photos, Path(settings.cache_dir) / f"tail-{backbone.fingerprint[:16]}-{DECODE_VERSION}.pt"
        )
        head_inputs = tail_inputs(backbone, acts[:, :1], "head")[:, 0]
        net = backbone.model.timm_model
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            pooled = net.bn2(net.conv_head(head_inputs)).mean((2, 3)).float()
        print(f"tail activations of {len(photos)} photos x {acts.shape[1]} views: {time.perf_counter() - began:.0f} s")
    splits = []
    for s in range(args.splits):
        train_idx, test_idx = stratified_split(photos, 0.25, seed=1000 + s)
        index = {p.content_id: i for i, p in enumerate(photos)}
        splits.append(([index[p.content_id] for p in train_idx], [index[p.content_id] for p in test_idx]))
    default = None  # the first recipe's split accuracies (the default recipe, "baseline" or "px 224 bf16")
    for name in chosen:
        recipe = RECIPES[name]
        begun = time.perf_counter()

        rows = fx = fm = served = None
        if "pixels" not in recipe:
            kind = recipe.get("features", "")
            fx, fm = transform(x, mirror, kind, imagenet_head), transform(mirror, x, kind, imagenet_head)
        else:  # the head learns from the train views and is measured on the serve views
            spec = recipe["pixels"]
            if spec["rows"]:
                rows = torch.stack([views_of(v) for v in spec["train"][1:]], 1)
                fx = views_of(spec["train"][0])
            elif recipe.get("concat"):
                fx = torch.cat([views_of(v) for v in spec["train"]], 1)
            else:
                fx = views_of.mean(spec["train"])
            served = torch.cat([views_of(v) for v in spec["serve"]], 1) if recipe.get("concat") else None
            served = views_of.mean(spec["serve"]) if served is None else served

        if recipe.get("tail") is not None and recipe["tail"].cut not in tail_inputs_of:
            tail_inputs_of[recipe["tail"].cut] = tail_inputs(backbone, acts, recipe["tail"].cut)

        def run(train_ids, test_ids, seed, recipe=recipe, fx=fx, fm=fm, rows=rows, served=served):
            train_ids, test_ids = torch.tensor(train_ids), torch.tensor(test_ids)
            if "tail" in recipe and recipe["tail"] is None:
                fit = fit_like_train(pooled[train_ids], y[train_ids], len(labels), {}, seed)
                return float((fit.logits(pooled[test_ids]).argmax(1) == y[test_ids]).float().mean())
            if "tail" in recipe:
                inputs = tail_inputs_of[recipe["tail"].cut]
                net = fit_tail_like_train(
                    backbone, inputs[train_ids], pooled[train_ids], y[train_ids], len(labels), recipe["tail"], seed
                )
                with torch.inference_mode():
                    logits = net(inputs[test_ids, 0].float())
                return float((logits.argmax(1) == y[test_ids]).float().mean())
            if "pixels" in recipe and recipe.get("probe") == "sklearn":
                scores = sklearn_probe(fx[train_ids], y[train_ids], served[test_ids], recipe, seed)
                return float((scores.argmax(1) == y[test_ids]).float().mean())
            if "pixels" in recipe:
                fit = fit_like_train(
                    fx[train_ids],
                    y[train_ids],
                    len(labels),
                    recipe,
                    seed,
                    rows[train_ids] if rows is not None else None,
                )
                return float((fit.logits(served[test_ids]).argmax(1) == y[test_ids]).float().mean())
            if recipe.get("probe") == "sklearn":
                scores = sklearn_probe(fx[train_ids], y[train_ids], fx[test_ids], recipe, seed)
                return float((scores.argmax(1) == y[test_ids]).float().mean())
            extra = []
            kind = recipe.get("train", "")
            if "mirror" in kind:
                extra.append(mirror[train_ids][:, None])
            if "views" in kind:
                extra.append(views[train_ids])
            fit = fit_like_train(
                fx[train_ids], y[train_ids], len(labels), recipe, seed, torch.cat(extra, 1) if extra else None
            )
            return float((predict(fit, fx[test_ids], fm[test_ids], recipe) == y[test_ids]).float().mean())

        test_accuracy = run(list(range(n_train)), list(range(n_train, len(photos))), 0)
        split_accuracies = np.array([run(tr, te, 0) for tr, te in splits])
        mean = float(np.mean(split_accuracies))
        sem = float(np.std(split_accuracies, ddof=1) / np.sqrt(len(split_accuracies))) if len(splits) > 1 else 0.0
        if default is None:
            default = split_accuracies
        # The same splits for every recipe: the paired difference says more than two means and their errors.
        gain = split_accuracies - default
        gain_sem = float(np.std(gain, ddof=1) / np.sqrt(len(gain))) if len(splits) > 1 else 0.0
        print(
            f"{name:<48} test {test_accuracy:6.1%}   {len(splits)} splits {mean:6.2%} ± {sem:.2%}   "
            f"vs default {float(gain.mean()) * 100:+.2f} ± {gain_sem * 100:.2f} points   "
            f"({time.perf_counter() - begun:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
