"""limen.metrics: result dicts checked against hand-computed values."""

import math

import numpy as np
import pandas as pd
import pytest

from limen.metrics import balanced_metric, binary_metrics, continuous_metrics, multiclass_metrics

# Binary example: TP = 3 (rows 0, 3, 6), FP = 2 (rows 1, 5), FN = 1 (row 2), TN = 4.
Y_BINARY = [1, 0, 1, 1, 0, 0, 1, 0, 0, 0]
PREDS_BINARY = [1, 1, 0, 1, 0, 1, 1, 0, 0, 0]
# Positive scores 0.9, 0.4, 0.8, 0.7 against negatives 0.6, 0.3, 0.55, 0.2, 0.1, 0.45:
# 0.9, 0.8 and 0.7 beat all six negatives, 0.4 beats three, so AUC = 21 / 24.
PROBS_BINARY = [0.9, 0.6, 0.4, 0.8, 0.3, 0.55, 0.7, 0.2, 0.1, 0.45]

# Multiclass example. Per class (precision, recall): 0 -> (1/2, 1/2), 1 -> (2/3, 1), 2 -> (1, 1/2).
Y_MULTI = [0, 0, 1, 1, 2, 2]
PREDS_MULTI = [0, 1, 1, 1, 2, 0]
# One-vs-rest AUC: class 0 = 7/8 (0.4 loses to 0.5), classes 1 and 2 = 1.
PROBS_MULTI = [
    [0.7, 0.2, 0.1],
    [0.4, 0.5, 0.1],
    [0.2, 0.7, 0.1],
    [0.1, 0.8, 0.1],
    [0.1, 0.1, 0.8],
    [0.5, 0.1, 0.4],
]


def _data(y_test):
    return {"x_test": np.zeros((len(y_test), 1)), "y_test": y_test}


# binary_metrics


def test_binary_metrics_match_hand_computed_values():
    metrics = binary_metrics(_data(Y_BINARY), PREDS_BINARY, PROBS_BINARY)
    assert metrics == pytest.approx(
        {"recall": 3 / 4, "precision": 3 / 5, "fpr": 2 / 6, "auc": 21 / 24, "accuracy": 7 / 10}
    )


def test_binary_metrics_are_plain_unrounded_floats():
    metrics = binary_metrics(_data(Y_BINARY), PREDS_BINARY, PROBS_BINARY)
    assert all(type(value) is float for value in metrics.values())
    assert metrics["fpr"] == 1 / 3


def test_binary_metrics_accept_pandas_and_predict_proba_output():
    y_test = pd.Series(Y_BINARY, name="target")
    probs = np.column_stack([1 - np.array(PROBS_BINARY), PROBS_BINARY])
    metrics = binary_metrics(_data(y_test), np.array(PREDS_BINARY), probs)
    assert metrics["auc"] == pytest.approx(21 / 24)
    assert binary_metrics(_data(y_test.to_frame()), PREDS_BINARY)["precision"] == 3 / 5


def test_binary_auc_is_nan_without_probs():
    assert math.isnan(binary_metrics(_data(Y_BINARY), PREDS_BINARY)["auc"])


def test_binary_auc_is_nan_when_y_test_has_one_class():
    metrics = binary_metrics(_data([1, 1, 1]), [1, 0, 1], [0.9, 0.2, 0.7])
    assert math.isnan(metrics["auc"])
    assert math.isnan(metrics["fpr"])
    assert metrics["recall"] == 2 / 3


def test_binary_precision_is_zero_when_nothing_is_predicted_positive():
    metrics = binary_metrics(_data([1, 0, 0]), [0, 0, 0])
    assert metrics["precision"] == 0.0
    assert metrics["recall"] == 0.0
    assert metrics["fpr"] == 0.0


def test_binary_metrics_reject_labels_other_than_zero_and_one():
    with pytest.raises(ValueError, match=r"'preds' must hold binary labels 0 and 1.*\[2\]"):
        binary_metrics(_data([0, 1, 1]), [0, 1, 2])


def test_binary_metrics_name_both_lengths_on_mismatch():
    with pytest.raises(ValueError, match=r"'preds' has 3 rows but 'y_test' has 4"):
        binary_metrics(_data([0, 1, 1, 0]), [0, 1, 1])


def test_binary_metrics_name_probs_length_on_mismatch():
    with pytest.raises(ValueError, match=r"'probs' has 2 rows but 'y_test' has 3"):
        binary_metrics(_data([0, 1, 1]), [0, 1, 1], [0.1, 0.9])


def test_metrics_name_a_missing_y_test():
    with pytest.raises(KeyError, match="y_test"):
        binary_metrics({"x_test": [[1.0]]}, [1])


# multiclass_metrics


def test_multiclass_metrics_match_hand_computed_values():
    metrics = multiclass_metrics(_data(Y_MULTI), PREDS_MULTI, PROBS_MULTI)
    assert metrics == pytest.approx(
        {
            "precision": (1 / 2 + 2 / 3 + 1) / 3,
            "recall": (1 / 2 + 1 + 1 / 2) / 3,
            "auc": (7 / 8 + 1 + 1) / 3,
            "accuracy": 4 / 6,
        }
    )
    assert all(type(value) is float for value in metrics.values())


def test_multiclass_micro_average_equals_accuracy():
    metrics = multiclass_metrics(_data(Y_MULTI), PREDS_MULTI, average="micro")
    assert metrics["precision"] == pytest.approx(4 / 6)
    assert metrics["recall"] == pytest.approx(4 / 6)


def test_multiclass_auc_averages_only_classes_present_in_y_test():
    probs = [[0.7, 0.2, 0.1], [0.1, 0.5, 0.4], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1]]
    # Class 0: 0.7 beats both negatives, 0.1 ties one (0.5) -> 2.5 / 4. Class 1: 1. Class 2 absent.
    metrics = multiclass_metrics(_data([0, 0, 1, 1]), [0, 1, 1, 1], probs)
    assert metrics["auc"] == pytest.approx((2.5 / 4 + 1) / 2)


def test_multiclass_auc_is_nan_when_no_class_is_computable():
    probs = [[0.2, 0.8], [0.6, 0.4]]
    assert math.isnan(multiclass_metrics(_data([1, 1]), [1, 0], probs)["auc"])
    assert math.isnan(multiclass_metrics(_data([1, 1]), [1, 0])["auc"])


def test_multiclass_classes_name_the_probs_columns():
    names = {0: "down", 1: "flat", 2: "up"}
    y_test = [names[label] for label in Y_MULTI]
    preds = [names[label] for label in PREDS_MULTI]
    reordered = np.array(PROBS_MULTI)[:, [2, 0, 1]]
    metrics = multiclass_metrics(_data(y_test), preds, reordered, classes=["up", "down", "flat"])
    assert metrics["auc"] == pytest.approx((7 / 8 + 1 + 1) / 3)
    assert metrics["precision"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)


def test_multiclass_rejects_an_unknown_average():
    message = (
        "The 'average' parameter of multiclass_metrics must be one of 'macro', 'micro', "
        "'weighted'. Got 'binary' instead."
    )
    with pytest.raises(ValueError, match=message):
        multiclass_metrics(_data(Y_MULTI), PREDS_MULTI, average="binary")


def test_multiclass_rejects_probs_without_one_column_per_class():
    with pytest.raises(ValueError, match=r"'probs' must have one column per class"):
        multiclass_metrics(_data(Y_MULTI), PREDS_MULTI, [0.1] * 6)
    with pytest.raises(ValueError, match=r"'classes' names 2 classes but 'probs' has 3 columns"):
        multiclass_metrics(_data(Y_MULTI), PREDS_MULTI, PROBS_MULTI, classes=[0, 1])


def test_multiclass_metrics_name_both_lengths_on_mismatch():
    with pytest.raises(ValueError, match=r"'preds' has 5 rows but 'y_test' has 6"):
        multiclass_metrics(_data(Y_MULTI), PREDS_MULTI[:5])


# continuous_metrics


def test_continuous_metrics_match_hand_computed_values():
    # Errors (pred - y): 1, 0, 1, -1. Mean y = 1.75, SS_tot = 8.75, SS_res = 3.
    # MAPE skips the zero target: (1/1 + 0/2 + 1/4) / 3.
    metrics = continuous_metrics(_data(np.array([1.0, 2.0, 0.0, 4.0])), [2.0, 2.0, 1.0, 3.0])
    assert metrics == pytest.approx(
        {
            "bias": 1 / 4,
            "mae": 3 / 4,
            "rmse": math.sqrt(3 / 4),
            "r2": 1 - 3 / 8.75,
            "mape": 100 * 1.25 / 3,
        }
    )
    assert all(type(value) is float for value in metrics.values())


def test_continuous_bias_is_negative_when_predictions_undershoot():
    assert continuous_metrics(_data(pd.Series([2.0, 4.0])), [1.0, 2.0])["bias"] == -1.5


def test_continuous_mape_is_nan_when_every_target_is_zero():
    assert math.isnan(continuous_metrics(_data([0.0, 0.0]), [1.0, -1.0])["mape"])


def test_continuous_r2_is_nan_for_a_single_row():
    metrics = continuous_metrics(_data([3.0]), [2.0])
    assert math.isnan(metrics["r2"])
    assert metrics["mae"] == 1.0


def test_continuous_metrics_name_both_lengths_on_mismatch():
    with pytest.raises(ValueError, match=r"'preds' has 1 rows but 'y_test' has 2"):
        continuous_metrics(_data([1.0, 2.0]), [1.0])


def test_continuous_metrics_name_a_missing_y_test():
    with pytest.raises(KeyError, match="y_test"):
        continuous_metrics({"y_val": [1.0]}, [1.0])


# balanced_metric


def test_balanced_metric_is_precision_times_root_of_positive_rate():
    # Precision 3/5; 5 of 10 rows predicted positive.
    assert balanced_metric(Y_BINARY, PREDS_BINARY) == pytest.approx(0.6 * math.sqrt(0.5))


def test_balanced_metric_is_zero_when_nothing_is_predicted_positive():
    assert balanced_metric([1, 0, 1], [0, 0, 0]) == 0.0


def test_balanced_metric_names_both_lengths_on_mismatch():
    with pytest.raises(ValueError, match=r"'y_pred' has 2 rows but 'y_true' has 3"):
        balanced_metric([1, 0, 1], [1, 0])


def test_rowwise_correlation_matches_scipy_for_every_method():
    import numpy as np
    from scipy import stats

    from limen.metrics.correlation import bootstrap_correlations, rowwise_correlation

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 40))
    y = x + rng.normal(size=(3, 40))
    expected = {
        "pearson": [stats.pearsonr(a, b).statistic for a, b in zip(x, y, strict=True)],
        "spearman": [stats.spearmanr(a, b).statistic for a, b in zip(x, y, strict=True)],
        "kendall": [stats.kendalltau(a, b).statistic for a, b in zip(x, y, strict=True)],
    }
    for method, values in expected.items():
        assert np.allclose(rowwise_correlation(x, y, method), values)
    boots = bootstrap_correlations(x[0], y[0], method="spearman", n_boot=50, rng=rng)
    assert boots.shape == (50,) and np.all(boots > 0)
    assert np.isnan(rowwise_correlation(np.ones((1, 5)), y[:1, :5], "pearson")[0])
