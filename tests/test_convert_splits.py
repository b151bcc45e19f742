"""Subject-wise deterministic splits (data_prep.splits)."""

import pytest

from data_prep import splits


def test_deterministic_and_seeded():
    subjects = [f"p{i}" for i in range(20)]
    a = splits.assign_splits(subjects, (0.7, 0.15, 0.15), seed=0)
    assert a == splits.assign_splits(list(reversed(subjects)) * 2, (0.7, 0.15, 0.15), seed=0)
    assert a != splits.assign_splits(subjects, (0.7, 0.15, 0.15), seed=1)
    counts = {s: sum(v == s for v in a.values()) for s in splits.SPLITS}
    assert counts == {"train": 14, "validation": 3, "test": 3}


@pytest.mark.parametrize("n", [3, 4, 5, 7])
def test_every_split_non_empty_with_three_subjects(n):
    a = splits.assign_splits([f"s{i}" for i in range(n)], (0.8, 0.1, 0.1), seed=3)
    assert set(a.values()) == set(splits.SPLITS)
    assert len(a) == n


def test_zero_fraction_split_stays_empty():
    a = splits.assign_splits([f"s{i}" for i in range(6)], (0.5, 0.0, 0.5))
    assert "validation" not in a.values()


def test_parse_fractions():
    assert splits.parse_fractions("0.8,0.1,0.1") == (0.8, 0.1, 0.1)
    for bad in ("0.5,0.5", "0.5,0.6,0.1", "a,b,c", "-0.1,0.6,0.5"):
        with pytest.raises(ValueError, match="--split-fractions"):
            splits.parse_fractions(bad)
