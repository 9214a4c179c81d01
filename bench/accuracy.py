"""Head-mode accuracy on the shared food photos, recipe by recipe (issue #12's accuracy targets).

    python bench/accuracy.py [--data DIR] [--splits 20] [--recipes a,b,...] [--cache DIR]

Extracts EfficientNet-Lite0 features of all 300 photos once (cached on disk: the photo, its mirror image
and a few augmented crops), then for each recipe fits the head as `train` does (20 % held out for early
stopping, then refitted on all) and measures:
  - train/ -> test/ (the README's figure; target >= 97 %);
  - the mean over N random stratified 225 / 75 splits of all 300 photos (target >= 96 %).
Prints one line per recipe. Not a test: the numbers move with the recipe, and it takes minutes.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from foodclf.images import load_image  # noqa: E402
from foodclf.settings import Settings  # noqa: E402
from foodclf.training.backbone import load_backbone  # noqa: E402
from foodclf.training.data import read_image_folder, stratified_split  # noqa: E402
from foodclf.training.features import FeatureCache, extract_features  # noqa: E402
from foodclf.training.head import HeadSettings, fit_head  # noqa: E402

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


def fit_like_train(x, y, n_classes, recipe, seed, extra=None):
    """As foodclf.training.train: stratified 20 % held out for the epoch count, then refit on all.

    extra: (views (n, v, d)) augmented features of the same photos, added as more training rows.
    """
    settings = HeadSettings(seed=seed, **recipe.get("head", {}))
    idx = list(range(len(y)))
    rng = random.Random(seed)
    by_label = {}
    for i in idx:
        by_label.setdefault(int(y[i]), []).append(i)
    val = []
    for label in sorted(by_label):
        group = by_label[label][:]
        rng.shuffle(group)
        val += group[: max(1, round(len(group) * 0.2))]
    train = [i for i in idx if i not in set(val)]

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
    parser.add_argument("--recipes", help="comma-separated names (default: all)")
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
    cache = FeatureCache(settings.cache_dir, backbone.fingerprint)
    features = extract_features(backbone, photos, cache, views=VIEWS, batch_size=16, workers=2)
    assert len(features.photos) == len(photos), features.unreadable
    x, views = features.vectors, features.views
    mirror = mirrored_features(backbone, photos, cache)
    y = torch.tensor([labels.index(p.label) for p in photos])
    imagenet_head = (backbone.head.weight.detach().float(), backbone.head.bias.detach().float())
    print(
        f"features of {len(photos)} photos (+ mirror, + {VIEWS} views) in {time.perf_counter() - started:.0f} s, "
        f"{backbone.precision}",
        flush=True,
    )
    n_train = len(train_set)
    splits = []
    for s in range(args.splits):
        train_idx, test_idx = stratified_split(photos, 0.25, seed=1000 + s)
        index = {p.content_id: i for i, p in enumerate(photos)}
        splits.append(([index[p.content_id] for p in train_idx], [index[p.content_id] for p in test_idx]))
    chosen = args.recipes.split(",") if args.recipes else list(RECIPES)
    for name in chosen:
        recipe = RECIPES[name]
        begun = time.perf_counter()

        kind = recipe.get("features", "")
        fx, fm = transform(x, mirror, kind, imagenet_head), transform(mirror, x, kind, imagenet_head)

        def run(train_ids, test_ids, seed, recipe=recipe, fx=fx, fm=fm):
            train_ids, test_ids = torch.tensor(train_ids), torch.tensor(test_ids)
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
        split_accuracies = [run(tr, te, 0) for tr, te in splits]
        mean = float(np.mean(split_accuracies))
        sem = float(np.std(split_accuracies, ddof=1) / np.sqrt(len(split_accuracies))) if len(splits) > 1 else 0.0
        print(
            f"{name:<32} test {test_accuracy:6.1%}   {len(splits)} splits {mean:6.2%} ± {sem:.2%}   "
            f"({time.perf_counter() - begun:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
