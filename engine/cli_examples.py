"""Worked examples for every command's `--help`, on the bundled sample data.

One table, keyed by the command's path ("cases list"), that engine/cli.py attaches as each command's
epilog; tests/test_cli_usage.py parses every example against the real commands, so an example that names
an option or argument the command no longer has fails the tests.
"""

from __future__ import annotations

SAMPLE = "sample_data/hangzhou"
STATE = "out/state.sqlite"

#: command path → example lines (each a whole `zhixiang …` command line, then a short Chinese comment).
EXAMPLES: dict[str, tuple[tuple[str, str], ...]] = {
    "run": (
        (f"zhixiang run --data {SAMPLE} --period 2025 --out out/run-2025", "评估 2025 年度"),
        (f"zhixiang run --data {SAMPLE} --period 2026-07 --out out/run-2026-07 --engine duckdb",
         "在 DuckDB 内以 SQL 评估 2026 年 7 月"),
    ),
    "explain": (
        (f"zhixiang explain --data {SAMPLE} --period 2025 --taxpayer 91330106MA2Y00028P", "逐条说明一户的判定"),
    ),
    "check": (
        (f"zhixiang check --data {SAMPLE} --period 2025 --taxpayer 91330106MA2Y00028P", "实时核查一户"),
        ("zhixiang check --stdin --period 2025", "从标准输入读取一户纳税人的 JSON 画像"),
    ),
    "load": (
        (f"zhixiang load --data {SAMPLE} --to postgresql://zhixiang@localhost/zhixiang",
         "把样例数据导入 PostgreSQL"),
    ),
    "nightly": (
        (f"zhixiang nightly --data {SAMPLE} --as-of 2026-10-15 --out out --state {STATE}", "样例数据的一次夜间批处理"),
    ),
    "runs list": ((f"zhixiang runs list --state {STATE}", "运行台账"),),
    "schedule": (("zhixiang schedule --config zhixiang.toml", "按配置的时间每天运行夜间批处理"),),
    "notify": (
        ("zhixiang notify --findings out/run-2025 --out out/outbox --as-of 2026-10-15 --dry-run",
         "只生成信函，不发送、不记入台账"),
    ),
    "whatif": (
        (f"zhixiang whatif --data {SAMPLE} --period 2025 --set small_low_profit_cit.income_cap=5000000 "
         "--out out/whatif", "小型微利企业年应纳税所得额上限调为 500 万元的测算"),
    ),
    "cases list": (
        (f"zhixiang cases list --state {STATE} --tier high --overdue", "逾期未办结的高风险案件"),
    ),
    "cases show": (
        (f"zhixiang cases show --state {STATE} FX-2025-small_low_profit_cit-5N325WFSK1WH", "一个案件的证据和处理记录"),
    ),
    "cases assign": (
        (f"zhixiang cases assign --state {STATE} --to 张三 FX-2025-small_low_profit_cit-5N325WFSK1WH", "分派案件"),
    ),
    "cases resolve": (
        (f"zhixiang cases resolve --state {STATE} --outcome 误报 --reason 已取得资格证明 "
         "FX-2025-small_low_profit_cit-5N325WFSK1WH", "登记核实结论"),
    ),
    "cases export": ((f"zhixiang cases export --state {STATE} --out out/tasks", "按主管税务机关导出任务清单"),),
    "cases stats": ((f"zhixiang cases stats --state {STATE}", "各规则的准确率"),),
    "cases sync": ((f"zhixiang cases sync --findings out/run-2025 --state {STATE}", "把一次运行同步到案件台账"),),
    "rules check": (("zhixiang rules check", "检查规则目录"),),
    "rules test": (("zhixiang rules test", "运行每条规则的测试案例"),),
    "rules sql": (("zhixiang rules sql --dialect postgres --period 2025", "打印 PostgreSQL 的判定 SQL"),),
    "serve": ((f"zhixiang serve --state {STATE}", "在 http://127.0.0.1:8080/ 打开工作台"),),
    "users add": ((f"zhixiang users add 分析员甲 --role 分析员 --state {STATE}", "新建只读分析员账号"),),
    "tokens add": (
        (f"zhixiang tokens add 税小蜜 --role 分析员 --state {STATE}", "为 12366 智能咨询新建只读 API 令牌"),
    ),
    "audit": ((f"zhixiang audit --state {STATE} --action resolve", "谁登记了哪些核实结论"),),
}


def epilog(path: str) -> str | None:
    """The `--help` epilog for one command path, or None when it has no examples."""
    lines = EXAMPLES.get(path)
    if not lines:
        return None
    body = "\n".join(f"  # {comment}\n  {command}" for command, comment in lines)
    return "\b\n示例：\n" + body
