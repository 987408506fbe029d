import numpy as np
import pytest
from PIL import Image

from tf_twohead.data.images import load_rgb


def _landscape():
    """A 40x20 image: left half red, right half blue (so orientation is visible)."""
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)
    arr[:, 20:] = (0, 0, 255)
    return Image.fromarray(arr)


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    _landscape().save(path, exif=exif, quality=100)
    out = load_rgb(path)
    assert out.shape == (40, 20, 3)  # displayed upright: portrait
    top, bottom = out[2, 10], out[-3, 10]
    assert top[0] > 200 and top[2] < 60      # red on top after the rotation
    assert bottom[2] > 200 and bottom[0] < 60


@pytest.mark.parametrize("mode, fmt, suffix", [
    ("L", "JPEG", "jpg"), ("CMYK", "JPEG", "jpg"), ("RGBA", "PNG", "png"),
    ("P", "GIF", "gif"), ("I;16", "PNG", "png"), ("LA", "PNG", "png"), ("RGB", "BMP", "bmp"),
    ("1", "PNG", "png"),
])
def test_any_mode_becomes_rgb_uint8(tmp_path, mode, fmt, suffix):
    rng = np.random.default_rng(0)
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65535, (24, 24), dtype=np.uint16))
    else:
        img = Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).convert(mode)
    path = tmp_path / f"x.{suffix}"
    img.save(path, format=fmt)
    out = load_rgb(path, 32)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    if mode == "I;16":
        assert out.max() > 200  # the 16-bit range is scaled, not clipped to white/black


def test_transparent_pixels_become_white(tmp_path):
    path = tmp_path / "t.png"
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(path)
    assert (load_rgb(path) == 255).all()


def test_large_jpeg_is_resized(tmp_path):
    path = tmp_path / "big.jpg"
    _landscape().resize((1600, 800)).save(path)
    out = load_rgb(path, 64)
    assert out.shape == (64, 64, 3)
    assert out[32, 5, 0] > 200 and out[32, 60, 2] > 200


def test_truncated_and_garbage_files_raise(tmp_path):
    good = tmp_path / "good.jpg"
    _landscape().resize((200, 100)).save(good)
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(good.read_bytes()[:400])
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"not an image at all")
    for path in (truncated, garbage):
        with pytest.raises(OSError):
            load_rgb(path, 32)
