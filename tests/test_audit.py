"""`tf-twohead data audit`: duplicates and leakage across splits, label conflicts,
cleanlab's label issues from out-of-fold models, the clean copy, and bad input."""

import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import write_dataset
from PIL import Image

import tf_twohead as tt
from tf_twohead.auditing.near import hamming, near_pairs
from tf_twohead.cli import main


def test_the_index_finds_every_pair_a_brute_force_finds():
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**63, 3000, dtype=np.int64).astype(np.uint64)
    for k in range(40):  # near copies at 0..8 bits
        flips = rng.choice(64, k % 9, replace=False)
        hashes[2000 + k] = hashes[k] ^ np.uint64(sum(1 << int(b) for b in flips))
    found = {(int(i), int(j)) for i, j, _ in near_pairs(hashes, 8)}
    brute = {(i, j) for i in range(len(hashes)) for j in
             (np.nonzero(hamming(hashes[i], hashes[i + 1:]) <= 8)[0] + i + 1).tolist()}
    assert found == brute and len(found) >= 40


def _plant(root):
    """A test image copied into train, a val image resampled and recompressed into train
    (pHash a few bits away; these noise images move more under crops than photos do),
    and a train image duplicated inside train under another class id."""
    def add(split, rel, class_id):
        with open(root / f"{split}.csv", "a") as f:
            f.write(f"{rel},{class_id}\n")

    shutil.copy(root / "screens/test 0.jpg", root / "screens/leak exact.jpg")
    add("train", "screens/leak exact.jpg", 2)
    with Image.open(root / "documents/val 1.jpg") as img:
        img.resize((48, 48)).resize((40, 40)).save(root / "documents/leak near.jpg",
                                                    quality=80)
    add("train", "documents/leak near.jpg", 0)
    shutil.copy(root / "documents/train 2.jpg", root / "screens/conflict.jpg")
    add("train", "screens/conflict.jpg", 2)


@pytest.fixture
def planted(tmp_path):
    root = write_dataset(tmp_path / "ds")
    _plant(root)
    return root


def test_duplicates_leakage_first_and_label_conflicts(planted, tmp_path):
    result = tt.audit(planted, img_size=32, progress=False,
                      overrides=[f"data.cache_dir={tmp_path / 'cache'}"])
    dup = result.duplicates
    leaked = dup[dup["leakage"]]
    assert set(leaked["path"]) == {"screens/leak exact.jpg", "screens/test 0.jpg",
                                   "documents/leak near.jpg", "documents/val 1.jpg"}
    assert set(dup[dup["leaked"]]["path"]) == {"screens/leak exact.jpg",
                                               "documents/leak near.jpg"}  # the train copies
    kinds = leaked.groupby("group")["kind"].first().sort_values().tolist()
    assert kinds == ["exact", "near"]
    assert dup["leakage"].iloc[:4].all()  # leakage is listed first
    conflict = dup[dup["label_conflict"]]
    assert set(conflict["path"]) == {"documents/train 2.jpg", "screens/conflict.jpg"}
    assert not conflict["leakage"].any()
    for name in ("duplicates.csv", "balance.csv", "summary.md", "leakage.png"):
        assert (planted / "audit" / name).is_file(), name
    assert not (planted / "audit" / "label_issues.csv").exists()  # not asked for
    assert "**Leakage**: 2 groups" in result.summary
    assert "2 rows are direct copies" in result.summary
    assert pd.read_csv(planted / "audit" / "duplicates.csv")["leakage"].sum() == 4
    assert result.balance.set_index("split").loc["train", "images"] == 21


def test_the_clean_copy_leaves_out_exactly_the_leaked_train_rows(planted, tmp_path):
    before = {p.name: p.read_bytes() for p in planted.glob("*.csv")}
    out = tmp_path / "clean"
    result = tt.audit(planted, img_size=32, write_clean=out, progress=False,
                      overrides=[f"data.cache_dir={tmp_path / 'cache'}"])
    assert {p.name: p.read_bytes() for p in planted.glob("*.csv")} == before  # untouched
    original = pd.read_csv(planted / "train.csv", header=None)
    clean = pd.read_csv(out / "train.csv", header=None)
    assert set(original[0]) - set(clean[0]) == {"screens/leak exact.jpg",
                                                "documents/leak near.jpg"}
    assert (out / "val.csv").read_bytes() == before["val.csv"]
    assert result.clean == {"train": 19, "val": 18, "test": 18}
    assert all((out / p).is_file() for p in clean[0])  # a dataset folder of its own
    # and the loader takes it as one: a second audit of the copy finds no leakage
    again = tt.audit(out, img_size=32, progress=False,
                     overrides=[f"data.cache_dir={tmp_path / 'cache'}"])
    assert not again.duplicates["leakage"].any()


def test_flagged_labels_leave_only_train_and_evaluation_splits_stay_whole():
    from tf_twohead.auditing.cleaned import rows_to_drop

    found = pd.DataFrame({"split": ["train", "test", "val", "test"], "line": [3, 5, 4, 9],
                          "leaked": [True, False, True, False], "group": [0, 0, 1, 1]})
    issues = pd.DataFrame({"split": ["train", "val", "test"], "line": [7, 2, 1]})
    assert rows_to_drop(found, issues, False) == {("train", 3), ("val", 4)}
    assert rows_to_drop(found, issues, True) == {("train", 3), ("val", 4), ("train", 7)}


@pytest.mark.slow
def test_cleanlab_flags_planted_flips_with_out_of_fold_models(tmp_path):
    root = write_dataset(tmp_path / "ds", per_class=(16, 16, 16))
    lines = (root / "train.csv").read_text().splitlines()
    flipped = {1: 2, 17: 0, 33: 1}  # row -> wrong class id
    for row, wrong in flipped.items():
        lines[row] = lines[row].rsplit(",", 1)[0] + f",{wrong}"
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    result = tt.audit(root, folds=2, epochs=8, img_size=32, progress=False, overrides=[
        f"data.cache_dir={tmp_path / 'cache'}", "train.batch_size=16",
        "train.learning_rate=0.003", "train.lr_step_epochs=100", "data.rotation=0"])
    issues = result.label_issues
    planted = {("train", row + 1) for row in flipped}  # CSV lines count from 1
    found = set(zip(issues["split"], issues["line"]))
    assert len(planted & found) >= 2, issues
    assert len(found) <= 3 * len(planted)  # precision: not everything is flagged
    hit = issues[[(s, ln) in planted for s, ln in zip(issues["split"], issues["line"])]]
    original = {("train", row + 1): row // 16 for row in flipped}  # 16 rows per class
    assert all(r.suggested_id == original[r.split, r.line] for r in hit.itertuples())
    assert {"class", "main", "aux"} & set("+".join(issues["flagged_by"]).split("+"))
    assert (root / "audit" / "label_issues.csv").is_file()
    assert (root / "audit" / "label_issues.png").is_file()


def test_bad_input_is_the_same_one_report_as_train(tmp_path, capsys):
    root = write_dataset(tmp_path / "ds")
    (root / "val.csv").unlink()
    assert main(["data", "audit", str(root)]) == 2
    err = capsys.readouterr().err
    assert "val.csv" in err and len(err.strip().splitlines()) == 1
    root = write_dataset(tmp_path / "ds2")
    with open(root / "test.csv", "a") as f:
        f.write("screens/test 0.jpg,7\nnot a row\n")
    assert main(["data", "audit", str(root), f"data.cache_dir={tmp_path / 'c'}"]) == 2
    err = capsys.readouterr().err
    assert "test.csv:20" in err and "test.csv:19" in err
    assert main(["data", "audit", str(root), "--folds", "1"]) == 2
    assert "--folds" in capsys.readouterr().err
