"""`TCAVResult`: the scores of a concept and of random concepts, with the t-test."""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["TCAVResult"]


@dataclasses.dataclass(frozen=True, eq=False)
class TCAVResult:
    """TCAV scores of a concept and of random concepts, with the t-test.

    Attributes:
        concept_scores: float64 `(R,)`: one score per concept CAV.
        random_scores: float64 `(M,)`: one score per random-vs-random CAV.
        p_value: two-sided p-value of `scipy.stats.ttest_ind` (equal
            variances, as tcav); NaN when both lists are constant and equal.
        t_statistic: positive when the concept scores are higher.
        alpha: the significance level.
        concept_derivatives: float64 `(R, T)`: the directional derivatives of
            the `T` target images along each concept CAV.
        cavs: the `R` concept CAVs.
    """

    concept_scores: np.ndarray
    random_scores: np.ndarray
    p_value: float
    t_statistic: float
    alpha: float
    concept_derivatives: np.ndarray
    cavs: tuple

    @property
    def mean(self) -> float:
        """Mean concept score (the reported TCAV score)."""
        return float(np.mean(self.concept_scores))

    @property
    def std(self) -> float:
        """Standard deviation of the concept scores (`np.std`, as tcav)."""
        return float(np.std(self.concept_scores))

    @property
    def random_mean(self) -> float:
        """Mean score of the random CAVs."""
        return float(np.mean(self.random_scores))

    @property
    def random_std(self) -> float:
        """Standard deviation of the random CAVs' scores."""
        return float(np.std(self.random_scores))

    @property
    def significant(self) -> bool:
        """`p_value < alpha` (False when the p-value is NaN)."""
        return bool(self.p_value < self.alpha)

    def __str__(self) -> str:
        verdict = "significant" if self.significant else "not significant"
        return (
            f"TCAV score = {self.mean:.2f} (+- {self.std:.2f}), random was "
            f"{self.random_mean:.2f} (+- {self.random_std:.2f}). "
            f"p-val = {self.p_value:.3g} ({verdict} at alpha={self.alpha:g})"
        )
