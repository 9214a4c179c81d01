"""The streaming batch path: same answers as one at a time, input order, bad files, bounded memory."""

from __future__ import annotations

import itertools
import math

import pytest

from factories import photo
from foodclf.classifier import load_classifier
from foodclf.images import load_image


@pytest.fixture
def classifier(settings):
    return load_classifier(settings)


def sources(n):
    return [photo(((37 * i) % 256, (91 * i) % 256, (53 * i) % 256), size=(30 + i, 40)) for i in range(n)]


@pytest.mark.parametrize("workers, batch_size", [(0, 4), (2, 3), (2, 16)])
def test_batch_path_matches_one_at_a_time(classifier, workers, batch_size):
    data = sources(10)
    streamed = list(classifier.classify_many(data, top_k=0, workers=workers, batch_size=batch_size))
    assert [item.source for item in streamed] == data
    for item, raw in zip(streamed, data):
        single = classifier.classify_image(load_image(raw).image, top_k=0)
        assert item.result.highest_probability_class == single.highest_probability_class
        scores = {s["label"]: s["score"] for s in item.result.class_scores}
        assert all(math.isclose(s["score"], scores[s["label"]], abs_tol=1e-5) for s in single.class_scores)


def test_a_bad_file_is_reported_in_place_and_the_stream_goes_on(classifier):
    data = sources(5)
    data.insert(2, b"definitely not a photo")
    data.insert(4, photo(size=(200, 200))[:500])
    items = list(classifier.classify_many(data, batch_size=2))
    assert [item.ok for item in items] == [True, True, False, True, False, True, True]
    assert "not an image" in str(items[2].error)
    assert "truncated" in str(items[4].error)
    assert all(item.result is not None for item in items if item.ok)


def test_named_sources_keep_their_name(classifier):
    item = next(iter(classifier.classify_many([("lunch.jpg", photo())])))
    assert item.loaded.file_name == "lunch.jpg"


def test_stream_is_lazy_and_memory_stays_flat(classifier):
    """A long generator is consumed as results are taken, not read up front."""
    taken = []

    def endless():
        for i in itertools.count():
            taken.append(i)
            yield photo(((i * 7) % 256, 100, 100), size=(64, 64))

    stream = classifier.classify_many(endless(), batch_size=4, workers=2)
    for _ in itertools.islice(stream, 8):
        pass
    assert len(taken) < 8 + 2 * 4 + 4  # only a couple of batches ahead


@pytest.mark.parametrize("ahead_bytes, most_taken", [(1, 4 + 2), (1 << 40, 4 + 2 * 4 + 1)])
def test_look_ahead_counts_bytes_not_only_photos(classifier, ahead_bytes, most_taken):
    """Big files: the look-ahead stops at ahead_bytes held, however few photos that is."""
    taken = []
    big = photo(size=(600, 600), quality=100)

    def files():
        for i in itertools.count():
            taken.append(i)
            yield big

    stream = classifier.classify_many(files(), batch_size=4, workers=2, ahead_bytes=ahead_bytes)
    next(iter(stream))
    # First result: one batch (4) decoded; then at most one more photo (small budget) or two batches.
    assert len(taken) <= most_taken
    if ahead_bytes > 1:
        assert len(taken) > 4 + 2  # the count limit alone lets more through: the byte limit is what held it
