"""Statistics on arrays: ROC AUC with DeLong/bootstrap/Newcombe intervals, proportions, Table 2,
MRMC (Obuchowski-Rockette-Hillis) and calibration: the public API in one place."""

from vcfnet.stats.calibration import reliability
from vcfnet.stats.classification import classification_table, confusion_matrix
from vcfnet.stats.mrmc import or_hillis
from vcfnet.stats.proportions import McNemarResult, mcnemar_test, wilson_ci
from vcfnet.stats.roc import (
    SMALL_SAMPLE_MIN_CASES,
    AucResult,
    DelongTestResult,
    cases_per_class_for_half_width,
    delong_covariance,
    delong_test,
    newcombe_auc_ci,
    roc_auc_ci,
)

__all__ = [
    "SMALL_SAMPLE_MIN_CASES",
    "AucResult",
    "DelongTestResult",
    "McNemarResult",
    "cases_per_class_for_half_width",
    "classification_table",
    "confusion_matrix",
    "delong_covariance",
    "delong_test",
    "mcnemar_test",
    "newcombe_auc_ci",
    "or_hillis",
    "reliability",
    "roc_auc_ci",
    "wilson_ci",
]
