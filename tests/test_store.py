"""The image store: files named by content id, written atomically, never outside the folder."""

from __future__ import annotations

import os

import pytest

from foodclf.errors import FoodclfError
from foodclf.images import decode_image
from foodclf.store import ImageStore, stored_name


def test_save_names_the_file_by_content_id_and_reads_it_back(tmp_path, make_photo):
    loaded = decode_image(make_photo(fmt="PNG"), name="dish.png")
    store = ImageStore(tmp_path / "images")
    name = store.save(loaded)
    assert name == f"{loaded.content_id}.png"
    assert store.read(name) == loaded.data
    assert store.path(name) == tmp_path / "images" / name
    assert store.exists(name)
    assert os.listdir(tmp_path / "images") == [name]


def test_saving_again_is_a_no_op(tmp_path, make_photo):
    loaded = decode_image(make_photo())
    store = ImageStore(tmp_path)
    first = store.save(loaded)
    before = store.path(first).stat().st_mtime_ns
    assert store.save(loaded) == first
    assert store.path(first).stat().st_mtime_ns == before


def test_a_failed_write_leaves_neither_the_file_nor_a_temporary(tmp_path, make_photo, monkeypatch):
    loaded = decode_image(make_photo())
    store = ImageStore(tmp_path)

    def crash(src, dst):
        raise KeyboardInterrupt  # as if killed between writing and renaming

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        store.save(loaded)
    assert os.listdir(tmp_path) == []


def test_a_half_written_file_from_an_older_crash_is_replaced(tmp_path, make_photo):
    loaded = decode_image(make_photo())
    store = ImageStore(tmp_path)
    store.path(stored_name(loaded.content_id, "jpg")).write_bytes(loaded.data[:10])
    name = store.save(loaded)
    assert store.read(name) == loaded.data


@pytest.mark.parametrize(
    "stored_path",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "a" * 64 + ".jpg/../x",
        "A" * 64 + ".jpg",
        "abc.jpg",
        "",
        "a" * 64,
    ],
)
def test_paths_outside_the_store_are_refused(tmp_path, stored_path):
    with pytest.raises(ValueError, match="stored_path: expected '<content id>.<ext>'"):
        ImageStore(tmp_path).read(stored_path)


def test_a_missing_photo_is_explained(tmp_path):
    with pytest.raises(FoodclfError, match="is missing from the image folder .* check FOODCLF_IMAGE_DIR"):
        ImageStore(tmp_path).read("a" * 64 + ".jpg")


def test_leftover_temporaries_of_killed_writes_are_removed_once_old(tmp_path):
    old, fresh = tmp_path / ".incoming-old.part", tmp_path / ".incoming-new.part"
    old.write_bytes(b"half")
    fresh.write_bytes(b"half")
    os.utime(old, (0, 0))
    assert ImageStore(tmp_path).remove_leftovers() == 1
    assert os.listdir(tmp_path) == [fresh.name]


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temporary(tmp_path):
    from foodclf.files import write_atomically

    target = tmp_path / "features" / "ab.npy"
    write_atomically(target, lambda f: f.write(b"old"))

    def half(f):
        f.write(b"half of the new")
        raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space"):
        write_atomically(target, half)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["ab.npy"]


def test_a_killed_writers_temporary_is_removed_at_once_a_live_ones_kept(tmp_path):
    import subprocess
    import sys

    from foodclf import store

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = store._WRITER.split(".")[0]
    dead = tmp_path / f".incoming-{host}.{int(gone.stdout)}-abc.part"
    mine = tmp_path / f".incoming-{store._WRITER}-def.part"
    parent = tmp_path / f".incoming-{host}.{os.getppid()}-ghi.part"
    elsewhere = tmp_path / f".incoming-otherhost.{int(gone.stdout)}-jkl.part"
    for temp in (dead, mine, parent, elsewhere):
        temp.write_bytes(b"half")
    assert ImageStore(tmp_path).remove_leftovers() == 1
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in (mine, parent, elsewhere))
