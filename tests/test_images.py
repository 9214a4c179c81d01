"""Safe image loading: every odd file ends as an upright RGB image or a clear refusal."""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from factories import photo
from foodclf.errors import ImageRejected, ImageTooLarge, UnsupportedImageType
from foodclf.images import MODEL_SIDE, content_id, display_name, find_images, load_image, model_scale
from shared_data import HOSTILE_IMAGES


def save(image: Image.Image, fmt: str, **args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **args)
    return buffer.getvalue()


def exif_rotated_jpeg(orientation: int) -> bytes:
    """A 40x20 JPEG, left half red, tagged with an EXIF orientation."""
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return save(image, "JPEG", exif=exif.tobytes(), quality=95)


def animated_gif() -> bytes:
    frames = [Image.new("P", (16, 16), i) for i in (10, 200, 90)]
    return save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)


def bomb_png(width=100_000, height=100_000) -> bytes:
    """A valid PNG header that claims a huge size; the body is never reached."""
    data = save(Image.new("L", (1, 1)), "PNG")
    # IHDR: length (8..12), type (12..16), width, height (16..24), 5 more bytes, then its CRC.
    ihdr = b"IHDR" + width.to_bytes(4, "big") + height.to_bytes(4, "big") + data[24:29]
    return data[:12] + ihdr + zlib.crc32(ihdr).to_bytes(4, "big") + data[33:]


GOOD = {
    "rgb jpeg": lambda: photo(),
    "cmyk jpeg": lambda: save(Image.new("CMYK", (20, 20), (0, 255, 255, 0)), "JPEG"),
    "grey jpeg": lambda: save(Image.new("L", (20, 20), 128), "JPEG"),
    "palette png with transparency": lambda: save(Image.new("P", (20, 20), 0), "PNG", transparency=0),
    "rgba png": lambda: photo((10, 20, 30, 0), fmt="PNG"),
    "la png": lambda: save(Image.new("LA", (20, 20), (0, 0)), "PNG"),
    "16-bit png": lambda: save(Image.fromarray(np.full((20, 20), 40000, dtype=np.uint16)), "PNG"),
    "1-bit png": lambda: save(Image.new("1", (20, 20), 1), "PNG"),
    "animated gif": animated_gif,
    "webp": lambda: photo(fmt="WEBP"),
    "1x1 png": lambda: photo(size=(1, 1), fmt="PNG"),
    "exif orientation 0": lambda: exif_rotated_jpeg(0),
    "exif orientation 6": lambda: exif_rotated_jpeg(6),
}


@pytest.mark.parametrize("kind", GOOD)
def test_odd_but_valid_images_load_as_rgb(kind):
    loaded = load_image(GOOD[kind]())
    assert loaded.image.mode == "RGB"
    assert loaded.width == loaded.image.width > 0
    assert loaded.format in ("JPEG", "PNG", "GIF", "WEBP")


def test_transparency_is_composited_onto_white():
    loaded = load_image(photo((10, 20, 30, 0), fmt="PNG"))
    assert loaded.image.getpixel((0, 0)) == (255, 255, 255)


def test_cmyk_is_converted_to_the_right_colour():
    cyan = load_image(save(Image.new("CMYK", (8, 8), (255, 0, 0, 0)), "JPEG"))
    red, green, blue = cyan.image.getpixel((4, 4))
    assert red < 60 and green > 200 and blue > 200


def test_sixteen_bit_grey_keeps_its_brightness():
    loaded = load_image(save(Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16)), "PNG"))
    assert loaded.image.getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_is_applied():
    loaded = load_image(exif_rotated_jpeg(6))  # 6: rotate 90° clockwise to display
    assert (loaded.width, loaded.height) == (20, 40)
    red, _, blue = loaded.image.getpixel((10, 5))  # the red half is now on top
    assert red > 200 and blue < 60


def malformed_exif_jpeg() -> bytes:
    """A 64x48 JPEG whose EXIF has orientation 6 stored twice and a resolution pointing past the file's end."""
    entries = struct.pack("<HHI", 0x0112, 3, 2) + struct.pack("<HH", 6, 6)  # two values where one belongs
    entries += struct.pack("<HHII", 0x011A, 5, 1, 9999)  # XResolution's data "at" offset 9999
    tiff = b"II*\x00" + struct.pack("<IH", 8, 2) + entries + struct.pack("<I", 0)
    return save(Image.new("RGB", (64, 48), (200, 100, 50)), "JPEG", exif=b"Exif\x00\x00" + tiff)


def test_malformed_exif_tags_are_read_without_pillow_warnings():
    # `evaluate` and `classify` printed Pillow's "Metadata Warning, tag 274 had too many entries" and
    # "Tag data larger than file" lines; the tags are skipped either way, so nobody needs to read them.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_image(malformed_exif_jpeg())
    assert [str(w.message) for w in caught] == []
    assert loaded.image.size == (48, 64)  # the first orientation value, 6, still turns it upright


def test_other_warnings_still_show_outside_exif_reading():
    with pytest.warns(UserWarning, match="a real problem"):
        load_image(malformed_exif_jpeg())
        warnings.warn("a real problem", UserWarning, stacklevel=1)


def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    data = save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    red, green, blue = load_image(data).image.getpixel((8, 8))
    assert red > 200 and green < 60 and blue < 60


BAD = {
    "empty": (b"", ImageRejected, "empty"),
    "random bytes": (os.urandom(2048), ImageRejected, "not an image"),
    "text named jpg": (b"hello, I am a text file\n" * 20, ImageRejected, "not an image"),
    "truncated jpeg": (photo(size=(200, 200))[:600], ImageRejected, "truncated"),
    "truncated png": (photo(size=(200, 200), fmt="PNG")[:80], ImageRejected, "corrupt"),
    "zero-width gif": (b"GIF89a\x00\x00\x20\x00\xf1\x03\x00\x00\x00\x00" + b"\x00" * 40, ImageRejected, "no pixels"),
    "decompression bomb": (bomb_png(), ImageTooLarge, "10,000,000,000 pixels"),
    "over the pixel limit": (bomb_png(10_000, 5_000), ImageTooLarge, "10,000 × 5,000 pixels"),
    "tiff": (save(Image.new("RGB", (8, 8)), "TIFF"), UnsupportedImageType, "TIFF"),
    "bmp": (save(Image.new("RGB", (8, 8)), "BMP"), UnsupportedImageType, "BMP"),
}


@pytest.mark.parametrize("kind", BAD)
def test_bad_files_are_refused_with_a_clear_message(kind):
    data, error, words = BAD[kind]
    with pytest.raises(error) as caught:
        load_image(data)
    assert words in str(caught.value)
    assert "Traceback" not in str(caught.value)


def test_pixel_limit_is_configurable():
    with pytest.raises(ImageTooLarge, match="3,000 pixels"):
        load_image(photo(size=(100, 100)), max_pixels=3000)


def test_byte_limit_is_checked_before_reading(tmp_path):
    path = tmp_path / "big.jpg"
    path.write_bytes(photo(size=(300, 300)))
    with pytest.raises(ImageTooLarge, match="limit is"):
        load_image(path, max_bytes=1000)


def test_file_objects_paths_and_bytes_give_the_same_content_id(tmp_path):
    data = photo()
    path = tmp_path / "dish.jpg"
    path.write_bytes(data)
    ids = {load_image(data).content_id, load_image(path).content_id, load_image(io.BytesIO(data)).content_id}
    assert ids == {content_id(data)}
    assert len(content_id(data)) == 64


def test_missing_file_is_a_clear_refusal(tmp_path):
    with pytest.raises(ImageRejected, match="no file"):
        load_image(tmp_path / "nope.jpg")


@pytest.mark.parametrize(
    "raw, shown",
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\pho\x00to.jpg", "photo.jpg"),
        ("", "photo"),
        ("sushi 🍣 .jpg", "sushi 🍣 .jpg"),
    ],
)
def test_display_names_are_never_paths(raw, shown):
    assert display_name(raw) == shown


def test_find_images_expands_folders_and_ignores_non_photos(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.jpg").write_bytes(photo())
    (tmp_path / "b.PNG").write_bytes(photo(fmt="PNG"))
    (tmp_path / "notes.txt").write_text("not a photo")
    found = find_images([tmp_path])
    assert sorted(p.name for p in found) == ["b.PNG", "x.jpg"]


@pytest.mark.skipif(not HOSTILE_IMAGES.is_dir(), reason="../shared/data/hostile-images is absent")
@pytest.mark.parametrize("name", sorted(os.listdir(HOSTILE_IMAGES)) if HOSTILE_IMAGES.is_dir() else [])
def test_shared_hostile_files_load_or_are_refused_clearly(name):
    try:
        loaded = load_image(HOSTILE_IMAGES / name)
    except ImageRejected as err:
        assert str(err).endswith(".") and len(str(err)) < 200
    else:
        assert loaded.image.mode == "RGB" and loaded.width > 0 and loaded.height > 0
        if "orientation_rectangle" in name:
            assert (loaded.width, loaded.height) == (1, 2)


def test_a_big_photo_is_decoded_at_the_model_scale_but_reports_its_full_size():
    big = photo(size=(2000, 1200))
    loaded = load_image(big)
    assert (loaded.width, loaded.height) == (2000, 1200)
    assert loaded.image.size == model_scale((2000, 1200)) == (round(2000 * MODEL_SIDE / 1200), MODEL_SIDE)
    assert loaded.content_id == content_id(big)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "GIF"])
def test_other_formats_are_brought_to_the_same_scale(fmt):
    loaded = load_image(save(Image.new("RGB", (1800, 900), (200, 100, 50)), fmt))
    assert loaded.image.size == (MODEL_SIDE * 2, MODEL_SIDE)
    assert loaded.image.mode == "RGB"


def test_a_small_photo_is_kept_as_it_is():
    loaded = load_image(photo(size=(320, 240)))
    assert loaded.image.size == (320, 240)


def test_the_full_size_of_a_rotated_photo_is_kept():
    image = Image.new("RGB", (1600, 900), (200, 100, 50))
    exif = Image.Exif()
    exif[0x0112] = 6
    loaded = load_image(save(image, "JPEG", exif=exif.tobytes()))
    assert (loaded.width, loaded.height) == (900, 1600)
    assert loaded.image.width == MODEL_SIDE < loaded.image.height
