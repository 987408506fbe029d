"""Hostile `.pth` files: tensors that reach past their storage, absurd geometry,
truncated and corrupted archives. The reader must refuse each with a `WeightsError`
naming the tensor (or the file), never read memory it does not own, never crash."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from peak_memory import peak_mb
from pth_writer import Storage, Tensor, contiguous, write_pth

from tf_twohead import cli
from tf_twohead.core.errors import WeightsError
from tf_twohead.pretrained.torchfile import read_state_dict


def four_floats():
    return Storage("0", np.arange(4, dtype=np.float32))


@pytest.mark.parametrize("size, stride, offset, why", [
    ((65536,), (1,), 0, "past the 4 its storage holds"),  # would read process memory
    ((2, 2), (1 << 39, 1), 0, "past the 4"),  # a huge stride (segfaulted before)
    ((4,), (-1,), 3, "negative size, stride or offset"),
    ((4,), (1,), -2, "negative size, stride or offset"),
    ((-1,), (1,), 0, "negative size, stride or offset"),
    ((1 << 36,), (0,), 0, "more than 1024 MiB"),  # stride 0: a tiny storage, a huge copy
    ((4,), (1 << 40,), 0, "over 2\\*\\*40"),
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


def stride_zero_tensors(count: int, values: int = 1 << 27):
    """`count` tensors of `values` floats each, all one stored float repeated (stride 0)."""
    one = Storage("0", np.ones(1, np.float32))
    return {f"layer{i}.weight": Tensor(one, 0, (values,), (0,)) for i in range(count)}


def test_zero_strides_cannot_make_a_small_file_allocate_gigabytes(tmp_path):
    path = tmp_path / "repeat.pth"
    write_pth(path, stride_zero_tensors(8))  # 8 x 512 MiB of arrays from 4 stored bytes
    assert path.stat().st_size < 2000
    with pytest.raises(WeightsError, match="tensor 'layer0.weight'.*values repeated by zero"):
        read_state_dict(path)
    extra, outcome = peak_mb("from tf_twohead.pretrained.torchfile import read_state_dict",
                             f"read_state_dict({str(path)!r})")
    assert outcome.startswith("TorchFileError") and extra < 100, (extra, outcome)


def test_a_few_tied_weights_still_load(tmp_path):
    """Two names for one storage (tied weights) are legitimate: twice the stored bytes."""
    shared = contiguous("0", np.arange(6, dtype=np.float32).reshape(2, 3))
    path = tmp_path / "tied.pth"
    write_pth(path, {"encoder.weight": shared, "decoder.weight": shared})
    arrays = read_state_dict(path)
    np.testing.assert_array_equal(arrays["encoder.weight"], arrays["decoder.weight"])


HUGE = 1 << (8 * 20000)  # a 20,000-byte integer: arithmetic on such ran for minutes


@pytest.mark.parametrize("offset, size, stride, numel", [
    (0, (HUGE, 2), (1, 1), None), (0, (2, 2), (HUGE, HUGE), None), (HUGE, (2,), (1,), None),
    (0, (2,), (1,), HUGE),
], ids=["size", "stride", "offset", "numel"])
def test_huge_integers_are_refused_before_any_arithmetic(tmp_path, offset, size, stride, numel):
    path = tmp_path / "huge.pth"
    storage = Storage("0", np.arange(4, dtype=np.float32), numel=numel)
    write_pth(path, {"fc.weight": Tensor(storage, offset, size, stride)})
    why = r"tensor .fc.weight.*(over 2\*\*40|declares 2\*\*160000\+)"
    with pytest.raises(WeightsError, match=why) as err:
        read_state_dict(path)
    assert len(str(err.value)) < 400


def test_an_encrypted_storage_is_refused_naming_the_tensor(tmp_path):
    path = tmp_path / "locked.pth"
    write_pth(path, {"fc.weight": contiguous("0", np.ones(4))})
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        local = archive.getinfo("archive/data/0").header_offset
    central = data.rindex(b"PK\x01\x02")  # the last member's entry in the directory
    data[local + 6] |= 1  # the "encrypted" flag bit, where an encrypting zip tool sets it
    data[central + 8] |= 1
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="tensor 'fc.weight'.*encrypted"):
        read_state_dict(path)
