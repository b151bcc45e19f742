"""Subject-wise, deterministic train/validation/test assignment."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

SPLITS = ("train", "validation", "test")


def parse_fractions(text: str) -> tuple[float, float, float]:
    """`"0.7,0.15,0.15"` → fractions of subjects for train, validation, test (sum 1)."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 0 or not np.isclose(sum(values), 1.0):
        raise ValueError(f"--split-fractions {text!r}: expected three non-negative numbers "
                         "summing to 1 (train,validation,test)")
    return values  # type: ignore[return-value]


def split_counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Subjects per split: largest-remainder rounding; with ≥ 3 subjects, no split with a
    positive fraction is left empty (subjects are taken from the largest split)."""
    raw = np.asarray(fractions, dtype=np.float64) * n
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    if n >= 3:
        for i in range(len(counts)):
            if fractions[i] > 0 and counts[i] == 0:
                counts[int(np.argmax(counts))] -= 1
                counts[i] = 1
    return counts.tolist()


def assign_splits(subjects: Iterable[str], fractions: Sequence[float] = (0.7, 0.15, 0.15),
                  seed: int = 0) -> dict[str, str]:
    """`{subject: split}`: the sorted subjects shuffled with `seed`, then cut by `fractions`.

    Depends only on the set of subjects, the fractions and the seed.
    """
    unique = sorted(set(subjects))
    order = np.random.default_rng(seed).permutation(len(unique))
    out, start = {}, 0
    for split, count in zip(SPLITS, split_counts(len(unique), fractions)):
        for k in order[start:start + count]:
            out[unique[k]] = split
        start += count
    return out
