"""Request and response models of the service (pydantic, with examples for the OpenAPI page).

Field names are the project's vocabulary: ``customer_id``, ``churn_risk``,
``vip_potential``, ``reactivation_probability``, ``expected_value``, ``tier``.
Request models hide input values from validation errors so that a bad request
never writes customer data into the logs.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from features.targets import TargetName
from serving.config import MAX_POSTED_ROWS
from serving.lists.store import LIST_ID_PATTERN

#: Request models: no unknown fields, no input values in errors (no customer data in
#: logs), no infinity or NaN where a number is expected, no conversions ("1" is not 1).
REQUEST_CONFIG = ConfigDict(
    extra="forbid", hide_input_in_errors=True, allow_inf_nan=False, strict=True
)
#: Feature columns one posted-rows request may hold.
MAX_POSTED_COLUMNS = 1000


#: Customer ids one ``/scores`` request may ask for.
MAX_CUSTOMER_IDS = 1000


class ScoresRequest(BaseModel):
    """Look up the stored scores of one or more customers."""

    model_config = ConfigDict(
        **REQUEST_CONFIG,
        json_schema_extra={"example": {"customer_ids": ["C000123", "C000456"]}},
    )

    customer_ids: list[str] = Field(min_length=1, max_length=MAX_CUSTOMER_IDS)
    explain: bool = Field(
        default=True,
        description="Compute reasons now for customers that have none stored (~2 ms each).",
    )


class CustomerScores(BaseModel):
    """The scores of one customer as of the score table's date."""

    customer_id: str
    as_of: dt.date
    churn_risk: float | None = Field(description="Probability of no order within the horizon.")
    vip_potential: float | None = Field(description="Probability of reaching a VIP tier.")
    reactivation_probability: float | None = Field(
        description="Probability that a lapsed customer orders again within the horizon."
    )
    expected_value: float | None = Field(
        description="Expected gross margin over the horizon (see serving.scoring.table.expected_value)."
    )
    predicted_value: float | None = Field(
        description="The value champion's predicted margin over value_horizon_days; "
        "null without a value champion (expected_value then uses the trailing-margin rule).",
    )
    value_horizon_days: int | None = Field(description="The horizon of predicted_value, in days.")
    tier: str | None
    is_active: bool
    is_lapsed: bool
    is_vip: bool
    reasons: dict[str, list[str] | None] = Field(
        description="Top reasons per target, strongest first; null where not scored."
    )
    model_versions: dict[str, str | None]
    feature_sets: dict[str, str | None]
    scored_at: dt.datetime


class ScoresResponse(BaseModel):
    """Found customers and the ids that are not in the score table."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "scores": [
                    {
                        "customer_id": "C000123",
                        "as_of": "2024-03-31",
                        "churn_risk": 0.72,
                        "vip_potential": 0.03,
                        "reactivation_probability": None,
                        "expected_value": 12.4,
                        "tier": "silver",
                        "is_active": True,
                        "is_lapsed": False,
                        "is_vip": False,
                        "reasons": {
                            "churn": ["no order for 140 days, 3x the usual gap"],
                            "vip": None,
                            "reactivation": None,
                        },
                        "model_versions": {"churn": "3", "vip": "2", "reactivation": "1"},
                        "feature_sets": {
                            "churn": "churn_v1",
                            "vip": "vip_v1",
                            "reactivation": "reactivation_v1",
                        },
                        "scored_at": "2024-04-01T02:00:00Z",
                    }
                ],
                "not_found": ["C999999"],
            }
        }
    )

    scores: list[CustomerScores]
    not_found: list[str]


def _json_value(value: Any) -> str:
    if isinstance(value, dt.datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text  # as pydantic writes UTC
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as JSON")


def scores_response_json(scores: Sequence[dict[str, Any]], not_found: Sequence[str]) -> bytes:
    """The body of a :class:`ScoresResponse`, written directly as JSON bytes.

    ``scores`` are ``ScoreLookup.records`` (already JSON-ready, built from the
    service's own score table), so validating them into pydantic models on every
    lookup bought nothing and cost a third of the endpoint's own time. Same JSON
    as ``ScoresResponse(...).model_dump_json()`` once parsed (dates ISO, UTC as
    ``Z``).
    """
    body = {"scores": list(scores), "not_found": list(not_found)}
    text = json.dumps(body, default=_json_value, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8")


def stored_scores_json(records: Sequence[bytes], not_found: Sequence[str]) -> bytes:
    """The body of a :class:`ScoresResponse` from records stored as JSON, spliced as they are.

    What a by-id lookup sends when nothing is left to explain: the stored
    records (``serving.scoring.record_file``) are already the objects
    :func:`scores_response_json` would write.
    """
    tail = json.dumps(list(not_found), ensure_ascii=False, separators=(",", ":"))
    return b'{"scores":[' + b",".join(records) + b'],"not_found":' + tail.encode("utf-8") + b"}"


class ScoreRowsRequest(BaseModel):
    """Feature rows to score, row-wise (``rows``) or column-wise (``columns``, faster)."""

    model_config = ConfigDict(
        **REQUEST_CONFIG,
        # BentoML's OpenAPI schema takes one ``example``; the columnar form is in the docstring:
        # {"columns": {"days_since_last_order": [140.0, 12.0], "orders_365d": [3.0, 9.0]}}
        json_schema_extra={
            "example": {
                "rows": [{"days_since_last_order": 140.0, "orders_365d": 3.0}],
                "targets": ["churn"],
            }
        },
    )

    rows: list[dict[str, Any]] | None = Field(
        default=None,
        max_length=MAX_POSTED_ROWS,
        description=f"Row-wise feature values (at most {MAX_POSTED_ROWS:,} rows).",
    )
    columns: dict[str, Annotated[list[Any], Field(max_length=MAX_POSTED_ROWS)]] | None = Field(
        default=None,
        max_length=MAX_POSTED_COLUMNS,
        description=f"Column-wise feature values: feature -> values (at most {MAX_POSTED_ROWS:,} "
        f"each, {MAX_POSTED_COLUMNS} columns).",
    )
    targets: list[TargetName] | None = Field(
        default=None,
        description="Targets to score (default all three); rows need the union of their "
        "feature sets' columns, exactly.",
    )
    explain: bool = Field(
        default=False,
        description="Also return top reasons (~2 ms a row; at most 1,000 rows a request).",
    )


class ScoreRowsResponse(BaseModel):
    """Scores of posted rows, column-wise, in the order of the rows."""

    rows: int
    scores: dict[str, list[float]] = Field(
        description="Score name (churn_risk, vip_potential, reactivation_probability) → values."
    )
    reasons: dict[str, list[list[str]]] | None = None
    model_versions: dict[str, str]
    feature_sets: dict[str, str]
    predicted_value: list[float | None] | None = Field(
        default=None,
        description="The value champion's predicted margin over value_horizon_days for each "
        "row, when one is served and the rows carry its columns (its features and the purchase "
        "summary frequency, recency, T, monetary_value); else null.",
    )
    value_horizon_days: int | None = Field(
        default=None, description="The horizon of predicted_value, in days."
    )


class ModelInfo(BaseModel):
    """One served model: a target's classifier, or the ``value`` model (``winback-value``)."""

    target: TargetName | Literal["value"]
    name: str
    version: str
    feature_set: str
    feature_columns: list[str]
    trained_at: str | None
    metrics: dict[str, float]
    run_id: str | None = Field(default=None, description="The MLflow run that trained it.")
    test_metrics: dict[str, float] = Field(
        default_factory=dict, description="The run's test metrics (names without 'test_')."
    )
    baselines: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="Baseline -> metric -> value on the same test cutoff (the run's baseline_*).",
    )
    oracle: dict[str, float] | None = Field(
        default=None, description="The simulator's true probabilities scored (simulated data)."
    )
    ceiling: dict[str, float] | None = Field(
        default=None,
        description="The best achievable scorer on the rich simulated shop (its ceiling_*).",
    )
    verdict: str | None = Field(
        default=None, description="The training run's one-line verdict against its baselines."
    )
    loses_to: list[str] = Field(
        default_factory=list, description="Baselines the model does not beat (run tag loses_to)."
    )


class ScoreTableInfo(BaseModel):
    """The score table answering lookups."""

    as_of: dt.date
    rows: int
    model_versions: dict[str, str | None]
    stale_targets: list[str] = Field(
        description="Targets whose stored scores came from another model version than the "
        "served one: rerun `winback score`."
    )


class RequestLimits(BaseModel):
    """What one request may hold; past these the service answers 400 or 413."""

    max_body_bytes: int = Field(description="Largest request body (413 past it).")
    max_rows: int = Field(description="Feature rows one `/score_rows` request may post.")
    max_customer_ids: int = Field(
        default=MAX_CUSTOMER_IDS, description="Customer ids one `/scores` request may ask for."
    )
    max_explain_rows: int = Field(
        description="Rows one request may ask reasons for (`explain`); clients split longer "
        "requests."
    )


class ModelsResponse(BaseModel):
    """What the service is serving, and the limits of one request."""

    models: list[ModelInfo]
    score_table: ScoreTableInfo
    limits: RequestLimits


class ErrorResponse(BaseModel):
    """Body of every 4xx/503 answer: ``error`` says what is wrong and what to do.

    The other fields appear where they apply: the ids not found (404), the
    columns that do not fit (bad feature rows), the validation errors of a
    malformed body (``detail``), the limit that was passed (413).
    """

    error: str
    detail: list[dict[str, Any]] | None = Field(
        default=None, description="Validation errors of the body (type, loc, msg)."
    )
    not_found: list[str] | None = None
    list_id: str | None = None
    feature_set: str | None = None
    missing: list[str] | None = None
    unexpected: list[str] | None = None
    wrong_dtypes: dict[str, dict[str, str]] | None = None
    incomplete_rows: dict[str, list[int]] | None = None
    max_body_bytes: int | None = None


class MeasurementRequest(BaseModel):
    """Measure a saved list: treated versus control after the list date (``POST /lists/measurement``)."""

    model_config = ConfigDict(
        **REQUEST_CONFIG,
        json_schema_extra={
            "example": {"list_id": "winback-20251231T090000Z-3fa2c1", "as_of": "2026-03-31"}
        },
    )

    list_id: str = Field(
        description="The id returned when the list was made.", pattern=LIST_ID_PATTERN
    )
    as_of: str | None = Field(
        default=None,
        description="Measure up to this date (YYYY-MM-DD, after the list date); default: the "
        "last day of the measurement data.",
    )
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0, description="Interval level.")


class MetricComparison(BaseModel):
    """One metric, treated versus control: values, difference, its interval and p-value."""

    metric: str
    kind: Literal["rate", "mean"]
    treatment: float | None
    control: float | None
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    n_treatment: int
    n_control: int


class GroupValue(BaseModel):
    """One group's value of one metric with its own interval (Wilson for rates, t for means)."""

    group: str
    metric: str
    kind: Literal["rate", "mean"]
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int


class MeasurementResponse(BaseModel):
    """A measured list: per metric the comparison and each group's value with its interval."""

    list_id: str
    kind: str
    list_date: dt.date
    as_of: dt.date
    data_until: dt.date = Field(description="The last transaction day of the measurement data.")
    confidence: float
    metrics: list[MetricComparison]
    groups: list[GroupValue]
