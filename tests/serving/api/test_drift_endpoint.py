"""``POST /drift`` as a function of the service state: 200 with the report, 404 and 400."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from pydantic import ValidationError

from training.tracking.reference import ReferenceBins, column_bins


def test_drift_endpoint_answers_200_404_and_400(tmp_path, monkeypatch):
    import json
    from types import SimpleNamespace

    from serving.api.drift import DriftRequest, drift_endpoint
    from serving.monitoring import drift
    from serving.scoring import store

    features = pd.DataFrame(
        {"x": [1.0, 2, 3, 40]}, index=pd.Index(["C1", "C2", "C3", "C4"], name="customer_id")
    )
    scores = pd.DataFrame(
        {
            "customer_id": features.index,
            "as_of": dt.date(2025, 6, 30),
            "churn_risk": [0.1, 0.2, 0.3, 0.9],
            "churn_model_version": "5",
        }
    )
    as_of = dt.date(2025, 6, 30)
    store.write_score_table(scores, features, tmp_path, as_of)
    reference = ReferenceBins(
        "churn",
        "tiny",
        {"x": column_bins("x", pd.Series([1.0, 2, 3, 4]), n_bins=2)},
        column_bins("churn_risk", pd.Series([0.1, 0.2, 0.3, 0.4]), n_bins=2),
        2,
    )
    asked = []

    def references(versions, client=None):
        asked.append(dict(versions))
        return {"churn": reference}

    monkeypatch.setattr(drift, "champion_references", references)
    state = SimpleNamespace(config=SimpleNamespace(score_path=tmp_path))

    ok = drift_endpoint(state, DriftRequest(targets=["churn"]))
    body = json.loads(ok.body)
    assert ok.status_code == 200 and body["as_of"] == "2025-06-30"
    assert asked == [{"churn": "5"}]  # the version that produced the stored scores
    assert [c["column"] for c in body["columns"]] == ["churn_risk", "x"]
    missing = drift_endpoint(state, DriftRequest(as_of=dt.date(2020, 1, 1)))
    assert missing.status_code == 404 and "winback score" in json.loads(missing.body)["error"]
    bad = drift_endpoint(state, DriftRequest(warn_psi=0.5, alert_psi=0.2))
    assert bad.status_code == 400
    with pytest.raises(ValidationError, match="churn"):
        DriftRequest(targets=["upsell"])  # an unknown target is refused by the request model
