"""`zhixiang load`: put a profile data folder into PostgreSQL (for set-up and tests).

The folder is read and validated like any run's input; rows that break the contract are not loaded
(they are counted, and written to --quarantine when asked). `profiles` imports nothing from `engine`,
so this module maps its own errors to exit codes.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from profiles import excel
from profiles.database import display_url, is_database_url, load_tables
from profiles.errors import exit_on_user_error
from profiles.readers import load_profiles
from profiles.schema import TABLES


@click.command("load")
@click.option("--data", "data", required=True, type=click.Path(path_type=Path),
              help="档案数据目录（taxpayers/indicators/claims/risk_events 的 CSV 或 Parquet）")
@click.option("--to", "url", required=True, help="目标数据库，如 postgresql://user:password@host:5432/db")
@click.option("--mode", type=click.Choice(["replace", "append"]), default="replace", show_default=True,
              help="replace：删除并重建各表；append：追加到已有的表（主键重复则整体不导入）")
@click.option("--quarantine", "quarantine_path", type=click.Path(path_type=Path), default=None,
              help="把未导入的问题数据写到这个 CSV 文件")
@exit_on_user_error
def load_command(data: Path, url: str, mode: str, quarantine_path: Path | None) -> None:
    """把数据目录导入 PostgreSQL 的四张档案表（金额 NUMERIC(18,2)，日期 DATE，主键和索引）。"""
    if not is_database_url(url):
        raise click.BadParameter(f"{url!r} 不是 PostgreSQL 地址：应以 postgresql:// 开头", param_hint="--to")
    start = time.perf_counter()
    profiles = load_profiles(data)
    frames = {name: profiles.table(name).select([c for c in TABLES[name].names
                                                 if c in profiles.table(name).columns])
              for name in TABLES}
    loaded = load_tables(url, frames, mode=mode)  # type: ignore[arg-type]
    q = profiles.quarantine
    if quarantine_path is not None and q.height:
        excel.write_frame(q, quarantine_path)
    for name, rows in loaded.items():
        click.echo(f"  {name:<12} {rows:>12,} 行")
    click.echo(f"已导入 {display_url(url)}（{mode}），用时 {time.perf_counter() - start:.1f} 秒。")
    if q.height:
        where = f"，详见 {quarantine_path}" if quarantine_path is not None else "（用 --quarantine 输出明细）"
        click.echo(f"有 {q.height:,} 处问题数据所在的行未导入{where}。", err=True)


COMMANDS = [load_command]
