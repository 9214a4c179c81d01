"""The process's decode budget: decodes wait their turn, never hold more than the budget, refuse when it stays full."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from factories import photo
from foodclf import images
from foodclf.api.app import create_app
from foodclf.classifier import load_classifier
from foodclf.errors import DecodeBusy
from foodclf.images import DECODE_BUDGET, DecodeBudget, decode_image


@pytest.fixture(autouse=True)
def default_budget():
    """Tests size the process budget as they need; each starts and ends with the default."""
    DECODE_BUDGET.configure(images.DEFAULT_DECODE_BUDGET_PIXELS, images.DEFAULT_DECODE_WAIT_SECONDS)
    yield
    DECODE_BUDGET.configure(images.DEFAULT_DECODE_BUDGET_PIXELS, images.DEFAULT_DECODE_WAIT_SECONDS)


class Holder(threading.Thread):
    """A thread that reserves `pixels`, says so, and holds them until told to let go."""

    def __init__(self, budget: DecodeBudget, pixels: int, log: list | None = None, name: str = ""):
        super().__init__(daemon=True)
        self.budget, self.pixels, self.log, self.label = budget, pixels, log, name
        self.holding = threading.Event()
        self.release = threading.Event()

    def run(self):
        with self.budget.reserve(self.pixels):
            if self.log is not None:
                self.log.append(self.label)
            self.holding.set()
            self.release.wait(10)


def test_a_reservation_waits_for_room_and_gets_it_when_freed():
    budget = DecodeBudget(pixels=100, wait_seconds=5)
    waiter = Holder(budget, 50)
    with budget.reserve(80):
        waiter.start()
        assert not waiter.holding.wait(0.2)  # 80 + 50 > 100: it waits
        assert budget.in_use == 80
    assert waiter.holding.wait(5) and budget.in_use == 50
    waiter.release.set()
    waiter.join(5)
    assert budget.in_use == 0


def test_a_full_budget_refuses_after_the_wait_and_holds_nothing():
    budget = DecodeBudget(pixels=100, wait_seconds=0.2)
    with budget.reserve(100):
        started = time.monotonic()
        with pytest.raises(DecodeBusy, match="try again") as refused:
            with budget.reserve(1):
                pass
        assert 0.15 < time.monotonic() - started < 2
        assert refused.value.retry_after >= 1
    assert budget.in_use == 0


def test_a_photo_larger_than_the_whole_budget_waits_until_it_has_it_alone():
    budget = DecodeBudget(pixels=100, wait_seconds=5)
    with budget.reserve(10_000) as cost:
        assert cost == 100 == budget.in_use


def test_waiters_are_served_in_order_so_a_big_one_is_not_starved():
    budget = DecodeBudget(pixels=100, wait_seconds=5)
    order: list[str] = []
    first, big, small = (
        Holder(budget, 60, order, "first"),
        Holder(budget, 90, order, "big"),
        Holder(budget, 10, order, "small"),
    )
    first.start()
    assert first.holding.wait(5)
    big.start()
    time.sleep(0.1)
    small.start()
    time.sleep(0.1)
    assert order == ["first"]  # 60 + 10 would fit, but the big one is ahead in the queue
    first.release.set()
    assert big.holding.wait(5) and small.holding.wait(5)  # 90 + 10 fits: the small one follows
    assert order == ["first", "big", "small"]
    big.release.set()
    small.release.set()


def test_a_small_decode_passes_a_big_one_held_back_by_other_big_ones():
    budget = DecodeBudget(pixels=160, wait_seconds=5)
    running, waiting, phone = Holder(budget, 100), Holder(budget, 100), Holder(budget, 10)
    running.start()
    assert running.holding.wait(5)
    waiting.start()
    time.sleep(0.1)
    phone.start()
    assert phone.holding.wait(5)  # the big one waits for the running one anyway: the phone photo goes
    assert not waiting.holding.is_set()
    running.release.set()
    assert waiting.holding.wait(5)  # 10 + 100 fits
    waiting.release.set()
    phone.release.set()


def test_small_decodes_stop_passing_once_they_are_what_holds_the_head_back():
    budget = DecodeBudget(pixels=160, wait_seconds=5)
    running, head = Holder(budget, 100), Holder(budget, 150)
    phones = [Holder(budget, 10) for _ in range(3)]
    running.start()
    assert running.holding.wait(5)
    head.start()
    time.sleep(0.1)
    for phone in phones[:2]:
        phone.start()
        assert phone.holding.wait(5)
    running.release.set()
    time.sleep(0.1)
    assert not head.holding.is_set()  # 20 held by phones + 150 > 160
    phones[2].start()
    assert not phones[2].holding.wait(0.3)  # may not pass: it would hold the head back further
    for phone in phones[:2]:
        phone.release.set()
    assert head.holding.wait(5)
    head.release.set()
    assert phones[2].holding.wait(5)
    phones[2].release.set()


def decode_many(budget: DecodeBudget, data: bytes, n: int) -> list:
    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(lambda _: decode_image(data, budget=budget), range(n)))


@pytest.mark.parametrize("capacity_mp, within", [(5, True), (1000, False)])
def test_concurrent_decodes_never_hold_more_than_the_budget(capacity_mp, within):
    """8 threads decode a 4 MP PNG at once; a 5 MP budget lets one in at a time (a huge one lets all)."""
    data = photo(size=(2000, 2000), fmt="PNG")
    budget = DecodeBudget(pixels=capacity_mp * 1_000_000, wait_seconds=60)
    loaded = decode_many(budget, data, 8)
    assert all(item.image.size == (images.MODEL_SIDE, images.MODEL_SIDE) for item in loaded)
    assert (budget.peak <= 5_000_000) is within
    assert budget.in_use == 0


def test_a_refused_decode_holds_nothing_and_the_next_one_works():
    budget = DecodeBudget(pixels=1_000_000, wait_seconds=0.1)
    data = photo(size=(800, 800), fmt="PNG")
    with budget.reserve(1_000_000):
        with pytest.raises(DecodeBusy):
            decode_image(data, budget=budget)
    assert budget.in_use == 0
    assert decode_image(data, budget=budget).image.size == (images.MODEL_SIDE, images.MODEL_SIDE)


def test_a_corrupt_file_gives_its_budget_back():
    budget = DecodeBudget(pixels=1_000_000, wait_seconds=0.1)
    data = photo(size=(800, 800), fmt="PNG")
    with pytest.raises(Exception, match="truncated or corrupt"):
        decode_image(data[: len(data) // 2], budget=budget)
    assert budget.in_use == 0


@pytest.fixture
def api(settings):
    busy = settings.replace(decode_budget_mp=1.0, decode_wait_s=0.2)
    with TestClient(create_app(busy, load_classifier(busy))) as client:
        yield client


@pytest.mark.parametrize("path, field", [("/v1/classify", "file"), ("/v1/classify/batch", "files")])
def test_the_api_answers_503_with_retry_after_while_the_budget_is_full(api, path, field):
    data = photo(size=(900, 900), fmt="PNG")
    with DECODE_BUDGET.reserve(1_000_000):  # another request is decoding a big photo
        response = api.post(path, files={field: ("big.png", data, "image/png")})
    if path.endswith("batch"):
        item = response.json()["items"][0]
        assert item["status"] == 503 and item["error"]["code"] == "busy"
        # What a client needs to try again, as the single path's 503 gives it (issue 15).
        assert item["retry_after_s"] == 1
        assert response.status_code == 200 and response.headers["Retry-After"] == "1"
    else:
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert response.json()["error"]["code"] == "busy"
        assert "try again" in response.json()["error"]["message"]
    again = api.post(path, files={field: ("big.png", data, "image/png")})
    assert again.status_code == 200
    assert DECODE_BUDGET.in_use == 0


def test_a_batch_says_when_to_retry_only_the_photos_refused_for_a_busy_budget(api):
    """A busy refusal beside a file that is not an image: Retry-After for the busy one only."""
    big, small = photo(size=(900, 900), fmt="PNG"), photo(size=(40, 40), fmt="PNG")
    files = [("files", ("big.png", big, "image/png")), ("files", ("notes.png", b"not a photo at all", "image/png"))]
    with DECODE_BUDGET.reserve(1_000_000):
        busy = api.post("/v1/classify/batch", files=files)
    items = busy.json()["items"]
    assert [(i["status"], i["retry_after_s"]) for i in items] == [(503, 1), (400, None)]
    assert busy.headers["Retry-After"] == "1"
    calm = api.post("/v1/classify/batch", files=[files[1], ("files", ("small.png", small, "image/png"))])
    assert [(i["status"], i["retry_after_s"]) for i in calm.json()["items"]] == [(400, None), (200, None)]
    assert "Retry-After" not in calm.headers  # nothing to wait for: a text file stays a text file


def test_the_api_sizes_the_process_budget_from_its_settings(settings):
    create_app(settings.replace(decode_budget_mp=7.5, decode_wait_s=3))
    assert DECODE_BUDGET.capacity == 7_500_000 and DECODE_BUDGET.wait_seconds == 3
