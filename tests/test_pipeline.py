import numpy as np
import pytest
from conftest import tiny_config, write_dataset

from tf_twohead.data.cache import load_split
from tf_twohead.data.pipeline import checked_splits, datasets_for, make_dataset
from tf_twohead.data.splits import DataError
from tf_twohead.data.targets import encode_targets


def test_split_is_decoded_once_and_cached(dataset, tmp_path):
    cache = tmp_path / "cache"
    first = load_split(dataset, "train", 32, 3, cache_dir=cache, progress=False)
    assert first.images.shape == (18, 32, 32, 3) and first.images.dtype == np.uint8
    assert first.class_ids.tolist() == [0] * 6 + [1] * 6 + [2] * 6
    meta = next(cache.glob("train-32px-*/meta.json"))
    stamp = meta.stat().st_mtime_ns
    again = load_split(dataset, "train", 32, 3, cache_dir=cache, progress=False)
    assert meta.stat().st_mtime_ns == stamp  # reused, not rebuilt
    np.testing.assert_array_equal(first.images, again.images)
    # A changed image file gives a new cache, never stale pixels.
    (dataset / first.rows[0].path).write_bytes((dataset / first.rows[7].path).read_bytes())
    changed = load_split(dataset, "train", 32, 3, cache_dir=cache, progress=False)
    np.testing.assert_array_equal(changed.images[0], first.images[7])


def _corrupt(dataset):
    (dataset / "screens" / "val 1.jpg").write_bytes(b"\xff\xd8\xff garbage")
    good = (dataset / "screens" / "val 2.jpg").read_bytes()
    (dataset / "screens" / "val 3.jpg").write_bytes(good[: len(good) // 3])  # truncated
    csv = dataset / "val.csv"
    csv.write_text(csv.read_text() + "screens/gone.jpg,2\nscreens/val 0.jpg,5\n")


def test_one_report_names_bad_rows_and_bad_images_together(dataset, tmp_path):
    _corrupt(dataset)
    with pytest.raises(DataError) as err:
        load_split(dataset, "val", 32, 3, cache_dir=tmp_path / "c", progress=False)
    text = str(err.value)
    # Row problems and undecodable images come in one report, in CSV line order.
    expected = ["val.csv:14: 'screens/val 1.jpg' undecodable image",
                "val.csv:16: 'screens/val 3.jpg' undecodable image",
                "val.csv:19: 'screens/gone.jpg' missing file",
                "val.csv:20: 'screens/val 0.jpg' unknown class id"]
    positions = [text.index(line) for line in expected]
    assert positions == sorted(positions)
    assert "4 bad rows (2 undecodable image, 1 missing file, 1 unknown class id)" in text


def test_one_report_covers_every_split(dataset, tmp_path):
    from conftest import tiny_config

    from tf_twohead.data.pipeline import checked_splits

    _corrupt(dataset)
    (dataset / "documents" / "test 2.jpg").write_bytes(b"not an image")
    cfg = tiny_config(tmp_path, dataset)
    with pytest.raises(DataError) as err:
        checked_splits(cfg, ("train", "val", "test"), progress=False)
    text = str(err.value)
    assert "val split" in text and "test split" in text and "train split" not in text
    assert "test.csv:3: 'documents/test 2.jpg' undecodable image" in text
    assert "val.csv:19: 'screens/gone.jpg' missing file" in text
    assert text.count("data.on_bad_image=skip") == 1


def test_skip_drops_bad_rows_and_says_why(dataset, tmp_path):
    _corrupt(dataset)
    data = load_split(dataset, "val", 32, 3, "skip", tmp_path / "c", progress=False)
    assert len(data) == 16 and len(data.images) == 16
    assert data.dropped.endswith(
        "skipped 4 bad rows (2 undecodable image, 1 missing file, 1 unknown class id).")
    assert all(r.path not in ("screens/val 1.jpg", "screens/val 3.jpg") for r in data.rows)


def test_batches_are_uint8_with_named_targets(dataset, tmp_path):
    data = load_split(dataset, "train", 32, 3, cache_dir=tmp_path / "c", progress=False)
    targets = encode_targets(data.class_ids, "two_head", {"main": [2], "aux": [1]}, 3)
    ds = make_dataset(data, targets, batch_size=8, training=True, seed=1, rotation=10)
    batches = list(ds)
    assert [len(b[0]) for b in batches] == [8, 8, 2]
    x, y = batches[0]
    assert x.dtype == "uint8" and tuple(x.shape[1:]) == (32, 32, 3)
    assert sorted(y) == ["aux", "main"] and tuple(y["main"].shape) == (8, 1)
    # Every image appears once per epoch, with its own targets.
    seen = np.concatenate([b[1]["main"].numpy().ravel() for b in batches])
    assert seen.sum() == 6


def test_training_order_is_seeded_and_eval_order_is_fixed(dataset, tmp_path):
    data = load_split(dataset, "train", 32, 3, cache_dir=tmp_path / "c", progress=False)
    targets = {"id": data.class_ids.astype(np.float32)[:, None]}

    def order(**kw):
        return np.concatenate([b[1]["id"].numpy().ravel() for b in
                               make_dataset(data, targets, 4, **kw)]).tolist()

    assert order(training=True, seed=3) == order(training=True, seed=3)
    assert order() == data.class_ids.tolist()


def test_pos_weight_yields_sample_weights(dataset, tmp_path):
    cfg = tiny_config(tmp_path, dataset, "train.pos_weight={main: 4.0}")
    split = checked_splits(cfg, ("val",), progress=False)["val"]
    x, y, w = next(iter(datasets_for(cfg, split).unbatch().batch(100)))
    main = y["main"].numpy().ravel()
    np.testing.assert_array_equal(w["main"].numpy(), np.where(main == 1, 4.0, 1.0))
    np.testing.assert_array_equal(w["aux"].numpy(), np.ones_like(main))


def test_augmentation_rotates_but_keeps_dtype_and_range(tmp_path):
    root = write_dataset(tmp_path / "d", per_class=(4, 0, 0), splits=("train",))
    data = load_split(root, "train", 32, 3, cache_dir=tmp_path / "c", progress=False)
    targets = {"t": np.zeros((4, 1), np.float32)}
    plain = next(iter(make_dataset(data, targets, 4)))[0].numpy()
    rotated = next(iter(make_dataset(data, targets, 4, training=True, rotation=10)))[0]
    assert rotated.dtype == "uint8"
    assert not np.array_equal(np.sort(plain.ravel()), np.sort(rotated.numpy().ravel()))
