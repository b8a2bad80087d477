"""Validation at the boundary: every bad-input case gets exact counts and a clear message."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.inputs.contracts import (
    EXCLUDE_REASON_COLUMN,
    SOURCE_ROW_COLUMN,
    ContractError,
    ContractOptions,
    ValidationReport,
    validate_shop,
    validate_table,
    write_quarantine,
)
from features.inputs.schema import GROUPS, SCHEMAS

NOW = pd.Timestamp("2025-01-01", tz="UTC")


def lines(**overrides) -> pd.DataFrame:
    """Three clean transaction lines; keyword arguments replace whole columns."""
    data = {
        "customer_id": ["c1", "c2", "c3"],
        "order_id": ["o1", "o2", "o3"],
        "ordered_at": ["2024-01-01 10:00:00+00:00", "2024-02-01 11:00:00+00:00", "2024-03-01"],
        "amount": [10.0, 20.0, 30.0],
    }
    data.update(overrides)
    return pd.DataFrame(data)


def check(result, accepted: int, by_reason: dict[str, int]) -> None:
    r = result.report
    assert r.by_reason == by_reason
    assert r.rows_accepted == accepted == len(result.table)
    assert r.rows_quarantined == sum(by_reason.values()) == len(result.quarantine)
    assert r.rows_in == r.rows_accepted + r.rows_quarantined


def test_clean_table_has_canonical_dtypes_and_no_quarantine():
    result = validate_table(lines(), "transactions", now=NOW)
    check(result, 3, {})
    assert result.table.dtypes.astype(str).to_dict() == {
        "customer_id": "string",
        "order_id": "string",
        "ordered_at": "datetime64[us, UTC]",
        "amount": "float64",
        "is_return": "bool",
    }
    assert list(result.quarantine.columns[-3:]) == ["reason", "detail", "source_row"]


def test_missing_required_column_names_it_and_suggests_a_mapping():
    frame = lines().drop(columns=["order_id"]).rename(columns={"amount": "Price"})
    with pytest.raises(ContractError) as err:
        validate_table(frame, "transactions", now=NOW)
    message = str(err.value)
    assert "['order_id', 'amount']" in message
    assert "'Price'" in message and "column mapping" in message


def test_empty_table_is_a_contract_error():
    with pytest.raises(ContractError, match="'transactions' has no rows"):
        validate_table(lines().iloc[:0], "transactions", now=NOW)


def test_unknown_table_is_a_contract_error():
    with pytest.raises(ContractError, match="unknown table 'orders'"):
        validate_table(lines(), "orders", now=NOW)


def test_extra_columns_are_dropped_and_listed():
    result = validate_table(lines(Email=["a", "b", "c"], note=[1, 2, 3]), "transactions", now=NOW)
    check(result, 3, {})
    assert "Email" not in result.table.columns
    assert "dropped unknown columns ['Email', 'note']" in result.report.notes


def test_nan_and_blank_ids_are_quarantined_as_missing():
    result = validate_table(
        lines(customer_id=[None, "  ", "c3"], order_id=["o1", "o2", "NULL"]),
        "transactions",
        now=NOW,
    )
    check(result, 0, {"missing_customer_id": 2, "missing_order_id": 1})
    assert result.quarantine["source_row"].tolist() == [0, 1, 2]
    assert result.quarantine["detail"].tolist()[0] == "customer_id is missing"


def test_float_ids_become_integer_strings():
    result = validate_table(lines(customer_id=[17850.0, 17850.0, np.nan]), "transactions", now=NOW)
    check(result, 2, {"missing_customer_id": 1})
    assert result.table["customer_id"].tolist() == ["17850", "17850"]
    assert any("stored as floats (e.g. 17850.0)" in n for n in result.report.notes)


def test_float_formatted_text_ids_and_whitespace_are_normalised():
    result = validate_table(lines(customer_id=["17850.0", " c2 ", "c3"]), "transactions", now=NOW)
    check(result, 3, {})
    assert result.table["customer_id"].tolist() == ["17850", "c2", "c3"]
    notes = " | ".join(result.report.notes)
    assert "customer_id: 1 values had surrounding whitespace" in notes
    assert "customer_id: 1 float-formatted ids" in notes


def test_non_integral_float_id_is_unparseable():
    result = validate_table(lines(customer_id=[1.5, 2.0, 3.0]), "transactions", now=NOW)
    check(result, 2, {"unparseable_customer_id": 1})
    assert result.quarantine["detail"].iloc[0] == "customer_id=1.5 is not id"


def test_unparseable_timestamp_is_quarantined_with_its_value():
    result = validate_table(
        lines(ordered_at=["2024-01-01", "31/02/2024", "yesterday"]), "transactions", now=NOW
    )
    check(result, 1, {"unparseable_ordered_at": 2})
    assert result.quarantine["detail"].tolist() == [
        "ordered_at=31/02/2024 is not timestamp",
        "ordered_at=yesterday is not timestamp",
    ]
    assert result.quarantine["ordered_at"].tolist() == ["31/02/2024", "yesterday"]


def test_whole_column_unparseable_is_a_contract_error():
    with pytest.raises(ContractError) as err:
        validate_table(lines(ordered_at=["12/1/2010 8:26"] * 3), "transactions", now=NOW)
    assert "no value of column 'ordered_at' can be read as timestamp (3 values" in str(err.value)
    assert "timestamp_formats" in str(err.value)


def test_all_nan_required_column_is_a_contract_error():
    with pytest.raises(ContractError, match="required column 'amount' has no values in 3 rows"):
        validate_table(lines(amount=[np.nan] * 3), "transactions", now=NOW)


def test_all_nan_optional_column_is_dropped_with_a_note():
    result = validate_table(lines(margin_amount=[None] * 3), "transactions", now=NOW)
    check(result, 3, {})
    assert "margin_amount" not in result.table.columns
    assert "dropped optional column 'margin_amount': no values in 3 rows" in result.report.notes


def test_naive_timestamps_are_assumed_utc_and_reported():
    result = validate_table(
        lines(ordered_at=pd.to_datetime(["2024-01-01 10:00"] * 3)), "transactions", now=NOW
    )
    check(result, 3, {})
    assert "ordered_at had no time zone: assumed UTC" in result.report.notes
    assert result.table["ordered_at"].iloc[0] == pd.Timestamp("2024-01-01 10:00", tz="UTC")


def test_tz_aware_timestamps_are_converted_to_utc():
    stamps = pd.Series(pd.to_datetime(["2024-07-01 12:00"] * 3)).dt.tz_localize("Europe/Berlin")
    result = validate_table(lines(ordered_at=stamps), "transactions", now=NOW)
    check(result, 3, {})
    assert result.table["ordered_at"].iloc[0] == pd.Timestamp("2024-07-01 10:00", tz="UTC")
    assert not any("time zone" in n for n in result.report.notes)


def test_mixed_naive_and_aware_text_timestamps():
    result = validate_table(
        lines(ordered_at=["2024-01-01T10:00:00+02:00", "2024-01-01 10:00", "2024-01-01T10:00Z"]),
        "transactions",
        now=NOW,
    )
    check(result, 3, {})
    assert result.table["ordered_at"].dt.hour.tolist() == [8, 10, 10]
    assert (
        "ordered_at had no time zone on 1 values: assumed UTC"
        " (the column mixes naive and tz-aware values)"
    ) in result.report.notes


def test_local_time_zone_and_formats_from_options():
    options = ContractOptions(timestamp_formats=("%m/%d/%Y %H:%M",), timezone="Europe/London")
    result = validate_table(
        lines(ordered_at=["12/1/2010 8:26", "7/1/2011 8:26", "3/27/2011 1:30"]),
        "transactions",
        now=NOW,
        options=options,
    )
    check(result, 3, {})
    assert result.table["ordered_at"].tolist() == [
        pd.Timestamp("2010-12-01 08:26", tz="UTC"),  # GMT
        pd.Timestamp("2011-07-01 07:26", tz="UTC"),  # BST
        pd.Timestamp("2011-03-27 01:00", tz="UTC"),  # in the spring-forward gap: shifted
    ]
    assert any("daylight-saving gap" in n for n in result.report.notes)


def test_future_timestamps_are_quarantined():
    result = validate_table(
        lines(ordered_at=["2024-01-01", "2025-01-01 00:00:01", "2030-01-01"]),
        "transactions",
        now=NOW,
    )
    check(result, 1, {"future_ordered_at": 2})
    assert result.quarantine["detail"].iloc[0].endswith("is after now=2025-01-01 00:00:00+00:00")


def test_unparseable_numbers_and_infinities():
    result = validate_table(lines(amount=["12.5", "twelve", "inf"]), "transactions", now=NOW)
    check(result, 1, {"unparseable_amount": 2})


def test_currency_symbols_and_thousands_separators_are_read():
    result = validate_table(lines(amount=["£12.50", "$1,234.56", " 7 "]), "transactions", now=NOW)
    check(result, 3, {})
    assert result.table["amount"].tolist() == [12.5, 1234.56, 7.0]
    assert any("currency symbols" in n for n in result.report.notes)


def test_zero_price_lines_are_quarantined_unless_allowed():
    frame = lines(amount=[0.0, 0.0, 5.0])
    check(validate_table(frame, "transactions", now=NOW), 1, {"zero_amount": 2})
    allowed = ContractOptions(allow_zero_amount=True)
    check(validate_table(frame, "transactions", now=NOW, options=allowed), 3, {})


def test_negative_amounts_are_quarantined_by_default():
    result = validate_table(lines(amount=[-10.0, 20.0, 30.0]), "transactions", now=NOW)
    check(result, 2, {"negative_amount": 1})
    assert "returns = 'negative_lines'" in result.quarantine["detail"].iloc[0]


def test_negative_amounts_as_returns():
    options = ContractOptions(negative_amount_is_return=True)
    result = validate_table(
        lines(amount=[-10.0, 20.0, -30.0], quantity=[-1, 2, -3]),
        "transactions",
        now=NOW,
        options=options,
    )
    check(result, 3, {})
    assert result.table["amount"].tolist() == [10.0, 20.0, 30.0]
    assert result.table["is_return"].tolist() == [True, False, True]
    assert result.table["quantity"].tolist() == [1, 2, 3]
    assert "amount: 2 negative lines read as returns (is_return = True, positive amount)" in (
        result.report.notes
    )


def test_given_is_return_flag_is_respected():
    result = validate_table(
        lines(amount=[-10.0, 20.0, 30.0], is_return=["yes", "False", None]), "transactions", now=NOW
    )
    check(result, 3, {})
    assert result.table["is_return"].tolist() == [True, False, False]
    assert result.table["amount"].tolist() == [10.0, 20.0, 30.0]
    assert "is_return: 1 missing flags read as False" in result.report.notes


def test_unparseable_flag_and_non_integer_quantity():
    result = validate_table(
        lines(is_return=["maybe", "no", "no"], quantity=["1", "2.5", None]), "transactions", now=NOW
    )
    check(result, 0, {"missing_quantity": 1, "unparseable_is_return": 1, "unparseable_quantity": 1})


def test_non_positive_quantity_on_purchases():
    result = validate_table(lines(quantity=[0, -2, 3]), "transactions", now=NOW)
    check(result, 1, {"non_positive_quantity": 2})


def test_exact_duplicate_rows_keep_the_first():
    frame = pd.concat([lines(), lines().iloc[[0, 0, 2]]], ignore_index=True)
    result = validate_table(frame, "transactions", now=NOW)
    check(result, 3, {"duplicate_row": 3})
    assert result.quarantine["source_row"].tolist() == [3, 4, 5]


def test_first_reason_wins_and_counts_once():
    frame = lines(customer_id=[None, "c2", "c3"], ordered_at=["bad", "2030-01-01", "2024-01-01"])
    frame["amount"] = [-1.0, 0.0, 5.0]
    result = validate_table(frame, "transactions", now=NOW)
    check(result, 1, {"missing_customer_id": 1, "future_ordered_at": 1})


def test_duplicate_customer_rows():
    frame = pd.DataFrame({"customer_id": ["a", "b", "a", "a"], "region": ["UK", "FR", "DE", "UK"]})
    result = validate_table(frame, "customers", now=NOW)
    check(result, 2, {"duplicate_row": 1, "duplicate_customer_id": 1})
    assert result.quarantine.set_index("source_row")["reason"].to_dict() == {
        2: "duplicate_customer_id",
        3: "duplicate_row",
    }


def test_duplicate_ticket_ids():
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "ticket_id": ["t1", "t1", "t2"],
            "opened_at": ["2024-01-01", "2024-01-02", "2024-01-03"],
        }
    )
    result = validate_table(frame, "support_tickets", now=NOW)
    check(result, 2, {"duplicate_ticket_id": 1})
    assert "ticket_id=t1 already seen" in result.quarantine["detail"].iloc[0]


def test_ratings_outside_one_to_five():
    frame = pd.DataFrame(
        {
            "customer_id": list("abcde"),
            "reviewed_at": ["2024-01-01"] * 5,
            "rating": [0, 1, 5, 5.5, "six"],
        }
    )
    result = validate_table(frame, "reviews", now=NOW)
    check(result, 2, {"unparseable_rating": 1, "rating_out_of_range": 2})


def test_bad_group_labels_and_case():
    frame = pd.DataFrame(
        {
            "customer_id": list("abcd"),
            "campaign_id": ["k1"] * 4,
            "contacted_at": ["2024-01-01"] * 4,
            "group": ["Treatment ", "control", "holdout", None],
        }
    )
    result = validate_table(frame, "campaign_contacts", now=NOW)
    check(result, 2, {"missing_group": 1, "invalid_group": 1})
    assert result.table["group"].tolist() == ["treatment", "control"]
    assert set(result.table["group"]) <= set(GROUPS)


def test_same_customer_twice_in_a_campaign():
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b"],
            "campaign_id": ["k1", "k1", "k1"],
            "contacted_at": ["2024-01-01", "2024-01-02", "2024-01-01"],
            "group": ["treatment", "control", "control"],
        }
    )
    check(validate_table(frame, "campaign_contacts", now=NOW), 2, {"duplicate_campaign_contact": 1})


def test_self_referrals():
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "b"],
            "referred_at": ["2024-01-01", "2024-01-01"],
            "referred_customer_id": ["a", "c"],
        }
    )
    check(validate_table(frame, "referrals", now=NOW), 1, {"self_referral": 1})


def test_mapping_exclusions_and_source_rows_pass_through():
    frame = lines()
    frame[EXCLUDE_REASON_COLUMN] = [None, "non_product_line", None]
    frame[SOURCE_ROW_COLUMN] = [10, 11, 12]
    result = validate_table(frame, "transactions", now=NOW)
    check(result, 2, {"non_product_line": 1})
    assert result.quarantine["source_row"].tolist() == [11]
    assert EXCLUDE_REASON_COLUMN not in result.quarantine.columns


def test_input_is_not_modified():
    frame = lines(amount=[-1.0, 2.0, 3.0], customer_id=[1.0, 2.0, 3.0])
    before = frame.copy()
    validate_table(frame, "transactions", now=NOW, options=ContractOptions(True))
    pd.testing.assert_frame_equal(frame, before)


def test_report_invariant_is_asserted():
    with pytest.raises(AssertionError, match="rows_in 3 != accepted 1"):
        ValidationReport("transactions", 3, 1, 1, {"x": 1})


def test_validate_shop_summary_and_quarantine_files(tmp_path):
    customers = pd.DataFrame({"customer_id": ["c1", "c1"], "region": ["UK", "FR"]})
    validation = validate_shop(
        {"transactions": lines(amount=[0.0, 1.0, 2.0]), "customers": customers}, now=NOW
    )
    summary = validation.summary()
    assert summary[["table", "reason", "rows"]].values.tolist() == [
        ["transactions", "zero_amount", 1],
        ["customers", "duplicate_customer_id", 1],
    ]
    assert validation.tables.customers["customer_id"].tolist() == ["c1"]
    written = write_quarantine(validation, tmp_path / "out")
    assert sorted(p.name for p in written.values()) == [
        "customers.quarantine.parquet",
        "transactions.quarantine.parquet",
        "validation_report.json",
    ]
    back = pd.read_parquet(written["transactions"])
    assert back["reason"].tolist() == ["zero_amount"] and back["source_row"].tolist() == [0]
    report = json.loads(written["report"].read_text())
    assert report["tables"]["transactions"]["rows_in"] == 3
    assert not list((tmp_path / "out").glob(".*tmp"))


def test_validate_shop_needs_transactions():
    with pytest.raises(ContractError, match="no 'transactions' table"):
        validate_shop({"customers": pd.DataFrame({"customer_id": ["a"]})}, now=NOW)


# --------------------------------------------------------------------------- property

CELL = st.one_of(
    st.none(),
    st.sampled_from(["", " ", "nan", "NULL", "abc", "-3", "0", "2.5", "1e3", "£4.20", "inf"]),
    st.sampled_from(["2024-01-01", "2024-06-01T10:00+02:00", "2031-01-01", "31/12/2024"]),
    st.integers(-5, 5).map(str),
    st.one_of(st.floats(-10, 10), st.just(float("nan"))),
    st.sampled_from(["true", "no", "treatment", "control", " c1 ", "17850.0"]),
)


@st.composite
def raw_tables(draw):
    table = draw(st.sampled_from(sorted(SCHEMAS)))
    schema = SCHEMAS[table]
    n = draw(st.integers(1, 12))
    columns = list(schema.required) + draw(
        st.lists(st.sampled_from(schema.optional or ("extra",)), unique=True, max_size=3)
    )
    data = {c: draw(st.lists(CELL, min_size=n, max_size=n)) for c in columns}
    return table, pd.DataFrame(data, dtype=object)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_tables())
def test_every_row_is_accounted_for_and_accepted_rows_meet_the_contract(case):
    table, frame = case
    schema = SCHEMAS[table]
    try:
        result = validate_table(frame, table, now=NOW)
    except ContractError:
        return
    r = result.report
    assert r.rows_in == len(frame) == r.rows_accepted + r.rows_quarantined
    assert len(result.table) == r.rows_accepted and len(result.quarantine) == r.rows_quarantined
    source_rows = result.quarantine["source_row"]
    assert source_rows.is_unique and source_rows.between(0, len(frame) - 1).all()
    assert set(result.quarantine["reason"]) == set(r.by_reason)
    out = result.table
    expected = schema.dtypes(list(out.columns))
    assert out.dtypes.astype(str).to_dict() == expected
    for column in schema.required:
        assert out[column].notna().all()
    for column in out.columns:
        # a do-not-contact dated ahead still applies, so suppressions keep future dates
        if schema.column(column).kind == "timestamp" and table != "suppressions":
            assert (out[column].dropna() <= NOW).all()
        if schema.column(column).kind == "id":
            assert (out[column].dropna().str.strip() == out[column].dropna()).all()
            assert (out[column].dropna() != "").all()
    if table == "transactions":
        assert (out["amount"] > 0).all()
        assert not out.duplicated().any()
    if table == "reviews":
        assert out["rating"].between(1, 5).all()
    if table == "campaign_contacts":
        assert out["group"].isin(GROUPS).all()
    if table == "customers":
        assert out["customer_id"].is_unique
