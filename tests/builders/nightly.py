"""Small synthetic data folders for the nightly tests, written to the profile contract (profiles/schema.py).

`write_data_folder` makes a folder of a few dozen Hangzhou taxpayers with a year, quarters and months
of figures, claims and risk events, chosen so that every finding kind shows up: small low-profit
enterprises that did not claim (unclaimed), a large one that did (improper), a missing figure
(undetermined), small-scale taxpayers below and above the VAT line. `change_data_folder` edits it the
way a day's new data would, so the run-to-run diff has something of each status to find.
tests/test_nightly_data.py holds the builder to the contract: the folder loads with nothing quarantined.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from profiles.authorities import HANGZHOU_DISTRICTS
from profiles.ids import make_credit_code
from profiles.schema import CLAIMS, INDICATORS, RISK_EVENTS_TABLE, TAXPAYERS

YEAR = "2025"
QUARTERS = ("2025Q3", "2025Q4", "2026Q1")
MONTHS = ("2026-01", "2026-02", "2026-03")
#: The as-of date whose due periods are 2025, 2026Q1 and 2026-03 (plus lookback 2025Q4 / 2026-02).
AS_OF = "2026-04-15"

_BODY = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def taxpayer_id(i: int, *, individual: bool = False) -> str:
    """A valid credit code for taxpayer number `i` (organisation body derived from i)."""
    district = HANGZHOU_DISTRICTS[i % len(HANGZHOU_DISTRICTS)]
    body = "".join(_BODY[(i // len(_BODY) ** k) % len(_BODY)] for k in range(3)).rjust(8, "M")
    return make_credit_code(district.region_code, body, category="2" if individual else "1")


@dataclass
class DataSet:
    """The rows of the four tables, as text cells keyed by column name."""

    taxpayers: list[dict[str, str]] = field(default_factory=list)
    indicators: list[dict[str, str]] = field(default_factory=list)
    claims: list[dict[str, str]] = field(default_factory=list)
    risk_events: list[dict[str, str]] = field(default_factory=list)

    def indicator(self, tid: str, period: str) -> dict[str, str]:
        return next(r for r in self.indicators if r["taxpayer_id"] == tid and r["period"] == period)


#: Channels that need no PDF: letters render in milliseconds (a PDF takes seconds), which keeps the tests fast.
FAST_CHANNELS = ("email", "sms")


def build_data(n: int = 36, *, channels: tuple[str, ...] = FAST_CHANNELS) -> DataSet:
    """`n` taxpayers: every sixth an individual business, every third small-scale, the rest general."""
    data = DataSet()
    for i in range(n):
        individual = i % 6 == 5
        small_scale = i % 3 == 1
        tid = taxpayer_id(i, individual=individual)
        district = HANGZHOU_DISTRICTS[i % len(HANGZHOU_DISTRICTS)]
        data.taxpayers.append({
            "taxpayer_id": tid,
            "name": f"杭州{district.name[:-1]}测试{'商行' if individual else '科技有限公司'}{i:03d}",
            "entity_type": "individual_business" if individual else "enterprise",
            "vat_status": "small_scale" if small_scale or individual else "general",
            "vat_filing_cycle": "quarter" if i % 2 == 0 else "month",
            "industry_code": "I6510" if i % 4 else "C3911",
            "restricted_industry": "false",
            "tax_authority": district.tax_authority,
            "district": district.name,
            "credit_grade": "AB"[i % 2],
            "registered_on": "2018-05-01",
            "hnte_cert_issued_on": "2023-11-01" if i % 7 == 3 else "",
            "hnte_cert_valid_until": "2026-10-31" if i % 7 == 3 else "",
            "phone": f"1380571{i:04d}",
            "email": f"tp{i:03d}@example.cn",
            "preferred_channel": channels[i % len(channels)],
            "opt_out": "true" if i % 17 == 16 else "false",
        })
        big = i % 9 == 0  # too big for the small low-profit relief
        income = 4_500_000 + i * 1000 if big else 180_000 + i * 12_345
        data.indicators.append({
            "taxpayer_id": tid, "period": YEAR, "sales": str(9_000_000 + i * 10_000),
            "taxable_income": "" if i % 11 == 10 else f"{income}.00",
            "employees_qavg": str(420 if big else 12 + i), "assets_qavg": str(60_000_000 if big else 3_000_000 + i),
            "employees": str(420 if big else 12 + i), "disabled_employees": "0",
            "rd_expense": f"{50_000 + i * 1000}.00" if i % 4 == 0 else "0",
            "incremental_credit": "0", "six_taxes_due": f"{8_000 + i * 10}.00",
        })
        for period in (*QUARTERS, *MONTHS):
            quarterly = "Q" in period
            line = 300_000 if quarterly else 100_000
            sales = line - 20_000 + i * 300 if i % 5 else line + 50_000
            data.indicators.append({
                "taxpayer_id": tid, "period": period, "sales": f"{sales}.00", "taxable_income": "",
                "employees_qavg": "", "assets_qavg": "", "employees": "", "disabled_employees": "",
                "rd_expense": "", "incremental_credit": f"{20_000 + i * 100}.00" if i % 8 == 2 else "0",
                "six_taxes_due": "",
            })
        # big: claims the small low-profit relief it does not qualify for (improper); i % 4 == 3: compliant
        if big or i % 4 == 3:
            # a small amount lowers the risk tier one step (rules/_catalogue.yaml): one medium-tier case
            amount = "1500.00" if i == 18 else f"{income // 5}.00"
            data.claims.append({"taxpayer_id": tid, "period": YEAR, "incentive": "small_low_profit_cit",
                                "amount": amount})
        if i == 9:  # not eligible for 六税两费 and a small amount: a low-risk reminder in the letter
            data.claims.append({"taxpayer_id": tid, "period": YEAR, "incentive": "six_taxes_two_fees_half",
                                "amount": "800.00"})
    data.risk_events.append({"taxpayer_id": data.taxpayers[2]["taxpayer_id"], "event": "tax_evasion_penalty",
                             "occurred_on": "2024-06-30"})
    return data


def change_data(data: DataSet) -> dict[str, list[str]]:
    """A day's new data: one finding changes amount, one is resolved, one appears. Returns the ids touched."""
    small = [t["taxpayer_id"] for i, t in enumerate(data.taxpayers) if i % 9 and i % 11 != 10 and i % 4 != 3
             and t["entity_type"] == "enterprise"]
    changed, resolved = small[0], small[1]
    data.indicator(changed, YEAR)["taxable_income"] = "1234567.00"  # a different saving: changed
    # claims it now: no longer unclaimed (resolved)
    data.claims.append({"taxpayer_id": resolved, "period": YEAR, "incentive": "small_low_profit_cit",
                        "amount": "50000.00"})
    # a missing figure is filled in: undetermined → unclaimed (kind changed)
    missing = next(t["taxpayer_id"] for i, t in enumerate(data.taxpayers) if i % 11 == 10)
    data.indicator(missing, YEAR)["taxable_income"] = "200000.00"
    # a new taxpayer: new findings
    i = len(data.taxpayers)
    extra = build_data(i + 1, channels=(data.taxpayers[0]["preferred_channel"],))
    data.taxpayers.append(extra.taxpayers[-1])
    new_id = extra.taxpayers[-1]["taxpayer_id"]
    data.indicators.extend(r for r in extra.indicators if r["taxpayer_id"] == new_id)
    data.claims.extend(r for r in extra.claims if r["taxpayer_id"] == new_id)
    return {"changed": [changed], "resolved": [resolved], "kind_changed": [missing], "new": [new_id]}


def _write(path: Path, columns: Iterable[str], rows: Iterable[Mapping[str, Any]]) -> None:
    cols = list(columns)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in cols})


def write_data(folder: Path, data: DataSet) -> Path:
    """Write the data set as the four CSV files of a data folder."""
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder / "taxpayers.csv", [c.name for c in TAXPAYERS.columns if c.required], data.taxpayers)
    _write(folder / "indicators.csv", [c.name for c in INDICATORS.columns if c.required], data.indicators)
    _write(folder / "claims.csv", CLAIMS.names, data.claims)
    _write(folder / "risk_events.csv", RISK_EVENTS_TABLE.names, data.risk_events)
    return folder


def write_data_folder(folder: Path, n: int = 36, *, channels: tuple[str, ...] = FAST_CHANNELS) -> Path:
    """A fresh synthetic data folder of `n` taxpayers."""
    return write_data(folder, build_data(n, channels=channels))


# ------------------------------------------------------------------------------------------ configurations


def config_text(tmp_path: Path, state_url: str, *, data: Path | str, kinds: tuple[str, ...] = ("year",),
                extra: str = "") -> str:
    """A zhixiang.toml for a test: everything under tmp_path, the repository's rules, quick lock timings."""
    from engine.catalogue import DEFAULT_RULES_DIR

    kinds_list = ", ".join(f'"{k}"' for k in kinds)
    return f"""
state_url = "{state_url}"
[paths]
data = "{data}"
out = "{tmp_path / 'runs'}"
rules = "{DEFAULT_RULES_DIR}"
log_dir = "{tmp_path / 'logs'}"
[periods]
kinds = [{kinds_list}]
lookback_quarters = 0
lookback_months = 0
[letters]
jobs = 1
[locks]
heartbeat_seconds = 0.5
stale_after_seconds = 10
[logging]
console = "text"
{extra}
"""


def write_config(tmp_path: Path, state_url: str, *, data: Path | str, kinds: tuple[str, ...] = ("year",),
                 extra: str = "") -> Path:
    path = tmp_path / "zhixiang.toml"
    path.write_text(config_text(tmp_path, state_url, data=data, kinds=kinds, extra=extra), encoding="utf-8")
    return path


def make_config(tmp_path: Path, state_url: str, *, data: Path | str, kinds: tuple[str, ...] = ("year",),
                extra: str = "") -> Any:
    """The validated Config of `write_config` (environment ignored)."""
    from notifier.nightly.config import load_config

    return load_config(write_config(tmp_path, state_url, data=data, kinds=kinds, extra=extra), environ={})
