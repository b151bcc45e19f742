"""HR metrics summary (ienet_jax.metrics) against hand-computed values."""

import math

import numpy as np
import pytest

from ienet_jax.metrics import summarize

PRED = [70.0, 80.0, 95.0, 60.0]
LABEL = [72.0, 78.0, 90.0, 61.0]  # errors e = pred − label = [−2, 2, 5, −1]


def test_summary_matches_hand_computation():
    out = summarize(PRED, LABEL, snr=[1.0, 2.0, 3.0, 4.0], macc=[0.5, 0.5, 0.5, 0.5])
    assert out["n"] == 4
    # |e| = [2, 2, 5, 1]: mean 2.5, population std 1.5 → SE 1.5 / √4.
    assert out["mae"] == pytest.approx(2.5)
    assert out["mae_se"] == pytest.approx(0.75)
    # e² = [4, 4, 25, 1]: mean 8.5, population std √92.25.
    assert out["rmse"] == pytest.approx(math.sqrt(8.5))
    assert out["rmse_se"] == pytest.approx(math.sqrt(math.sqrt(92.25) / 2))
    ape = [2 / 72, 2 / 78, 5 / 90, 1 / 61]
    mean_ape = sum(ape) / 4
    std_ape = math.sqrt(sum((a - mean_ape) ** 2 for a in ape) / 4)
    assert out["mape"] == pytest.approx(100 * mean_ape)
    assert out["mape_se"] == pytest.approx(100 * std_ape / 2)
    mp, ml = sum(PRED) / 4, sum(LABEL) / 4
    sxy = sum((p - mp) * (q - ml) for p, q in zip(PRED, LABEL))
    sxx = sum((p - mp) ** 2 for p in PRED)
    syy = sum((q - ml) ** 2 for q in LABEL)
    r = sxy / math.sqrt(sxx * syy)
    assert out["pearson"] == pytest.approx(r)
    assert out["pearson_se"] == pytest.approx(math.sqrt((1 - r * r) / 2))
    # Mean error 1; deviations [−3, 1, 4, −2] → sample SD √(30 / 3).
    assert out["ba_bias"] == pytest.approx(1.0)
    assert out["sd"] == pytest.approx(math.sqrt(10.0))
    assert out["ba_lower"] == pytest.approx(1.0 - 1.96 * math.sqrt(10.0))
    assert out["ba_upper"] == pytest.approx(1.0 + 1.96 * math.sqrt(10.0))
    # SNR [1, 2, 3, 4]: mean 2.5, population std √1.25 → SE √1.25 / 2.
    assert out["snr"] == pytest.approx(2.5)
    assert out["snr_se"] == pytest.approx(math.sqrt(1.25) / 2)
    assert out["macc"] == pytest.approx(0.5) and out["macc_se"] == pytest.approx(0.0)
    assert all(isinstance(v, float) for k, v in out.items() if k != "n")


def test_perfect_prediction_and_optional_keys():
    out = summarize(np.array(LABEL), np.array(LABEL))
    assert out["mae"] == out["rmse"] == out["mape"] == out["sd"] == 0.0
    assert out["pearson"] == pytest.approx(1.0)
    assert "snr" not in out and "macc" not in out


def test_undefined_quantities_are_none_for_tiny_n():
    one = summarize([70.0], [72.0])
    assert one["mae"] == 2.0 and one["ba_bias"] == -2.0
    assert one["pearson"] is None and one["pearson_se"] is None
    assert one["sd"] is None and one["ba_lower"] is None and one["ba_upper"] is None
    assert summarize([70.0, 75.0], [72.0, 74.0])["pearson"] is None  # SE needs N > 2


def test_standard_errors_of_one_value_are_none_not_zero():
    one = summarize([70.0], [72.0], snr=[3.0], macc=[0.4])
    assert one["mae"] == 2.0 and one["snr"] == 3.0 and one["macc"] == 0.4
    for key in ("mae_se", "rmse_se", "mape_se", "snr_se", "macc_se", "pearson"):
        assert one[key] is None, key
    two = summarize([70.0, 75.0], [72.0, 74.0], snr=[3.0, 5.0])
    # |e| = [2, 1], SNR [3, 5]: population SDs 0.5 and 1 over √2
    assert two["mae_se"] == pytest.approx(0.5 / 2**0.5) and two["snr_se"] == pytest.approx(2**-0.5)


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (([], []), {}, "empty"),
        (([70.0, 80.0], [70.0]), {}, "lengths differ"),
        (([70.0, np.nan], [70.0, 71.0]), {}, "NaN or inf"),
        (([[70.0]], [[70.0]]), {}, "1-D"),
        (([70.0, 80.0], [70.0, 0.0]), {}, "positive"),
        (([70.0, 80.0], [70.0, 71.0]), {"snr": [1.0]}, "snr has 1 values"),
        (([70.0, 80.0], [70.0, 71.0]), {"macc": [1.0, np.inf]}, "macc contains NaN"),
    ],
)
def test_bad_input_raises(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        summarize(*args, **kwargs)
