"""`zhixiang serve`, `zhixiang users`, `zhixiang tokens` and `zhixiang audit`."""

from __future__ import annotations

import os
import sys
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from engine.catalogue import DEFAULT_RULES_DIR
from engine.errors import InputError, exit_on_user_error
from notifier.cases.commands import _open, state_option
from workbench import accounts

BEIJING = timezone(timedelta(hours=8), "北京时间")
#: How long uvicorn waits for a worker to answer its health check before replacing it (seconds).
WORKER_HEALTHCHECK_SECONDS = 60


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def _password(prompt: bool, from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not prompt:
        raise InputError("请交互输入密码，或用 --password-stdin 从标准输入读取")
    return str(click.prompt("密码", hide_input=True, confirmation_prompt="再次输入密码"))


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="监听地址")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535), help="端口")
@state_option
@click.option("--data", "data", default=None,
              help="档案数据（目录或 postgresql://…），供“立即核查”使用；默认取最近一次成功运行的数据来源")
@click.option("--rules", "rules", default=str(DEFAULT_RULES_DIR), type=click.Path(path_type=Path),
              show_default="rules/", help="规则目录")
@click.option("--secure-cookies", is_flag=True, help="Cookie 加 Secure 标记（经 HTTPS 反向代理提供服务时使用）")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="工作进程数（每个进程各自加载并编译规则目录；按 CPU 核数设置，如 2 核用 2）")
@click.pass_context
@exit_on_user_error
def serve_command(ctx: click.Context, host: str, port: int, state: str, data: str | None, rules: Path,
                  secure_cookies: bool, workers: int) -> None:
    """启动风险应对工作台与服务接口（网页 + /api/v1，接口文档见 /docs）。"""
    import uvicorn

    from workbench.app import SETTINGS_ENV, ServeSettings, create_app
    from workbench.service import Workbench

    settings = ServeSettings(state=state, rules=str(rules), data=data, secure_cookies=secure_cookies)
    engine = _open(state)
    if not accounts.list_users(engine):
        click.echo("提示：还没有任何账号，请先用 zhixiang users add 创建。", err=True)
    click.echo(f"直享工作台：http://{host}:{port}/  （接口文档 http://{host}:{port}/docs）", err=True)
    options: dict[str, Any] = {"host": host, "port": port, "log_level": "warning", "access_log": False}
    if workers == 1:
        wb = Workbench(engine, rules_dir=rules, data=data)
        wb.warm_up()
        uvicorn.run(create_app(wb, secure_cookies=secure_cookies), **options)
        return
    # Several processes (one Python process uses one core): uvicorn starts each worker afresh, and each
    # builds its own Workbench — the catalogue loaded and compiled once per worker, before it accepts requests.
    # uvicorn kills a worker that does not answer its health check in time and starts another; its default
    # 5 s is shorter than a worker's start on a busy machine (interpreter, imports, catalogue), which then
    # never comes up: measured workers restarting in a loop at a load average of 11 on 2 cores.
    engine.dispose()
    os.environ[SETTINGS_ENV] = settings.to_json()
    uvicorn.run("workbench.app:app_from_environment", factory=True, workers=workers,
                timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS, **options)


@click.group("users")
def users_group() -> None:
    """工作台账号：新建、列出、停用、重设密码。"""


@users_group.command("add")
@click.argument("name")
@click.option("--role", required=True, help=f"角色：{'、'.join(accounts.ROLES)}")
@click.option("--authority", default="", help="主管税务机关（科员、科长必填，与案件的主管税务机关一致）")
@click.option("--password-stdin", is_flag=True, help="从标准输入读取密码（一行）")
@state_option
@exit_on_user_error
def users_add(name: str, role: str, authority: str, password_stdin: bool, state: str) -> None:
    """新建账号（密码以 argon2 散列保存）。"""
    engine = _open(state)
    password = _password(True, password_stdin)
    accounts.add_user(engine, name, role, authority, password)
    accounts.audit(engine, "cli", "user_add", name, f"{accounts.parse_role(role)} {authority}".strip())
    click.echo(f"已创建账号 {name}（{accounts.parse_role(role)}{'，' + authority if authority else ''}）")


@users_group.command("list")
@state_option
@exit_on_user_error
def users_list(state: str) -> None:
    """列出账号。"""
    table = Table("用户名", "角色", "主管税务机关", "状态", "连续失败", "锁定至")
    for u in accounts.list_users(_open(state)):
        table.add_row(u["name"], u["role"], u["authority"] or "—", "已停用" if u["disabled"] else "在用",
                      str(u["failed_logins"]), _when(u["locked_until"]))
    Console(width=None if sys.stdout.isatty() else 200).print(table)


@users_group.command("disable")
@click.argument("name")
@click.option("--enable", is_flag=True, help="重新启用")
@state_option
@exit_on_user_error
def users_disable(name: str, enable: bool, state: str) -> None:
    """停用账号（立即结束其会话）；--enable 重新启用。"""
    engine = _open(state)
    accounts.set_disabled(engine, name, not enable)
    accounts.audit(engine, "cli", "user_enable" if enable else "user_disable", name)
    click.echo(f"账号 {name} 已{'启用' if enable else '停用'}")


@users_group.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="从标准输入读取新密码（一行）")
@state_option
@exit_on_user_error
def users_passwd(name: str, password_stdin: bool, state: str) -> None:
    """重设密码（同时解除锁定、结束会话）。"""
    engine = _open(state)
    accounts.set_password(engine, name, _password(True, password_stdin))
    accounts.audit(engine, "cli", "user_passwd", name)
    click.echo(f"账号 {name} 的密码已重设")


@click.group("tokens")
def tokens_group() -> None:
    """服务接口的 API 令牌（机器调用方，按角色和主管税务机关限定范围）。"""


@tokens_group.command("add")
@click.argument("name")
@click.option("--role", required=True, help="科员、科长或分析员")
@click.option("--authority", default="", help="主管税务机关（科员、科长必填）")
@state_option
@exit_on_user_error
def tokens_add(name: str, role: str, authority: str, state: str) -> None:
    """新建令牌；令牌只显示这一次。"""
    engine = _open(state)
    token = accounts.add_token(engine, name, role, authority)
    accounts.audit(engine, "cli", "token_add", name, f"{accounts.parse_role(role)} {authority}".strip())
    click.echo(token)


@tokens_group.command("list")
@state_option
@exit_on_user_error
def tokens_list(state: str) -> None:
    """列出令牌（不显示令牌本身）。"""
    table = Table("编号", "名称", "角色", "主管税务机关", "状态", "创建时间")
    for t in accounts.list_tokens(_open(state)):
        table.add_row(t["token_id"], t["name"], t["role"], t["authority"] or "—",
                      "已停用" if t["disabled"] else "在用", _when(t["created_at"]))
    Console(width=None if sys.stdout.isatty() else 200).print(table)


@tokens_group.command("revoke")
@click.argument("token_id")
@state_option
@exit_on_user_error
def tokens_revoke(token_id: str, state: str) -> None:
    """停用令牌。"""
    engine = _open(state)
    accounts.revoke_token(engine, token_id)
    accounts.audit(engine, "cli", "token_revoke", token_id)
    click.echo(f"令牌 {token_id} 已停用（正在运行的服务在 {accounts.TOKEN_CACHE_SECONDS:.0f} 秒内停止接受它）")


@click.command("audit")
@state_option
@click.option("--user", "actor", help="只看该操作人")
@click.option("--action", help="只看该操作（login、login_failed、view_case、assign、resolve、export……）")
@click.option("--since", help="起始日期 YYYY-MM-DD（北京时间）")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(min=1), help="最多列出的条数")
@exit_on_user_error
def audit_command(state: str, actor: str | None, action: str | None, since: str | None, limit: int) -> None:
    """审计日志：谁、何时、做了什么、从哪里（最新在前）。"""
    start = None
    if since:
        try:
            start = datetime.combine(date.fromisoformat(since), time(), BEIJING)
        except ValueError as exc:
            raise InputError(f"--since 日期 {since!r} 格式不正确：应为 YYYY-MM-DD") from exc
    table = Table("时间（北京时间）", "操作人", "操作", "对象", "详情", "来源")
    for e in accounts.audit_entries(_open(state), actor=actor, action=action, since=start, limit=limit):
        table.add_row(_when(e["at"]), e["actor"], e["action"], e["target"], e["detail"], e["remote"])
    Console(width=None if sys.stdout.isatty() else 200).print(table)


COMMANDS = [serve_command, users_group, tokens_group, audit_command]
