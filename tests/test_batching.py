"""The streaming batch path: same answers as one at a time, input order, bad files, bounded memory."""

from __future__ import annotations

import itertools
import math
import tracemalloc

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

    tracemalloc.start()
    stream = classifier.classify_many((photo(size=(64, 64)) for _ in range(400)), batch_size=4, workers=2)
    for i, _ in enumerate(stream):
        if i == 50:
            early = tracemalloc.get_traced_memory()[0]
    late = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert late < early + 2_000_000  # 350 more photos, no growth beyond noise
