"""The workbench and service API against a real uvicorn server on 127.0.0.1 started by the test.

Login, cookie flags, CSRF, lockout, scope (another authority's case is 404 on pages and API), XSS in a
taxpayer name, the API's errors, and a resolve through the web changing the ledger exactly as
`zhixiang cases resolve` does.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from engine.cli import main
from notifier.autoapply.ledger import mark_applied, record_listed
from notifier.cases.ledger import case_number, sync_findings
from notifier.cases.queries import get_case, history_of
from notifier.db import open_state
from tests.builders.cases import finding, findings_frame
from tests.builders.server import running_server
from tests.test_durable_engine import _write_folder
from tests.test_durable_realtime import TAXPAYER, small_firm
from workbench import accounts

A, B = "13301060000", "13301050000"
XSS = "<script>alert('x')</script>杭州恶意名称有限公司"
PASSWORD = "correct-horse-1"


def tp(i: int) -> str:
    return f"9133010{i:011d}"


def no(i: int) -> str:
    return case_number(tp(i), "small_low_profit_cit", "2025")


@dataclass
class Server:
    url: str
    state: str
    data: Path
    token_a: str
    token_b: str
    process: subprocess.Popen[bytes]


def zx(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), input=stdin)
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("workbench")
    state = f"sqlite:///{folder / 'state.sqlite'}"
    engine = open_state(state)
    rows = [finding(tp(i), authority=A if i < 6 else B, amount=f"{1000 * (i + 1)}.00",
                    name=XSS if i == 0 else f"杭州样例{i}有限公司") for i in range(9)]
    sync_findings(engine, findings_frame(rows), run_id="run-1", as_of=date(2026, 1, 10), periods=["2025"],
                  at=datetime(2026, 1, 10, 2, tzinfo=UTC))
    for name, role, authority in (("wang", "科长", A), ("li", "科员", A), ("zhou", "科员", B), ("zhao", "分析员", ""),
                                  ("admin", "管理员", ""), ("victim", "科员", A)):
        accounts.add_user(engine, name, role, authority, PASSWORD)
    listed = record_listed(engine, [  # 免申即享: two listed for A (one then applied), one for B
        {"taxpayer_id": tp(i), "period": "2025", "rule_id": "disability_fund_relief", "rule_name": "残保金减免",
         "taxpayer_name": f"杭州样例{i}有限公司", "tax_authority": authority, "amount": Decimal("3000.00"),
         "basis": "依据", "evidence": "证据"} for i, authority in ((1, A), (2, A), (7, B))],
        as_of=date(2026, 1, 10), run_id="run-1")
    with engine.begin() as conn:
        mark_applied(conn, next(e.entry_no for e in listed.entries if e.taxpayer_id == tp(2)),
                     applied_on=date(2026, 1, 20), amount=Decimal("3000.00"), file="回执/13301060000.xlsx", row=2)
    token_a = accounts.add_token(engine, "etax-a", "科员", A)
    token_b = accounts.add_token(engine, "etax-b", "科员", B)
    engine.dispose()
    data = folder / "data"
    _write_folder(data)  # one taxpayer of authority A (TAXPAYER): the profiles behind "check now"
    with running_server(folder, "--state", state, "--data", str(data), timeout=60) as (url, process):
        yield Server(url, state, data, token_a, token_b, process)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def login(server: Server, name: str, password: str = PASSWORD) -> httpx.Client:
    client = httpx.Client(base_url=server.url, follow_redirects=False, timeout=30)
    page = client.get("/login")
    response = client.post("/login", data={"name": name, "password": password, "csrf": csrf_of(page.text)})
    assert response.status_code == 303, response.text
    return client


def test_login_sets_a_strict_httponly_session_and_logout_ends_it(server: Server) -> None:
    client = httpx.Client(base_url=server.url, follow_redirects=False)
    assert client.get("/queue").headers["location"].startswith("/login")
    page = client.get("/login")
    bad = client.post("/login", data={"name": "li", "password": "wrong-password", "csrf": csrf_of(page.text)})
    assert bad.status_code == 401 and "用户名或密码不正确" in bad.text
    page = client.get("/login")
    ok = client.post("/login", data={"name": "li", "password": PASSWORD, "csrf": csrf_of(page.text)})
    assert ok.status_code == 303
    cookie = ok.headers["set-cookie"]
    assert "zx_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    queue = client.get("/queue")
    assert queue.status_code == 200 and "案件队列" in queue.text
    assert client.post("/logout", data={"csrf": csrf_of(queue.text)}).status_code == 303
    assert client.get("/queue").status_code == 303


def test_login_without_its_csrf_token_is_refused(server: Server) -> None:
    client = httpx.Client(base_url=server.url, follow_redirects=False)
    response = client.post("/login", data={"name": "li", "password": PASSWORD})
    assert response.status_code == 403 and "防伪令牌" in response.text
    assert "zx_session" not in response.headers.get("set-cookie", "")


def test_repeated_failures_lock_the_account(server: Server) -> None:
    client = httpx.Client(base_url=server.url, follow_redirects=False)
    for _ in range(accounts.MAX_FAILURES):
        page = client.get("/login")
        client.post("/login", data={"name": "victim", "password": "wrong-password", "csrf": csrf_of(page.text)})
    page = client.get("/login")
    locked = client.post("/login", data={"name": "victim", "password": PASSWORD, "csrf": csrf_of(page.text)})
    assert locked.status_code == 401 and "锁定" in locked.text  # even the right password, while locked
    engine = open_state(server.state)
    assert [e["action"] for e in accounts.audit_entries(engine, actor="victim")][:2] == ["login_failed"] * 2
    accounts.set_password(engine, "victim", PASSWORD)  # an administrator lifts it
    login(server, "victim")


def test_another_authoritys_case_is_404_on_pages_and_api(server: Server) -> None:
    officer_b = login(server, "zhou")
    assert officer_b.get(f"/cases/{no(1)}").status_code == 404  # authority A's case
    assert officer_b.get(f"/cases/{no(7)}").status_code == 200  # their own
    # Indistinguishable from a number that does not exist.
    assert officer_b.get(f"/cases/{no(1)}").text.replace(no(1), "N") == officer_b.get("/cases/FX-NOPE").text.replace(
        "FX-NOPE", "N")
    queue = officer_b.get("/queue?status=all").text
    assert no(7) in queue and no(1) not in queue
    headers = {"Authorization": f"Bearer {server.token_b}"}
    assert httpx.get(f"{server.url}/api/v1/cases/{no(1)}", headers=headers).status_code == 404
    listed = httpx.get(f"{server.url}/api/v1/cases", headers=headers).json()
    assert {c["tax_authority"] for c in listed["cases"]} == {B} and listed["total"] == 3
    analyst = login(server, "zhao")
    assert analyst.get(f"/cases/{no(1)}").status_code == 200 and analyst.get(f"/cases/{no(7)}").status_code == 200
    assert "登记" not in analyst.get(f"/cases/{no(1)}").text  # reads everything, acts on nothing


def test_a_form_without_the_sessions_csrf_token_changes_nothing(server: Server) -> None:
    chief = login(server, "wang")
    other = login(server, "li")
    foreign = csrf_of(other.get("/queue").text)
    for data in ({"officer": "li"}, {"officer": "li", "csrf": foreign}):
        response = chief.post(f"/cases/{no(2)}/assign", data=data)
        assert response.status_code == 403
    engine = open_state(server.state)
    assert get_case(engine, no(2)).status == "待分派"
    assert accounts.audit_entries(engine, actor="wang", action="csrf_rejected")


def test_a_taxpayer_name_is_shown_escaped(server: Server) -> None:
    client = login(server, "wang")
    for page in (client.get("/queue").text, client.get(f"/cases/{no(0)}").text,
                 client.get(f"/taxpayers/{tp(0)}").text):
        assert "<script>alert" not in page
        assert "&lt;script&gt;alert(" in page


def test_resolve_through_the_web_changes_the_ledger_as_the_cli_does(server: Server) -> None:
    chief = login(server, "wang")
    page = chief.get(f"/cases/{no(3)}").text
    assert chief.post(f"/cases/{no(3)}/assign", data={"officer": "li", "csrf": csrf_of(page)}).status_code == 303
    officer = login(server, "li")
    page = officer.get(f"/cases/{no(3)}").text
    done = officer.post(f"/cases/{no(3)}/resolve",
                        data={"outcome": "误报", "reason": "人数口径为年度平均", "csrf": csrf_of(page)})
    assert done.status_code == 303
    # The same moves on a twin case through the CLI.
    assert zx("cases", "assign", no(4), "--to", "li", "--by", "wang", "--state", server.state)[0] == 0
    assert zx("cases", "resolve", no(4), "--outcome", "误报", "--reason", "人数口径为年度平均", "--by", "li",
              "--state", server.state)[0] == 0
    engine = open_state(server.state)
    web, cli = get_case(engine, no(3)), get_case(engine, no(4))
    for field in ("status", "resolution", "resolution_reason", "assignee"):
        assert getattr(web, field) == getattr(cli, field), field
    assert web.status == "误报"
    steps = [[(h.actor, h.from_status, h.to_status, h.note) for h in history_of(engine, n)][1:] for n in (no(3), no(4))]
    assert steps[0] == steps[1] and len(steps[0]) == 2  # after the opening entry: the assignment and the decision
    actions = [e["action"] for e in accounts.audit_entries(engine, actor="li")]
    assert "resolve" in actions and "view_case" in actions


def test_precision_per_rule_over_time(server: Server) -> None:
    assert zx("cases", "assign", no(8), "--to", "zhou", "--by", "zhou", "--state", server.state)[0] == 0
    assert zx("cases", "resolve", no(8), "--outcome", "已更正", "--by", "zhou", "--state", server.state)[0] == 0
    client = login(server, "zhao")
    page = client.get("/precision?rule=small_low_profit_cit")
    assert page.status_code == 200 and "<svg" in page.text and "误报" in page.text
    assert client.get("/precision?rule=no_such_rule").status_code == 400


def test_the_autoapply_ledger_page_in_scope(server: Server) -> None:
    officer = login(server, "li")  # 科员 of A: A's entries only
    page = officer.get("/autoapply")
    assert page.status_code == 200 and "免申即享台账" in page.text
    assert tp(1) in page.text and tp(2) not in page.text and tp(7) not in page.text  # listed (the default)
    applied = officer.get("/autoapply?state=applied").text
    assert tp(2) in applied and "2026-01-20" in applied and "13301060000.xlsx 第 2 行" in applied
    assert tp(7) not in officer.get("/autoapply?state=all&authority=" + B).text  # scope is not a filter
    analyst = login(server, "zhao")  # every authority, and may choose one
    everything = analyst.get("/autoapply?state=all").text
    assert all(tp(i) in everything for i in (1, 2, 7)) and "已列入清单 2 项，已自动享受 1 项" in everything
    only_b = analyst.get("/autoapply?state=all&authority=" + B).text
    assert tp(7) in only_b and tp(1) not in only_b
    assert analyst.get("/autoapply?state=nonsense").status_code == 400
    assert analyst.get("/autoapply?rule=no_such_rule").status_code == 400
    assert login(server, "admin").get("/autoapply").status_code == 404


def test_an_officer_acts_only_on_cases_assigned_to_them(server: Server) -> None:
    officer = login(server, "li")
    page = officer.get(f"/cases/{no(5)}").text  # 待分派, not theirs
    assert 'id="resolve-form"' not in page
    refused = officer.post(f"/cases/{no(5)}/resolve", data={"outcome": "已更正", "csrf": csrf_of(page)})
    assert refused.status_code == 403
    assert officer.post(f"/cases/{no(5)}/assign", data={"officer": "li", "csrf": csrf_of(page)}).status_code == 403


def test_queue_filters_sort_and_export(server: Server) -> None:
    client = login(server, "wang")
    by_amount = client.get("/queue?sort=amount&status=all").text
    order = [m for m in re.findall(r'href="/cases/([^"]+)"', by_amount)]
    assert order[0] == no(5) and len(order) == 6
    assert no(3) not in client.get("/queue").text  # 误报 is not open
    export = client.get("/queue.xlsx?status=all")
    assert export.status_code == 200 and export.content[:2] == b"PK"
    from io import BytesIO

    from openpyxl import load_workbook

    sheet = load_workbook(BytesIO(export.content)).active
    assert sheet.max_row == 7
    engine = open_state(server.state)
    assert accounts.audit_entries(engine, actor="wang", action="export")


def test_check_api_answers_as_check_stdin(server: Server) -> None:
    body = json.dumps(small_firm())
    answer = httpx.post(f"{server.url}/api/v1/check?period=2025", content=body,
                        headers={"Authorization": f"Bearer {server.token_a}"}, timeout=30)
    assert answer.status_code == 200
    code, out = zx("check", "--stdin", "--period", "2025", "--json", stdin=body)
    assert code == 0
    assert answer.json()["findings"] == json.loads(out)


def test_taxpayer_findings_answer_as_check_and_respect_scope(server: Server) -> None:
    path = f"{server.url}/api/v1/taxpayers/{TAXPAYER}/findings?period=2025"
    answer = httpx.get(path, headers={"Authorization": f"Bearer {server.token_a}"}, timeout=60)
    assert answer.status_code == 200, answer.text
    code, out = zx("check", "--data", str(server.data), "--taxpayer", TAXPAYER, "--period", "2025", "--json")
    assert code == 0 and answer.json()["findings"] == json.loads(out) and answer.json()["findings"]
    assert httpx.get(path, headers={"Authorization": f"Bearer {server.token_b}"}).status_code == 404
    missing = httpx.get(path.replace(TAXPAYER, "91330106MA2Y00028P"),
                        headers={"Authorization": f"Bearer {server.token_a}"})
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "taxpayer_id"


def test_check_now_on_the_taxpayer_page(server: Server) -> None:
    client = login(server, "li")
    page = client.get(f"/taxpayers/{TAXPAYER}")
    assert page.status_code == 200 and "立即核查" in page.text
    checked = client.post(f"/taxpayers/{TAXPAYER}/check", data={"period": "2025", "csrf": csrf_of(page.text)})
    assert checked.status_code == 200 and "2025年度 核查结果" in checked.text and "小型微利企业" in checked.text
    assert login(server, "zhou").get(f"/taxpayers/{TAXPAYER}").status_code == 404  # authority B


@pytest.mark.parametrize(("path", "body", "status", "field"), [
    ("/api/v1/check?period=2025", '{"taxpayer": {"taxpayer_id": "x"}, "indicator": []}', 400, "indicator"),
    ("/api/v1/check?period=2025", "{not json", 400, "第1行第2列"),
    ("/api/v1/check?period=2025Q9", "{}", 400, "period"),
    ("/api/v1/check", "{}", 422, "period"),
    ("/api/v1/check?period=2025", "", 400, "$"),
    ("/api/v1/check?period=2025", "\udcff\udcfe\x00", 400, "$"),  # not UTF-8 (was a 500: json guessed UTF-16)
    ("/api/v1/check?period=2025", "{" * 5000, 400, "第1行第2列"),
    ("/api/v1/check?period=2025", "x" * (2 * 1024 * 1024), 413, "$"),
    ("/api/v1/cases?limit=abc", None, 422, "limit"),
    ("/api/v1/cases?limit=0", None, 400, "limit"),
    ("/api/v1/cases?status=nope", None, 400, "status"),
])
def test_bad_input_gets_a_chinese_error_naming_the_field(server: Server, path: str, body: str | None, status: int,
                                                         field: str) -> None:
    headers = {"Authorization": f"Bearer {server.token_a}"}
    if body is None:
        response = httpx.get(server.url + path, headers=headers)
    else:
        response = httpx.post(server.url + path, content=body.encode("utf-8", "surrogateescape"), headers=headers)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["field"] == field and re.search(r"[\u4e00-\u9fff]", error["message"])


def test_the_api_needs_a_valid_token(server: Server) -> None:
    for headers in ({}, {"Authorization": "Bearer zx_0000_nope"}):
        response = httpx.get(f"{server.url}/api/v1/cases", headers=headers)
        assert response.status_code == 401 and response.json()["error"]["field"] == "Authorization"


def test_openapi_documentation(server: Server) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert {"/api/v1/check", "/api/v1/cases", "/api/v1/taxpayers/{taxpayer_id}/findings"} <= set(spec["paths"])
    docs = httpx.get(f"{server.url}/docs")
    assert docs.status_code == 200 and "/api/v1/check" in docs.text


def test_every_action_is_audited_and_listed_by_zhixiang_audit(server: Server) -> None:
    login(server, "zhao").get(f"/cases/{no(6)}")
    code, out = zx("audit", "--state", server.state, "--user", "zhao")
    assert code == 0 and "view_case" in out and "login" in out and "127.0.0.1" in out


def test_users_commands(server: Server, tmp_path: Path) -> None:
    state = f"sqlite:///{tmp_path / 's.sqlite'}"
    assert zx("users", "add", "qian", "--role", "科员", "--password-stdin", "--state", state,
              stdin=PASSWORD + "\n")[0] != 0  # a 科员 needs an authority
    assert zx("users", "add", "qian", "--role", "科员", "--authority", A, "--password-stdin", "--state", state,
              stdin="short\n")[0] != 0
    assert zx("users", "add", "qian", "--role", "科员", "--authority", A, "--password-stdin", "--state", state,
              stdin=PASSWORD + "\n")[0] == 0
    assert zx("users", "disable", "qian", "--state", state)[0] == 0
    _, out = zx("users", "list", "--state", state)
    assert "qian" in out and "已停用" in out
    engine = open_state(state)
    assert accounts.authenticate(engine, "qian", PASSWORD).reason == "disabled"
    with engine.connect() as conn:
        stored = conn.execute(select(accounts.users.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
