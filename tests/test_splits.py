import numpy as np
import pytest
from conftest import write_image

from tf_twohead.data.problems import apply_bad_image_policy
from tf_twohead.data.splits import DataError, read_split
from tf_twohead.data.targets import encode_targets


def _images(root, *paths):
    for p in paths:
        write_image(root / p, 8)


@pytest.mark.parametrize("text", [
    "a dir/x 1.jpg,0\nb/y.jpg,2\n",                      # headerless, spaces in paths
    "path,label\na dir/x 1.jpg,0\nb/y.jpg,2\n",          # header
    "a dir/x 1.jpg|0\nb/y.jpg|2\n",                      # pipe separated
    "\ufeffa dir/x 1.jpg,0\r\n\r\nb/y.jpg, 2\r\n",       # BOM, CRLF, blank line, space
])
def test_csv_variants(tmp_path, text):
    _images(tmp_path, "a dir/x 1.jpg", "b/y.jpg")
    (tmp_path / "train.csv").write_text(text, encoding="utf-8")
    rows, problems = read_split(tmp_path / "train.csv", 3)
    assert problems == []
    assert [(r.path, r.class_id) for r in rows] == [("a dir/x 1.jpg", 0), ("b/y.jpg", 2)]


def test_bad_rows_are_reported_with_file_line_and_path(tmp_path):
    _images(tmp_path, "ok.jpg")
    (tmp_path / "train.csv").write_text(
        "ok.jpg,0\nmissing.jpg,1\nok.jpg,7\nok.jpg,x\nonly-one-field\nok.jpg,1,extra\n")
    rows, problems = read_split(tmp_path / "train.csv", 3)
    assert len(rows) == 1
    found = {(p.line, p.reason) for p in problems}
    assert found == {(2, "missing file"), (3, "unknown class id"), (4, "malformed row"),
                     (5, "malformed row"), (6, "malformed row")}
    with pytest.raises(DataError) as err:
        apply_bad_image_policy("error", problems, "train split")
    text = str(err.value)
    assert "train.csv:2: 'missing.jpg' missing file" in text
    assert "train.csv:3: 'ok.jpg' unknown class id: 7 is not in 0..2" in text
    assert "data.on_bad_image=skip" in text


def test_skip_policy_summarises_instead_of_raising(tmp_path):
    _images(tmp_path, "ok.jpg")
    (tmp_path / "val.csv").write_text("ok.jpg,0\nmissing.jpg,1\nnope.jpg,2\nok.jpg,9\n")
    _, problems = read_split(tmp_path / "val.csv", 3)
    summary = apply_bad_image_policy("skip", problems, "val split")
    assert summary == "val split: skipped 3 bad rows (2 missing file, 1 unknown class id)."


def test_missing_split_file_says_what_is_expected(tmp_path):
    with pytest.raises(DataError, match=r"test.csv.*relative/path.jpg,class_id"):
        read_split(tmp_path / "test.csv", 3)


def test_target_mapping():
    ids = np.array([0, 1, 2, 2, 1])
    two = encode_targets(ids, "two_head", {"main": [2], "aux": [1]}, 3)
    assert two["main"].ravel().tolist() == [0, 0, 1, 1, 0]
    assert two["aux"].ravel().tolist() == [0, 1, 0, 0, 1]
    assert two["main"].shape == (5, 1) and two["main"].dtype == np.float32
    multi = encode_targets(ids, "two_head", {"any": [1, 2]}, 3)
    assert multi["any"].ravel().tolist() == [0, 1, 1, 1, 1]
    soft = encode_targets(ids, "softmax", {"main": [2]}, 3)
    assert soft["probs"].tolist()[1] == [0, 1, 0]
