"""`POST /api/v1/check` on its fast path: the same answer as `zhixiang check --stdin`, on a multi-worker server.

The request path builds the one-taxpayer profile without Polars frames (profiles.models.profile_rows); these
tests hold it equal — values and their types — to the frames path it replaced, on every sample taxpayer and
on edge cases, and compare the API's findings with the CLI's on sample taxpayers of every kind of finding,
against `zhixiang serve --workers 2`. Also: the server trusts a checked token for a few seconds only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from bench.serve import profile_document
from engine.catalogue import load_catalogue
from engine.cli import main
from engine.realtime import RealtimeChecker, TaxpayerProfile, iter_profiles, profile_from_json, profile_from_tables
from notifier.db import open_state
from profiles.errors import ProfileDataError
from profiles.models import parse_profile_json
from profiles.periods import parse_period
from profiles.readers import load_profiles
from tests.builders.server import running_server
from tests.test_durable_realtime import small_firm
from workbench import accounts

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data" / "hangzhou"
YEAR = parse_period("2025")


@pytest.fixture(scope="module")
def catalogue() -> Any:
    return load_catalogue()


@pytest.fixture(scope="module")
def sample(catalogue: Any) -> Any:
    return load_profiles(SAMPLE, known_incentives=catalogue.known_incentives)


def typed(profile: TaxpayerProfile) -> list[list[tuple[str, str, Any]]]:
    """Every row of the profile as (column, type, value) — Decimals by their digits and exponent, so
    Decimal("1.5") and Decimal("1.50") differ as they would in the evidence."""
    def cell(value: Any) -> Any:
        return value.as_tuple() if isinstance(value, Decimal) else value

    rows = [profile.taxpayer or {}, *profile.indicators.values(), *profile.claims, *profile.risk_events]
    return [[(k, type(v).__name__, cell(v)) for k, v in row.items()] for row in rows]


def through_frames(document: str | dict[str, Any], known: Any) -> TaxpayerProfile:
    """The profile as the request path built it before: validated frames, read back row by row."""
    profiles = parse_profile_json(document, known_incentives=known)
    found = profile_from_tables(profiles, profiles.taxpayers["taxpayer_id"][0])
    assert found is not None
    return found


def test_the_profile_without_frames_is_the_profile_of_the_frames(catalogue: Any, sample: Any) -> None:
    known = catalogue.known_incentives
    ids = sample.taxpayers["taxpayer_id"].to_list()
    assert len(ids) >= 1000
    for tid in ids:
        stored = profile_from_tables(sample, tid)
        assert stored is not None
        document = profile_document(stored).decode()
        fast = profile_from_json(document, known_incentives=known)
        assert fast.taxpayer_id == tid
        assert typed(fast) == typed(through_frames(document, known)), tid
        assert list(fast.indicators) == list(stored.indicators)


def test_edge_cells_read_as_the_frames_read_them(catalogue: Any) -> None:
    known = catalogue.known_incentives
    doc = small_firm()
    doc["taxpayer"].update({"entity_type": "企业", "restricted_industry": "否", "registered_on": "2015/3/1",
                            "wechat": "not a contract field"})
    doc["indicators"][0].update({"sales": "-0.00", "taxable_income": "1,000,000", "employees": "12",
                                 "employees_qavg": Decimal("-0.0"), "rd_expense": 0, "vat_paid": "-0",
                                 "input_composition_ratio": "1e-7"})
    doc["indicators"].append({"period": "2025q3", "sales": 300000})
    doc["claims"] = [{"period": "2025", "incentive": "small_low_profit_cit", "amount": 24000.5}]
    doc["risk_events"] = [{"event": "tax_evasion_penalty", "occurred_on": "2024-03-15 00:00:00"}]
    fast = profile_from_json(json.dumps(doc, ensure_ascii=False, default=str), known_incentives=known)
    assert typed(fast) == typed(through_frames(json.dumps(doc, ensure_ascii=False, default=str), known))
    assert fast.indicators["2025"]["sales"] == Decimal("0.00") and str(fast.indicators["2025"]["sales"]) == "0.00"
    assert "wechat" not in (fast.taxpayer or {}) and set(fast.indicators) == {"2025", "2025Q3"}


@pytest.mark.parametrize(("column", "value"), [
    ("veteran_hires", 10**20),  # no bound in the contract, but the tables hold Int64 (was a 500 from Polars)
    ("input_composition_ratio", "1e400"),  # beyond Float64: the batch refuses it (was read as infinity)
])
def test_figures_the_tables_cannot_hold_are_refused_with_the_field(column: str, value: Any) -> None:
    doc = small_firm()
    doc["indicators"][0][column] = value
    with pytest.raises(ProfileDataError) as err:
        profile_from_json(json.dumps(doc))
    assert [path for path, _ in err.value.problems] == [f"indicators[0].{column}"]


def test_a_checked_token_is_trusted_for_a_few_seconds_only(tmp_path: Path) -> None:
    engine = open_state(f"sqlite:///{tmp_path / 'state.sqlite'}")
    token = accounts.add_token(engine, "12366", "科员", "13301060000")
    now = [100.0]
    cache = accounts.TokenCache(engine, ttl=5.0, clock=lambda: now[0])
    first = cache.principal(token)
    assert first is not None and first.authorities() == ["13301060000"]
    wrong = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert cache.principal(wrong) is None
    accounts.revoke_token(engine, token.split("_")[1])
    now[0] += 4.9
    assert cache.principal(token) == first  # within the cache time
    now[0] += 0.2
    assert cache.principal(token) is None  # revoked: the database answers again
    assert cache.principal(token) is None
    assert accounts.TOKEN_CACHE_SECONDS <= 10


# ------------------------------------------------------------------------- against a multi-worker server


def chosen(catalogue: Any, sample: Any) -> list[TaxpayerProfile]:
    """Sample taxpayers of 2025 covering every kind of finding (two each) and two without any."""
    checker = RealtimeChecker(catalogue)
    want = {"unclaimed": 2, "improper": 2, "undetermined": 2, "": 2}
    out = []
    for profile in iter_profiles(sample, YEAR):
        kinds = {row["kind"] for row in checker.check(profile, YEAR)} or {""}
        hit = [k for k in kinds if want.get(k, 0) > 0]
        if hit:
            for k in hit:
                want[k] -= 1
            out.append(profile)
        if not any(want.values()):
            break
    assert not any(want.values()), want
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    folder = tmp_path_factory.mktemp("workers")
    state = f"sqlite:///{folder / 'state.sqlite'}"
    engine = open_state(state)
    token = accounts.add_token(engine, "etax", "分析员", "")
    engine.dispose()
    with running_server(folder, "--state", state, "--workers", "2", ready="/openapi.json") as (url, _):
        yield url, token


def test_the_api_answers_as_check_stdin_on_sample_taxpayers(server: tuple[str, str], catalogue: Any,
                                                            sample: Any) -> None:
    url, token = server
    taxpayers = chosen(catalogue, sample)
    with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {token}"}) as client:
        for profile in taxpayers:
            body = profile_document(profile).decode()
            # Several requests each on new connections, which either worker may accept.
            answers = [client.post(f"{url}/api/v1/check?period=2025", content=body,
                                   headers={"Connection": "close"}) for _ in range(3)]
            result = CliRunner().invoke(main, ["check", "--stdin", "--period", "2025", "--json"], input=body)
            assert result.exit_code == 0, result.output
            expected = json.loads(result.output)
            for answer in answers:
                assert answer.status_code == 200, answer.text
                assert answer.json()["taxpayer_id"] == profile.taxpayer_id
                assert answer.json()["findings"] == expected, profile.taxpayer_id


def test_bad_input_on_a_worker_is_a_4xx_naming_the_field(server: tuple[str, str]) -> None:
    url, token = server
    doc = small_firm()
    doc["indicators"][0]["sales"] = "一百万"
    answer = httpx.post(f"{url}/api/v1/check?period=2025", content=json.dumps(doc, ensure_ascii=False),
                        headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert answer.status_code == 400 and answer.json()["error"]["field"] == "indicators[0].sales"
    assert httpx.post(f"{url}/api/v1/check?period=2025", content=json.dumps(doc),
                      headers={"Authorization": "Bearer zx_0_nope"}, timeout=30).status_code == 401
