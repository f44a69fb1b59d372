"""`zhixiang notify` through the command line, and letters from the engine's real `zhixiang run` output."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.errors import EXIT_INPUT_ERROR, EXIT_LETTERS_FAILED, EXIT_RUNTIME_ERROR, EXIT_USAGE
from notifier.db import open_state
from notifier.letters.outbox import read_manifest
from notifier.letters.suppression import history
from profiles.schema import TABLES
from tests.builders.cli import notify_args, zx
from tests.builders.letters import ID_FIVE, ID_ONE, ID_REMINDER, ID_SMS, all_rows, write_findings
from tests.conftest import ROOT


@pytest.fixture
def findings(tmp_path: Path) -> Path:
    return write_findings(all_rows(), tmp_path / "findings")


def test_notify_writes_the_outbox(tmp_path: Path, findings: Path) -> None:
    out = tmp_path / "outbox"
    result = zx(*notify_args(findings, out, tmp_path / "state.sqlite"))
    assert result.exit_code == 0, result.output
    assert "生成礼包" in result.output and "拒收政策推送" in result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "email", "etax", "index.html", "manifest.csv", "notify-summary.json", "post", "skipped.csv", "sms"]
    # The e-tax bureau gets the print-ready HTML; PDFs only for post unless --pdf-for says otherwise.
    assert sorted(p.name for p in (out / "etax").iterdir()) == [f"{ID_ONE}.html", f"{ID_REMINDER}.html"]
    assert sorted(p.name for p in (out / "email").iterdir()) == [f"{ID_FIVE}.html", f"{ID_FIVE}.txt"]
    assert [p.name for p in (out / "sms").iterdir()] == [f"{ID_SMS}.txt"]
    assert (out / "manifest.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    manifest = read_manifest(out / "manifest.csv")
    assert {m["taxpayer_id"]: m["channel"] for m in manifest} == {
        ID_ONE: "etax", ID_FIVE: "email", ID_SMS: "sms", ID_REMINDER: "etax"}
    index = (out / "index.html").read_text(encoding="utf-8")
    for m in manifest:
        for f in m["files"].split(";"):
            assert f'href="{f}"' in index
    # Excel reads the manifest: plain CSV with the columns the issue names
    with open(out / "manifest.csv", encoding="utf-8-sig", newline="") as fh:
        header = next(csv.reader(fh))
    assert {"纳税人识别号", "渠道", "文件", "优惠政策编号", "预计可享金额合计（元）"} <= set(header)
    # re-running into the same folder replaces the outbox
    again = zx(*notify_args(findings, out, tmp_path / "state2.sqlite", "--channel-override", "post"))
    assert again.exit_code == 0, again.output
    assert not any((out / "etax").iterdir())
    assert sorted(p.suffix for p in (out / "post").iterdir()) == [".pdf"] * 4



def test_the_preview_page_lists_a_bounded_number_of_letters(tmp_path: Path, findings: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A first night at provincial scale has ~470,000 packages: the preview page lists INDEX_ROWS of them
    (failed ones first) and says where the rest are; a small night lists every one, with no note."""
    from notifier.letters import run as letters_run

    monkeypatch.setattr(letters_run, "INDEX_ROWS", 2)
    out = tmp_path / "outbox"
    result = zx(*notify_args(findings, out, tmp_path / "state.sqlite"))
    assert result.exit_code == 0, result.output
    index = (out / "index.html").read_text(encoding="utf-8")
    assert index.count('<tr class="') == 2
    assert "本页列出 2 份（发送失败的全部列出），全部 4 份见同一目录下的 manifest.csv" in index
    monkeypatch.setattr(letters_run, "INDEX_ROWS", 4)
    result = zx(*notify_args(findings, tmp_path / "outbox2", tmp_path / "state2.sqlite"))
    index = (tmp_path / "outbox2" / "index.html").read_text(encoding="utf-8")
    assert index.count('<tr class="') == 4 and "本页列出" not in index


def test_failed_letters_come_first_on_a_bounded_preview_page() -> None:
    from notifier.letters.outbox import ManifestRow
    from notifier.letters.run import _index_listing

    def row(i: int, status: str) -> ManifestRow:
        return ManifestRow(taxpayer_id=f"T{i}", taxpayer_name="", authority="", channel="etax", recipient="",
                           files=(), incentives=(), incentive_names=(), reminders=0, total_estimated_saving="",
                           package_id="", status=status)
    rows = [row(i, "failed" if i in (7, 9) else "written") for i in range(10)]
    assert [r.taxpayer_id for r in _index_listing(rows, 4)] == ["T7", "T9", "T0", "T1"]
    assert _index_listing(rows, 10) == rows

def test_pdf_for_adds_pdfs_to_the_etax_channel(tmp_path: Path, findings: Path) -> None:
    out = tmp_path / "outbox"
    result = zx(*notify_args(findings, out, tmp_path / "state.sqlite", "--pdf-for", "etax", "--pdf-for", "post"))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "etax").iterdir()) == [
        f"{ID_ONE}.html", f"{ID_ONE}.pdf", f"{ID_REMINDER}.html", f"{ID_REMINDER}.pdf"]


def test_dry_run_records_nothing(tmp_path: Path, findings: Path) -> None:
    state = tmp_path / "state.sqlite"
    result = zx(*notify_args(findings, tmp_path / "out", state, "--dry-run"))
    assert result.exit_code == 0, result.output
    assert "试运行" in result.output
    assert not state.exists()  # a dry run creates no state database (issue 18)
    assert "生成政策礼包：6/6 户" in result.output  # progress, also when the output is not a terminal
    engine = open_state(str(state))
    assert history(engine) == []
    engine.dispose()
    assert {m["status"] for m in read_manifest(tmp_path / "out" / "manifest.csv")} == {"dry_run"}


def test_channel_override_per_taxpayer(tmp_path: Path, findings: Path) -> None:
    result = zx(*notify_args(findings, tmp_path / "out", tmp_path / "s.sqlite",
                             "--channel-override", f"{ID_ONE}=sms", "--channel-override", f"{ID_FIVE}=post"))
    assert result.exit_code == 0, result.output
    manifest = {m["taxpayer_id"]: m for m in read_manifest(tmp_path / "out" / "manifest.csv")}
    assert manifest[ID_ONE]["channel"] == "sms" and manifest[ID_ONE]["note"] == "按指定改为短信"
    assert manifest[ID_FIVE]["files"] == f"post/{ID_FIVE}.pdf"
    assert manifest[ID_REMINDER]["channel"] == "etax"


def test_bad_channel_override_is_a_usage_error(tmp_path: Path, findings: Path) -> None:
    result = zx(*notify_args(findings, tmp_path / "out", tmp_path / "s.sqlite", "--channel-override", "fax"))
    assert result.exit_code == EXIT_USAGE and "渠道 'fax' 不正确" in result.output


def test_missing_findings_is_an_input_error(tmp_path: Path) -> None:
    result = zx(*notify_args(tmp_path / "nowhere", tmp_path / "out", tmp_path / "s.sqlite"))
    assert result.exit_code == EXIT_INPUT_ERROR
    assert "找不到发现文件" in result.output and "zhixiang run" in result.output


def test_findings_without_the_schema_columns_is_an_input_error(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    pl.DataFrame({"taxpayer_id": ["1"]}).write_parquet(folder / "findings.parquet")
    result = zx(*notify_args(folder, tmp_path / "out", tmp_path / "s.sqlite"))
    assert result.exit_code == EXIT_INPUT_ERROR and "缺少列" in result.output


def test_smtp_without_host_is_a_usage_error(tmp_path: Path, findings: Path) -> None:
    result = zx(*notify_args(findings, tmp_path / "out", tmp_path / "s.sqlite", "--deliver", "smtp"))
    assert result.exit_code == EXIT_USAGE and "--smtp-host" in result.output


def test_a_folder_that_is_not_an_outbox_is_refused(tmp_path: Path, findings: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.docx").write_text("mine")
    result = zx(*notify_args(findings, out, tmp_path / "s.sqlite"))
    assert result.exit_code == EXIT_RUNTIME_ERROR and "不是空目录" in result.output
    assert (out / "thesis.docx").read_text() == "mine"


def test_failed_delivery_exits_non_zero_after_writing_everything(tmp_path: Path, findings: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = zx(*notify_args(findings, tmp_path / "out", tmp_path / "s.sqlite", "--deliver", "webhook",
                             "--webhook-url", f"http://127.0.0.1:{port}/x", "--retries", "1", "--retry-delay", "0"))
    assert result.exit_code == EXIT_LETTERS_FAILED
    assert "发送失败" in result.output
    statuses = {m["taxpayer_id"]: m["status"] for m in read_manifest(tmp_path / "out" / "manifest.csv")}
    assert statuses == {ID_ONE: "failed", ID_REMINDER: "failed", ID_SMS: "failed", ID_FIVE: "queued"}


# ---------------------------------------------------------------------------- from the real engine

def _write_data(folder: Path, tables: dict[str, list[dict[str, Any]]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        columns = [c.name for c in TABLES[name].columns if c.required]
        with open(folder / f"{name}.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, columns)
            writer.writeheader()
            writer.writerows({c: r.get(c, "") for c in columns} for r in rows)
    return folder


def _tp(taxpayer_id: str, name: str, **kw: str) -> dict[str, str]:
    row = dict(taxpayer_id=taxpayer_id, name=name, entity_type="enterprise", vat_status="general",
               vat_filing_cycle="month", industry_code="I6513", restricted_industry="false",
               tax_authority="13301060000", district="西湖区", credit_grade="A", registered_on="2018-03-01",
               phone="13805710000", email="caiwu@example.cn", preferred_channel="etax", opt_out="false")
    row.update(kw)
    return row


def test_letters_from_the_engines_real_output(tmp_path: Path) -> None:
    """`zhixiang run` on a small data folder with the live catalogue, then `zhixiang notify` on its output."""
    data = _write_data(tmp_path / "data", {
        "taxpayers": [
            _tp(ID_ONE, "杭州云栖数据服务有限公司"),
            _tp(ID_FIVE, "杭州星河智能科技有限公司", vat_status="small_scale", vat_filing_cycle="quarter",
                tax_authority="13301080000", district="滨江区", preferred_channel="email"),
            _tp(ID_REMINDER, "杭州拱宸桥茶业有限公司", opt_out="true", preferred_channel="sms"),
        ],
        "indicators": [
            dict(taxpayer_id=ID_ONE, period="2025", sales="8000000", taxable_income="1860000", employees_qavg="86",
                 assets_qavg="23456789.50", employees="86", disabled_employees="0", six_taxes_due="48000"),
            dict(taxpayer_id=ID_FIVE, period="2025", sales="900000", taxable_income="420000", employees_qavg="25",
                 assets_qavg="3000000", employees="25", disabled_employees="0", rd_expense="300000",
                 six_taxes_due="12000"),
            dict(taxpayer_id=ID_REMINDER, period="2025", sales="2000000", taxable_income="500000",
                 employees_qavg="40", assets_qavg="9000000", employees="40", disabled_employees="0",
                 six_taxes_due="8000"),
        ],
        "claims": [],
        "risk_events": [],
    })
    run_out = tmp_path / "run"
    result = zx("run", "--data", str(data), "--period", "2025", "--out", str(run_out), "--quiet")
    assert result.exit_code == 0, result.output
    findings = pl.read_parquet(run_out / "findings.parquet")
    unclaimed = findings.filter((pl.col("kind") == "unclaimed") & (pl.col("taxpayer_id") != ID_REMINDER))
    assert unclaimed.height > 0

    out = tmp_path / "outbox"
    result = CliRunner().invoke(main, ["notify", "--findings", str(run_out), "--out", str(out), "--state",
                                       str(tmp_path / "s.sqlite"), "--as-of", "2026-11-27", "--jobs", "1"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    manifest = {m["taxpayer_id"]: m for m in read_manifest(out / "manifest.csv")}
    assert set(manifest) == {ID_ONE, ID_FIVE}  # the opted-out taxpayer gets nothing
    for taxpayer_id, m in manifest.items():
        mine = unclaimed.filter(pl.col("taxpayer_id") == taxpayer_id).sort("estimated_amount", descending=True)
        assert m["incentives"].split(";") == mine.get_column("rule_id").to_list()  # ordered by saving
        assert m["total_estimated_saving"] == str(mine.get_column("estimated_amount").sum())
    html = (out / "etax" / f"{ID_ONE}.html").read_text(encoding="utf-8")
    assert "您 2025 年度应纳税所得额 186.00 万元，未超过 300 万元上限" in html
    assert "杭州云栖数据服务有限公司：" in html and "国家税务总局杭州市西湖区税务局" in html
    text = (out / "email" / f"{ID_FIVE}.txt").read_text(encoding="utf-8")
    assert "国家税务总局杭州市滨江区税务局" in text and "您 2025 年度从业人数 25 人，未超过 300 人上限" in text


SAMPLE = ROOT / "sample_data" / "hangzhou"


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="sample_data/hangzhou is not generated in this tree")
def test_letters_for_the_committed_sample_data(tmp_path: Path) -> None:
    """Every taxpayer of the sample data: letters render, SMS fit, nothing non-facing is told."""
    from engine.catalogue import load_catalogue
    from notifier.letters.build import Letter, build_letter
    from notifier.letters.render import LetterRenderer
    from notifier.letters.run import read_findings, taxpayer_groups

    run_out = tmp_path / "run"
    result = zx("run", "--data", str(SAMPLE), "--period", "2025", "--out", str(run_out), "--quiet")
    assert result.exit_code == 0, result.output
    findings = pl.read_parquet(run_out / "findings.parquet")
    out = tmp_path / "outbox"
    # By SMS: thousands of PDFs belong in the benchmark (bench/letters.py), not in the test suite.
    result = zx("notify", "--findings", str(run_out), "--out", str(out), "--state", str(tmp_path / "s.sqlite"),
                "--as-of", "2026-11-27", "--dry-run", "--channel-override", "sms", "--jobs", "1")
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out / "manifest.csv")
    automatic = sorted(load_catalogue().automatic_rules)  # 免申即享: listed for the collection system, not told
    facing = findings.filter(
        (((pl.col("kind") == "unclaimed") & ~pl.col("rule_id").is_in(automatic))
         | ((pl.col("kind") == "improper") & (pl.col("risk_tier") == "low")))
        & ~pl.col("opt_out").fill_null(False))
    assert {m["taxpayer_id"] for m in manifest} == set(facing.get_column("taxpayer_id").to_list())
    told = {(m["taxpayer_id"], rid) for m in manifest for rid in m["incentives"].split(";") if rid}
    hidden = findings.filter((pl.col("kind") == "undetermined")
                             | ((pl.col("kind") == "improper") & (pl.col("risk_tier") != "low")))
    assert not told & set(zip(hidden.get_column("taxpayer_id"), hidden.get_column("rule_id"), strict=True))
    assert automatic and not {rid for _, rid in told} & set(automatic)
    for m in manifest:
        for f in m["files"].split(";"):
            if f.startswith("sms/"):
                assert len((out / f).read_text(encoding="utf-8").strip()) <= 70
    # and the HTML and text letter of every one of them renders from the live catalogue
    catalogue, renderer = load_catalogue(), LetterRenderer()
    letters = [x for rows in taxpayer_groups(read_findings(run_out))
               if isinstance(x := build_letter(rows, catalogue, as_of=date(2026, 11, 27)), Letter)]
    assert len(letters) == len(manifest)
    for letter in letters:
        assert f"{letter.name}：" in renderer.text(letter)
        html = renderer.html(letter)
        assert all(item.saving_text in html for item in letter.incentives)
        assert all(rem.name in html for rem in letter.reminders)
        if letter.incentives:
            assert f'<strong id="total">{letter.total_saving_text}</strong>' in html


def test_pdfs_rendered_by_worker_processes(tmp_path: Path, findings: Path) -> None:
    """--jobs 2: PDFs come from a process pool and are checked there just the same."""
    out = tmp_path / "out"
    args = notify_args(findings, out, tmp_path / "s.sqlite", "--channel-override", "post")
    args[args.index("--jobs") + 1] = "2"
    result = zx(*args)
    assert result.exit_code == 0, result.output
    from notifier.letters.render import pdf_text

    pdfs = sorted((out / "post").iterdir())
    assert len(pdfs) == 4
    assert "杭州星河智能科技有限公司" in "".join(pdf_text(pdfs[1].read_bytes()).split())
