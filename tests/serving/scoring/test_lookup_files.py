"""The lookup files a served instance reads: the same records as the score table, any batch."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from serving.scoring import lookup_files, store
from serving.scoring.lookup import ScoreLookup


def _table(n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = [f"K{v}" for v in rng.permutation(n) * 7]  # unsorted, uneven widths
    churn = rng.uniform(size=n)
    churn[rng.uniform(size=n) < 0.3] = np.nan
    scores = pd.DataFrame(
        {
            "customer_id": ids,
            "as_of": [dt.date(2025, 1, 31)] * n,
            "churn_risk": churn,
            "vip_potential": np.nan,
            "reactivation_probability": rng.uniform(size=n),
            "expected_value": rng.gamma(2.0, 10.0, n),
            "predicted_value": np.nan,
            "value_horizon_days": pd.array([None] * n, dtype="Int64"),
            "tier": pd.array(np.where(rng.uniform(size=n) < 0.1, "gold", None), dtype="string"),
            "is_active": rng.uniform(size=n) < 0.5,
            "is_lapsed": False,
            "is_vip": False,
            "trailing_margin": rng.gamma(2.0, 30.0, n),
            "churn_reasons": [["recent order"] if i % 5 == 0 else None for i in range(n)],
            "vip_reasons": None,
            "reactivation_reasons": None,
            "churn_model_version": "3",
            "vip_model_version": None,
            "reactivation_model_version": "1",
            "churn_feature_set": "churn_v1",
            "vip_feature_set": None,
            "reactivation_feature_set": "react_v1",
            "scored_at": pd.Timestamp("2025-02-01 02:00", tz="UTC"),
        }
    )
    features = pd.DataFrame(
        {
            "orders_365d": rng.poisson(3.0, n).astype("float64"),
            "region": ["north", "south"] * (n // 2),
        },
        index=pd.Index(ids, name="customer_id"),
    )
    return scores, features


def test_lookup_files_answer_like_the_table_in_memory(tmp_path):
    as_of = dt.date(2025, 1, 31)
    scores, features = _table(3000)  # three record batches
    store.write_score_table(scores, features, tmp_path, as_of)
    served = ScoreLookup.load(tmp_path)
    memory = ScoreLookup.from_frames(as_of, scores.set_index("customer_id"), features)
    assert served.features is not None and served.scores.batch_rows == lookup_files.BATCH_ROWS
    ids = [scores["customer_id"][i] for i in (2999, 0, 1500, 1024, 7)]
    found, unknown = served.find([*ids, "K-nope", "K1" * 40, ids[0]])
    assert found == ids and unknown == ["K-nope", "K1" * 40]
    got = served.records(found, explain=False)
    assert got == memory.records(found, explain=False)
    by_id = scores.set_index("customer_id")
    for record in got:
        row = by_id.loc[record["customer_id"]]
        churn = row["churn_risk"]
        assert record["churn_risk"] == (None if np.isnan(churn) else pytest.approx(churn))
        assert record["tier"] == (None if pd.isna(row["tier"]) else row["tier"])
        assert record["reasons"]["churn"] == row["churn_reasons"]
        assert record["model_versions"] == {"churn": "3", "vip": None, "reactivation": "1"}
    assert served.rows == 3000 and served.model_versions()["churn"] == "3"
    assert served.reference == pytest.approx({"orders_365d": features["orders_365d"].median()})


def test_model_versions_that_vary_or_are_missing_read_row_by_row(tmp_path):
    scores, features = _table(3000)
    scores["reactivation_model_version"] = np.where(np.arange(3000) < 2000, "1", "2")  # varies
    scores.loc[5, "churn_model_version"] = None  # one missing value: not a constant
    store.write_score_table(scores, features, tmp_path, dt.date(2025, 1, 31))
    served = ScoreLookup.load(tmp_path)
    ids = scores["customer_id"].tolist()
    many = served.records(ids, explain=False)
    assert [served.records([c], explain=False)[0] for c in ids] == many
    stored = [json.loads(r) for r in served.stored_json(ids)]
    assert [r["model_versions"] for r in stored] == [r["model_versions"] for r in many]
    assert many[5]["model_versions"]["churn"] is None
    assert {r["model_versions"]["reactivation"] for r in many} == {"1", "2"}
    with pytest.raises(KeyError, match="K-nope"):
        served.records(["K-nope"], explain=False)


def test_stored_json_records_say_what_the_records_say(tmp_path):
    from serving.api.schemas import scores_response_json, stored_scores_json
    from serving.scoring import record_file

    scores, features = _table(3000)
    scores.loc[3, "churn_reasons"] = ['says "why"; \\ é']  # quotes, backslash, non-ASCII
    scores.loc[4, "scored_at"] = pd.Timestamp("2025-02-01 02:00:00.250", tz="UTC")
    store.write_score_table(scores, features, tmp_path, dt.date(2025, 1, 31))
    served = ScoreLookup.load(tmp_path)
    assert served.record_file is not None and len(served.record_file) == 3000
    ids = scores["customer_id"].tolist()
    stored = json.loads(stored_scores_json(served.stored_json(ids), ["K-nope"]))
    assert stored == json.loads(
        scores_response_json(served.records(ids, explain=False), ["K-nope"])
    )
    assert stored["scores"][3]["reasons"]["churn"] == ['says "why"; \\ é']
    assert stored["scores"][4]["scored_at"] == "2025-02-01T02:00:00.250000Z"
    assert stored["scores"][0]["scored_at"] == "2025-02-01T02:00:00Z"
    with pytest.raises(KeyError, match="K-nope"):
        served.stored_json(["K-nope"])
    # a version written without record files is read from its Arrow rows
    folder = store.scores_path(tmp_path, dt.date(2025, 1, 31)).parent
    for name in record_file.RECORD_FILES:
        (folder / name).unlink()
    older = ScoreLookup.load(tmp_path)
    assert older.record_file is None and older.stored_json(ids[:1]) is None
    assert older.records(ids[:5], explain=False) == served.records(ids[:5], explain=False)


@pytest.mark.parametrize("provenance", ["one run", "varies"])
def test_records_stored_without_their_shared_parts_read_back_whole(tmp_path, provenance):
    import duckdb

    from serving.scoring import record_file

    as_of = dt.date(2025, 1, 31)
    scores, _ = _table(3000)
    scores.loc[3, "customer_id"] = 'x","churn_risk":\\"'  # the marker inside an id
    if provenance == "varies":
        scores.loc[4, "scored_at"] = pd.Timestamp("2025-02-01 02:00:00.250", tz="UTC")
    index, order = lookup_files.IdIndex.from_ids(scores["customer_id"])
    table = lookup_files.arrow_scores(scores, order)
    assert record_file.write_record_file(tmp_path, table, as_of) == 3000
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("scores", table)
    whole = [r[0].encode() for r in con.sql(record_file.record_sql(table.schema, as_of)).fetchall()]
    stored = record_file.RecordFile(tmp_path)
    assert [stored.get(i) for i in range(len(stored))] == whole
    lines = (tmp_path / record_file.RECORDS_FILE).read_bytes()
    assert lines.count(b'"as_of"') == 0  # stored once, not per row
    assert lines.count(b'"model_versions"') == (0 if provenance == "one run" else 3000)
    # a folder written before the parts file: whole lines, read as they are
    (tmp_path / record_file.RECORDS_FILE).write_bytes(b"".join(w + b"\n" for w in whole))
    np.save(tmp_path / record_file.OFFSETS_FILE, np.cumsum([0] + [len(w) + 1 for w in whole]))
    (tmp_path / record_file.PARTS_FILE).unlink()
    assert record_file.has_record_file(tmp_path)
    older = record_file.RecordFile(tmp_path)
    assert [older.get(i) for i in (0, 3, 2999)] == [whole[0], whole[3], whole[2999]]


def test_whole_table_reads_give_back_the_frames(tmp_path):
    as_of = dt.date(2025, 1, 31)
    scores, features = _table(2100)
    store.write_score_table(scores, features, tmp_path, as_of)
    served = ScoreLookup.load(tmp_path)
    frame = served.frame()
    expected = scores.set_index("customer_id").loc[frame.index]
    assert frame.index.is_monotonic_increasing and len(frame) == 2100
    pd.testing.assert_series_equal(
        frame["churn_risk"], expected["churn_risk"], check_index_type=False
    )
    assert frame["tier"].tolist() == expected["tier"].tolist()
    again = served.feature_frame()
    assert again.index.tolist() == frame.index.tolist()
    assert again["orders_365d"].tolist() == features["orders_365d"].loc[frame.index].tolist()
    assert served.feature_example() == {
        "orders_365d": features["orders_365d"].loc[frame.index[0]],
        "region": features["region"].loc[frame.index[0]],
    }


def test_a_version_without_lookup_files_is_read_into_memory(tmp_path, caplog):
    as_of = dt.date(2025, 1, 31)
    scores, features = _table(50)
    version = store.write_score_table(scores, features, tmp_path, as_of)
    for name in lookup_files.LOOKUP_FILES:
        (version.folder / name).unlink()
    served = ScoreLookup.load(tmp_path)
    assert "no lookup files" in caplog.text
    ids = scores["customer_id"].tolist()[:3]
    assert [r["customer_id"] for r in served.records(ids, explain=False)] == ids


@pytest.mark.parametrize("kind", ["list", "object", "string", "str", "arrow", "numpy"])
def test_ids_are_encoded_as_python_would_encode_them(kind):
    ids = ["b", "", "ä-7", "K12", "日本", "a" * 30, "K1"]
    values = {
        "list": ids,
        "object": pd.Series(ids, dtype=object),
        "string": pd.Series(ids, dtype="string"),
        "str": pd.Series(ids, dtype="str"),
        "arrow": pa.chunked_array([ids[:3], ids[3:]]),
        "numpy": np.array(ids, dtype=object),
    }[kind]
    expected = np.array([s.encode("utf-8") for s in ids], dtype=bytes)
    encoded = lookup_files.utf8_fixed_width(values)
    assert encoded.dtype == expected.dtype and encoded.tolist() == expected.tolist()
    index, order = lookup_files.IdIndex.from_ids(values)
    assert order.tolist() == np.argsort(expected, kind="stable").tolist()
    assert index.ids.tolist() == sorted(expected.tolist())


def test_ids_that_are_not_text_are_written_as_their_text():
    assert lookup_files.utf8_fixed_width(pd.Series([12, 3])).tolist() == [b"12", b"3"]
    assert lookup_files.utf8_fixed_width([]).dtype == np.dtype("S1")
    assert lookup_files.utf8_fixed_width(pd.Series(["", ""], dtype="string")).dtype == "S1"


def test_ids_in_order_are_written_without_moving_a_row(tmp_path):
    as_of = dt.date(2025, 1, 31)
    scores, features = _table(2100)
    order = np.argsort(scores["customer_id"].to_numpy().astype(bytes), kind="stable")
    scores, features = scores.iloc[order].reset_index(drop=True), features.iloc[order]
    assert lookup_files.IdIndex.from_ids(scores["customer_id"])[1] is None
    store.write_score_table(scores, features, tmp_path, as_of)
    served = ScoreLookup.load(tmp_path)
    expected = scores.set_index("customer_id")
    frame = served.frame()
    assert frame.index.tolist() == expected.index.tolist()
    pd.testing.assert_series_equal(
        frame["churn_risk"], expected["churn_risk"], check_index_type=False
    )
    assert frame["churn_reasons"].map(_listed).tolist() == expected["churn_reasons"].tolist()
    again = served.feature_frame()
    assert again["orders_365d"].tolist() == features["orders_365d"].tolist()
    assert again["region"].tolist() == features["region"].tolist()


def test_features_of_other_customers_are_aligned_by_id(tmp_path):
    as_of = dt.date(2025, 1, 31)
    scores, features = _table(1500)
    shuffled = features.sample(frac=1.0, random_state=3).iloc[100:]  # 100 customers lack them
    store.write_score_table(scores, shuffled, tmp_path, as_of)
    served = ScoreLookup.load(tmp_path)
    again = served.feature_frame()
    lacking = ~again.index.isin(shuffled.index)
    assert lacking.sum() == 100 and again.loc[lacking, "orders_365d"].isna().all()
    kept = again.loc[~lacking]
    assert kept["orders_365d"].tolist() == shuffled.loc[kept.index, "orders_365d"].tolist()
    assert kept["region"].tolist() == shuffled.loc[kept.index, "region"].tolist()


def _listed(value):
    return None if value is None else list(value)
