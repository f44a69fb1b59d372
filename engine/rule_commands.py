"""`zhixiang rules check | test | schema | table`: the rule catalogue from the command line.

Thin edges: each command parses its arguments, calls one core function (load_catalogue, run_cases,
rule_json_schema) and prints; rule problems become their `file:line:col` messages and exit code 3.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from engine.casebook import CaseResult, load_cases, run_cases
from engine.catalogue import DEFAULT_RULES_DIR, Catalogue, load_catalogue
from engine.errors import EXIT_RULE_ERROR, exit_on_user_error
from engine.rulefile import rule_json_schema
from profiles.periods import KIND_LABELS as PERIOD_KIND_LABELS

SCHEMA_FILE = "rule.schema.json"
VERIFICATION_LABELS = {"verified": "已核实", "partial": "部分核实", "unverified": "未核实"}


_DIR = click.argument("directory", required=False, type=click.Path(path_type=Path), default=DEFAULT_RULES_DIR)


@click.group("rules")
def rules_group() -> None:
    """规则目录：检查规则文件、运行规则测试案例、生成规则文件的 JSON Schema。"""


@rules_group.command("check")
@_DIR
@exit_on_user_error
def check(directory: Path) -> None:
    """加载并检查规则目录（默认 rules/），列出每条规则。"""
    catalogue = load_catalogue(directory)
    out = Console()
    out.print(catalogue_table(catalogue, width=out.width))
    out.print(f"规则目录检查通过：{len(catalogue.rules)} 条规则，版本 {catalogue.version}。")


#: Below this width the catalogue table stacks id and name in one column and wraps the window, so that
#: an 80-column terminal shows every column instead of "…".
_WIDE = 140


def catalogue_table(catalogue: Catalogue, *, width: int = _WIDE) -> Table:
    """One row per rule: id, 名称, 税种, 判定期间, 执行期限, 判定范围, 核实状态.

    When narrow, id and name are stacked in one column, and so are the two windows.
    """
    table = Table(title=f"{catalogue.settings.name}（版本 {catalogue.version}）")
    wide = width >= _WIDE
    if wide:
        table.add_column("编号", no_wrap=True)
        table.add_column("名称", ratio=2, overflow="fold")
        table.add_column("税种", ratio=1, overflow="fold")
        for column in ("判定期间", "执行期限", "判定范围", "核实状态"):
            table.add_column(column, no_wrap=True)
    else:
        table.add_column("编号 / 名称", ratio=1, overflow="fold")
        table.add_column("税种", max_width=10, overflow="fold")
        for column in ("判定期间", "执行期限 / 判定范围", "核实状态"):
            table.add_column(column, no_wrap=True)
    for rule in sorted(catalogue.rules.values(), key=lambda r: r.id):
        windows = (
            [rule.window_label, rule.judged_label]
            if wide
            else [rule.window_label.replace(" 至 ", "\n至 ") + "\n判定 " + rule.judged_label.replace(" 至 ", "\n至 ")]
        )
        cells = [
            escape(rule.tax),
            "、".join(PERIOD_KIND_LABELS[k] for k in rule.granularity),
            *windows,
            VERIFICATION_LABELS.get(rule.verification, rule.verification),
        ]
        if wide:
            table.add_row(rule.id, escape(rule.name), *cells)
        else:
            table.add_row(f"{rule.id}\n{escape(rule.name)}", *cells)
    return table


README_FILE = DEFAULT_RULES_DIR.parent / "README.md"
TABLE_START, TABLE_END = "<!-- zhixiang rules table: start -->", "<!-- zhixiang rules table: end -->"
_CODE_STATES = {True: "已核实", False: "未核实", None: "未注明"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(catalogue: Catalogue) -> str:
    """The README's catalogue table: every rule with its basis, windows, claim codes and verification state."""
    lines = [
        "| 编号 | 名称 | 依据 | 执行期限 | 判定范围 | 减免性质代码 | 核实状态 |",
        "|---|---|---|---|---|---|---|",
    ]
    for rule in sorted(catalogue.rules.values(), key=lambda r: r.id):
        basis = "；".join(
            f"{b['document']}{b.get('article') or ''}" + ("（未核实）" if b.get("verification") == "unverified" else "")
            for b in rule.basis)
        codes = "；".join(f"{c.code}（{_CODE_STATES[c.verified]}）" for c in catalogue.claim_code_info.values()
                         if c.rule_id == rule.id) or "—"
        lines.append("| " + " | ".join(_cell(x) for x in (
            f"`{rule.id}`", rule.name, basis, rule.window_label, rule.judged_label, codes,
            VERIFICATION_LABELS.get(rule.verification, rule.verification))) + " |")
    return "\n".join(lines) + "\n"


def readme_with_table(readme: str, table: str) -> str:
    """The README with `table` between its markers (which must be there)."""
    if TABLE_START not in readme or TABLE_END not in readme:
        raise click.ClickException(f"README 中没有标记 {TABLE_START} … {TABLE_END}")
    head, rest = readme.split(TABLE_START, 1)
    return f"{head}{TABLE_START}\n{table}{TABLE_END}{rest.split(TABLE_END, 1)[1]}"


@rules_group.command("table")
@_DIR
@click.option("--write", "write", is_flag=True, help="写入 README.md 的目录表（两个标记之间）")
@click.option("--readme", "readme", type=click.Path(path_type=Path), default=README_FILE, show_default="README.md",
              help="要更新规则目录表的 README 文件")
@exit_on_user_error
def table_command(directory: Path, write: bool, readme: Path) -> None:
    """输出规则目录表（编号、名称、依据、执行期限、判定范围、减免性质代码、核实状态）；--write 写入 README。"""
    text = markdown_table(load_catalogue(directory))
    if not write:
        click.echo(text, nl=False)
        return
    readme.write_text(readme_with_table(readme.read_text(encoding="utf-8"), text), encoding="utf-8")
    click.echo(f"已更新 {readme} 的规则目录表")


@rules_group.command("test")
@_DIR
@exit_on_user_error
def test(directory: Path) -> None:
    """运行规则目录中每条规则旁的测试案例（<政策编号>.cases.yaml），任何案例未通过则以退出码 3 结束。"""
    catalogue = load_catalogue(directory)
    cases = load_cases(directory)
    results = run_cases(catalogue, cases)
    out = Console()
    out.print(results_table(catalogue, results))
    failed = [r for r in results if not r.passed]
    for result in failed:
        click.echo(result.message() + "\n", err=True)  # unwrapped: `file:line` must stay whole for editors
    if failed:
        Console(stderr=True).print(f"[red]{len(failed)} 个案例未通过[/red]（共 {len(results)} 个）。")
        sys.exit(EXIT_RULE_ERROR)
    out.print(f"[green]全部 {len(results)} 个案例通过。[/green]")


def results_table(catalogue: Catalogue, results: list[CaseResult]) -> Table:
    """Per rule: cases, passed, failed."""
    by_rule: dict[str, list[CaseResult]] = defaultdict(list)
    for r in results:
        by_rule[r.case.rule_id].append(r)
    table = Table(title="规则测试案例")
    for column, justify in (("编号", "left"), ("名称", "left"), ("案例", "right"), ("通过", "right"),
                            ("未通过", "right"), ("结果", "left")):
        table.add_column(column, justify=justify, no_wrap=column == "编号")  # type: ignore[arg-type]
    for rule_id in sorted(set(catalogue.rules) | set(by_rule)):
        mine = by_rule.get(rule_id, [])
        passed = sum(r.passed for r in mine)
        rule = catalogue.rules.get(rule_id)
        verdict = "[yellow]无案例[/yellow]" if not mine else "[green]通过[/green]" if passed == len(mine) \
            else "[red]未通过[/red]"
        table.add_row(rule_id, escape(rule.name) if rule else "（无此规则）", str(len(mine)), str(passed),
                      str(len(mine) - passed), verdict)
    return table


@rules_group.command("schema")
@click.option("--out", "out_path", type=click.Path(path_type=Path), default=DEFAULT_RULES_DIR / SCHEMA_FILE,
              show_default=f"rules/{SCHEMA_FILE}", help="JSON Schema 输出文件")
@exit_on_user_error
def schema(out_path: Path) -> None:
    """生成规则文件的 JSON Schema（供编辑器补全和检查 rules/*.yaml）。"""
    out_path.write_text(schema_text(), encoding="utf-8")
    click.echo(f"已写入 {out_path}")


@rules_group.command("sql")
@click.option("--dialect", type=click.Choice(["duckdb", "postgres", "spark"]), required=True,
              help="SQL 方言：duckdb、postgres（PostgreSQL）或 spark（Spark SQL）")
@click.option("--period", "period", required=True, help="所属期：年度 2025、季度 2026Q3 或月份 2026-09")
@_DIR
@exit_on_user_error
def sql_command(dialect: str, period: str, directory: Path) -> None:
    """打印该所属期全部规则的 SQL（供数据库管理员审阅；读取 taxpayers、indicators、claims、risk_events 四张表）。"""
    from engine.backends.sql import check_catalogue, plan_sql
    from engine.commands import _period

    catalogue = load_catalogue(directory)
    check_catalogue(catalogue, dialect)
    plan = plan_sql(catalogue, _period(period), dialect)
    click.echo(f"-- 直享规则目录 {catalogue.version}，所属期 {period}，{len(plan.rules)} 条规则；"
               f"每户一行，列名对应见 zhixiang 的批量引擎")
    click.echo(plan.sql(dialect, pretty=True) + ";")


def schema_text() -> str:
    """The committed form of rules/rule.schema.json."""
    return json.dumps(rule_json_schema(), ensure_ascii=False, indent=2) + "\n"


COMMANDS = [rules_group]
