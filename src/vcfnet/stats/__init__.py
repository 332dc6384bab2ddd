"""Statistics on arrays: ROC AUC with DeLong/bootstrap intervals, proportions, Table 2 metrics."""

from vcfnet.stats.proportions import McNemarResult, mcnemar_test, wilson_ci
from vcfnet.stats.roc import AucResult, DelongTestResult, delong_covariance, delong_test, roc_auc_ci

__all__ = [
    "AucResult",
    "DelongTestResult",
    "McNemarResult",
    "delong_covariance",
    "delong_test",
    "mcnemar_test",
    "roc_auc_ci",
    "wilson_ci",
]
