"""Hostile and careless datasets: rows that leave the dataset folder, decompression
bombs, broken CSVs, a full disk, splits a head cannot learn from, duplicate images."""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
import pytest
from conftest import tiny_config, write_dataset, write_image
from peak_memory import peak_mb
from PIL import Image

from tf_twohead import cli
from tf_twohead.core.errors import DataError
from tf_twohead.core.fileio import reserve_space
from tf_twohead.data.cache import load_split
from tf_twohead.data.checks import duplicates
from tf_twohead.data.images import ImageRefused, load_rgb
from tf_twohead.data.pipeline import checked_splits
from tf_twohead.data.splits import read_split


def add_rows(root, split, *rows):
    with open(root / f"{split}.csv", "a") as f:
        for row in rows:
            f.write(row + "\n")


def test_rows_that_leave_the_dataset_folder_are_bad_rows_that_reveal_nothing(tmp_path):
    root = write_dataset(tmp_path / "ds", per_class=(2, 2, 2), splits=("train",))
    write_image(tmp_path / "outside.jpg")
    (root / "documents" / "link.jpg").symlink_to(tmp_path / "outside.jpg")
    add_rows(root, "train", "/etc/passwd,0", "../outside.jpg,0", "../no such file.jpg,0",
             "documents/link.jpg,0", "documents/../documents/train 0.jpg,0")
    rows, problems = read_split(root / "train.csv", 3)
    outside = [p for p in problems if p.reason == "outside the dataset folder"]
    assert [p.path for p in outside] == ["/etc/passwd", "../outside.jpg",
                                         "../no such file.jpg", "documents/link.jpg"]
    # An existing and a missing target outside get the same words: nothing is probed.
    assert len({(p.reason, p.detail) for p in outside}) == 1
    assert "documents/../documents/train 0.jpg" in [r.path for r in rows]  # stays inside


def test_unreadable_paths_and_csvs_are_named_not_tracebacks(tmp_path):
    root = write_dataset(tmp_path / "ds", per_class=(2, 2, 2), splits=("train",))
    add_rows(root, "train", "x" * 300 + ".jpg,0")
    _, problems = read_split(root / "train.csv", 3)
    assert problems[-1].reason == "unreadable path" and "too long" in problems[-1].detail
    (root / "val.csv").write_text("a.jpg," + "9" * 200_000 + "\n")
    with pytest.raises(DataError, match=r"val.csv:1: unreadable CSV .*field larger"):
        read_split(root / "val.csv", 3)
    (root / "test.csv").write_bytes("documents/caf\xe9.jpg,0\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"test.csv: not UTF-8 text \(byte 0xe9"):
        read_split(root / "test.csv", 3)


def png_header_only(path, width, height, bit_depth=16):
    """A tiny PNG whose header declares `width` x `height` (a decompression bomb's shape)."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))
    return path


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_images_over_the_pixel_budget_are_refused_before_decoding(tmp_path):
    bomb = png_header_only(tmp_path / "bomb.png", 12000, 12000)
    assert bomb.stat().st_size < 2000
    with pytest.raises(ImageRefused, match="144.0 MP, over the 40 MP budget"):
        load_rgb(bomb, 32)
    root = write_dataset(tmp_path / "ds", per_class=(2, 2, 2), splits=("train",))
    png_header_only(root / "documents" / "bomb.png", 12000, 12000)
    add_rows(root, "train", "documents/bomb.png,0")
    with pytest.raises(DataError, match=r"bomb.png' undecodable image: ImageRefused"):
        load_split(root, "train", 32, 3, cache_dir=tmp_path / "cache", progress=False)
    # The budget is a config key: a small one refuses ordinary images too.
    with pytest.raises(DataError, match="over the 0.0001 MP budget"):
        load_split(root, "train", 32, 3, cache_dir=tmp_path / "cache", progress=False,
                   max_pixels=100)


def test_sixteen_bit_images_scale_their_range_without_a_float64_copy(tmp_path):
    ramp = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 7 + 1000)
    Image.fromarray(ramp).save(tmp_path / "ramp.png")  # uint16: mode I;16
    rgb = load_rgb(tmp_path / "ramp.png")
    assert rgb.dtype == np.uint8 and rgb.shape == (64, 64, 3)
    assert rgb.min() == 0 and rgb.max() == 255  # the real range, not clipped
    want = np.rint((ramp.astype(np.float64) - ramp.min()) / np.ptp(ramp) * 255)
    assert np.abs(rgb[..., 0].astype(int) - want).max() <= 1


def test_a_full_disk_is_a_clear_error_before_the_cache_is_written(tmp_path):
    target = tmp_path / "images.npy"
    target.write_bytes(b"")
    with pytest.raises(DataError, match=r"Not enough disk space for the cache in .*: "
                                        r"1,125,899,906,842,624 bytes needed"):
        reserve_space(target, 1 << 50, "the cache")


def test_a_head_without_positives_stops_training_unless_allowed(tmp_path):
    root = write_dataset(tmp_path / "ds", per_class=(3, 3, 3))
    lines = (root / "val.csv").read_text().splitlines()
    (root / "val.csv").write_text("\n".join(ln for ln in lines if not ln.endswith(",2")) + "\n")
    cfg = tiny_config(tmp_path, root)
    with pytest.raises(DataError, match=r"(?s)val split: head 'main' \(positive class ids \[2\]\) "
                                        r"has no positive example.*allow_single_class"):
        checked_splits(cfg, ("train", "val"), progress=False)
    allowed = tiny_config(tmp_path, root, "data.allow_single_class=true")
    assert len(checked_splits(allowed, ("train", "val"), progress=False)["val"]) == 6


def test_exact_duplicates_within_and_across_splits_are_reported(tmp_path, capsys):
    root = write_dataset(tmp_path / "ds", per_class=(3, 3, 3))
    (root / "screens" / "copy.jpg").write_bytes((root / "screens" / "test 0.jpg").read_bytes())
    (root / "screens" / "copy2.jpg").write_bytes((root / "screens" / "train 1.jpg").read_bytes())
    add_rows(root, "train", "screens/copy.jpg,2", "screens/copy2.jpg,2")
    splits = checked_splits(tiny_config(tmp_path, root), ("train", "val", "test"), progress=False)
    groups = duplicates(splits)
    assert len(groups["across test/train"]) == 1 and len(groups["within train"]) == 1
    err = capsys.readouterr().err
    assert "warning: exact duplicate images" in err
    assert err.index("across test/train: 1 groups, 2 rows") < err.index("within train")


def test_cli_reports_data_problems_in_one_line_per_row(tmp_path, capsys):
    root = write_dataset(tmp_path / "ds", per_class=(2, 2, 2))
    add_rows(root, "train", "/etc/passwd,0")
    code = cli.main(["train", "--config", "configs/two_head.yaml", f"data.root={root}",
                     f"output_dir={tmp_path / 'runs'}", "data.img_size=32"])
    err = capsys.readouterr().err
    assert code == 2 and "'/etc/passwd' outside the dataset folder" in err
    assert "Traceback" not in err
    assert not os.path.exists(tmp_path / "runs" / "two_head" / "best.keras")


def test_a_split_past_max_rows_is_refused_before_it_is_parsed(tmp_path, capsys):
    root = write_dataset(tmp_path / "ds", per_class=(2, 2, 2))
    add_rows(root, "val", *[f"screens/val {i % 2}.jpg,2" for i in range(20)])
    with pytest.raises(DataError, match=r"val.csv: 26 lines, more than data.max_rows=24 "):
        read_split(root / "val.csv", 3, max_rows=24)  # refused before parsing
    with pytest.raises(DataError, match=r"val.csv: 26 rows, more than data.max_rows=25 "):
        read_split(root / "val.csv", 3, max_rows=25)  # one line fewer would be a header
    assert len(read_split(root / "val.csv", 3, max_rows=26)[0]) == 26
    code = cli.main(["train", "--config", "configs/two_head.yaml", f"data.root={root}",
                     f"output_dir={tmp_path / 'runs'}", "data.img_size=32", "data.max_rows=10"])
    err = capsys.readouterr().err
    assert code == 2 and "val.csv: 26 lines, more than data.max_rows=10" in err
    assert len(err.strip().splitlines()) == 1


def test_many_rows_read_in_memory_proportional_to_the_rows(tmp_path):
    """200,000 rows (the issue's 1 M took 93 s and 352 MB): well under 100 MB, checked
    by folder listings and set look-ups, not one resolve per row."""
    root = tmp_path / "ds"
    (root / "screens").mkdir(parents=True)
    for i in range(100):
        (root / "screens" / f"{i}.jpg").write_bytes(b"x")
    (root / "train.csv").write_text("".join(f"screens/{i % 101}.jpg,{i % 3}\n"
                                            for i in range(200_000)))
    extra, outcome = peak_mb("from tf_twohead.data.splits import read_split", f"""
        rows, problems = read_split({str(root / 'train.csv')!r}, 3)
        assert (len(rows), len(problems)) == (198_020, 1_980), (len(rows), len(problems))
        assert problems[0].reason == "missing file" and problems[0].line == 101
        """)
    assert outcome == "done" and extra < 100, (extra, outcome)


def test_the_fast_path_check_agrees_with_the_full_one(tmp_path):
    """Every spelling a row can take gets the same answer from the folder listing as from
    resolving it: links in and out, '..', '.', '//', absolute, a folder that is a file."""
    from tf_twohead.data.rowpaths import PathChecker

    root = write_dataset(tmp_path / "ds", per_class=(1, 1, 1))
    outside = write_image(tmp_path / "outside.jpg")
    (root / "out").symlink_to(tmp_path)  # a folder link leading out
    (root / "docs").symlink_to(root / "documents")  # and one staying in
    (root / "documents" / "link.jpg").symlink_to(outside)
    (root / "documents" / "inner.jpg").symlink_to(root / "screens" / "train 0.jpg")
    (root / "documents" / "folder.jpg").mkdir()
    spellings = ["documents/train 0.jpg", "docs/train 0.jpg", "out/outside.jpg",
                 "documents/link.jpg", "documents/inner.jpg", "documents/folder.jpg",
                 "documents/../screens/train 0.jpg", "./documents/train 0.jpg",
                 "documents//train 0.jpg", str(root / "documents" / "train 0.jpg"),
                 "/documents/train 0.jpg", "train.csv", "documents/train 0.jpg/x",
                 "nothing/train 0.jpg", "documents/nothing.jpg", "out/../train.csv"]
    checker = PathChecker(root)
    for path in spellings:
        assert checker.problem(path) == checker.full_check(path), path


def test_a_small_gzip_idx_cannot_unpack_gigabytes(tmp_path, capsys):
    """A 1 MB gzip of zeros declaring 60,000 x 1,000 x 1,000 images used 2.2 GB: the
    header's shape is bounded before a byte of data is read."""
    import gzip

    source = tmp_path / "idx"
    source.mkdir()
    for prefix, n in (("train", 60_000), ("t10k", 10_000)):
        with gzip.open(source / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(bytes([0, 0, 8, 3]) + b"".join(v.to_bytes(4, "big") for v in (n, 1000, 1000)))
            f.write(bytes(32 << 20))  # what follows the header does not matter: unread
        with gzip.open(source / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(bytes([0, 0, 8, 1]) + n.to_bytes(4, "big") + bytes(n))
    extra, outcome = peak_mb("from tf_twohead.data.sources import load_fashion_mnist",
                             f"load_fashion_mnist({str(source)!r})")
    assert outcome.startswith("DataError") and "more than the 256 MiB" in outcome
    assert extra < 50, extra
    code = cli.main(["data", "fashion-mnist", str(tmp_path / "out"), "--source", str(source)])
    err = capsys.readouterr().err
    assert code == 2 and "train-images-idx3-ubyte.gz declares shape (60000, 1000, 1000)" in err
    assert "Traceback" not in err
