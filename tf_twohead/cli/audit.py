"""`tf-twohead data audit ROOT`: the audit's command line, its arguments checked (by
`auditing.options`, as the library checks them) before TensorFlow loads."""

from __future__ import annotations

from pathlib import Path


def audit_command(args) -> int:
    from tf_twohead.auditing.options import check_options
    from tf_twohead.config import load_config

    root = Path(args.root)
    check_options(root, threshold=args.threshold, min_similarity=args.min_similarity,
                  per_image=args.per_image, folds=args.folds, model=args.model,
                  write_clean=args.write_clean, drop_label_issues=args.drop_label_issues,
                  out=args.out)
    load_config(args.config or "two_head", [f"data.root={root}", *args.overrides])  # keys
    from tf_twohead.auditing.run import audit

    result = audit(root, args.config, args.out, threshold=args.threshold,
                   min_similarity=args.min_similarity, per_image=args.per_image,
                   folds=args.folds, epochs=args.epochs,
                   img_size=args.img_size, model=args.model, write_clean=args.write_clean,
                   drop_label_issues=args.drop_label_issues, overrides=args.overrides)
    print("\n".join(result.headline))
    print(f"Wrote {result.out}/: summary.md, duplicates.csv, balance.csv"
          + (", label_issues.csv" if result.label_issues is not None else "")
          + ", and the contact sheets of what it found")
    return 0
