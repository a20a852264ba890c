"""Covariance structures for repeated measures: Sigma(theta) over the T visits and its derivatives.

Each structure maps an unconstrained parameter vector ``theta`` to a positive
definite T x T matrix, and "pulls back" a matrix E to the gradient of
``<Sigma(theta), E>`` (the sum of elementwise products) with respect to theta,
which is all the REML gradient and Satterthwaite's degrees of freedom need.

- ``unstructured``: any positive definite matrix, as a log-Cholesky factor
  (Pinheiro & Bates 1996): Sigma = L L', with the diagonal of L stored as logs.
- ``compound_symmetry``: sigma^2 ((1 - rho) I + rho J), with
  rho = (e^z - 1) / (e^z + T - 1) so that -1/(T-1) < rho < 1 (nlme's corCompSymm).
- ``ar1``: sigma^2 rho^|a-b| over the visits' order, rho = tanh(z) (nlme's corAR1).
- ``toeplitz``: sigma^2 r_|a-b|, the autocorrelations r derived from partial
  autocorrelations tanh(z_1..z_{T-1}) by the Durbin-Levinson recursion, which
  covers every positive definite Toeplitz correlation (nlme's corARMA(p = T-1)).

The structured ones have one variance for every visit, as nlme's gls without
``weights``; the unstructured one has a variance per visit (corSymm + varIdent).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from lumbar.errors import AnalysisError, Problem

__all__ = [
    "STRUCTURES",
    "AutoRegressive",
    "CompoundSymmetry",
    "CovarianceStructure",
    "Toeplitz",
    "Unstructured",
    "structure",
]


class CovarianceStructure(ABC):
    """A family of T x T covariance matrices indexed by an unconstrained vector."""

    name: ClassVar[str]
    label: ClassVar[str]

    def __init__(self, visits: int):
        self.visits = visits

    @property
    @abstractmethod
    def size(self) -> int:
        """The number of parameters."""

    @abstractmethod
    def sigma(self, theta: np.ndarray) -> np.ndarray:
        """The covariance matrix at ``theta``."""

    @abstractmethod
    def pullback(self, theta: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        """The gradient of sum(sigma(theta) * matrix) with respect to theta (matrix symmetric)."""

    @abstractmethod
    def start(self, covariance: np.ndarray) -> np.ndarray:
        """Starting values from an empirical covariance matrix."""


class Unstructured(CovarianceStructure):
    name = "unstructured"
    label = "unstructured"

    @property
    def size(self) -> int:
        return self.visits * (self.visits + 1) // 2

    def _factor(self, theta: np.ndarray) -> np.ndarray:
        lower = np.zeros((self.visits, self.visits), dtype=theta.dtype)
        rows, columns = np.tril_indices(self.visits)
        lower[rows, columns] = theta
        diagonal = np.diag_indices(self.visits)
        lower[diagonal] = np.exp(lower[diagonal])
        return lower

    def sigma(self, theta: np.ndarray) -> np.ndarray:
        lower = self._factor(theta)
        product: np.ndarray = lower @ lower.T
        return product

    def pullback(self, theta: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        lower = self._factor(theta)
        gradient = 2.0 * matrix @ lower  # d<LL', E>/dL for symmetric E
        diagonal = np.diag_indices(self.visits)
        gradient[diagonal] *= lower[diagonal]  # chain rule through exp
        rows, columns = np.tril_indices(self.visits)
        result: np.ndarray = gradient[rows, columns]
        return result

    def start(self, covariance: np.ndarray) -> np.ndarray:
        lower = np.linalg.cholesky(covariance)
        diagonal = np.diag_indices(self.visits)
        lower[diagonal] = np.log(lower[diagonal])
        rows, columns = np.tril_indices(self.visits)
        result: np.ndarray = lower[rows, columns]
        return result


class _Homogeneous(CovarianceStructure):
    """sigma^2 times a correlation matrix R(z): theta = (log sigma^2, z...)."""

    @abstractmethod
    def correlation(self, z: np.ndarray) -> np.ndarray:
        """The correlation matrix (complex-step safe: no abs, no branches on values)."""

    def sigma(self, theta: np.ndarray) -> np.ndarray:
        scaled: np.ndarray = np.exp(theta[0]) * self.correlation(theta[1:])
        return scaled

    def pullback(self, theta: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        variance = math.exp(float(theta[0]))
        correlation = self.correlation(theta[1:])
        gradient = np.empty(self.size)
        gradient[0] = variance * float(np.sum(correlation * matrix))
        step = 1e-30
        for index in range(self.size - 1):
            # Complex-step derivative: exact to rounding, no step-size trade-off.
            shifted = theta[1:].astype(complex)
            shifted[index] += step * 1j
            derivative = self.correlation(shifted).imag / step
            gradient[index + 1] = variance * float(np.sum(derivative * matrix))
        return gradient

    def _lags(self) -> np.ndarray:
        index = np.arange(self.visits)
        lags: np.ndarray = np.abs(index[:, None] - index[None, :])
        return lags


class CompoundSymmetry(_Homogeneous):
    name = "compound_symmetry"
    label = "compound symmetry"

    @property
    def size(self) -> int:
        return 2

    def correlation(self, z: np.ndarray) -> np.ndarray:
        visits = self.visits
        rho = (np.exp(z[0]) - 1) / (np.exp(z[0]) + visits - 1)
        matrix: np.ndarray = (1 - rho) * np.eye(visits) + rho * np.ones((visits, visits))
        return matrix

    def start(self, covariance: np.ndarray) -> np.ndarray:
        variance = float(np.mean(np.diag(covariance)))
        scale = np.sqrt(np.diag(covariance))
        correlation = covariance / np.outer(scale, scale)
        off = correlation[~np.eye(self.visits, dtype=bool)]
        rho = float(np.clip(off.mean() if off.size else 0.0, -0.9 / max(self.visits - 1, 1), 0.95))
        z = math.log((1 + (self.visits - 1) * rho) / (1 - rho))
        return np.array([math.log(variance), z])


class AutoRegressive(_Homogeneous):
    name = "ar1"
    label = "first-order autoregressive"

    @property
    def size(self) -> int:
        return 2

    def correlation(self, z: np.ndarray) -> np.ndarray:
        rho = np.tanh(z[0])
        lags = self._lags()
        powers = np.ones((self.visits, self.visits), dtype=np.result_type(rho, float))
        for lag in range(1, self.visits):
            powers = np.where(lags == lag, rho**lag, powers)
        result: np.ndarray = powers
        return result

    def start(self, covariance: np.ndarray) -> np.ndarray:
        variance = float(np.mean(np.diag(covariance)))
        scale = np.sqrt(np.diag(covariance))
        correlation = covariance / np.outer(scale, scale)
        first = np.diag(correlation, 1)
        rho = float(np.clip(first.mean() if first.size else 0.0, -0.9, 0.95))
        return np.array([math.log(variance), math.atanh(rho)])


class Toeplitz(_Homogeneous):
    name = "toeplitz"
    label = "Toeplitz"

    @property
    def size(self) -> int:
        return self.visits

    def correlation(self, z: np.ndarray) -> np.ndarray:
        partial = np.tanh(z)
        autocorrelation = [np.ones((), dtype=partial.dtype)]
        coefficients: list[np.ndarray] = []
        variance = np.ones((), dtype=partial.dtype)
        for order, phi in enumerate(partial, start=1):
            previous = sum(
                (coefficients[j] * autocorrelation[order - 1 - j] for j in range(order - 1)),
                start=np.zeros((), dtype=partial.dtype),
            )
            autocorrelation.append(previous + phi * variance)
            coefficients = [
                coefficients[j] - phi * coefficients[order - 2 - j] for j in range(order - 1)
            ] + [phi]
            variance = variance * (1 - phi * phi)
        lags = self._lags()
        matrix = np.zeros((self.visits, self.visits), dtype=partial.dtype)
        for lag in range(self.visits):
            matrix = np.where(lags == lag, autocorrelation[lag], matrix)
        return matrix

    def start(self, covariance: np.ndarray) -> np.ndarray:
        variance = float(np.mean(np.diag(covariance)))
        scale = np.sqrt(np.diag(covariance))
        correlation = covariance / np.outer(scale, scale)
        autocorrelation = [1.0] + [
            float(np.diag(correlation, lag).mean()) for lag in range(1, self.visits)
        ]
        partial = _partial_autocorrelations(np.array(autocorrelation))
        return np.concatenate([[math.log(variance)], np.arctanh(np.clip(partial, -0.9, 0.9))])


def _partial_autocorrelations(autocorrelation: np.ndarray) -> np.ndarray:
    """Durbin-Levinson, the other way: autocorrelations to partial ones (clipped if not PD)."""
    lags = len(autocorrelation) - 1
    partial = np.zeros(lags)
    coefficients = np.zeros(0)
    variance = 1.0
    for order in range(1, lags + 1):
        numerator = autocorrelation[order] - float(
            np.dot(coefficients, autocorrelation[order - 1 : 0 : -1])
        )
        phi = float(np.clip(numerator / variance, -0.9, 0.9))
        partial[order - 1] = phi
        coefficients = np.concatenate([coefficients - phi * coefficients[::-1], [phi]])
        variance *= 1 - phi * phi
    return partial


STRUCTURES: dict[str, type[CovarianceStructure]] = {
    cls.name: cls for cls in (Unstructured, CompoundSymmetry, AutoRegressive, Toeplitz)
}
"""The covariance structures by name."""


def structure(name: str, visits: int) -> CovarianceStructure:
    """The structure called ``name`` over ``visits`` visits."""
    try:
        return STRUCTURES[name](visits)
    except KeyError:
        raise AnalysisError(
            "unknown covariance structure",
            [
                Problem(
                    "covariance", "is not a structure", name, "use one of: " + ", ".join(STRUCTURES)
                )
            ],
        ) from None
