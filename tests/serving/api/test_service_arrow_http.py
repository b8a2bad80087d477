"""Posted rows as an Arrow IPC stream: same scores and the same checks as a JSON body.

Through HTTP with the session ``client`` (conftest) over the three tiny models of
``test_service_http``; plus ``arrow_to_columns`` against ``rows_to_columns`` on
the same values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from features.feature_sets import FeatureSet
from serving.config import ServingConfig
from serving.scoring.rows import ARROW_STREAM, RowsInvalid, arrow_to_columns, rows_to_columns
from tests.serving.api.test_service_fast_http import assert_scores_are_predict_proba
from tests.serving.api.test_service_http import API_KEY, FEATURES, VIP_FEATURES, synthetic_features

ARROW = {"Authorization": f"Bearer {API_KEY}", "Content-Type": ARROW_STREAM}
LARGE = ServingConfig().direct_rows + 44


def arrow_body(table: pa.Table) -> bytes:
    """``table`` written as one Arrow IPC stream (what a client posts)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _table(n: int, seed: int, names: list[str]) -> tuple[pa.Table, pd.DataFrame]:
    frame = synthetic_features(n, seed).reset_index(drop=True)[names]
    frame.loc[frame.index[::7], "margin_365d_amount"] = np.nan
    if "region" in frame:
        frame.loc[frame.index[::5], "region"] = None
    return pa.Table.from_pandas(frame, preserve_index=False), frame


@pytest.fixture(scope="module")
def served(serving_home):
    from serving.scoring.models import load_served_models
    from training.tracking.runs import TrackingConfig

    uri = TrackingConfig(root=str(serving_home / "mlruns")).resolved_tracking_uri()
    return load_served_models(ServingConfig(home=serving_home), tracking_uri=uri)


@pytest.mark.parametrize("rows", [3, LARGE])
def test_an_arrow_body_scores_like_predict_proba(client, served, rows):
    table, frame = _table(rows, 31, FEATURES.names)
    response = client.post("/score_rows", content=arrow_body(table), headers=ARROW)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["rows"] == rows and body["reasons"] is None
    assert body["model_versions"] == {"churn": "1", "vip": "1", "reactivation": "1"}
    assert_scores_are_predict_proba(body, served, frame)


def test_the_json_body_and_the_arrow_body_get_the_same_answer(client):
    table, frame = _table(40, 32, FEATURES.names)
    columns = frame.astype(object).where(frame.notna(), None).to_dict("list")
    as_json = client.post(
        "/score_rows",
        json={"columns": columns, "explain": True},
        headers=ARROW | {"Content-Type": "application/json"},
    )
    as_arrow = client.post("/score_rows?explain=true", content=arrow_body(table), headers=ARROW)
    assert as_json.status_code == as_arrow.status_code == 200
    assert as_arrow.json() == as_json.json()
    assert as_arrow.json()["reasons"]["churn"][0]  # reasons came along


def test_targets_in_the_query_select_models_and_the_columns_they_need(client, served):
    table, frame = _table(12, 33, VIP_FEATURES.names)
    response = client.post("/score_rows?targets=vip", content=arrow_body(table), headers=ARROW)
    assert response.status_code == 200, response.text
    assert list(response.json()["scores"]) == ["vip_potential"]
    expected = served["vip"].model.predict_proba(frame)
    np.testing.assert_allclose(response.json()["scores"]["vip_potential"], expected, atol=1e-12)
    churn = client.post("/score_rows?targets=churn,vip", content=arrow_body(table), headers=ARROW)
    assert churn.status_code == 400
    assert set(churn.json()["missing"]) == {"days_since_last_order", "region"}


@pytest.mark.parametrize(
    ("column", "values", "got"),
    [
        ("margin_365d_amount", pa.array(["lots"] * 4), "string"),
        ("order_count_365d", pa.array([True, False, True, None]), "bool"),
        ("region", pa.array([1, 2, 3, 4]), "int64"),
    ],
)
def test_a_mistyped_arrow_column_is_a_400_naming_it(client, column, values, got):
    table, _ = _table(4, 34, FEATURES.names)
    table = table.set_column(table.column_names.index(column), column, values)
    response = client.post("/score_rows", content=arrow_body(table), headers=ARROW)
    assert response.status_code == 400
    expected = FEATURES.dtypes[column]
    assert response.json()["wrong_dtypes"] == {column: {"expected": expected, "got": got}}


def test_missing_and_extra_arrow_columns_are_named_never_nan_filled(client):
    table, _ = _table(4, 35, FEATURES.names)
    table = table.drop_columns(["order_count_365d"]).append_column("postcode", pa.array(["A"] * 4))
    response = client.post("/score_rows", content=arrow_body(table), headers=ARROW)
    assert response.status_code == 400
    assert response.json()["missing"] == ["order_count_365d"]
    assert response.json()["unexpected"] == ["postcode"]


@pytest.mark.parametrize(
    ("path", "body", "says"),
    [
        ("/score_rows", b"not arrow at all", "not a valid Arrow IPC stream"),
        ("/score_rows?targets=upsell", None, "unknown targets ['upsell']"),
        ("/score_rows?explain=maybe", None, "explain="),
    ],
)
def test_bad_arrow_requests_are_a_400_saying_why(client, path, body, says):
    if body is None:
        body = arrow_body(_table(2, 36, FEATURES.names)[0])
    response = client.post(path, content=body, headers=ARROW)
    assert response.status_code == 400
    assert says in response.json()["error"]


def test_an_arrow_body_still_needs_the_api_key(client):
    body = arrow_body(_table(2, 37, FEATURES.names)[0])
    for headers in ({"Content-Type": ARROW_STREAM}, ARROW | {"Authorization": "Bearer wrong"}):
        response = client.post("/score_rows", content=body, headers=headers)
        assert response.status_code == 401


# ------------------------------------------------------------ arrow_to_columns

SMALL = FeatureSet("arrow_v1", (("orders", "float64"), ("channel", "category")))


@pytest.mark.parametrize(
    "table",
    [
        pa.table({"orders": pa.array([1, None, 3], pa.int32()), "channel": ["a", None, "b"]}),
        pa.table(
            {
                "channel": pa.array(["a", None, "b"]).dictionary_encode(),
                "orders": pa.array([1.0, None, 3.0], pa.float32()),
            }
        ),
        pa.table(
            {
                "orders": pa.array([1.0, None, 3.0]),
                "channel": pa.array(["a", None, "b"], pa.large_string()),
            }
        ),
    ],
    ids=["int32", "dictionary-float32-reordered", "large-string"],
)
def test_arrow_columns_are_the_columns_json_gives(table):
    got = arrow_to_columns(SMALL, arrow_body(table)).frame
    want = rows_to_columns(SMALL, columns={"orders": [1, None, 3], "channel": ["a", None, "b"]})
    pd.testing.assert_frame_equal(got, want.frame)


def test_integers_beyond_float_precision_are_rounded_like_json_numbers():
    big = [2**60 + 1, None, -(2**55) - 1]
    table = pa.table({"orders": pa.array(big, pa.int64()), "channel": ["a", "b", None]})
    got = arrow_to_columns(SMALL, arrow_body(table)).frame
    want = rows_to_columns(SMALL, columns={"orders": big, "channel": ["a", "b", None]})
    pd.testing.assert_frame_equal(got, want.frame)


def test_an_all_null_arrow_column_is_missing_values_and_row_limits_hold():
    table = pa.table({"orders": pa.nulls(2), "channel": pa.nulls(2)})
    frame = arrow_to_columns(SMALL, arrow_body(table)).frame
    assert frame["orders"].isna().all() and frame["channel"].isna().all()
    with pytest.raises(RowsInvalid, match="more than 2 rows sent, at most 2"):
        arrow_to_columns(
            SMALL, arrow_body(pa.table({"orders": [1.0] * 3, "channel": ["a"] * 3})), max_rows=2
        )
    with pytest.raises(RowsInvalid, match="no rows sent"):
        arrow_to_columns(
            SMALL,
            arrow_body(
                pa.table(
                    {"orders": pa.array([], pa.float64()), "channel": pa.array([], pa.string())}
                )
            ),
        )
