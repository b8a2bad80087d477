"""One Arrow conversion per frame gives every file of a version, byte for byte as two would."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pytest

from serving.scoring import lookup_files, store
from serving.scoring.arrow_tables import frame_table, without_index
from tests.serving.scoring.test_lookup_files import _table


def _features(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=n)
    values[rng.random(n) < 0.3] = np.nan
    frame = pd.DataFrame(
        {
            "orders_365d": values,
            "region": pd.Categorical(rng.choice(["north", "south", None], n)),
            "channel": pd.Categorical(rng.choice(["web", "shop"], n), categories=["web", "shop"]),
            "plain": rng.choice(["a", "b", None], n).astype(object),
        },
        index=pd.Index([f"C{i:05d}" for i in range(n)], name="customer_id"),
    )
    frame.attrs = {"as_of": "2025-01-31", "omitted_features": ["x"]}
    return frame


@pytest.mark.parametrize("n", [1, 7, 1025, 3001])
def test_the_lookup_tables_are_what_their_own_conversions_give(n):
    scores, _ = _table(n + n % 2, seed=n)
    scores = scores.iloc[:n].reset_index(drop=True)
    converted = without_index(frame_table(scores), scores)
    direct = lookup_files._from_pandas(scores)
    assert converted.equals(direct, check_metadata=True)
    features = _features(n, seed=n)
    converted = without_index(frame_table(features), features)
    direct = lookup_files.arrow_features(features)
    assert converted.equals(direct, check_metadata=True)
    assert converted.schema.field("region").type == pa.large_string()


def test_a_version_written_from_one_conversion_equals_one_from_fresh_conversions(tmp_path):
    as_of = dt.date(2025, 1, 31)
    scores = _table(3002)[0].iloc[:3001]  # an odd count: the last bitmap byte is partial
    order = np.argsort(scores["customer_id"].to_numpy().astype(bytes), kind="stable")
    scores = scores.iloc[order].reset_index(drop=True)  # in id order, as scoring writes it
    features = _features(3001, seed=2).set_axis(pd.Index(scores["customer_id"], name="customer_id"))
    version = store.write_score_table(scores, features, tmp_path / "store", as_of)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    lookup_files.write_lookup_files(fresh, scores, features, as_of)  # each frame converted anew
    scores.reset_index(drop=True).to_parquet(fresh / store.SCORES_FILE, index=True)
    features.to_parquet(fresh / store.FEATURES_FILE, index=True)
    for name in (*lookup_files.LOOKUP_FILES, store.SCORES_FILE, store.FEATURES_FILE):
        assert (version.folder / name).read_bytes() == (fresh / name).read_bytes(), name


def _encoded_by_hashing(column: pa.ChunkedArray) -> pa.ChunkedArray:
    encoded = pc.dictionary_encode(column.combine_chunks())
    return pa.chunked_array([encoded.cast(pa.dictionary(pa.int8(), pa.string()))])


def _file_bytes(column: pa.ChunkedArray) -> bytes:
    table = pa.table({"c": column})
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=lookup_files.BATCH_ROWS)
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize("n", [1, 7, 1025, 3001])
@pytest.mark.parametrize("kind", ["constant", "missing", "two values", "one missing"])
def test_a_constant_column_is_encoded_as_hashing_encodes_it(n, kind):
    values = {
        "constant": ["3"] * n,
        "missing": [None] * n,
        "two values": (["a", "b"] * n)[:n],
        "one missing": ["x"] * (n - 1) + [None],
    }[kind]
    column = pa.chunked_array([pa.array(values, pa.string())])
    encoded = lookup_files.dictionary_column(column)
    assert encoded.equals(_encoded_by_hashing(column))
    assert _file_bytes(encoded) == _file_bytes(_encoded_by_hashing(column))
