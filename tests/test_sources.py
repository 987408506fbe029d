import gzip

import numpy as np
import pytest

from tf_twohead.data.sources import FASHION_TO_CLASS, read_idx, write_fashion_mnist
from tf_twohead.data.splits import read_split


def write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def fake_fashion_mnist(folder, n_train=60, n_test=30):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28)))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return folder


def test_read_idx_round_trip_and_truncation(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", array)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), array)
    with gzip.open(tmp_path / "a.gz", "rb") as f:
        data = f.read()
    (tmp_path / "cut").write_bytes(data[:-5])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "cut")


def test_fashion_mnist_is_written_in_the_reference_layout(tmp_path):
    source = fake_fashion_mnist(tmp_path / "idx")
    counts = write_fashion_mnist(tmp_path / "ds", source, size=32, train=40, val=10, test=20,
                                 progress=False)
    assert counts == {"train": 40, "val": 10, "test": 20}
    rows, problems = read_split(tmp_path / "ds" / "train.csv", 3)
    assert problems == [] and len(rows) == 40
    assert {r.path.split("/")[0] for r in rows} == {"documents", "not a documents", "screens"}
    assert not (tmp_path / "ds" / "train.csv").read_text().startswith("0,")  # headerless


def test_fashion_mnist_keeps_its_10_classes_for_the_combined_demo(tmp_path):
    source = fake_fashion_mnist(tmp_path / "idx")  # labels 0..9 in turn
    write_fashion_mnist(tmp_path / "ds", source, size=32, train=40, val=10, test=30,
                        progress=False, classes=10)
    rows, problems = read_split(tmp_path / "ds" / "test.csv", 10)
    assert problems == [] and {r.class_id for r in rows} == set(range(10))
    by_folder = {r.path.split("/")[0]: r.class_id for r in rows}
    assert by_folder["T-shirt_top"] == 0 and by_folder["Shirt"] == 6
    with pytest.raises(ValueError, match="classes must be 3"):
        write_fashion_mnist(tmp_path / "x", source, classes=5, progress=False)


def test_class_mapping_makes_shirt_the_screen_class():
    assert FASHION_TO_CLASS[6] == 2  # Shirt: the hard main task
    assert {k for k, v in FASHION_TO_CLASS.items() if v == 1} == {1, 5, 7, 8, 9}
    assert sorted(FASHION_TO_CLASS) == list(range(10))


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="No Fashion-MNIST IDX files"):
        write_fashion_mnist(tmp_path / "ds", tmp_path, progress=False)
