"""`tf-twohead data audit`: duplicates and leakage across splits, label conflicts,
cleanlab's label issues from out-of-fold models, the clean copy, and bad input."""

import io
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import SHALLOW, write_dataset
from PIL import Image

import tf_twohead as tt
from tf_twohead.auditing.near import closest_only, hamming, near_pairs, phash_array, variant_hashes
from tf_twohead.auditing.verify import DEFAULT_SIMILARITY, gray, similarity
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


def test_each_image_keeps_its_closest_candidate_pairs():
    pairs = np.array([[0, 1, 2], [0, 2, 0], [0, 3, 4], [1, 2, 6], [2, 3, 1]])
    # closest of image 0: (0, 2); of 1: (0, 1); of 2: (0, 2); of 3: (2, 3)
    assert closest_only(pairs, 1).tolist() == [True, True, False, False, True]
    assert closest_only(pairs, 3).all()


def _picture(rng, base=None, texture=20.0):
    """A 64 px grey picture: smooth shapes (`base`) and fine texture. Two pictures of one
    base are look-alikes: pHash a few bits apart, their detail unrelated."""
    from scipy.ndimage import gaussian_filter

    if base is None:
        base = gaussian_filter(rng.normal(size=(64, 64)), 6)
        base = (base - base.min()) / np.ptp(base) * 180 + 40
    fine = gaussian_filter(rng.normal(size=(64, 64)), 1) * texture
    return base, np.clip(base + fine, 0, 255).astype(np.uint8)


def _edited(image, crop=2, angle=4.0, quality=90):
    """What people do to a copy: crop and resize back, rotate, recompress."""
    img = Image.fromarray(image).crop((crop, crop, 64 - crop, 64 - crop)).resize((64, 64))
    img = img.rotate(angle, resample=Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf))


def test_the_pixel_check_tells_an_edited_copy_from_a_look_alike():
    rng = np.random.default_rng(1)
    images = []
    for k in range(4):
        base, original = _picture(rng)
        images += [original, _edited(original, crop=1 + k % 2, angle=(-1) ** k * (1 + k)),
                   _picture(rng, base)[1]]
    images = np.stack(images)
    copies = [[3 * k, 3 * k + 1] for k in range(4)]
    look_alikes = [[3 * k, 3 * k + 2] for k in range(4)]
    hashes = phash_array(np.repeat(images[..., None], 3, axis=-1))
    assert all(hamming(hashes[i], hashes[j]) <= 8 for i, j in look_alikes)  # pHash: alike
    scores = similarity(gray(images), np.array(copies + look_alikes))
    assert (scores[:4] >= DEFAULT_SIMILARITY).all(), scores
    assert (scores[4:] < 0.7).all(), scores


def test_the_variant_hashes_bring_a_cropped_rotated_copy_closer():
    rng = np.random.default_rng(1)
    originals = np.stack([_picture(rng, texture=60.0)[1] for _ in range(8)])
    copies = np.stack([_edited(x, crop=3, angle=3.0, quality=90) for x in originals])
    hashes = phash_array(np.repeat(np.concatenate([originals, copies])[..., None], 3, -1))
    variants = variant_hashes(gray(copies))
    plain = hamming(hashes[:8], hashes[8:])
    through = np.min([hamming(hashes[:8], variants[:, v]) for v in range(variants.shape[1])], 0)
    assert through.mean() < plain.mean() - 2, (plain, through)


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


def test_a_look_alike_across_splits_is_not_leakage_and_an_edited_copy_is(tmp_path):
    root = write_dataset(tmp_path / "ds")
    rng = np.random.default_rng(2)
    base, original = _picture(rng)
    pictures = {"train": original, "test": _picture(rng, base)[1], "val": _edited(original)}
    for split, image in pictures.items():
        Image.fromarray(image).save(root / f"documents/picture {split}.jpg", quality=95)
        with open(root / f"{split}.csv", "a") as f:
            f.write(f"documents/picture {split}.jpg,0\n")
    result = tt.audit(root, img_size=64, progress=False,
                      overrides=[f"data.cache_dir={tmp_path / 'cache'}"])
    dup = result.duplicates
    assert set(dup[dup["leakage"]]["path"]) == {"documents/picture train.jpg",
                                                "documents/picture val.jpg"}
    assert "documents/picture test.jpg" not in set(dup["path"])
    assert not any(row.kind == "near" and row.similarity < DEFAULT_SIMILARITY
                   for row in dup.itertuples())
    rejected = result.summary.split(" checked pairs across splits were look-alikes")[0]
    assert int(rejected.rsplit(" ", 1)[1].replace(",", "")) >= 1


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
    from tf_twohead.auditing.clean_copy import rows_to_drop

    found = pd.DataFrame({"split": ["train", "test", "val", "test"], "line": [3, 5, 4, 9],
                          "leaked": [True, False, True, False], "group": [0, 0, 1, 1]})
    issues = pd.DataFrame({"split": ["train", "val", "test"], "line": [7, 2, 1]})
    assert rows_to_drop(found, issues, False) == {("train", 3), ("val", 4)}
    assert rows_to_drop(found, issues, True) == {("train", 3), ("val", 4), ("train", 7)}


def test_cleanlab_flags_rows_whose_out_of_sample_probabilities_disagree():
    # The flagging itself, on probabilities fixed here: the same on every CPU (the fold
    # models' own numerics differ between AVX2 and AVX-512 machines).
    from tf_twohead.auditing.labels import audits, find_issues, head_scores

    rng = np.random.default_rng(0)
    true = np.repeat([0, 1, 2], 20)
    given = true.copy()
    flipped = {1: 2, 21: 0, 41: 1}
    for row, wrong in flipped.items():
        given[row] = wrong
    probs = np.full((60, 3), 0.05) + rng.uniform(0, 0.05, (60, 3))
    probs[np.arange(60), true] = 0.9
    probs /= probs.sum(axis=1, keepdims=True)
    names = ["document", "not a document", "screen"]
    table = pd.DataFrame({"split": "train", "line": np.arange(1, 61),
                          "path": [f"{i}.jpg" for i in range(60)], "class_id": given,
                          "class_name": [names[i] for i in given]})
    heads = {"main": [2], "aux": [1]}
    for head, ids in heads.items():
        table[f"answer_{head}"] = np.isin(given, ids).astype(np.float32)
    scores = head_scores(probs, heads)
    issues = find_issues(table, audits(table, probs, scores, heads), probs, scores, heads,
                         names)
    assert set(issues["line"]) == {row + 1 for row in flipped}, issues
    assert dict(zip(issues["line"] - 1, issues["suggested_id"])) == {r: int(true[r])
                                                                     for r in flipped}
    assert {"class", "main", "aux"} & set("+".join(issues["flagged_by"]).split("+"))


@pytest.mark.slow
def test_out_of_fold_models_score_every_row_and_write_the_label_report(tmp_path):
    root = write_dataset(tmp_path / "ds", per_class=(16, 16, 16))
    lines = (root / "train.csv").read_text().splitlines()
    flipped = {1: 2, 17: 0, 33: 1}  # row -> wrong class id
    for row, wrong in flipped.items():
        lines[row] = lines[row].rsplit(",", 1)[0] + f",{wrong}"
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    result = tt.audit(root, folds=2, epochs=8, img_size=32, progress=False, overrides=[
        f"data.cache_dir={tmp_path / 'cache'}", "train.batch_size=16", SHALLOW,
        "train.learning_rate=0.003", "train.lr_step_epochs=100", "data.rotation=0"])
    issues = result.label_issues
    # Which rows the small fold models flag depends on the CPU's numerics; what they
    # write does not: a ranked table over rows of the dataset, its CSV and its sheet.
    assert list(issues.columns[:5]) == ["split", "line", "path", "given_id", "given_class"]
    assert {"suggested_id", "p_main", "p_aux", "score", "flagged_by"} <= set(issues.columns)
    assert issues["score"].is_monotonic_increasing and issues["score"].between(0, 1).all()
    assert len(issues) <= 144 // 2  # precision: not everything is flagged
    assert (root / "audit" / "label_issues.csv").is_file()
    assert (root / "audit" / "label_issues.png").is_file() or issues.empty


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
    for flag, value in (("--threshold", "40"), ("--min-similarity", "1.5"), ("--per-image", "0")):
        assert main(["data", "audit", str(root), flag, value]) == 2
        err = capsys.readouterr().err
        assert flag in err and len(err.strip().splitlines()) == 1


def test_the_command_line_defaults_are_the_library_defaults():
    from tf_twohead.auditing.near import DEFAULT_THRESHOLD, PER_IMAGE
    from tf_twohead.cli.parser import build

    args = build().parse_args(["data", "audit", "somewhere"])
    assert (args.threshold, args.min_similarity, args.per_image) == (
        DEFAULT_THRESHOLD, DEFAULT_SIMILARITY, PER_IMAGE)
