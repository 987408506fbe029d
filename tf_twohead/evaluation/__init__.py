"""Results: `evaluate` a model on a split (`evaluate`), the numbers (`scores`), the
figures it writes (`figures`) and several runs side by side (`compare`)."""
