"""`summary.md`: what the audit found, the worst first, with the tables behind it."""

from __future__ import annotations

import pandas as pd

from tf_twohead.auditing.labels import WEAK_BALANCED_ACCURACY
from tf_twohead.core.tables import markdown_table

EXAMPLES = 10


def findings_lines(result, single_class: list[str], settings: dict) -> list[str]:
    """The findings, worst first, one Markdown bullet each: what `summary.md` opens with
    and what the command line prints."""
    dup = result.duplicates
    leaked = dup[dup["leakage"]] if len(dup) else dup
    conflicts = dup[dup["label_conflict"]] if len(dup) else dup
    return [f"- **Leakage**: {leaked['group'].nunique() if len(leaked) else 0} groups of "
            "copies span splits; "
            f"{int(dup['leaked'].sum()) if len(dup) else 0} rows are direct copies of a val "
            "or test image (the `leaked` rows: every figure on val/test is inflated by them).",
            f"- **Label conflicts**: {conflicts['group'].nunique() if len(conflicts) else 0} "
            "duplicate groups whose members carry different class ids.",
            f"- **Duplicates**: {dup['group'].nunique() if len(dup) else 0} groups in all "
            f"({_kinds(dup)}). " + _pairs_line(settings),
            "- **Likely label errors**: " + _issues_line(result.label_issues, settings)
            + _quality_line(result.model_quality),
            "- **Heads without both answers**: "
            + ("; ".join(single_class) if single_class else "none") + "."]


def summary_markdown(result, table: pd.DataFrame, single_class: list[str], settings: dict,
                     seconds: float) -> str:
    dup = result.duplicates
    leaked = dup[dup["leakage"]] if len(dup) else dup
    counts = table["split"].value_counts()
    lines = [f"# Data audit of {len(table):,} images",
             "",
             "Images per split: " + ", ".join(f"{s} {counts.get(s, 0):,}"
                                             for s in dict.fromkeys(table["split"])) + ".",
             f"Audited in {seconds:.1f} s: {seconds / max(len(table), 1) * 1e4 / 60:.1f} min "
             "per 10,000 images at this rate (reading and decoding "
             f"{settings['decode seconds']:.0f} s, hashing {settings['hash seconds']:.0f} s, "
             f"the index {settings['index seconds']:.0f} s, the pixel check "
             f"{settings['check seconds']:.0f} s; the rest is label-error models and the "
             "reports).",
             "",
             "## Findings, worst first",
             "",
             *findings_lines(result, single_class, settings),
             ""]
    if len(leaked):
        lines += ["## Leaked groups (first rows; all in duplicates.csv, pictures in leakage.png)",
                  "", markdown_table(leaked.head(EXAMPLES)[
                      ["group", "kind", "leaked", "similarity", "distance", "split", "line",
                       "path", "class_name"]]), ""]
    issues = result.label_issues
    if issues is not None and len(issues):
        cols = [c for c in ("split", "line", "path", "given_class", "suggested_class",
                            "score", "flagged_by") if c in issues]
        lines += ["## Likeliest label errors (all in label_issues.csv, pictures in "
                  "label_issues.png)", "", markdown_table(issues.head(EXAMPLES)[cols]), ""]
    if result.model_quality is not None:
        lines += ["## The models that judged the labels (out of sample)", "",
                  markdown_table(result.model_quality), "",
                  "Balanced accuracy is the mean recall over the answers (0.5 for a head "
                  f"whose model always says the same). Under {WEAK_BALANCED_ACCURACY} a "
                  "model is weak: it disagrees with right labels too, and its flags mix "
                  "label errors with its own mistakes. Each audit flags as many rows as "
                  "cleanlab estimates are mislabelled (`num_label_issues`), the least "
                  "likely labels first.", ""]
    lines += ["## Balance", "", markdown_table(result.balance), "",
              "## Image files", "", markdown_table(result.shapes), "",
              "## Settings", "",
              f"pHash threshold {settings['threshold']} bits of 64 (the image and 8 "
              f"edited versions); pixel check at least {settings['min_similarity']:g}; "
              "images hashed at "
              f"{settings['img_size']} px from the decode cache; "
              + (f"label errors from {settings['model']} (in-sample for its training split)"
                 if settings["model"] else
                 f"label errors from {settings['folds']} out-of-fold models, "
                 f"{settings['epochs']} epochs each" if settings["folds"] else
                 "no label-error audit (--folds K or --model RUN)") + ".", ""]
    return "\n".join(lines)


def _kinds(dup: pd.DataFrame) -> str:
    if not len(dup):
        return "none"
    kinds = dup.groupby("group")["kind"].first().value_counts()
    return ", ".join(f"{n} {k}" for k, n in kinds.items())


def _issues_line(issues, settings) -> str:
    if issues is None:
        return "not checked (pass --folds K to train K small models, or --model RUN)."
    if not len(issues):
        return "none flagged."
    by = issues["flagged_by"].str.split("+").explode().value_counts()
    return (f"{len(issues)} rows flagged by cleanlab ("
            + ", ".join(f"{k} {v}" for k, v in by.items()) + ").")


def _quality_line(quality) -> str:
    if quality is None or not len(quality):
        return ""
    shown = ", ".join(f"{r['audit']} {r['balanced accuracy']:.2f}"
                      for _, r in quality.iterrows())
    weak = quality[quality["weak"]]
    warning = (f" **The models are too weak to judge {', '.join(weak['audit'])}** (balanced "
               f"accuracy under {WEAK_BALANCED_ACCURACY}): read those flags as candidates, "
               "and train the fold models longer (--epochs) or larger (--img-size)."
               if len(weak) else "")
    return f" The judging models' out-of-sample balanced accuracy: {shown}.{warning}"


def _pairs_line(settings: dict) -> str:
    if settings["min_similarity"] <= -1:
        return (f"All {settings['candidates']:,} pHash candidate pairs count, unchecked "
                "(--min-similarity -1): look-alikes are counted as copies.")
    return (f"Of {settings['candidates']:,} pHash candidate pairs, {settings['checked']:,} "
            f"(each image's closest) were checked and {settings['confirmed']:,} passed the "
            f"pixel check; {settings['rejected across splits']:,} checked pairs across splits "
            "were look-alikes, not copies (not counted as leakage).")
