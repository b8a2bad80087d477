"""Figures for the retention lists (issue #6): prints them, asserts nothing.

Run from the project root::

    uv run --frozen python benchmarks/lists_evaluation.py [--customers 20000]

1. Win-back list on the simulated shop (demo size): top-decile reactivation rate
   vs the lapsed base rate, at a date whose 90-day horizon is observed; with the
   released V1 reactivation features and with the newest set (V2 adds digital
   engagement), so the engagement table's contribution shows.
2.-3. use the newest reactivation feature set.
2. Uplift ranking vs plain reactivation ranking on the last simulated campaign
   (models fitted on data before it): true incremental reactivations captured at
   the same list size, from the simulator's contact truth.
3. Held-out Qini of the uplift model on the simulator (all campaigns, split by
   customer) and on Hillstrom (each e-mail arm vs no e-mail, outcome: visit).
4. Hillstrom reproduction: visit, conversion and spend per arm with 95% CIs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from features.feature_sets import REACTIVATION_FEATURES_V1, FeatureSet, latest_feature_set
from features.labels import LabelConfig, build_labels
from features.simulation import SimulationConfig, simulate_shop
from features.training_table import build_scoring_frame, build_training_table
from serving.lists.build import build_list
from serving.lists.settings import ListConfig
from serving.measurement.campaign import (
    HILLSTROM_ARMS,
    hillstrom_arm_results,
    hillstrom_effects,
    load_hillstrom,
)
from training.model.classifier import WinbackClassifier
from training.uplift.data import campaign_training_table
from training.uplift.fit import UpliftConfig, fit_campaign_uplift, fit_uplift

HORIZON = 90


def _cutoffs(last: dt.date, count: int, every: int = 30) -> list[dt.date]:
    return sorted(last - dt.timedelta(days=every * i) for i in range(count))


def contacted_in_horizon(tables, index: pd.MultiIndex, horizon_days: int) -> np.ndarray:
    """Rows ``(cutoff, customer_id)`` whose horizon holds a treated campaign contact.

    Their label mixes in the campaign's effect; the list wants the reactivation
    probability *without* a contact (the uplift model estimates the contact's effect).
    """
    contacts = tables.campaign_contacts
    treated = contacts[contacts["group"] == "treatment"]
    if treated.empty:
        return np.zeros(len(index), dtype=bool)
    rows = index.to_frame(index=False)
    rows["customer_id"] = rows["customer_id"].astype(str)
    rows["_row"] = np.arange(len(rows))
    days = treated["contacted_at"].dt.tz_localize(None).dt.floor("D")
    joined = rows.merge(
        pd.DataFrame({"customer_id": treated["customer_id"].astype(str), "day": days}),
        on="customer_id",
    )
    start = joined["cutoff"] + pd.Timedelta(days=1)
    inside = (joined["day"] >= start) & (joined["day"] < start + pd.Timedelta(days=horizon_days))
    out = np.zeros(len(index), dtype=bool)
    out[joined.loc[inside, "_row"].to_numpy()] = True
    return out


def train_reactivation(tables, last_cutoff: dt.date, feature_set: FeatureSet) -> WinbackClassifier:
    """A reactivation model on monthly cutoffs up to ``last_cutoff`` (labels end 90 days later)."""
    cutoffs = _cutoffs(last_cutoff, 18)
    table = build_training_table(tables, "reactivation", cutoffs, feature_set=feature_set)
    table = table[~contacted_in_horizon(tables, table.index, HORIZON)]
    fs = feature_set.subset(table.columns)
    cutoff = table.index.get_level_values("cutoff")
    valid = cutoff >= pd.Timestamp(cutoffs[-3])
    model = WinbackClassifier(
        fs,
        n_estimators=600,
        learning_rate=0.03,
        num_leaves=15,
        min_child_samples=200,
        num_threads=1,
    )
    model.fit(
        table.loc[~valid, fs.names],
        table.loc[~valid, "reactivated"],
        eval_set=(table.loc[valid, fs.names], table.loc[valid, "reactivated"]),
    )
    return model


def winback_top_decile(tables, model: WinbackClassifier, as_of: dt.date) -> dict[str, float]:
    """Top-decile reactivation of the win-back list at ``as_of`` vs the lapsed base rate."""
    frame = build_scoring_frame(tables, as_of, model.feature_set_)
    labels = build_labels(tables, [as_of], LabelConfig(horizon_days=HORIZON)).droplevel("cutoff")
    lapsed = frame["is_lapsed"].fillna(False).astype(bool)
    scores = pd.DataFrame(index=frame.index)
    scores["churn_risk"] = np.nan
    scores["vip_potential"] = np.nan
    scores["reactivation_probability"] = np.nan
    scores.loc[lapsed, "reactivation_probability"] = model.predict_proba(
        frame.loc[lapsed, model.feature_set_.names]
    )
    scores["expected_value"] = np.nan
    for column in ("tier", "is_active", "is_lapsed", "is_vip", "trailing_margin"):
        scores[column] = frame[column]
    scores = scores.reset_index()
    out = {}
    for name, value_weighted in (("value-weighted", True), ("by probability", False)):
        features = frame if value_weighted else None
        listed = build_list(
            "winback", scores, list_id=f"eval-{name}", features=features, config=ListConfig()
        )
        reactivated = labels["reactivated"].reindex(listed["customer_id"]).astype(bool)
        top = reactivated.iloc[: max(len(listed) // 10, 1)]
        out[name] = float(top.mean())
    out["base_rate"] = float(labels.loc[lapsed[lapsed].index, "reactivated"].astype(bool).mean())
    out["lapsed"] = int(lapsed.sum())
    return out


def uplift_vs_reactivation(shop, model: WinbackClassifier) -> tuple[pd.DataFrame, int, str]:
    """True incremental reactivations of the last campaign's top-k by each ranking."""
    tables = shop.tables
    contacts = tables.campaign_contacts
    last_campaign = sorted(contacts["campaign_id"].unique())[-1]
    earlier = contacts[contacts["campaign_id"] != last_campaign]
    train_tables = replace(tables, campaign_contacts=earlier)
    feature_set = latest_feature_set("reactivation")
    result, _ = fit_campaign_uplift(
        train_tables, UpliftConfig(test_share=0.2), feature_set=feature_set
    )
    full = campaign_training_table(tables, feature_set=feature_set)
    target = full.xs(last_campaign, level="campaign_id", drop_level=False)
    truth = shop.contact_truth.set_index(["campaign_id", "customer_id"]).loc[target.index]
    uplift = result.model.predict_uplift(target[result.model.feature_names_])
    react = model.predict_proba(target[model.feature_set_.names])
    true = truth["true_uplift"].to_numpy()
    rows = []
    for share in (0.1, 0.2, 0.3, 0.5):
        k = int(round(share * len(target)))
        picks = {
            "uplift model": np.argsort(-uplift, kind="stable")[:k],
            "reactivation probability": np.argsort(-react, kind="stable")[:k],
            "random (expected)": None,
            "oracle (true uplift)": np.argsort(-true, kind="stable")[:k],
        }
        for name, idx in picks.items():
            captured = true.mean() * k if idx is None else float(true[idx].sum())
            rows.append(
                {"list_share": share, "list_size": k, "ranking": name, "true_incr": captured}
            )
    return pd.DataFrame(rows), len(target), last_campaign


def hillstrom_qini(frame: pd.DataFrame) -> pd.DataFrame:
    rows = []
    columns = ["recency", "history", "mens", "womens", "zip_code", "newbie", "channel"]
    for arm in HILLSTROM_ARMS[:2]:
        part = frame[frame["segment"].isin([arm, HILLSTROM_ARMS[2]])].reset_index(drop=True)
        X = part[columns].copy()
        for column in ("zip_code", "channel"):
            X[column] = X[column].astype("category")
        for learner in ("t", "x"):
            result = fit_uplift(
                X,
                (part["segment"] == arm).to_numpy(),
                part["visit"].to_numpy(dtype=bool),
                pd.Series(part.index).astype(str),
                UpliftConfig(learner=learner, outcome_days=14),
            )
            rows.append(
                {"arm": arm, "learner": learner, "qini_test": result.qini_test,
                 "test_rows": result.test_rows}
            )  # fmt: skip
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--hillstrom", type=Path, default=Path("../shared/data/hillstrom.csv.gz"))
    args = parser.parse_args()
    pd.set_option("display.width", 160)

    started = time.perf_counter()
    shop = simulate_shop(SimulationConfig(customers=args.customers))
    tables = shop.tables
    last_day = tables.last_event_at().date()
    as_of = last_day - dt.timedelta(days=HORIZON)
    print(f"simulated shop: {args.customers:,} customers, data to {last_day}")

    latest = latest_feature_set("reactivation")
    for feature_set in dict.fromkeys((REACTIVATION_FEATURES_V1, latest)):
        model = train_reactivation(tables, dt.date(2025, 5, 31), feature_set)
        decile = winback_top_decile(tables, model, as_of)
        print(
            f"\n1. win-back list as of {as_of} ({decile['lapsed']:,} lapsed customers,"
            f" 90-day horizon), {feature_set.name} ({len(model.feature_set_.names)} columns)"
        )
        print(f"   lapsed base reactivation rate      {decile['base_rate']:.2%}")
        for name in ("value-weighted", "by probability"):
            rate = decile[name]
            print(
                f"   top decile ({name:<15}) {rate:.2%}  = {rate / decile['base_rate']:.2f}x base"
            )

    table, n_contacts, campaign = uplift_vs_reactivation(shop, model)
    print(f"\n2. campaign {campaign} ({n_contacts:,} contacts); models fitted before it;")
    print("   true incremental reactivations (sum of true uplift) captured at the same list size")
    wide = table.pivot(index=["list_share", "list_size"], columns="ranking", values="true_incr")
    print(wide.round(1).to_string())

    result, _ = fit_campaign_uplift(tables, UpliftConfig(), feature_set=latest)
    print(
        "\n3. uplift model held-out Qini coefficient (area between Qini curve and random, per customer)"
    )
    print(f"   simulator, all campaigns, T-learner: {result.qini_test:.4f} "
          f"({result.test_rows:,} held-out contacts)")  # fmt: skip

    if args.hillstrom.is_file():
        frame = load_hillstrom(args.hillstrom)
        print("   Hillstrom, e-mail arm vs no e-mail, outcome visit:")
        print(hillstrom_qini(frame).round(5).to_string(index=False))
        arms = hillstrom_arm_results(frame)
        print("\n4. Hillstrom arm results (95% CIs: Wilson for rates, t for spend)")
        for row in arms.itertuples():
            print(
                f"   {row.arm:<14} n={row.customers:,}  visit {row.visit_rate:.2%} "
                f"[{row.visit_rate_ci_low:.2%}, {row.visit_rate_ci_high:.2%}]  conversion "
                f"{row.conversion_rate:.2%} [{row.conversion_rate_ci_low:.2%}, "
                f"{row.conversion_rate_ci_high:.2%}]  spend ${row.spend_per_customer:.2f} "
                f"[{row.spend_per_customer_ci_low:.2f}, {row.spend_per_customer_ci_high:.2f}]"
            )
        for arm in HILLSTROM_ARMS[:2]:
            effects = hillstrom_effects(frame, arm)
            print(f"   {arm} vs no e-mail:")
            for row in effects.itertuples():
                scale = 100 if row.kind == "rate" else 1
                unit = " pts" if row.kind == "rate" else " $"
                print(
                    f"      {row.metric:<19} {row.difference * scale:+.2f}{unit} "
                    f"[{row.ci_low * scale:+.2f}, {row.ci_high * scale:+.2f}]"
                )
    else:
        print(f"\n(Hillstrom file {args.hillstrom} not found: skipped)")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
