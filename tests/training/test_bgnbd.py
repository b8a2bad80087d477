"""BG/NBD: published values, brute-force likelihood, parameter recovery, RFM summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from features.inputs.schema import ShopTables
from training.evaluation.bgnbd import (
    BetaGeoFitter,
    bgnbd_expected_purchases,
    bgnbd_log_likelihood,
    rfm_summary,
    rfm_summary_at_cutoffs,
    simulate_bgnbd,
)

# Fader, Hardie & Lee (2005), CDNOW sample, time in weeks.
CDNOW = dict(r=0.243, alpha=4.414, a=0.793, b=2.426)


def test_published_cdnow_customer_expectation():
    # FHL 2005: customer with x = 2, t_x = 30.43, T = 38.86 weeks expects 1.226 purchases
    # in the next 39 weeks.
    fitter = BetaGeoFitter.from_params(**CDNOW)
    assert fitter.expected_purchases(39, 2, 30.43, 38.86)[()] == pytest.approx(1.226, abs=5e-4)
    assert fitter.p_alive(0, 0, 38.86)[()] == 1.0


def brute_force_likelihood(x, t_x, T, r, alpha, a, b):
    """Integrate the individual-level likelihood over Gamma(lambda) and Beta(p) on a grid.

    Gauss-Legendre in u with lambda = 40 u^2 and p = v^2 (the squares smooth the
    densities' root singularities at 0); Gamma(1.3, rate 6) has no mass past 40.
    """
    nodes, weights = np.polynomial.legendre.leggauss(600)
    u, wu = (nodes + 1) / 2, weights / 2
    lam, w_lam = 40 * u**2, wu * 80 * u
    p, w_p = u**2, wu * 2 * u
    lam, p = lam[:, None], p[None, :]
    alive = (1 - p) ** x * lam**x * np.exp(-lam * T)
    dead = p * (1 - p) ** (x - 1) * lam**x * np.exp(-lam * t_x) if x > 0 else 0.0
    density = stats.gamma.pdf(lam, r, scale=1 / alpha) * stats.beta.pdf(p, a, b)
    return np.log(np.sum(w_lam[:, None] * w_p[None, :] * (alive + dead) * density))


@pytest.mark.parametrize(("x", "t_x", "T"), [(0, 0.0, 30.0), (1, 5.0, 20.0), (3, 18.5, 25.0)])
def test_log_likelihood_matches_numerical_integration(x, t_x, T):
    params = dict(r=1.3, alpha=6.0, a=1.5, b=2.5)
    ll = bgnbd_log_likelihood([x], [t_x], [T], **params)[0]
    assert ll == pytest.approx(brute_force_likelihood(x, t_x, T, **params), abs=1e-5)


def test_fit_recovers_known_parameters():
    rng = np.random.default_rng(7)
    ages = rng.uniform(27, 39, 8000) * 7  # CDNOW-like ages, in days
    truth = dict(r=CDNOW["r"], alpha=CDNOW["alpha"] * 7, a=CDNOW["a"], b=CDNOW["b"])
    sim = simulate_bgnbd(8000, ages, seed=3, **truth)
    fitter = BetaGeoFitter().fit(sim["frequency"], sim["recency"], sim["T"])
    fitted = fitter.params_.as_dict()
    for name, value in truth.items():
        assert fitted[name] == pytest.approx(value, rel=0.2), name
    # the MLE is at least as likely as the truth
    true_ll = bgnbd_log_likelihood(sim["frequency"], sim["recency"], sim["T"], **truth).sum()
    assert fitter.log_likelihood_ >= true_ll - 1e-6
    assert fitter.converged_


def test_expectations_agree_with_simulation():
    params = dict(r=0.8, alpha=40.0, a=0.9, b=3.0)
    fitter = BetaGeoFitter.from_params(**params)
    age, horizon = 180.0, 90.0
    sim = simulate_bgnbd(40000, age, seed=11, **params)
    # E[X(t)] for a new customer equals the simulated mean number of repeat purchases
    assert fitter.expected_purchases_new_customer(age) == pytest.approx(
        sim["frequency"].mean(), rel=0.03
    )
    # P(alive) is calibrated: its mean matches the share of simulated customers still alive
    p_alive = fitter.p_alive(sim["frequency"], sim["recency"], sim["T"])
    assert p_alive.mean() == pytest.approx(sim["alive"].mean(), abs=0.01)
    # law of total expectation: mean conditional E[Y(h)] = E[X(age + h)] - E[X(age)]
    conditional = fitter.expected_purchases(horizon, sim["frequency"], sim["recency"], sim["T"])
    unconditional = fitter.expected_purchases_new_customer(
        age + horizon
    ) - fitter.expected_purchases_new_customer(age)
    assert conditional.mean() == pytest.approx(unconditional, rel=0.03)


def test_more_recent_buyers_expect_more_purchases():
    fitter = BetaGeoFitter.from_params(**CDNOW)
    recency = np.array([5.0, 15.0, 25.0, 35.0])
    expected = fitter.expected_purchases(10, 3, recency, 38.0)
    assert np.all(np.diff(expected) > 0)


@pytest.mark.parametrize(
    ("frequency", "recency", "T", "message"),
    [
        ([1], [40.0], [30.0], "recency must lie in"),
        ([0], [3.0], [30.0], "recency must be 0"),
        ([-1], [0.0], [3.0], "frequency must be >= 0"),
        ([1], [np.nan], [3.0], "recency has 1 missing"),
    ],
)
def test_invalid_rfm_is_rejected(frequency, recency, T, message):
    with pytest.raises(ValueError, match=message):
        BetaGeoFitter().fit(frequency, recency, T)


def test_unfitted_model_says_what_to_do():
    with pytest.raises(RuntimeError, match="call fit"):
        BetaGeoFitter().p_alive([1], [1.0], [2.0])


def _tables(rows) -> ShopTables:
    frame = pd.DataFrame(rows, columns=["customer_id", "ordered_at", "is_return"])
    return ShopTables(
        transactions=pd.DataFrame(
            {
                "customer_id": frame["customer_id"].astype("string"),
                "order_id": pd.Series([f"o{i}" for i in range(len(frame))], dtype="string"),
                "ordered_at": pd.to_datetime(frame["ordered_at"], utc=True).astype(
                    "datetime64[us, UTC]"
                ),
                "amount": np.ones(len(frame)),
                "is_return": frame["is_return"].astype(bool),
            }
        )
    )


def test_rfm_summary_hand_computed():
    tables = _tables(
        [
            ("A", "2024-01-01 09:00", False),
            ("A", "2024-01-01 17:00", False),  # same day: one purchase day
            ("A", "2024-01-05 12:00", False),
            ("A", "2024-01-08 12:00", True),  # a return is not a purchase
            ("A", "2024-01-20 12:00", False),  # after the cutoff
            ("B", "2024-01-12 08:00", False),  # only after the cutoff: absent
            ("C", "2024-01-10 23:59", False),  # on the cutoff day: counted
        ]
    )
    rfm = rfm_summary(tables, "2024-01-10")
    assert rfm.index.tolist() == ["A", "C"]
    assert rfm.loc["A"].tolist() == [1.0, 4.0, 9.0]
    assert rfm.loc["C"].tolist() == [0.0, 0.0, 0.0]
    both = rfm_summary_at_cutoffs(tables, ["2024-01-31", pd.Timestamp("2024-01-10")])
    assert both.loc[(pd.Timestamp("2024-01-31"), "A")].tolist() == [2.0, 19.0, 30.0]
    assert both.loc[(pd.Timestamp("2024-01-31"), "B")].tolist() == [0.0, 0.0, 19.0]


@settings(max_examples=15, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from("abc"), st.integers(0, 60 * 24 * 40), st.booleans()),
        min_size=1,
        max_size=25,
    ),
    st.integers(0, 45),
)
def test_rfm_summary_matches_loop(events, cutoff_day):
    start = pd.Timestamp("2024-03-01", tz="UTC")
    rows = [(c, start + pd.Timedelta(minutes=m), r) for c, m, r in events]
    tables = _tables(rows)
    cutoff = (start + pd.Timedelta(days=cutoff_day)).tz_localize(None)
    rfm = rfm_summary(tables, cutoff)
    expected = {}
    for customer in sorted({c for c, _, _ in rows}):
        days = sorted(
            {
                t.normalize().tz_localize(None)
                for c, t, r in rows
                if c == customer and not r and t.tz_localize(None).normalize() <= cutoff
            }
        )
        if days:
            expected[customer] = [
                len(days) - 1.0,
                float((days[-1] - days[0]).days),
                float((cutoff - days[0]).days),
            ]
    assert {k: v.tolist() for k, v in rfm.iterrows()} == expected


def test_expected_purchases_feature_uses_train_cutoffs_only():
    sim = simulate_bgnbd(600, 200.0, seed=1, r=0.8, alpha=40.0, a=0.9, b=3.0)
    rfm = pd.concat(
        {pd.Timestamp("2024-01-01"): sim.iloc[:300], pd.Timestamp("2024-06-01"): sim.iloc[300:]},
        names=["cutoff", "row"],
    )[["frequency", "recency", "T"]]
    base = bgnbd_expected_purchases(rfm, train_cutoffs=["2024-01-01"], horizon_days=90)
    changed = rfm.copy()
    changed.loc[pd.Timestamp("2024-06-01"), "frequency"] = 0.0
    changed.loc[pd.Timestamp("2024-06-01"), "recency"] = 0.0
    after = bgnbd_expected_purchases(changed, train_cutoffs=["2024-01-01"], horizon_days=90)
    train_rows = base.index.get_level_values("cutoff") == pd.Timestamp("2024-01-01")
    np.testing.assert_array_equal(base[train_rows].to_numpy(), after[train_rows].to_numpy())
    assert (base > 0).all()
    with pytest.raises(ValueError, match="none of the train cutoffs"):
        bgnbd_expected_purchases(rfm, train_cutoffs=["2020-01-01"], horizon_days=90)


def test_gradient_matches_finite_differences():
    from training.evaluation.bgnbd import _log_likelihood_and_gradient

    x = np.array([0.0, 1.0, 4.0, 2.0])
    t_x = np.array([0.0, 3.0, 20.0, 29.5])
    T = np.array([10.0, 12.0, 35.0, 30.0])
    params = np.array([0.7, 9.0, 0.8, 2.2])
    _, grad = _log_likelihood_and_gradient(x, t_x, T, *params)
    for k in range(4):
        step = np.zeros(4)
        step[k] = 1e-6 * params[k]
        names = ["r", "alpha", "a", "b"]
        up = bgnbd_log_likelihood(x, t_x, T, **dict(zip(names, params + step, strict=True)))
        down = bgnbd_log_likelihood(x, t_x, T, **dict(zip(names, params - step, strict=True)))
        np.testing.assert_allclose(grad[:, k], (up - down) / (2 * step[k]), rtol=1e-5, atol=1e-8)


def test_probability_no_purchase_matches_the_bgnbd_worlds_oracle():
    """Two implementations (day-rounded RFM here, exact times in the world) agree."""
    import datetime as dt

    from features.simulation import BgNbdWorldConfig, simulate_bgnbd_world

    world = simulate_bgnbd_world(BgNbdWorldConfig(customers=4000, seed=5))
    cutoff = dt.date(2025, 3, 31)
    rfm = rfm_summary(world.tables, cutoff)
    c = world.config
    fitter = BetaGeoFitter.from_params(c.r, c.alpha, c.a, c.b)
    ours = fitter.probability_no_purchase(90, rfm["frequency"], rfm["recency"], rfm["T"])
    oracle = world.oracle_churn_probability(cutoff, 90).reindex(rfm.index.astype("string"))
    assert np.abs(ours - oracle.to_numpy()).mean() < 0.01
    # and fitted parameters give a calibrated probability on the same world
    fitted = BetaGeoFitter().fit(rfm["frequency"], rfm["recency"], rfm["T"])
    p = fitted.probability_no_purchase(90, rfm["frequency"], rfm["recency"], rfm["T"])
    assert abs(p.mean() - oracle.mean()) < 0.02
