import numpy as np
import pytest
from peak_memory import peak_mb
from PIL import Image

from tf_twohead.data.images import RESAMPLE, draft_scale, load_rgb, to_rgb


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


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_alpha_images_shrink_before_compositing_to_the_same_picture(tmp_path, mode):
    """Resizing first (Pillow premultiplies alpha) then compositing on white gives what
    compositing at full size then resizing gave, within rounding."""
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (120, 90, 4), dtype=np.uint8)
    rgba[:40, :, 3] = 0  # a transparent band, a half-transparent one, an opaque rest
    rgba[40:80, :, 3] = 128
    rgba[80:, :, 3] = 255
    img = Image.fromarray(rgba, "RGBA")
    if mode == "LA":
        img = img.convert("LA")
    elif mode == "P":
        img = img.convert("P", palette=Image.Palette.ADAPTIVE)
        img.info["transparency"] = 0
    path = tmp_path / f"a.{mode}.png"
    img.save(path)
    with Image.open(path) as saved:
        full = to_rgb(saved.convert("RGBA") if mode == "P" else saved)
        before = np.asarray(full.resize((32, 32), RESAMPLE), np.int16)
    after = load_rgb(path, 32).astype(np.int16)
    assert np.abs(after - before).max() <= 2


def test_a_big_rgba_png_decodes_in_twice_its_pixels(tmp_path):
    """40 MP RGBA (inside the budget, 160 MB decoded): the decoded image and one
    premultiplied copy, not the five full-size copies (+764 MB) compositing first took."""
    path = tmp_path / "big.png"
    Image.new("RGBA", (8000, 5000), (10, 200, 30, 128)).save(path, compress_level=1)
    extra, outcome = peak_mb("from tf_twohead.data.images import load_rgb",
                             f"assert load_rgb({str(path)!r}, 64).shape == (64, 64, 3)")
    assert outcome == "done" and extra < 400, (extra, outcome)


def test_large_jpeg_is_resized(tmp_path):
    path = tmp_path / "big.jpg"
    _landscape().resize((1600, 800)).save(path)
    out = load_rgb(path, 64)
    assert out.shape == (64, 64, 3)
    assert out[32, 5, 0] > 200 and out[32, 60, 2] > 200


@pytest.mark.parametrize("width, height, size, scale", [
    (640, 480, 256, 2),    # 320x240 has more pixels than 256x256, both sides >= 192
    (640, 480, 224, 2),
    (640, 480, 64, 8),     # 80x60: 4,800 pixels >= 64x64, the short side >= 48
    (640, 480, 96, 4),     # 1/8 would have fewer pixels than 96x96
    (4032, 3024, 256, 8),  # a 12 MP phone photo
    (4000, 500, 256, 2),   # a panorama: 1/4 would leave 125 px, under 3/4 of 256
    (300, 200, 256, 1),    # smaller than twice the target: full scale
])
def test_draft_scale_keeps_at_least_the_targets_pixels(width, height, size, scale):
    assert draft_scale(width, height, size) == scale


def test_reduced_scale_decode_is_close_to_the_full_decode(tmp_path):
    """The draft-mode decode of a smooth photo matches the full decode after resizing,
    within JPEG noise: the pixels a model sees barely move."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
    Image.fromarray(small).resize((640, 480), Image.Resampling.BICUBIC).save(
        tmp_path / "p.jpg", quality=95)
    fast = load_rgb(tmp_path / "p.jpg", 256).astype(float)
    with Image.open(tmp_path / "p.jpg") as img:  # full scale, the same resize
        full = np.asarray(img.convert("RGB").resize((256, 256), Image.Resampling.BILINEAR),
                          float)
    assert fast.shape == (256, 256, 3)
    assert np.abs(fast - full).mean() < 2.0


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
