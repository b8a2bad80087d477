"""The whole job in one call: what ``winback demo`` runs.

Steps, each a call into the stage that owns it: simulate (or load) the shop
and validate it, train and gate the three models and the value model, score
every customer, and
write the retention lists. This module only wires them and collects a summary;
it owns no logic of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from winback.config import WinbackConfig, list_config

Progress = Callable[[str], None]

#: The model each retention list ranks by.
LIST_TARGETS = {"at-risk": "churn", "winback": "reactivation", "vip-potential": "vip"}


@dataclass
class DemoResult:
    """What the demo produced and where it put it."""

    output_dir: Path
    data_dir: Path | None
    validation: pd.DataFrame
    training: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    score_version: Any = None
    lists: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    tracking_uri: str = ""
    uplift_qini: float | None = None
    uplift_version: str | None = None
    uplift_promoted: bool | None = None
    value: Any = None


def load_or_simulate(config: WinbackConfig, out_dir: Path, progress: Progress):
    """``(validation, truth, data_dir)``: the configured data, or a simulated shop written to disk.

    The simulated shop goes through the same loader and contract as a user's
    data, so the demo exercises the boundary a real shop meets.
    """
    from features.inputs.sources import load_shop

    if config.data.path is not None:
        progress(f"loading {config.data.path}")
        return load_shop(config.data.path, config.data.mapping), None, None
    from features.simulation import simulate_shop, write_shop

    progress(f"simulating a shop of {config.simulation.customers:,} customers")
    shop = simulate_shop(config.simulation)
    data_dir = out_dir / "data"
    write_shop(shop, data_dir)
    progress("validating the simulated shop")
    return load_shop(data_dir), shop, data_dir


def run_demo(
    config: WinbackConfig,
    *,
    progress: Progress = lambda message: None,
    step: Callable[[str], None] = lambda name: None,
) -> DemoResult:
    """Run the whole job with ``config``; ``step`` is called as each step starts."""
    from features.inputs.contracts import write_quarantine
    from serving.scoring.models import load_served_models
    from serving.scoring.table import score_customers
    from training.pipeline import UnsupportedTargetError, train_target
    from training.tracking.runs import configure_tracking

    out_dir = Path(config.demo.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    started = time.perf_counter()
    step("data")
    validation, shop, data_dir = load_or_simulate(config, out_dir, progress)
    tables = validation.tables
    write_quarantine(validation, out_dir / "validation")
    timings["data"] = time.perf_counter() - started
    result = DemoResult(out_dir, data_dir, validation.summary())

    for target in config.demo.targets:
        started = time.perf_counter()
        step(f"train {target}")
        train_config = config.train.model_copy(
            update={"target": target, "tune_trials": config.demo.tune_trials}
        )
        try:
            result.training[target] = train_target(
                tables, train_config, truth=shop, progress=lambda m, t=target: progress(f"{t}: {m}")
            )
        except UnsupportedTargetError as exc:
            # the data cannot support this target (e.g. too short a history): skip it
            result.skipped[target] = str(exc).splitlines()[0]
            progress(f"{target}: skipped — {result.skipped[target]}")
        timings[f"train {target}"] = time.perf_counter() - started
    if not result.training:
        raise ValueError(
            "no target could be trained: "
            + "; ".join(f"{t}: {reason}" for t, reason in result.skipped.items())
        )

    from winback.demo_value import train_demo_value

    started = time.perf_counter()
    step("train value")
    result.value = train_demo_value(config, tables, progress)
    timings["train value"] = time.perf_counter() - started

    started = time.perf_counter()
    step("score")
    serving_config = config.serving.model_copy(update={"horizon_days": config.train.horizon_days})
    result.tracking_uri = configure_tracking(config.train.tracking)
    models = load_served_models(serving_config, targets=list(result.training))
    as_of = tables.last_event_at().date()
    progress(f"scoring every customer as of {as_of}")
    result.score_version = score_customers(tables, as_of, models, serving_config)
    timings["score"] = time.perf_counter() - started

    result.lists = _write_lists(config, serving_config, tables, result, progress, step, timings)
    result.timings = timings
    return result


def _write_lists(config, serving_config, tables, result, progress, step, timings) -> dict:
    """The three retention lists, each with a control group, saved under a list id.

    Where past campaigns exist, an uplift model is fitted on them first and
    registered as ``winback-uplift`` (gated on held-out Qini), so the win-back
    list ranks by the champion's uplift: customers who come back *because* of
    the contact first. Rules and list settings come from ``[lists]``.
    """
    from serving.lists.store import ListOptions, create_list_from_score_table
    from serving.lists.targeting import TargetingConfig

    started = time.perf_counter()
    step("lists")
    out_dir = Path(config.demo.output_dir)
    tracking = config.train.tracking
    if tables.campaign_contacts is not None and len(tables.campaign_contacts):
        from training.uplift.record import train_uplift

        progress("fitting the uplift model on past campaigns")
        uplift = train_uplift(
            tables, tracking=tracking, min_improvement=config.train.gate_min_improvement
        )
        result.uplift_qini = uplift.result.qini_test
        result.uplift_version = uplift.version
        result.uplift_promoted = uplift.promoted
    saved = {}
    as_of = result.score_version.as_of
    lists = list_config(config)
    targeting = TargetingConfig(contact_cost=config.lists.contact_cost)
    for kind, target in LIST_TARGETS.items():
        if target not in result.training and not (kind == "winback" and result.uplift_version):
            result.skipped[f"list {kind}"] = f"no {target} model (target skipped)"
            continue
        progress(f"list {kind}")
        frame, manifest = create_list_from_score_table(
            kind,
            serving_config.score_path,
            out_dir / "lists",
            as_of,
            ListOptions(config=lists, targeting=targeting, log_to_mlflow=True, tracking=tracking),
        )
        saved[kind] = manifest
    timings["lists"] = time.perf_counter() - started
    return saved
