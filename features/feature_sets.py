"""Versioned feature sets: a name and an ordered list of typed columns.

Training logs the feature set a model was fitted on; serving checks every frame
it scores against it, so that training and serving never disagree silently.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from features.definitions import FeatureDefinition
from features.targets import TARGET_NAMES


class FeatureSetMismatch(ValueError):
    """A frame does not have the columns (or dtypes) a feature set requires."""

    def __init__(self, feature_set: str, missing: list[str], unexpected: list[str], wrong: dict):
        self.feature_set = feature_set
        self.missing = missing
        self.unexpected = unexpected
        self.wrong_dtypes = wrong
        parts = []
        if missing:
            parts.append(f"missing columns {missing}")
        if unexpected:
            parts.append(f"unexpected columns {unexpected}")
        if wrong:
            parts.append(
                "wrong dtypes "
                + ", ".join(f"{k}: expected {e}, got {g}" for k, (e, g) in wrong.items())
            )
        super().__init__(f"feature set {feature_set!r}: " + "; ".join(parts))


@dataclass(frozen=True)
class FeatureSet:
    """An ordered, typed list of feature columns under a versioned name.

    ``dtype`` is ``"float64"`` for numeric features and ``"category"`` for
    categoricals (strings at the boundary, encoded as pandas categoricals for
    LightGBM).
    """

    name: str
    columns: tuple[tuple[str, str], ...]
    #: User-defined features among the columns (``features.custom``): a model carries
    #: their definitions, so scoring builds them exactly as training did.
    custom: tuple[FeatureDefinition, ...] = ()

    @property
    def names(self) -> list[str]:
        return [c for c, _ in self.columns]

    @property
    def dtypes(self) -> dict[str, str]:
        return dict(self.columns)

    @property
    def categorical(self) -> list[str]:
        return [c for c, d in self.columns if d == "category"]

    def subset(self, available: Iterable[str], name: str | None = None) -> FeatureSet:
        """The same set restricted to the columns in ``available`` (order kept)."""
        keep = set(available)
        return FeatureSet(
            name or self.name,
            tuple(c for c in self.columns if c[0] in keep),
            tuple(d for d in self.custom if d.name in keep),
        )

    def check(self, frame: pd.DataFrame, *, allow_extra: bool = True) -> None:
        """Raise :class:`FeatureSetMismatch` naming every missing or mistyped column."""
        dtypes = dict(zip(frame.columns, frame.dtypes, strict=True))  # one pass, not per column
        missing = [c for c in self.names if c not in dtypes]
        unexpected = [] if allow_extra else [c for c in frame.columns if c not in self.dtypes]
        wrong = {}
        for col, expected in self.columns:
            if col not in dtypes:
                continue
            got = dtypes[col]
            if expected == "category":
                ok = isinstance(got, pd.CategoricalDtype) or pd.api.types.is_string_dtype(got)
            else:
                ok = pd.api.types.is_numeric_dtype(got) and not pd.api.types.is_bool_dtype(got)
            if not ok:
                wrong[col] = (expected, str(got))
        if missing or unexpected or wrong:
            raise FeatureSetMismatch(self.name, missing, unexpected, wrong)

    def to_dict(self) -> dict:
        out: dict = {"name": self.name, "columns": [list(c) for c in self.columns]}
        if self.custom:
            from features.custom.spec import definition_as_dict

            out["custom"] = [definition_as_dict(d) for d in self.custom]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> FeatureSet:
        columns = tuple((str(c), str(d)) for c, d in data["columns"])
        if not data.get("custom"):
            return cls(data["name"], columns)
        from features.custom.spec import definition_from_dict

        return cls(data["name"], columns, tuple(definition_from_dict(d) for d in data["custom"]))

    def with_custom(self, definitions: Iterable[FeatureDefinition]) -> FeatureSet:
        """This set plus user-defined features, under a name that says which ones.

        The name gets ``_custom_<8 hex>``, a hash of the definitions (name, table,
        expression, window, fill), so a model records exactly which version of
        them it was trained on and any change to them is a new feature-set version.
        """
        definitions = tuple(definitions)
        if not definitions:
            return self
        from features.custom.spec import definitions_version

        taken = set(self.names)
        clash = [d.name for d in definitions if d.name in taken]
        if clash:
            raise ValueError(f"feature set {self.name!r} already has columns {clash}")
        return FeatureSet(
            f"{self.name}_custom_{definitions_version(definitions)}",
            self.columns + tuple((d.name, d.dtype) for d in definitions),
            self.custom + definitions,
        )


def union_feature_sets(sets: Iterable[FeatureSet], name: str) -> FeatureSet:
    """The columns of several sets (first appearance wins the order) and their custom features.

    Raises ``ValueError`` when two sets define a user-defined feature of the
    same name differently: one scoring frame cannot hold both.
    """
    columns: dict[str, str] = {}
    custom: dict[str, FeatureDefinition] = {}
    for fs in sets:
        for column, dtype in fs.columns:
            columns.setdefault(column, dtype)
        for definition in fs.custom:
            known = custom.setdefault(definition.name, definition)
            if known != definition:
                raise ValueError(
                    f"feature {definition.name!r} has two definitions among the served models "
                    f"({name}): retrain them with the same winback.toml [[features.custom]]"
                )
    return FeatureSet(name, tuple(columns.items()), tuple(custom.values()))


# --- Versioned feature sets -------------------------------------------------------------
# Frozen lists: never edit a released set, add a ``_V2`` instead (a model records the
# set it was trained on, and serving checks frames against exactly that list).

_F = "float64"
_C = "category"

_RECENCY_FREQUENCY = (
    ("days_since_last_order", _F),
    ("tenure_days", _F),
    ("order_count", _F),
    ("order_count_30d", _F),
    ("order_count_90d", _F),
    ("order_count_180d", _F),
    ("order_count_365d", _F),
    ("order_count_trend_90d", _F),
    ("order_count_share_90d_of_180d", _F),
    ("order_count_share_180d_of_365d", _F),
    ("purchase_day_count", _F),
    ("purchase_gap_mean_days", _F),
    ("purchase_gap_std_days", _F),
    ("overdue_ratio", _F),
)
_MONETARY_MARGIN = (
    ("spend_amount", _F),
    ("spend_30d_amount", _F),
    ("spend_90d_amount", _F),
    ("spend_180d_amount", _F),
    ("spend_365d_amount", _F),
    ("spend_trend_90d", _F),
    ("spend_share_90d_of_180d", _F),
    ("spend_share_180d_of_365d", _F),
    ("order_value_mean_amount", _F),
    ("order_value_max_amount", _F),
    ("order_value_std_amount", _F),
    ("total_margin_amount", _F),
    ("margin_365d_amount", _F),
    ("margin_rate", _F),
    ("full_price_spend_share", _F),
    ("discount_rate", _F),
    ("discounted_order_share", _F),
    ("high_margin_spend_share", _F),
)
_CATEGORIES = (
    ("category_count", _F),
    ("top_category_spend_share", _F),
    ("category_concentration_share", _F),
)
_RETURNS = (
    ("returned_line_count", _F),
    ("returned_line_count_365d", _F),
    ("returned_amount", _F),
    ("return_rate", _F),
)
_SUPPORT = (
    ("support_ticket_count", _F),
    ("support_ticket_count_90d", _F),
    ("days_since_last_support_ticket", _F),
)
_ADVOCACY = (
    ("referral_count", _F),
    ("referral_count_365d", _F),
    ("review_count", _F),
    ("review_rating_mean", _F),
    ("days_since_last_review", _F),
)
_STATIC = (("region", _C), ("acquisition_channel", _C))

#: Churn: every behavioural signal, including support friction and recent engagement.
CHURN_FEATURES_V1 = FeatureSet(
    "churn_features_v1",
    _RECENCY_FREQUENCY + _MONETARY_MARGIN + _CATEGORIES + _RETURNS + _SUPPORT + _ADVOCACY + _STATIC,
)

#: VIP potential: value, margin, breadth and advocacy; support timing left out.
VIP_FEATURES_V1 = FeatureSet(
    "vip_features_v1",
    _RECENCY_FREQUENCY
    + _MONETARY_MARGIN
    + _CATEGORIES
    + _RETURNS
    + (("support_ticket_count", _F),)
    + (("referral_count", _F), ("referral_count_365d", _F), ("review_count", _F))
    + (("review_rating_mean", _F),)
    + _STATIC,
)

#: Reactivation of lapsed customers: how lapsed, how they used to buy (discounts), friction.
REACTIVATION_FEATURES_V1 = FeatureSet(
    "reactivation_features_v1",
    _RECENCY_FREQUENCY + _MONETARY_MARGIN + _CATEGORIES + _RETURNS + _SUPPORT + _ADVOCACY + _STATIC,
)

_DIGITAL_ENGAGEMENT = (
    ("days_since_last_engagement", _F),
    ("engagement_count_30d", _F),
    ("engagement_count_90d", _F),
    ("engagement_count_365d", _F),
    ("engagement_trend_30d", _F),
    ("site_visit_count_90d", _F),
    ("email_open_count_90d", _F),
    ("email_click_count_90d", _F),
    ("engagement_per_order_90d", _F),
)

#: V2 sets: V1 plus digital engagement (sessions, opens, clicks; omitted when the
#: shop has no ``engagement_events`` table, and the model is fitted on the V1 subset).
CHURN_FEATURES_V2 = FeatureSet("churn_features_v2", CHURN_FEATURES_V1.columns + _DIGITAL_ENGAGEMENT)
VIP_FEATURES_V2 = FeatureSet("vip_features_v2", VIP_FEATURES_V1.columns + _DIGITAL_ENGAGEMENT)
REACTIVATION_FEATURES_V2 = FeatureSet(
    "reactivation_features_v2", REACTIVATION_FEATURES_V1.columns + _DIGITAL_ENGAGEMENT
)

_PRODUCTS = (
    ("distinct_product_count_90d", _F),
    ("distinct_product_count_365d", _F),
    ("repeat_product_line_share_365d", _F),
)


#: V3 sets: V2 plus product diversity (omitted when the shop's transactions have no
#: ``product_id``, and the model is fitted on the V2 subset).
def _next_version(previous: FeatureSet, added: tuple[tuple[str, str], ...]) -> FeatureSet:
    """``previous`` plus ``added`` columns, named as the target's next version."""
    stem, _, version = previous.name.rpartition("_v")
    return FeatureSet(f"{stem}_v{int(version) + 1}", previous.columns + added)


def _after(columns: tuple, anchor: str, *added: tuple[str, str]) -> tuple:
    """``columns`` with ``added`` inserted after ``anchor`` (the build's registry order)."""
    at = [name for name, _ in columns].index(anchor) + 1
    return columns[:at] + added + columns[at:]


CHURN_FEATURES_V3 = _next_version(CHURN_FEATURES_V2, _PRODUCTS)
#: VIP V3 also has where the customer's trailing-year spend ranks in the shop at the
#: cutoff. VIP is a rank (the top of trailing value), and absolute spend thresholds
#: learned on older cutoffs do not carry to newer ones in a growing or young shop.
VIP_FEATURES_V3 = FeatureSet(
    "vip_features_v3",
    _after(VIP_FEATURES_V2.columns, "spend_share_180d_of_365d", ("spend_365d_rank_share", _F))
    + _PRODUCTS,
)
REACTIVATION_FEATURES_V3 = _next_version(REACTIVATION_FEATURES_V2, _PRODUCTS)

_NET_VALUE = tuple(
    (f"net_{basis}_{days}d_{unit}", _F)
    for unit in ("amount", "mean_share")
    for basis in ("spend", "margin")
    for days in (275, 365)
)
#: VIP V4 also has the customer's value as tiers count it (net of returns; margin where the
#: shop has it) over the 275 days that still count at the end of the horizon and over the
#: whole 365-day tier window, each also relative to the shop's mean value at the cutoff.
#: Measured over three rolling origins it lifted VIP ROC-AUC on Online Retail from 0.960
#: to 0.967 and on the simulated 20,000-customer shop from 0.963 to 0.965
#: (``benchmarks/model_experiments.py --targets vip --candidates regularised vip_features_v3``).
VIP_FEATURES_V4 = FeatureSet(
    "vip_features_v4",
    _after(VIP_FEATURES_V3.columns, "spend_365d_rank_share", *_NET_VALUE),
)

#: What the BG/NBD x Gamma-Gamma models fitted on the training cutoffs say of a customer
#: (``training.evaluation.value_baselines.BtydValueBaseline.features``): not SQL features, but as
#: point-in-time, since each row's summary stops at its own cutoff.
_BTYD = (
    ("btyd_expected_purchases", _F),
    ("btyd_p_alive", _F),
    ("btyd_expected_spend", _F),
    ("btyd_expected_value", _F),
)

#: Value features computed after the feature table, from models fitted on training cutoffs.
MODEL_DERIVED_FEATURES = tuple(name for name, _ in _BTYD)

#: Customer value (future margin): every behavioural signal, digital engagement and BTYD.
#: Not in :data:`FEATURE_SETS` (whose sets all build from SQL alone): its ``btyd_*``
#: columns come from models fitted per training run (``training.evaluation.value_baselines``).
VALUE_FEATURES_V1 = FeatureSet("value_features_v1", CHURN_FEATURES_V2.columns + _BTYD)

#: Every released feature set by name.
FEATURE_SETS: dict[str, FeatureSet] = {
    fs.name: fs
    for fs in (
        CHURN_FEATURES_V1,
        VIP_FEATURES_V1,
        REACTIVATION_FEATURES_V1,
        CHURN_FEATURES_V2,
        VIP_FEATURES_V2,
        REACTIVATION_FEATURES_V2,
        CHURN_FEATURES_V3,
        VIP_FEATURES_V3,
        REACTIVATION_FEATURES_V3,
        VIP_FEATURES_V4,
    )
}


#: The targets that have released feature sets.
TARGETS = TARGET_NAMES


def latest_feature_set(target: str) -> FeatureSet:
    """The highest released version of ``target``'s feature set.

    Training uses it as the default so a new version (``_V2``) is picked up
    without touching the pipeline; a model records the exact set it used. The
    user-defined features active in this context (``features.custom``) are
    appended, under a name carrying their hash (:meth:`FeatureSet.with_custom`).

    Parameters
    ----------
    target
        ``"churn"``, ``"vip"`` or ``"reactivation"``.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; expected one of {list(TARGETS)}")
    prefix = f"{target}_features_v"
    versions = {
        int(name[len(prefix) :]): fs
        for name, fs in FEATURE_SETS.items()
        if name.startswith(prefix) and name[len(prefix) :].isdigit()
    }
    if not versions:
        raise KeyError(f"no released feature set for target {target!r} (looked for {prefix}N)")
    return _with_active_custom(versions[max(versions)])


def _with_active_custom(feature_set: FeatureSet) -> FeatureSet:
    from features.custom.active import active_custom_features

    return feature_set.with_custom(active_custom_features())


def get_feature_set(name: str) -> FeatureSet:
    """The released feature set called ``name``, plus the active user-defined features.

    ``name`` may carry the ``_custom_<hash>`` suffix of :meth:`FeatureSet.with_custom`;
    it must then match the user-defined features active in this context.
    ``KeyError`` listing the known sets otherwise.
    """
    base, _, version = name.partition("_custom_")
    if base not in FEATURE_SETS:
        raise KeyError(f"no feature set named {name!r}; known sets: {sorted(FEATURE_SETS)}")
    found = _with_active_custom(FEATURE_SETS[base])
    if version and found.name != name:
        raise KeyError(
            f"feature set {name!r} names user-defined features that differ from those "
            f"configured now ({found.name!r}): restore the [[features.custom]] entries it "
            "was made with, or use the current name"
        )
    return found
