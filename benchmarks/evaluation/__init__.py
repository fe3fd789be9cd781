"""Scorer evaluation on the shipped data: random-split and out-of-source folds, ablations, buried prompts, int8."""
