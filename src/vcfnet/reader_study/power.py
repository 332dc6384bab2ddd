"""Sample size of a reader study: the power of the Obuchowski-Rockette-Hillis test of aided vs
unaided AUC for ``readers`` readers and ``cases`` cases, from a pilot's variance components
(one class of ``mrmc.json``), as in Hillis, Obuchowski & Berbaum (2011)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scipy import stats

from vcfnet.errors import InputError


def mrmc_power(
    pilot: Mapping[str, Any],
    readers: int,
    cases: int,
    delta: float,
    *,
    n_pilot_cases: int,
    alpha: float = 0.05,
) -> float:
    """Power to detect an AUC difference ``delta`` (aided - unaided) at level ``alpha``.

    ``pilot``: one class's entry of ``mrmc.json`` (var_error, cov1, cov2, cov3, ms_tr, and
    reader_auc_aided for the pilot's reader count); ``n_pilot_cases``: its cases (``n_cases``).
    The case-sampling (co)variances scale as ``n_pilot_cases / cases``; the reader x modality
    variance, MS(T:R) - (Var - Cov1 - Cov2 + Cov3) from the pilot (at least 0), does not.
    Then F ~ F(1, ddf; lambda) with lambda = r delta^2 / 2 / D,
    D = s_TR + Var - Cov1 + (r - 1)(Cov2 - Cov3), ddf = D^2 / ((s_TR + Var - Cov1 - Cov2 +
    Cov3)^2 / (r - 1)), the expectations of the OR-Hillis statistic and its df2.
    """
    if readers < 2 or cases < 2 or n_pilot_cases < 2:
        raise InputError("the MRMC test needs at least 2 readers and 2 cases (pilot and study)")
    scale = n_pilot_cases / cases
    var, cov1, cov2, cov3 = (float(pilot[k]) * scale for k in ("var_error", "cov1", "cov2", "cov3"))
    pilot_error = float(pilot["var_error"] - pilot["cov1"] - pilot["cov2"] + pilot["cov3"])
    s_tr = max(float(pilot["ms_tr"]) - pilot_error, 0.0)
    between = max(cov2 - cov3, 0.0)
    denominator = s_tr + var - cov1 + (readers - 1) * between
    within = s_tr + var - cov1 - between
    if denominator <= 0 or within <= 0:
        raise InputError("the pilot's variance components give no error variance; pilot again")
    lam = readers * delta**2 / 2 / denominator
    ddf = denominator**2 / (within**2 / (readers - 1))
    critical = stats.f.ppf(1 - alpha, 1, ddf)
    if lam == 0:  # scipy's ncf is unreliable at a zero noncentrality
        return float(stats.f.sf(critical, 1, ddf))
    return float(stats.ncf.sf(critical, 1, ddf, lam))
