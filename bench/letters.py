"""Letter rendering throughput: letters built, HTML / text / SMS rendered per second, PDFs per second.

Findings are real: synthetic taxpayers go through the engine's batch query with the live catalogue
(rules/), and the letters are built from its findings rows, as `zhixiang notify` does. Rendering is
timed on one core (one process, one thread); PDFs also with a process pool when --jobs > 1.

    .venv/bin/python bench/letters.py                 # 2,000 taxpayers, 40 PDFs
    .venv/bin/python bench/letters.py --taxpayers 20000 --pdfs 100 --jobs 4
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from decimal import Decimal
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.batch import build_query
from engine.catalogue import load_catalogue
from notifier.letters import Letter, build_letter
from notifier.letters_render import LetterRenderer, render_pdf
from profiles.authorities import HANGZHOU_DISTRICTS
from profiles.ids import make_credit_code
from profiles.periods import parse_period
from profiles.schema import CLAIMS, INDICATORS, RISK_EVENTS_TABLE, TAXPAYERS

CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
NAMES = ("云栖", "星河", "钱塘", "西溪", "之江", "湘湖", "良渚", "富春", "天目", "运河", "拱宸", "望江")
TRADES = (("数据服务", "I6513"), ("智能科技", "I6513"), ("精工机械", "C3411"), ("茶业", "C1530"),
          ("文化传媒", "R8610"), ("电子商务", "F5292"), ("新材料", "C2651"), ("医疗器械", "C3581"))


def synthetic_profiles(n: int, seed: int = 2026) -> dict[str, pl.DataFrame]:
    """`n` small and medium Hangzhou enterprises with 2025 figures (no claims: every relief is unclaimed)."""
    rng = random.Random(seed)
    taxpayers, indicators = [], []
    for i in range(n):
        district = HANGZHOU_DISTRICTS[i % len(HANGZHOU_DISTRICTS)]
        body = "".join(rng.choice(CHARSET) for _ in range(8))
        tid = make_credit_code(district.region_code, body)
        trade, industry = rng.choice(TRADES)
        small = rng.random() < 0.3
        taxpayers.append({
            "taxpayer_id": tid, "name": f"杭州{rng.choice(NAMES)}{trade}有限公司{i}", "entity_type": "enterprise",
            "vat_status": "small_scale" if small else "general", "vat_filing_cycle": "quarter" if small else "month",
            "industry_code": industry, "restricted_industry": False, "tax_authority": district.tax_authority,
            "district": district.name, "credit_grade": rng.choice("ABM"), "registered_on": date(2015, 1, 1),
            "phone": "13805710000", "email": "caiwu@example.cn",
            "preferred_channel": rng.choice(("etax", "email", "sms", "post")), "opt_out": rng.random() < 0.05,
        })
        employees = rng.randint(3, 280)
        indicators.append({
            "taxpayer_id": tid, "period": "2025",
            "sales": Decimal(rng.randint(200_000, 40_000_000)),
            "taxable_income": Decimal(rng.randint(50_000, 2_900_000)) + Decimal("0.37"),
            "employees_qavg": float(employees), "assets_qavg": Decimal(rng.randint(1_000_000, 45_000_000)),
            "employees": employees, "disabled_employees": 0,
            "rd_expense": Decimal(rng.randint(0, 2_000_000)) if rng.random() < 0.5 else None,
            "six_taxes_due": Decimal(rng.randint(2_000, 90_000)),
            "disability_fund_due": Decimal(rng.randint(1_000, 40_000)),
            "equipment_cost": Decimal(rng.randint(100_000, 3_000_000)) if rng.random() < 0.3 else None,
            "equipment_max_unit_cost": Decimal(rng.randint(50_000, 900_000)),
        })
    return {
        "taxpayers": pl.DataFrame(taxpayers, schema=TAXPAYERS.polars_schema, orient="row"),
        "indicators": pl.DataFrame(indicators, schema=INDICATORS.polars_schema, orient="row"),
        "claims": pl.DataFrame(schema=CLAIMS.polars_schema),
        "risk_events": pl.DataFrame(schema=RISK_EVENTS_TABLE.polars_schema),
    }


def best_rate(fn: Callable[[], int], repeat: int = 3) -> float:
    """Items per CPU-second of the fastest of `repeat` runs (the others absorb warm-up and noise).

    CPU time of this process, not wall-clock: on a shared machine other work would otherwise be
    counted against the renderer. Everything here runs in one thread, so it is one core's rate.
    """
    rates = []
    for _ in range(repeat):
        start = time.process_time()
        items = fn()
        rates.append(items / (time.process_time() - start))
    return max(rates)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--taxpayers", type=int, default=2000)
    parser.add_argument("--pdfs", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)

    catalogue = load_catalogue()
    tables = synthetic_profiles(args.taxpayers)
    findings = build_query(catalogue, parse_period("2025"), taxpayers=tables["taxpayers"],
                           indicators=tables["indicators"], claims=tables["claims"],
                           risk_events=tables["risk_events"]).findings.collect()
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in findings.iter_rows(named=True):
        groups.setdefault(row["taxpayer_id"], []).append(row)
    as_of = date(2026, 11, 27)

    def build() -> list[Letter]:
        out = []
        for rows in groups.values():
            result = build_letter(rows, catalogue, as_of=as_of)
            if isinstance(result, Letter):
                out.append(result)
        return out

    letters = build()
    sizes = [len(x.incentives) for x in letters]
    renderer = LetterRenderer()
    print(f"{len(findings):,} findings rows → {len(letters):,} letters "
          f"({statistics.mean(sizes):.1f} incentives a letter on average, at most {max(sizes)}); one core")
    print(f"build letters from findings rows: {best_rate(lambda: len(build())):>9,.0f} letters/s")
    renderers: list[tuple[str, Callable[[Letter], str]]] = [
        ("HTML", renderer.html), ("plain text", renderer.text), ("SMS", renderer.sms)]
    for label, render in renderers:

        def render_all(render: Callable[[Letter], str] = render) -> int:
            return sum(1 for letter in letters if render(letter))

        print(f"render {label:<26}{best_rate(render_all):>9,.0f} letters/s")

    sample = letters[: args.pdfs]
    pages = [(renderer.html(x), x.key_texts()) for x in sample]
    render_pdf(*pages[0])  # fonts load once per process; not part of the rate
    start, wall = time.process_time(), time.perf_counter()
    for html, keys in pages:
        render_pdf(html, keys)
    one = len(pages) / (time.process_time() - start)
    one_wall = len(pages) / (time.perf_counter() - wall)
    print(f"PDF (WeasyPrint + read-back check):  {one:>6.2f} PDFs/s on one core "
          f"({one_wall:.2f}/s wall-clock; {len(pages)} letters)")
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
            list(pool.map(render_pdf, *zip(*pages[: args.jobs], strict=True)))  # warm every worker
            start = time.perf_counter()
            list(pool.map(render_pdf, *zip(*pages, strict=True)))
            many = len(pages) / (time.perf_counter() - start)
        print(f"PDF with {args.jobs} processes:              {many:>6.2f} PDFs/s wall-clock")
    return 0


if __name__ == "__main__":
    sys.exit(main())
