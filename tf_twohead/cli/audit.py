"""`tf-twohead data audit ROOT`: the audit's command line, its arguments checked before
TensorFlow loads."""

from __future__ import annotations

from pathlib import Path


def audit_command(args) -> int:
    from tf_twohead.config import load_config
    from tf_twohead.data.splits import split_csv
    from tf_twohead.errors import ConfigError, DataError

    root = Path(args.root)
    missing = [str(split_csv(root, s)) for s in ("train", "val", "test")
               if not split_csv(root, s).is_file()]
    if missing:
        raise DataError(f"{root}: no {', '.join(missing)}. data audit reads a dataset folder "
                        "with train, val and test CSV files.")
    if not 0 <= args.threshold < 32:
        raise ConfigError(f"--threshold {args.threshold}: a pHash distance in 0..31 bits.")
    if not -1 <= args.min_similarity <= 1:
        raise ConfigError(f"--min-similarity {args.min_similarity}: a correlation in [-1, 1] "
                          "(-1 keeps every pHash candidate).")
    if args.per_image < 1:
        raise ConfigError(f"--per-image {args.per_image}: check at least 1 pair per image.")
    if args.folds == 1 or args.folds < 0:
        raise ConfigError(f"--folds {args.folds}: use 0 (no label-error audit) or K >= 2.")
    if args.folds and args.model:
        raise ConfigError("--folds and --model both score labels; pass one of them.")
    if args.drop_label_issues and not args.write_clean:
        raise ConfigError("--drop-label-issues applies to --write-clean DIR; pass both.")
    if args.write_clean and Path(args.write_clean).exists() and any(
            Path(args.write_clean).iterdir()):
        raise DataError(f"--write-clean {args.write_clean} is not empty; choose a new folder.")
    load_config(args.config or "two_head", [f"data.root={root}", *args.overrides])  # keys
    from tf_twohead.auditing import audit

    result = audit(root, args.config, args.out, threshold=args.threshold,
                   min_similarity=args.min_similarity, per_image=args.per_image,
                   folds=args.folds, epochs=args.epochs,
                   img_size=args.img_size, model=args.model, write_clean=args.write_clean,
                   drop_label_issues=args.drop_label_issues, overrides=args.overrides)
    headline = result.summary.split("## Findings, worst first")[1].split("\n## ")[0]
    print(headline.strip())
    print(f"Wrote {result.out}/: summary.md, duplicates.csv, balance.csv"
          + (", label_issues.csv" if result.label_issues is not None else "")
          + ", and the contact sheets of what it found")
    return 0
