"""Hostile `.pth` files: tensors that reach past their storage, absurd geometry,
truncated and corrupted archives. The reader must refuse each with a `WeightsError`
naming the tensor (or the file), never read memory it does not own, never crash."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from pth_writer import Storage, Tensor, contiguous, write_pth

from tf_twohead import cli
from tf_twohead.core.errors import WeightsError
from tf_twohead.pretrained.torchfile import read_state_dict


def four_floats():
    return Storage("0", np.arange(4, dtype=np.float32))


@pytest.mark.parametrize("size, stride, offset, why", [
    ((65536,), (1,), 0, "past the 4 its storage holds"),  # would read process memory
    ((2, 2), (1 << 40, 1), 0, "past the 4"),  # a huge stride (segfaulted before)
    ((4,), (-1,), 3, "negative size, stride or offset"),
    ((4,), (1,), -2, "negative size, stride or offset"),
    ((-1,), (1,), 0, "negative size, stride or offset"),
    ((1 << 40,), (0,), 0, "more than 1024 MiB"),  # stride 0: a tiny storage, a huge copy
    ((2, 2), (1,), 0, "one stride per size"),
    ((2.5,), (1,), 0, "must be integers"),
    ((1,) * 9, (1,) * 9, 0, "at most 8"),
])
def test_geometry_past_the_storage_is_refused_naming_the_tensor(tmp_path, size, stride,
                                                                offset, why):
    path = tmp_path / "evil.pth"
    write_pth(path, {"conv1.0.weight": Tensor(four_floats(), offset, size, stride)})
    with pytest.raises(WeightsError, match=why) as err:
        read_state_dict(path)
    assert "tensor 'conv1.0.weight'" in str(err.value)


def test_a_storage_shorter_than_it_declares_is_refused(tmp_path):
    path = tmp_path / "short.pth"
    write_pth(path, {"w": Tensor(Storage("0", np.zeros(2, np.float32), numel=1000), 0,
                                 (2,), (1,))})
    with pytest.raises(WeightsError, match="declares 1,000 elements .* holds 8 bytes"):
        read_state_dict(path)


def test_the_cli_says_one_line_instead_of_crashing(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    write_pth(path, {"conv1.0.weight": Tensor(four_floats(), 0, (65536,), (1,))})
    assert cli.main(["weights", "import-torchvision", str(path), "--width", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "tensor 'conv1.0.weight'" in err and "Traceback" not in err


def reference(storage: np.ndarray, offset, size, stride):
    """What torch would give for a valid geometry: element by element."""
    index = np.full(size, offset, dtype=np.int64)
    for axis, (n, s) in enumerate(zip(size, stride)):
        shape = [1] * len(size)
        shape[axis] = n
        index = index + (np.arange(n) * s).reshape(shape)
    return storage[index]


def test_fuzz_random_geometry_is_read_exactly_or_refused(tmp_path):
    rng = np.random.default_rng(0)
    for case in range(300):
        values = rng.standard_normal(int(rng.integers(0, 40))).astype(np.float32)
        dims = int(rng.integers(0, 4))
        size = tuple(int(v) for v in rng.integers(-2, 7, dims))
        stride = tuple(int(v) for v in rng.integers(-2, 9, dims))
        offset = int(rng.integers(-3, 45))
        numel = len(values) if rng.random() < 0.8 else int(rng.integers(0, 80))
        path = tmp_path / f"{case}.pth"
        write_pth(path, {"t": Tensor(Storage("0", values, numel), offset, size, stride)})
        try:
            got = read_state_dict(path)["t"]
        except WeightsError:
            continue
        want = reference(values[:numel], offset, size, stride)
        np.testing.assert_array_equal(got, want, err_msg=f"case {case}")


def test_fuzz_truncated_and_corrupted_archives_are_refused(tmp_path):
    good = tmp_path / "good.pth"
    write_pth(good, {"a": contiguous("0", np.ones((3, 4))), "b": contiguous("1", np.ones(5))})
    data = good.read_bytes()
    rng = np.random.default_rng(1)
    cases = [data[:n] for n in rng.integers(0, len(data), 60)]
    for _ in range(150):
        flipped = bytearray(data)
        for i in rng.integers(0, len(data), int(rng.integers(1, 8))):
            flipped[i] = int(rng.integers(0, 256))
        cases.append(bytes(flipped))
    for i, blob in enumerate(cases):
        path = tmp_path / f"case{i}.pth"
        path.write_bytes(blob)
        try:
            arrays = read_state_dict(path)
        except WeightsError:
            continue
        for array in arrays.values():  # a flip in a value is still a valid file
            assert array.size <= 12


def test_a_zip_member_that_unpacks_past_the_bound_is_refused_before_reading(tmp_path):
    path = tmp_path / "bomb.pth"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"\0" * (65 << 20))  # 64 KiB compressed
    assert path.stat().st_size < 1 << 20
    with pytest.raises(WeightsError, match="unpacks to"):
        read_state_dict(path)
