"""``winback score`` on a canonical folder reads it in place, erased customers left out."""

from __future__ import annotations

from concurrent.futures import Future

import serving.scoring.table as score_table
from features.erasure import ErasureRegistry
from winback.commands import serving as serving_commands


def test_erased_customers_are_left_out_of_the_frame_scored_in_place(
    small_shop, small_shop_dir, monkeypatch
):
    buyers = small_shop.tables.transactions["customer_id"].astype(str)
    gone = buyers.iloc[0]
    registry = ErasureRegistry.default()
    with registry.locked():
        registry.record([gone])
    seen = {}

    def score_customers(tables, date, models, config, *, con, ahead):
        seen["lines"] = con.execute(
            "SELECT count(*) FROM transactions WHERE customer_id = ?", [gone]
        ).fetchone()[0]
        seen["customers"] = set(ahead.frame.index.get_level_values("customer_id").astype(str))
        return "version"

    monkeypatch.setattr(score_table, "score_customers", score_customers)
    models: Future = Future()
    models.set_result("models")
    out = serving_commands._score_in_place(small_shop_dir, None, lambda: models, config=None)
    assert out[0] == "version" and out[2] == "models"
    assert seen["lines"] == 0
    assert gone not in seen["customers"] and len(seen["customers"]) > 100
