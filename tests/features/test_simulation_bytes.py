"""The simulators' output is pinned byte for byte: same seed, same files, same oracle.

Why: refactoring the simulator must not move a single draw. Every case below
simulates a small shop, writes it, and compares the SHA-256 of each written file
(the contract tables, ``truth.parquet``, ``contact_truth.parquet``,
``simulation.json``; for the BG/NBD world its transactions and parameters) and of
the oracle's probabilities against digests recorded before the simulator was
split into a package.

How the expected digests were produced: on the single-module simulator (commit
9aeb7e2, ``features/simulate.py`` and ``features/simulate_bgnbd.py``), with the
locked dependencies of ``uv.lock`` (pyarrow and pandas write their versions into
the Parquet metadata, so a dependency upgrade changes the digests, not only a
change of draws), by running this file as a script::

    uv run --frozen --extra dev python tests/features/test_simulation_bytes.py

which prints the ``EXPECTED`` dictionary below (the file's first version, which
imported those two modules, is the one that was run; the package reproduces the
same digests). Should a dependency upgrade
change them, regenerate them on the parent commit of the upgrade (before any
simulator change) and say so in the commit message.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from features.simulation import (
    BgNbdWorldConfig,
    SimulationConfig,
    engagement,
    oracle_churn_probability,
    read_truth,
    simulate_bgnbd_world,
    simulate_shop,
    write_bgnbd_world,
    write_shop,
)

#: Module holding the engagement block size (customers per thinning block).
ENGAGEMENT_MODULE = engagement

CUTOFF = date(2024, 12, 31)
HORIZON_DAYS = 90


@dataclass(frozen=True)
class Case:
    """One pinned shop: its config and, optionally, a smaller engagement block."""

    config: SimulationConfig
    engagement_block: int | None = None


SHOP_CASES = {
    "defaults_300_seed0": Case(SimulationConfig(customers=300, seed=0)),
    "defaults_2000_seed7": Case(SimulationConfig(customers=2_000, seed=7)),
    "no_engagement_1500_seed3": Case(SimulationConfig(customers=1_500, seed=3, engagement=False)),
    "shift_1200_seed5": Case(
        SimulationConfig(
            customers=1_200,
            seed=5,
            shift_date=date(2024, 6, 1),
            shift_purchase_rate_factor=0.7,
            shift_dropout_factor=1.5,
            shift_discount_sensitive_dropout_factor=2.5,
        )
    ),
    "no_campaigns_800_seed9": Case(SimulationConfig(customers=800, seed=9, campaign_dates=())),
    "short_year_one_campaign_600_seed2": Case(
        SimulationConfig(
            customers=600,
            seed=2,
            start=date(2024, 1, 1),
            end=date(2025, 2, 28),
            campaign_dates=(date(2024, 10, 1),),
            campaign_offers=("free_shipping",),
        )
    ),
    # several engagement blocks (the 1M-customer path) on a small shop
    "engagement_blocks_2500_seed1": Case(
        SimulationConfig(customers=2_500, seed=1), engagement_block=700
    ),
}

BGNBD_CASES = {
    "bgnbd_500_seed0": BgNbdWorldConfig(customers=500, seed=0),
    "bgnbd_3000_seed4": BgNbdWorldConfig(customers=3_000, seed=4, days=900, acquisition_days=600),
}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _series_sha(series: pd.Series) -> str:
    """Digest of a probability series: its float bytes, its index and its name."""
    index = "\n".join(series.index.astype(str)).encode()
    return _sha(series.to_numpy().tobytes() + b"|" + index + b"|" + str(series.name).encode())


def _files_sha(paths: dict[str, Path]) -> dict[str, str]:
    return {name: _sha(Path(path).read_bytes()) for name, path in sorted(paths.items())}


def shop_digests(case: Case, out: Path, monkeypatch=None) -> dict[str, str]:
    """Digests of every file ``write_shop`` writes and of two oracle calls."""
    if case.engagement_block is not None:
        monkeypatch.setattr(ENGAGEMENT_MODULE, "_ENGAGEMENT_BLOCK", case.engagement_block)
    shop = simulate_shop(case.config)
    # the contract tables as simulated; the keyed files add key columns to them
    # (tests/features/test_customer_keys.py)
    digests = _files_sha(write_shop(shop, out, customer_keys=False))
    digests["oracle_shop"] = _series_sha(oracle_churn_probability(shop, CUTOFF, HORIZON_DAYS))
    truth, contact_truth = read_truth(out)
    read_back = oracle_churn_probability(truth, CUTOFF, HORIZON_DAYS, contact_truth=contact_truth)
    digests["oracle_read_truth"] = _series_sha(read_back)
    return digests


def bgnbd_digests(config: BgNbdWorldConfig, out: Path) -> dict[str, str]:
    """Digests of the BG/NBD world's files and of its closed-form oracle."""
    world = simulate_bgnbd_world(config)
    digests = _files_sha(write_bgnbd_world(world, out))
    digests["oracle"] = _series_sha(world.oracle_churn_probability(CUTOFF, HORIZON_DAYS))
    return digests


EXPECTED: dict[str, dict[str, str]] = {
    "bgnbd_3000_seed4": {
        "config": "317107e35e6b4660e1605102e20e671c7954b382860066900cedd9e98cc8d939",
        "oracle": "aac273e16fea596067605bfeebc709b74129ac7329d2d44cea53c2dbaecdb63b",
        "transactions": "9a823804972901903f6d06a20d2c056b0e3272a086737bda070ab4885f87bbd1",
    },
    "bgnbd_500_seed0": {
        "config": "7ceaf92935c13aa1495a7fd350b1b30cfdca62295253f05a18b8897367957eff",
        "oracle": "dc1c3c13b4e2b3fc70ac609273ec0a798dc41062c5d5f135c86a1c78e7c3d6bd",
        "transactions": "6db9799f4fdf99f5c791ae739b13366b5719bb09b87778c44eb79901caa67b31",
    },
    "defaults_2000_seed7": {
        "campaign_contacts": "9a884473d5ae2081d5c85ebb9a5008e415c27b828996332abf9ec521259fc994",
        "contact_truth": "17ba854e979ab9c415b73933094a750d1d63ea88cec1c23615445aae9829eb07",
        "customers": "28e3c519b08ed0e9c8f3c2627ace00ecb07955bbe9dec68f222228d6ee5d208a",
        "engagement_events": "e6446e897e6c63e7fd7342b00e4b90b5b43425a6340a71b60778c9b935382079",
        "oracle_read_truth": "16b83987f46707c06dfec2be9add1edcb6780ffd7a8b0d963de72ff1d00bcb99",
        "oracle_shop": "16b83987f46707c06dfec2be9add1edcb6780ffd7a8b0d963de72ff1d00bcb99",
        "referrals": "b4bfac4e72ea0a8e3aa3924bc6f3685ceba1efef157a333f2a77a5ca9e56fd7e",
        "reviews": "9ed65be8ca9dd630184dc7f6547229d375cb0417cbf051c24fb2d1473c3b329d",
        "simulation": "4246053761a4b5587d8df5aff29b59cb7b78c001e757c121c370435fe0426989",
        "support_tickets": "f4fbc9372d596bf2f2e0f114dafadd8cbcbc5a7ef8bd8b31261d11aaa2017a93",
        "transactions": "28c9f6f06c72f715bfa534de725448d2f5fd2339512de491013261b6ea570864",
        "truth": "69bce01307ed6573fc8396156b4fd8c5e40a9a9396645bb2f75df7dcfb3742e3",
    },
    "defaults_300_seed0": {
        "campaign_contacts": "2d25f25de6be198116e0cfc22e9ae1248af85bb579f6f5092f1b761137e02967",
        "contact_truth": "8898e6b8932ac27b157f08108807eec29c9e084dabeda7a88528c699fc4553ee",
        "customers": "7f74e5a08ef6ea9b8623a5c0533b5db13c7a479b75f80d774f33fe3e930566ce",
        "engagement_events": "04c20743589240b36b1bfc001619d227a9085ce88c9192adfbe375c3ef215430",
        "oracle_read_truth": "c2bf40657ea86b35756a441555edeec96e0772c3b6a7fdb376d0b726bb3736f4",
        "oracle_shop": "c2bf40657ea86b35756a441555edeec96e0772c3b6a7fdb376d0b726bb3736f4",
        "referrals": "c01796081c539a3861048a088bd1282fcd65fd211e6649f06974399e446c981a",
        "reviews": "b0e5cd5a4b4d996750517c5071e1ac4e44bf883223f1be65682c467b48311561",
        "simulation": "5abf47124868767de26a4254cbb61381eeb4b6c592ad5371a8b37d941f5931cb",
        "support_tickets": "fc5823d3d875a86fab6726ec74383ec519f45c2f68b8e13e74b5f0a66b1c5f88",
        "transactions": "3522fad29a3c8cc3e7697342008815861b14f72de8fa98430d53f66681790848",
        "truth": "a02fcd93396ddc362d2d47dd833c53adef4bf0fe45989a9b828c0f37fd0e157d",
    },
    "engagement_blocks_2500_seed1": {
        "campaign_contacts": "2be816992191070efb62702fa4a3024a093fef25512f3beeffaa3ff4a910a9e9",
        "contact_truth": "8988d01098990f7500702bd48a34981b302c652060ae32f0f6d079af64a87346",
        "customers": "f2519e4317d752b8938e00f8883e106febee542c4e6780752709b9178305f35f",
        "engagement_events": "f03a2260f4bd63dc30d00aa739717a7318335b69a158b7cd08aeda5e6a528145",
        "oracle_read_truth": "451103d4102c3577abb008f9faa7ff151e6debd909c8c3af452f0e1e5d1fca4d",
        "oracle_shop": "451103d4102c3577abb008f9faa7ff151e6debd909c8c3af452f0e1e5d1fca4d",
        "referrals": "a9b73ac3719d623d351f4e233da34198855f5f6d37dd2d0a76693a33fa0bcc19",
        "reviews": "6e69685cf17b7e5334a3acde9c7fd67f6c9845c3012529c1151113dd1ec1144b",
        "simulation": "d7a39d7c68b61cc43b960f47711614c969964a3422fdf09826fba278d21226d0",
        "support_tickets": "2c3331a4c820bcd96f9b6fec5e4470f460427454ba0d68d2e14b0adec10e7e9a",
        "transactions": "f6537484f5efe4491dff25f0234ea8b5abd89b7a8a5173c6f1034ce5283f0e1e",
        "truth": "47f5e90f71eb066168e6466aa377e8e48532fc71e6aa19fbb902e05e050db8df",
    },
    "no_campaigns_800_seed9": {
        "campaign_contacts": "688770ae068821c7d8ed365aa1e16a80257ac33a2d44dfb8e84d12450a28655c",
        "contact_truth": "d82b15c575b40c76a36fc3683cf88e33853a248332e72b9ca1c34c1aced32c6e",
        "customers": "6ca099e335bbc4780daada6b869f5056a26162ef6bb7b6332728b590aca45e03",
        "engagement_events": "404c329fd88c2d22b9d5cc81fd9f11f77eb10c8e47c3475992529d38bbf8d76e",
        "oracle_read_truth": "97f15c361d714e16009a73fb2e34a1c355b4465ee9e5bc2387f12d6f79243c06",
        "oracle_shop": "97f15c361d714e16009a73fb2e34a1c355b4465ee9e5bc2387f12d6f79243c06",
        "referrals": "2a42c20ece90f33b246de15182ce900b7244c7a69df5f9a8ca27d313203b1a8e",
        "reviews": "ee8d02e1481b99ec232dec2225ac9e4b77e39702c13bdfe3696fff8c4e11cc41",
        "simulation": "d7b183ed019f6dd14f27897f7e2ac3d50891045857a6840199607a50254c7a42",
        "support_tickets": "85560a90df76b3da275e4a3425c358c5ce03d264ee6d77444b13aa5806d7afd1",
        "transactions": "05abd569d43490153c5982f8266e5ce00afe9066a425fb4cfd0735cf0e12cac2",
        "truth": "07e26cdf2434e12dd126a83afaeaf12b766d98f1e941713dbdb3c409cc62f75b",
    },
    "no_engagement_1500_seed3": {
        "campaign_contacts": "01c5c5c909e5fe17b44b936020fe423eadf11f97d6fce3d0d01f3d10c3760974",
        "contact_truth": "d127ee9b04679edd743f327ee81df8f50ccea759e8c1d3ecfc1fb5f633b41372",
        "customers": "b711feae5367fb0393b8e0bbdc3d8419af22c857cd2b95c6f6705b5e106a3ab4",
        "oracle_read_truth": "4f52b2ac7e1dd7afeba9fbc379aa3a005aebde7a67b66e182d2e171c31d7c338",
        "oracle_shop": "4f52b2ac7e1dd7afeba9fbc379aa3a005aebde7a67b66e182d2e171c31d7c338",
        "referrals": "15f7ef0b53b739ef84272311bd9db1c4bada8000231a197182695553b69538b1",
        "reviews": "a7a6ddcc945ac94605206975fa7ff43e609820456aca9c516c959c7550b5690b",
        "simulation": "d0585717f995f593e26b37cf2d04071440ac646f7e73d82a25bec3aefe672519",
        "support_tickets": "aa970f7ac5032da20a905480d642a4d4b9ec1fe365cbff12cbbe88cb59127726",
        "transactions": "90883d079e671d032bc2383d7207471a2a04bebe81637bee1e29e7bf6afe3cd1",
        "truth": "df926b56e1f5fed1b5ea21feab5bdc8de37974fc425855aa8716a7a8b04bda82",
    },
    "shift_1200_seed5": {
        "campaign_contacts": "9b5c51e4fa02f68b44404a8705c9f32ba4dc410715d1787296e4ac87e1d00fc5",
        "contact_truth": "43ab609e07c0279f6929fdf21bc858f7b2f6f70d95eb398cae98493cbc73fe36",
        "customers": "56359f6b6b65ece61dca1b45da5ea36de5a24b9ad382bf18bea3a81a78700fbb",
        "engagement_events": "6bf0fc8f43a663955ed77d991bf3f7b224de780cfba7518ea8d6ec2dfb61a5ec",
        "oracle_read_truth": "3a43ddcc240db49842d2ec9072e3e8f9c436d678ff765e7ab2ac470c2c21c451",
        "oracle_shop": "3a43ddcc240db49842d2ec9072e3e8f9c436d678ff765e7ab2ac470c2c21c451",
        "referrals": "3ec66c90fe03092d804388b13822bb8706596497604422b02c059d9177d4ff05",
        "reviews": "39637f78f1acca0a1db46d6a2e1191368a567a00749771b05f82829441446aab",
        "simulation": "5c479d462330f875e0e0eee4f2b6d45c10f32125e94daa4afe67b5881fdc79b4",
        "support_tickets": "6ce845d972b691a84bf1a6859703782a4bc4c3fe11f0da1b5fa88e958df82ba5",
        "transactions": "6e662378c44812115b342a72cda78135b570edb891a32d0b92e5304969abbb5e",
        "truth": "2f8d2bdfc1093548bfcc9a25b5b48d82179b72ad3ff22af0000ddb831d3ecbb2",
    },
    "short_year_one_campaign_600_seed2": {
        "campaign_contacts": "562f87ea45fd6338a6ffa0bdf42624b4a3aaa9ea737d3aa45d6e39b95955577e",
        "contact_truth": "610df83b5df122b395ea1a5df9374b0b47cfeaddc48b36316dbca10357065263",
        "customers": "30c8050d9d3085045152233d1fa8ea4adc563164605a3baa04f492d639e48c26",
        "engagement_events": "8682d4b8bfc285a5de0681a47ae56fd569ad9a0de093abb8aa5fb2dec69d52fe",
        "oracle_read_truth": "e486333c51147696472d5adb7fe6c8e4fbb38b1d77271cb4bd8002b677b16678",
        "oracle_shop": "e486333c51147696472d5adb7fe6c8e4fbb38b1d77271cb4bd8002b677b16678",
        "referrals": "01c2454c58b1a245d21f0731a373f6c0604631b85811ea589d36b9b63075f4c4",
        "reviews": "b7a7bd86975ee257117f50673aefeb9502071f2f1f83ed7ac894cef4f6c845fb",
        "simulation": "d3cf77625d6e33655d00e8ceaaf7acb6254e3bedab3438e500cf50e3eb8661ad",
        "support_tickets": "a8322419653070b630b654e250a76b89d046673014d77d40fa1629edcd4158c6",
        "transactions": "05d200d7ad876d00f0bb6ed2e65faab45d6b7d6ad745941bd395c752caa807cb",
        "truth": "6d98466cb9cd7033dec94d23f4385759d5de9cd6eb46ef932236ef64bdc2b0a0",
    },
}


@pytest.mark.parametrize("name", sorted(SHOP_CASES))
def test_simulated_shop_bytes_are_unchanged(name, tmp_path, monkeypatch):
    assert shop_digests(SHOP_CASES[name], tmp_path, monkeypatch) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(BGNBD_CASES))
def test_bgnbd_world_bytes_are_unchanged(name, tmp_path):
    assert bgnbd_digests(BGNBD_CASES[name], tmp_path) == EXPECTED[name]


def test_a_changed_draw_changes_the_digests(tmp_path):
    """The pin can fail: one seed more gives other bytes for every table."""
    case = SHOP_CASES["defaults_300_seed0"]
    other = Case(SimulationConfig(customers=300, seed=1))
    changed = shop_digests(other, tmp_path)
    expected = EXPECTED["defaults_300_seed0"]
    assert case.config.seed != other.config.seed
    unchanged = [key for key in expected if key != "simulation" and changed[key] == expected[key]]
    assert unchanged == []


if __name__ == "__main__":
    import tempfile

    class _Patch:
        """Just enough of pytest's monkeypatch for a script run."""

        def setattr(self, target, name, value):
            setattr(target, name, value)

    results = {}
    for name, case in sorted(SHOP_CASES.items()):
        saved = ENGAGEMENT_MODULE._ENGAGEMENT_BLOCK
        with tempfile.TemporaryDirectory() as tmp:
            results[name] = shop_digests(case, Path(tmp), _Patch())
        ENGAGEMENT_MODULE._ENGAGEMENT_BLOCK = saved
    for name, config in sorted(BGNBD_CASES.items()):
        with tempfile.TemporaryDirectory() as tmp:
            results[name] = bgnbd_digests(config, Path(tmp))
    print(json.dumps(results, indent=4, sort_keys=True))
