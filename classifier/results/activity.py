"""Daily activity and its overlap between species, as the R package `overlap` (Meredith & Ridout) computes
them: a von Mises kernel density on the 24-hour circle and Ridout & Linkie's (2009) coefficient of overlap.

    curve = activity_density(times)                     # densityPlot(): density per hour on HOURS
    found = overlap(times_a, times_b, rng=np.random.default_rng(1))   # Dhat1 or Dhat4, basic0 95% interval

Times are radians on the circle (0 and 2*pi are midnight). Each function names the `overlap` function it
equals; the source read was github.com/mikemeredith/overlap (R/getBandWidth.R, R/densityFit.R with
src/densRad.c, R/overlapEst.R, R/bootstrap.R, R/bootCI.R, vignettes/overlap.Rnw). Differences: `uniroot`
stops within about 1e-4 of the bandwidth's root, this finds it to 1e-12 (the bandwidth differs in its
fifth digit at most, the overlap far less); bootstrap samples come from numpy's generator, not R's, so an
interval matches R's to its Monte Carlo error, not digit for digit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ive
from scipy.stats import norm

TWO_PI = 2 * np.pi
KMAX = 3  # getBandWidth(kmax = 3): trigonometric moments 1..3
KAPPA_RANGE = (0.0001, 345.0)  # getBandWidth's uniroot interval
# overlapEst(adjust = c(0.8, 1, 4)): the bandwidth is divided by these (Ridout & Linkie's c = 1.25, 1).
ADJUST = {"Dhat1": 0.8, "Dhat4": 1.0}
DHAT4_FROM = 75  # the vignette: Dhat4 when the smaller sample has 75 or more, else Dhat1
N_GRID = 128  # overlapEst(n.grid = 128)
BOOTSTRAP_GRID = 512  # bootstrap(smooth = TRUE) draws from the fitted density on 512 points
HOURS = np.linspace(0.0, 24.0, 241)  # activity curves: every 6 minutes


@dataclass(frozen=True)
class Overlap:
    estimator: str  # Dhat1 | Dhat4
    estimate: float
    lower: float  # bootCI(...)["basic0", ]: the vignette's recommended interval
    upper: float
    bootstrap: int  # bootstrap samples with a finite estimate


def bandwidth(times: np.ndarray) -> float:
    """overlap::getBandWidth(A, kmax = 3): the von Mises concentration of the kernel; nan when undefined."""
    times = np.asarray(times, dtype=float)
    return float(_bandwidths(_trig_moments([times]), np.array([len(times)]))[0])


def density(times: np.ndarray, at: np.ndarray, kappa: float) -> np.ndarray:
    """overlap::densityFit(x, grid, bw): the kernel density of `times` at `at` (radians), per radian."""
    times, at = np.asarray(times, dtype=float), np.asarray(at, dtype=float)
    kernel = np.exp(
        kappa * (np.cos(at[:, None] - times[None, :]) - 1.0)
    )  # densRad.c's pow(exp(cos d - 1), h)
    return kernel.mean(axis=1) / (TWO_PI * ive(0, kappa))


def activity_density(times: np.ndarray, hours: np.ndarray = HOURS) -> np.ndarray:
    """overlap::densityPlot(A, adjust = 1)'s curve: density per hour at `hours` (integrates to 1 over 24 h)."""
    return density(times, np.asarray(hours) / 24 * TWO_PI, bandwidth(times)) * TWO_PI / 24


def estimator_for(n_a: int, n_b: int) -> str:
    """Dhat4 when both samples have DHAT4_FROM or more, else Dhat1 (the overlap vignette's advice)."""
    return "Dhat4" if min(n_a, n_b) >= DHAT4_FROM else "Dhat1"


def overlap_estimate(a: np.ndarray, b: np.ndarray, estimator: str) -> float:
    """overlap::overlapEst(A, B, type = estimator) with its default adjust (0.8 for Dhat1, 1 for Dhat4)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    kappa = _bandwidths(_trig_moments([a, b]), np.array([len(a), len(b)]))
    return float(_estimates(a, b, kappa[0], kappa[1], estimator))


def overlap(
    a: np.ndarray | Draws,
    b: np.ndarray | Draws,
    *,
    samples: int = 1000,
    rng: np.random.Generator | None = None,
) -> Overlap:
    """The coefficient of overlap with the estimator the sample sizes call for, and its 95% interval:
    overlap::bootstrap(A, B, nb = samples, smooth = TRUE, type = ...) then bootCI(...)["basic0", ].

    `a` and `b` are times, or a taxon's `Draws` made once for all its pairs (each pair's interval is then
    a bootstrap of its own, from the same samples of that taxon)."""
    a, b = (x if isinstance(x, Draws) else Draws(np.asarray(x, dtype=float), samples, rng) for x in (a, b))
    estimator = estimator_for(len(a.times), len(b.times))
    estimate = overlap_estimate(a.times, b.times, estimator)
    boots = bootstrap_overlaps(a, b, estimator)
    lower, upper = basic0_interval(estimate, boots)
    return Overlap(estimator, estimate, lower, upper, int(np.isfinite(boots).sum()))


class Draws:
    """A taxon's smoothed bootstrap samples as overlap::bootstrap(smooth = TRUE) draws them: len(times)
    draws from the 511 grid points of the fitted density (unadjusted bandwidth), each sample kept as its
    share on each point, with its densities on the 128-point grid per estimator, made when first asked."""

    grid = np.linspace(0.0, TWO_PI, BOOTSTRAP_GRID)[1:]  # first and last are both midnight
    at = np.linspace(0.0, TWO_PI, N_GRID)

    def __init__(self, times: np.ndarray, samples: int, rng: np.random.Generator | None) -> None:
        if rng is None:
            raise ValueError("bootstrap samples need a random generator (rng)")
        self.times = times
        p = density(times, self.grid, bandwidth(times))
        counts = rng.multinomial(len(times), p / p.sum(), size=samples).astype(float)
        self.weights = counts / len(times)
        self.kappa = _bandwidths(_weighted_moments(counts, self.grid), np.full(samples, len(times)))
        self._densities: dict[str, np.ndarray] = {}

    def densities(self, estimator: str) -> np.ndarray:
        if estimator not in self._densities:
            kappa = self.kappa / ADJUST[estimator]
            self._densities[estimator] = _grid_densities(self.weights, self.grid, kappa, self.at)
        return self._densities[estimator]


def bootstrap(
    a: np.ndarray, b: np.ndarray, estimator: str, samples: int, rng: np.random.Generator
) -> np.ndarray:
    """overlap::bootstrap(A, B, nb = samples, smooth = TRUE, type = estimator): the overlap of each sample."""
    draws = [Draws(np.asarray(x, dtype=float), samples, rng) for x in (a, b)]
    return bootstrap_overlaps(*draws, estimator)


def bootstrap_overlaps(a: Draws, b: Draws, estimator: str) -> np.ndarray:
    """overlapEst of each pair of samples (the i-th of `a` with the i-th of `b`)."""
    da, db = a.densities(estimator), b.densities(estimator)
    if estimator == "Dhat1":
        return _dhat1_rows(da, db)
    # Dhat4 needs 75 a side, so overlapEst always interpolates the grid's densities here (n > n.grid * 1.1).
    at_a, at_b = _interpolate(da, Draws.at, Draws.grid), _interpolate(db, Draws.at, Draws.grid)
    return ((a.weights * np.minimum(1.0, at_b / at_a)).sum(axis=1)
            + (b.weights * np.minimum(1.0, at_a / at_b)).sum(axis=1)) / 2  # fmt: skip


def _dhat1_rows(da: np.ndarray, db: np.ndarray) -> np.ndarray:
    """Dhat1 of each row: the grid's densities scaled to sum to 1 (its first point is its last), then
    the sum of the smaller of each pair."""
    a1 = da[:, 1:] / da[:, 1:].sum(axis=1, keepdims=True)
    b1 = db[:, 1:] / db[:, 1:].sum(axis=1, keepdims=True)
    return np.minimum(a1, b1).sum(axis=1)


def basic0_interval(estimate: float, boots: np.ndarray, conf: float = 0.95) -> tuple[float, float]:
    """overlap::bootCI(t0, bt, conf)["basic0", ]: the percentile interval moved by the bootstrap bias."""
    boots = boots[np.isfinite(boots)]
    if len(boots) == 0:
        return float("nan"), float("nan")
    low, high = quantile_interval(boots, conf)
    bias = boots.mean() - estimate
    return low - bias, high - bias


def quantile_interval(boots: np.ndarray, conf: float = 0.95) -> tuple[float, float]:
    """overlap's quantileInter(bt, conf): normal-interpolated order statistics (boot.ci's "perc")."""
    n = len(boots)
    alpha = np.array([(1 - conf) / 2, (1 + conf) / 2])
    rank = (n + 1) * alpha
    if not np.all((rank > 1) & (rank < n)):
        return float("nan"), float("nan")
    k = np.trunc(rank).astype(int)
    ordered = np.sort(boots)
    low, high = ordered[k - 1], ordered[k]  # R's 1-based t[k] and t[k + 1]
    if np.all(k == rank):
        return float(low[0]), float(low[1])
    wanted, too_low, too_high = norm.ppf(alpha), norm.ppf(k / (n + 1)), norm.ppf((k + 1) / (n + 1))
    out = low + (wanted - too_low) / (too_high - too_low) * (high - low)
    return float(out[0]), float(out[1])


# --------------------------------------------------------------------------------------------- internals


def _trig_moments(samples: list[np.ndarray]) -> np.ndarray:
    """getBandWidth's TrigMomRad(x, k) for k = 1..KMAX of each sample: rows of samples, columns of k."""
    out = np.empty((len(samples), KMAX))
    for r, x in enumerate(samples):
        mean = np.arctan2(np.sin(x).sum(), np.cos(x).sum())
        for k in range(1, KMAX + 1):
            out[r, k - 1] = np.hypot(np.sin(k * (x - mean)).mean(), np.cos(k * (x - mean)).mean())
    return out


def _weighted_moments(counts: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """`_trig_moments` of samples given as counts on `grid` (one row of counts per sample)."""
    n = counts.sum(axis=1)
    mean = np.arctan2(counts @ np.sin(grid), counts @ np.cos(grid))
    out = np.empty((len(counts), KMAX))
    for k in range(1, KMAX + 1):
        s, c = counts @ np.sin(k * grid), counts @ np.cos(k * grid)
        # mean of cos/sin(k(x - m)) by the angle-difference identities
        cos_k = (c * np.cos(k * mean) + s * np.sin(k * mean)) / n
        sin_k = (s * np.cos(k * mean) - c * np.sin(k * mean)) / n
        out[:, k - 1] = np.hypot(sin_k, cos_k)
    return out


def _bandwidths(moments: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """getBandWidth for rows of trigonometric moments: for each k the root of I_k(kappa)/I_0(kappa) = rho_k
    in KAPPA_RANGE (where there is one), the largest of them, then Ridout & Linkie's rule of thumb."""
    low, high = KAPPA_RANGE
    ratio = [lambda kappa, k=k: ive(k, kappa) / ive(0, kappa) for k in range(1, KMAX + 1)]
    best = np.zeros(len(moments))
    for k in range(KMAX):
        rho = moments[:, k]
        has_root = (ratio[k](low) - rho) * (ratio[k](high) - rho) <= 0
        a, b = np.full(len(rho), low), np.full(len(rho), high)
        for _ in range(48):  # bisection on a monotone function: (high - low) / 2**48 ~ 1e-12
            mid = (a + b) / 2
            below = ratio[k](mid) < rho
            a, b = np.where(below, mid, a), np.where(below, b, mid)
        best = np.maximum(best, np.where(has_root, (a + b) / 2, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        # 3 n k^2 I_2(2k) / (4 sqrt(pi) I_0(k)^2), with exponentially scaled Bessel functions (no overflow)
        rule = (3 * sizes * best**2 * ive(2, 2 * best) / (4 * np.sqrt(np.pi) * ive(0, best) ** 2)) ** 0.4
    return np.where(best > 0, rule, np.nan)


def _estimates(a: np.ndarray, b: np.ndarray, kappa_a: float, kappa_b: float, estimator: str) -> float:
    """overlapEst's Dhat1 or Dhat4 from the two samples' bandwidths."""
    if not (np.isfinite(kappa_a) and np.isfinite(kappa_b)):
        return float("nan")
    adjust = ADJUST[estimator]
    grid = np.linspace(0.0, TWO_PI, N_GRID)
    if estimator == "Dhat1":
        return _dhat1(density(a, grid, kappa_a / adjust), density(b, grid, kappa_b / adjust))
    both = np.concatenate([a, b])
    if len(both) > N_GRID * 1.1:  # overlapEst interpolates the grid's densities for large samples
        at_a = np.interp(both, grid, density(a, grid, kappa_a / adjust))
        at_b = np.interp(both, grid, density(b, grid, kappa_b / adjust))
    else:
        at_a, at_b = density(a, both, kappa_a / adjust), density(b, both, kappa_b / adjust)
    n = len(a)
    return _dhat4(at_a[:n], at_b[:n], at_a[n:], at_b[n:])


def _grid_densities(weights: np.ndarray, grid: np.ndarray, kappa: np.ndarray, at: np.ndarray) -> np.ndarray:
    """densityFit at `at` of many weighted samples on `grid` at once (one row each, nan where kappa is).

    The von Mises kernel is the Fourier series (1 + 2 sum_k I_k(kappa)/I_0(kappa) cos(k d)) / (2 pi), so
    a sample's density is that series with the sample's trigonometric sums: the same values as densRad.c,
    computed for every bootstrap sample in a few matrix products instead of one kernel matrix each. The
    series stops where I_k/I_0 (about exp(-k^2 / 2 kappa)) is below 1e-16 of the first term.
    """
    finite = np.isfinite(kappa)
    top = int(np.ceil(np.sqrt(2 * max(float(np.max(kappa[finite], initial=1.0)), 1.0) * 37))) + 8
    k = np.arange(1, top + 1)
    cos_sums, sin_sums = weights @ np.cos(np.outer(grid, k)), weights @ np.sin(np.outer(grid, k))
    ratio = (
        ive(k[None, :], np.where(finite, kappa, 1.0)[:, None]) / ive(0, np.where(finite, kappa, 1.0))[:, None]
    )
    series = (ratio * cos_sums) @ np.cos(np.outer(k, at)) + (ratio * sin_sums) @ np.sin(np.outer(k, at))
    out = (1 + 2 * series) / TWO_PI
    out[~finite] = np.nan
    return out


def _interpolate(values: np.ndarray, at: np.ndarray, points: np.ndarray) -> np.ndarray:
    """np.interp of each row of `values` (given at the increasing `at`) at `points`, as R's approx()."""
    right = np.clip(np.searchsorted(at, points, side="right"), 1, len(at) - 1)
    share = (points - at[right - 1]) / (at[right] - at[right - 1])
    return values[:, right - 1] * (1 - share) + values[:, right] * share


def _dhat1(dens_a: np.ndarray, dens_b: np.ndarray) -> float:
    return float(_dhat1_rows(dens_a[None, :], dens_b[None, :])[0])


def _dhat4(a_at_a: np.ndarray, b_at_a: np.ndarray, a_at_b: np.ndarray, b_at_b: np.ndarray) -> float:
    return float((np.minimum(1.0, b_at_a / a_at_a).mean() + np.minimum(1.0, a_at_b / b_at_b).mean()) / 2)
