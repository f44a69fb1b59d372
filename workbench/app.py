"""The ASGI application: server-rendered pages for officers and the /api/v1 service, on one Workbench.

Every page and API call resolves who is asking first (session cookie for people, `Authorization: Bearer`
for machine clients) and checks scope on the server: a case or taxpayer of another authority answers
404 exactly as a case that does not exist. Forms carry the session's CSRF token; the login form a
double-submit token. Case moves go through notifier.cases.ledger (the CLI's functions), and every action is
written to the audit log.
"""

from __future__ import annotations

import io
import json
import os
import secrets
from dataclasses import asdict, dataclass, fields
from datetime import date, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.errors import ZhixiangError
from engine.findings import STATUS_LABELS
from engine.findings import TIER_LABELS as FINDING_TIERS
from notifier.cases.ledger import CASE_TIERS, TIER_LABELS, assign, close, resolve, send_back
from notifier.cases.queries import Case, CaseFilter, count_cases, find_cases, get_case, history_of, rule_stats
from notifier.cases.status import (
    CLOSED,
    OPEN_STATUSES,
    RESOLUTIONS,
    STATUSES,
    VERIFYING,
    CaseNotFoundError,
    allowed_next,
)
from notifier.cases.tables import cases
from notifier.nightly.runs import get_run, list_runs
from profiles.errors import ProfileDataError
from profiles.periods import PeriodError, parse_period
from profiles.schema import ENUM_LABELS
from workbench import accounts
from workbench.accounts import ADMIN, ANALYST, Principal
from workbench.service import Workbench

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "zx_session"
LOGIN_COOKIE = "zx_login"
PAGE_SIZE = 50
#: One taxpayer's profile is a few kilobytes; a larger body is refused before it is parsed.
MAX_BODY = 1024 * 1024
BEIJING = timezone(timedelta(hours=8), "北京时间")
KIND_LABELS = {"unclaimed": "应享未享", "improper": "违规享受", "undetermined": "待核实"}


class ApiError(Exception):
    """A 4xx answer: HTTP status, machine code, the field at fault and a Chinese message."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


class PageError(Exception):
    """A 4xx page (not found, forbidden, bad form) shown in the workbench's layout."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                                 b"script-src 'none'; frame-ancestors 'none'; form-action 'self'"),
]


class SecurityHeaders:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware on the hot API path): no framing, no scripts,
    no caching of pages that hold taxpayer data."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cache = scope["path"].startswith("/static/")

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in _SECURITY_HEADERS if k not in present]
                if not cache and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _templates() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["money"] = lambda v: "—" if v is None else f"{Decimal(v):,.2f}"
    env.filters["when"] = lambda m: "" if m is None else m.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M")
    env.globals.update(ENUM_LABELS=ENUM_LABELS, TIER_LABELS=TIER_LABELS, FINDING_TIERS=FINDING_TIERS,
                       KIND_LABELS=KIND_LABELS,
                       STATUS_LABELS=STATUS_LABELS)
    return env


def _remote(request: Request) -> str:
    return request.client.host if request.client else ""


def _json(data: Any, status: int = 200) -> Response:
    """JSON as `zhixiang check --json` writes it (Decimals and dates as strings, Chinese unescaped)."""
    return Response(json.dumps(data, ensure_ascii=False, default=str), status_code=status,
                    media_type="application/json; charset=utf-8")


def _error_json(status: int, code: str, message: str, field: str | None = None,
                problems: list[dict[str, str]] | None = None) -> Response:
    body: dict[str, Any] = {"error": {"code": code, "message": message, "field": field}}
    if problems:
        body["error"]["problems"] = problems
    return _json(body, status)


_FIELD_MESSAGES = {
    "missing": "缺少必填项", "int_parsing": "应为整数", "greater_than_equal": "数值太小", "less_than_equal": "数值太大",
    "string_too_long": "太长", "json_invalid": "不是合法的 JSON", "bool_parsing": "应为 true 或 false",
}


def create_app(wb: Workbench, *, secure_cookies: bool = False) -> FastAPI:
    """The application over `wb`; `secure_cookies` adds the Secure flag (behind HTTPS)."""
    app = FastAPI(title="直享 工作台与服务接口", version="1", docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json",
                  description="税费优惠政策实时核查与风险案件接口。"
                              "认证：请求头 Authorization: Bearer <令牌>（zhixiang tokens add 生成）。"
                              "错误统一为 {\"error\": {\"code\", \"message\", \"field\"}}。")
    templates = _templates()
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    engine = wb.engine
    tokens = accounts.TokenCache(engine)

    # ------------------------------------------------------------------------------------ plumbing

    def render(request: Request, name: str, code: int = 200, **context: Any) -> HTMLResponse:
        user: Principal | None = getattr(request.state, "user", None)
        html = templates.get_template(name).render(user=user, csrf=getattr(request.state, "csrf", ""),
                                                   path=request.url.path, **context)
        return HTMLResponse(html, status_code=code)

    def log(request: Request, action: str, target: str = "", detail: str = "") -> None:
        user: Principal | None = getattr(request.state, "user", None)
        accounts.audit(engine, user.name if user else "-", action, target, detail, _remote(request))

    def page_user(request: Request) -> Principal:
        found = accounts.session_principal(engine, request.cookies.get(SESSION_COOKIE, ""))
        if found is None:
            raise _Redirect("/login?" + urlencode({"next": request.url.path}))
        request.state.user, request.state.csrf = found
        return found[0]

    async def form_of(request: Request) -> dict[str, str]:
        """The posted form, after the CSRF check (403 without the session's token)."""
        form = await request.form()
        data = {k: str(v) for k, v in form.items()}
        sent = data.get("csrf", "")
        if not sent or not secrets.compare_digest(sent, getattr(request.state, "csrf", "") or "x"):
            log(request, "csrf_rejected", request.url.path)
            raise PageError(403, "表单已失效或来源不明（缺少有效的防伪令牌），请刷新页面后重试。")
        return data

    def api_user(request: Request, *, allow_session: bool) -> Principal:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            found = tokens.principal(header[7:])
            if found is None:
                raise ApiError(401, "unauthorized", "令牌无效或已停用", "Authorization")
            return found
        if allow_session:
            session = accounts.session_principal(engine, request.cookies.get(SESSION_COOKIE, ""))
            if session is not None:
                return session[0]
        raise ApiError(401, "unauthorized", "需要认证：请求头 Authorization: Bearer <令牌>", "Authorization")

    def scoped_case(user: Principal, case_no: str, *, api: bool = False) -> Any:
        """The case if the user may read it; 404 (the same as no such case) otherwise."""
        try:
            case = get_case(engine, case_no)
        except CaseNotFoundError:
            case = None
        if case is None or not user.sees_cases or not user.may_read(case.tax_authority):
            if api:
                raise ApiError(404, "not_found", f"没有编号为 {case_no} 的案件", "case_no")
            raise PageError(404, f"没有编号为 {case_no} 的案件，或它不在您的管辖范围内。")
        return case

    def taxpayer_in_scope(user: Principal, taxpayer_id: str) -> tuple[Any, str]:
        """(profile or None, authority); 404 when neither the profiles nor the ledger know it in scope."""
        profile = wb.profile(taxpayer_id)
        authority = str((profile.taxpayer or {}).get("tax_authority") or "") if profile else ""
        if profile is None:
            seen = find_cases(engine, CaseFilter(taxpayer=taxpayer_id), limit=1)
            authority = seen[0].tax_authority if seen else ""
            if not seen:
                return None, ""
        if not user.may_read(authority) or user.role == ADMIN:
            return None, ""
        return profile, authority

    class _Redirect(Exception):
        def __init__(self, url: str) -> None:
            self.url = url

    @app.exception_handler(_Redirect)
    async def _redirect(_request: Request, exc: _Redirect) -> Response:
        return RedirectResponse(exc.url, status_code=303)

    @app.exception_handler(PageError)
    async def _page_error(request: Request, exc: PageError) -> Response:
        return render(request, "error.html", exc.status, message=exc.message, status=exc.status)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> Response:
        return _error_json(exc.status, exc.code, exc.message, exc.field)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for e in exc.errors():
            loc = [str(p) for p in e.get("loc", ()) if p not in ("query", "path", "body")]
            problems.append({"field": ".".join(loc) or "$",
                             "message": _FIELD_MESSAGES.get(str(e.get("type")), "取值不正确")})
        first = problems[0] if problems else {"field": "$", "message": "请求不正确"}
        if not request.url.path.startswith("/api/"):
            return render(request, "error.html", 400, status=400,
                          message=f"请求参数 {first['field']} {first['message']}")
        return _error_json(422, "invalid", f"{first['field']}：{first['message']}", first["field"], problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        message = {404: "没有这个页面", 405: "不支持该请求方法"}.get(exc.status_code, "请求无法处理")
        if request.url.path.startswith("/api/"):
            return _error_json(exc.status_code, "not_found" if exc.status_code == 404 else "bad_request", message)
        return render(request, "error.html", exc.status_code, message=message, status=exc.status_code)

    @app.exception_handler(ZhixiangError)
    async def _zx(request: Request, exc: ZhixiangError) -> Response:
        if request.url.path.startswith("/api/"):
            return _error_json(400, "rejected", str(exc))
        return render(request, "error.html", 400, message=str(exc), status=400)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> Response:
        import logging

        logging.getLogger("zhixiang.workbench").exception("unhandled error on %s", request.url.path)
        if request.url.path.startswith("/api/"):
            return _error_json(500, "internal", "服务内部错误，已记录；请稍后重试或联系管理员")
        return render(request, "error.html", 500, message="服务内部错误，已记录；请稍后重试或联系管理员。", status=500)

    app.add_middleware(SecurityHeaders)

    def set_cookie(response: Response, name: str, value: str, max_age: int | None = None) -> None:
        response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict", secure=secure_cookies,
                            path="/")

    # ---------------------------------------------------------------------------------- login

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login_page(request: Request, next: str = "/") -> Response:
        token = secrets.token_urlsafe(24)
        response = render(request, "login.html", login_csrf=token, next=_safe_next(next), error=None)
        set_cookie(response, LOGIN_COOKIE, token, max_age=1800)
        return response

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        if not cookie or not secrets.compare_digest(cookie, form.get("csrf", "") or "x"):
            accounts.audit(engine, form.get("name", "-")[:64] or "-", "csrf_rejected", "/login", "", _remote(request))
            raise PageError(403, "登录表单已失效（缺少有效的防伪令牌），请重新打开登录页。")
        name = form.get("name", "").strip()[:64]
        result = accounts.authenticate(engine, name, form.get("password", ""))
        accounts.audit(engine, name or "-", "login" if result.principal else "login_failed", name,
                       "" if result.principal else result.reason, _remote(request))
        if result.principal is None:
            message = {"locked": f"登录失败次数过多，账号已暂时锁定 {accounts.LOCKOUT.seconds // 60} 分钟。",
                       "disabled": "该账号已停用，请联系管理员。"}.get(result.reason, "用户名或密码不正确。")
            token = secrets.token_urlsafe(24)
            refused = render(request, "login.html", 401, login_csrf=token, next=_safe_next(form.get("next", "/")),
                             error=message)
            set_cookie(refused, LOGIN_COOKIE, token, max_age=1800)
            return refused
        session, _csrf = accounts.start_session(engine, result.principal.name)
        response = RedirectResponse(_safe_next(form.get("next", "/")), status_code=303)
        set_cookie(response, SESSION_COOKIE, session, max_age=int(accounts.SESSION_TTL.total_seconds()))
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        page_user(request)
        await form_of(request)
        log(request, "logout")
        accounts.end_session(engine, request.cookies.get(SESSION_COOKIE, ""))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.get("/", include_in_schema=False)
    async def home(request: Request) -> Response:
        user = page_user(request)
        return RedirectResponse("/admin/users" if user.role == ADMIN else "/queue", status_code=303)

    # ---------------------------------------------------------------------------------- the queue

    def queue_filter(user: Principal, q: dict[str, str]) -> tuple[CaseFilter, dict[str, str]]:
        if not user.sees_cases:
            raise PageError(404, "没有这个页面。")
        tier = q.get("tier", "")
        rule = q.get("rule", "")
        status = q.get("status", "open")
        if tier and tier not in CASE_TIERS:
            raise PageError(400, f"未知的等级 {tier}")
        if status not in ("open", "all", *STATUSES):
            raise PageError(400, f"未知的状态 {status}")
        statuses = sorted(OPEN_STATUSES) if status == "open" else [] if status == "all" else [status]
        scope = user.authorities()
        authority = q.get("authority", "")
        authorities = scope if scope is not None else ([authority] if authority else [])
        where = CaseFilter(authorities=authorities or ([] if scope is None else ["\x00"]), tiers=[tier] if tier else [],
                           rules=[rule] if rule else [], statuses=statuses,
                           assignee=user.name if q.get("mine") == "1" else None,
                           overdue_on=date.today() if q.get("overdue") == "1" else None)
        clean = {"tier": tier, "rule": rule, "status": status, "overdue": q.get("overdue", ""),
                 "mine": q.get("mine", ""), "sort": q.get("sort", "due"), "authority": authority}
        return where, clean

    def sorted_cases(where: CaseFilter, sort: str, offset: int, limit: int | None) -> list[Case]:
        """A page of the queue, sorted in SQL: most urgent first, or the largest amount first."""
        order = ((cases.c.amount.desc().nulls_last(), cases.c.due_on, cases.c.case_no) if sort == "amount"
                 else (cases.c.due_on, cases.c.amount.desc().nulls_last(), cases.c.case_no))
        stmt = where.apply(select(*[cases.c[f.name] for f in fields(Case)])).order_by(*order).offset(offset)
        if limit is not None:
            stmt = stmt.limit(limit)
        with engine.connect() as conn:
            return [Case(**r._mapping) for r in conn.execute(stmt)]

    @app.get("/queue", response_class=HTMLResponse, include_in_schema=False)
    async def queue(request: Request) -> Response:
        user = page_user(request)
        q = dict(request.query_params)
        where, clean = queue_filter(user, q)
        try:
            page = max(int(q.get("page", "1")), 1)
        except ValueError as exc:
            raise PageError(400, "页码应为正整数") from exc
        total = count_cases(engine, where)
        rows = sorted_cases(where, clean["sort"], (page - 1) * PAGE_SIZE, PAGE_SIZE)
        rules = sorted((r.id, r.name) for r in wb.catalogue.rules.values())
        return render(request, "queue.html", rows=rows, total=total, page=page,
                      pages=max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1), f=clean, rules=rules,
                      statuses=STATUSES, tiers=CASE_TIERS, today=date.today(),
                      query=lambda **kw: urlencode({**clean, **kw}))

    @app.get("/queue.xlsx", include_in_schema=False)
    async def queue_export(request: Request) -> Response:
        from openpyxl import Workbook

        user = page_user(request)
        where, clean = queue_filter(user, dict(request.query_params))
        rows = sorted_cases(where, clean["sort"], 0, None)
        book = Workbook()
        sheet = book.active
        sheet.title = "案件清单"
        sheet.append(["案件编号", "纳税人识别号", "纳税人名称", "所属期", "规则", "等级", "状态", "承办人",
                      "风险金额（元）", "立案日期", "办理期限", "主管税务机关", "疑点"])
        for c in rows:
            sheet.append([c.case_no, c.taxpayer_id, _cell(c.taxpayer_name), c.period, _cell(c.rule_name),
                          TIER_LABELS.get(c.tier, c.tier), c.status, c.assignee or "",
                          float(c.amount) if c.amount is not None else None, c.opened_on, c.due_on, c.tax_authority,
                          _cell(c.reasons)])
        buffer = io.BytesIO()
        book.save(buffer)
        log(request, "export", "/queue.xlsx", f"{len(rows)} 条；" + urlencode(clean))
        return Response(buffer.getvalue(), headers={"Content-Disposition": "attachment; filename=cases.xlsx"},
                        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")

    # ---------------------------------------------------------------------------------- a case

    @app.get("/cases/{case_no}", response_class=HTMLResponse, include_in_schema=False)
    async def case_page(request: Request, case_no: str) -> Response:
        user = page_user(request)
        case = scoped_case(user, case_no)
        log(request, "view_case", case.case_no)
        moves = [s for s in allowed_next(case.status) if s != VERIFYING or case.status in RESOLUTIONS]
        return render(request, "case.html", case=case, history=history_of(engine, case.case_no),
                      may_assign=user.may_assign(case.tax_authority) and case.status in OPEN_STATUSES,
                      may_resolve=user.may_resolve(case.tax_authority, case.assignee),
                      officers=accounts.users_of(engine, case.tax_authority), moves=moves,
                      resolutions=RESOLUTIONS, today=date.today(), message=request.query_params.get("done"))

    @app.post("/cases/{case_no}/assign", include_in_schema=False)
    async def case_assign(request: Request, case_no: str) -> Response:
        user = page_user(request)
        form = await form_of(request)
        case = scoped_case(user, case_no)
        if not user.may_assign(case.tax_authority):
            raise PageError(403, "只有本局科长可以分派案件。")
        officer = form.get("officer", "").strip()
        if officer not in accounts.users_of(engine, case.tax_authority):
            raise PageError(400, "承办人应为本局在用的科员或科长账号。")
        changes = assign(engine, [case.case_no], officer, actor=user.name, note=form.get("note", ""))
        log(request, "assign", case.case_no, f"{changes[0].from_status} → {changes[0].to_status}，承办人 {officer}")
        return RedirectResponse(f"/cases/{case.case_no}?done=assigned", status_code=303)

    @app.post("/cases/{case_no}/resolve", include_in_schema=False)
    async def case_resolve(request: Request, case_no: str) -> Response:
        user = page_user(request)
        form = await form_of(request)
        case = scoped_case(user, case_no)
        if not user.may_resolve(case.tax_authority, case.assignee):
            raise PageError(403, "只有承办人本人或本局科长可以登记核实结论。")
        outcome, reason = form.get("outcome", ""), form.get("reason", "")
        # The same branches as `zhixiang cases resolve`: a decision, closing, or sending back.
        if outcome in RESOLUTIONS:
            changes = resolve(engine, [case.case_no], outcome, actor=user.name, reason=reason)
        elif outcome == CLOSED:
            changes = close(engine, [case.case_no], actor=user.name, note=reason)
        elif outcome == VERIFYING:
            changes = send_back(engine, [case.case_no], actor=user.name, note=reason)
        else:
            raise PageError(400, f"核实结论应为 {'、'.join((*RESOLUTIONS, CLOSED, VERIFYING))} 之一")
        log(request, "resolve", case.case_no, f"{changes[0].from_status} → {changes[0].to_status}；{reason.strip()}")
        return RedirectResponse(f"/cases/{case.case_no}?done=resolved", status_code=303)

    # ---------------------------------------------------------------------------------- a taxpayer

    @app.get("/taxpayers/{taxpayer_id}", response_class=HTMLResponse, include_in_schema=False)
    async def taxpayer_page(request: Request, taxpayer_id: str) -> Response:
        user = page_user(request)
        return taxpayer_view(request, user, taxpayer_id, None, None)

    @app.post("/taxpayers/{taxpayer_id}/check", response_class=HTMLResponse, include_in_schema=False)
    async def taxpayer_check(request: Request, taxpayer_id: str) -> Response:
        user = page_user(request)
        form = await form_of(request)
        try:
            period = parse_period(form.get("period", ""))
        except (PeriodError, ValueError) as exc:
            raise PageError(400, f"所属期格式不正确：{exc}") from exc
        return taxpayer_view(request, user, taxpayer_id, period, "check")

    def taxpayer_view(request: Request, user: Principal, taxpayer_id: str, period: Any, mode: str | None) -> Response:
        profile, authority = taxpayer_in_scope(user, taxpayer_id)
        if not authority:
            raise PageError(404, f"没有识别号为 {taxpayer_id} 的纳税人，或不在您的管辖范围内。")
        log(request, "check_taxpayer" if mode else "view_taxpayer", taxpayer_id, period.text if period else "")
        checked = wb.check(profile, period) if (profile is not None and period is not None) else None
        periods = wb.taxpayer_periods(taxpayer_id)
        return render(request, "taxpayer.html", taxpayer_id=taxpayer_id, profile=profile, authority=authority,
                      info=(profile.taxpayer if profile else {}) or {},
                      cases=find_cases(engine, CaseFilter(taxpayer=taxpayer_id)),
                      findings=wb.findings_of(taxpayer_id), letters=wb.letters_of(taxpayer_id), periods=periods,
                      period=period, checked=checked,
                      judged=profile.judged_for(period) if (profile and period) else None)

    # ---------------------------------------------------------------------------------- runs, precision

    @app.get("/runs", response_class=HTMLResponse, include_in_schema=False)
    async def runs_page(request: Request) -> Response:
        user = page_user(request)
        if user.role == ADMIN:
            raise PageError(404, "没有这个页面。")
        return render(request, "runs.html", runs=list_runs(engine, limit=60))

    @app.get("/runs/{run_id}/report", include_in_schema=False)
    async def run_report(request: Request, run_id: str) -> Response:
        user = page_user(request)
        if user.role not in (ANALYST, accounts.CHIEF, accounts.OFFICER):
            raise PageError(404, "没有这个页面。")
        try:
            run = get_run(engine, run_id)
        except ZhixiangError as exc:
            raise PageError(404, f"没有编号为 {run_id} 的运行") from exc
        path = Path(run.output_dir or "") / "report.html"
        if not run.output_dir or not path.is_file():
            raise PageError(404, f"运行 {run_id} 没有运行报告")
        log(request, "view_report", run_id)
        return FileResponse(path, media_type="text/html; charset=utf-8")

    @app.get("/runs/{run_id}/letters/{name:path}", include_in_schema=False)
    async def run_letter(request: Request, run_id: str, name: str) -> Response:
        """A letter file of a run, only if the manifest lists it for a taxpayer in the user's scope."""
        user = page_user(request)
        from notifier.letters.outbox import read_manifest

        try:
            run = get_run(engine, run_id)
        except ZhixiangError as exc:
            raise PageError(404, f"没有编号为 {run_id} 的运行") from exc
        folder = Path(run.output_dir or "") / "letters"
        manifest = folder / "manifest.csv"
        row = next((r for r in (read_manifest(manifest) if run.output_dir and manifest.is_file() else [])
                    if name in (r.get("files") or "").split(";")), None)
        if row is None or user.role == ADMIN or not user.may_read(row.get("tax_authority", "")):
            raise PageError(404, "没有这封政策礼包，或不在您的管辖范围内。")
        path = (folder / name).resolve()
        if folder.resolve() not in path.parents or not path.is_file():
            raise PageError(404, "没有这封政策礼包。")
        log(request, "view_letter", f"{run_id}/{name}", row.get("taxpayer_id", ""))
        return FileResponse(path)

    @app.get("/precision", response_class=HTMLResponse, include_in_schema=False)
    async def precision_page(request: Request) -> Response:
        from workbench.precision import precision_by_month

        user = page_user(request)
        if not user.sees_cases:
            raise PageError(404, "没有这个页面。")
        scope = user.authorities() or []
        stats = rule_stats(engine, authorities=scope)
        rule = request.query_params.get("rule") or None
        if rule is not None and rule not in wb.catalogue.rules and rule not in {s.rule_id for s in stats}:
            raise PageError(400, f"未知的规则 {rule}")
        months, chart = precision_by_month(engine, scope, rule)
        rules = sorted((r.id, r.name) for r in wb.catalogue.rules.values())
        return render(request, "precision.html", stats=stats, months=months, chart=chart, rule=rule, rules=rules)

    # ---------------------------------------------------------------------------------- 免申即享

    @app.get("/autoapply", response_class=HTMLResponse, include_in_schema=False)
    async def autoapply_page(request: Request) -> Response:
        """The 免申即享 ledger in the user's scope: what is listed for the collection system and for how
        long, what it has applied (from `zhixiang autoapply confirm`)."""
        from notifier.autoapply.ledger import STATE_LABELS, EntryFilter, find_entries, state_counts

        user = page_user(request)
        if not user.sees_cases:
            raise PageError(404, "没有这个页面。")
        q = dict(request.query_params)
        state, rule, authority = q.get("state", "listed"), q.get("rule", ""), q.get("authority", "")
        if state not in ("all", *STATE_LABELS):
            raise PageError(400, f"未知的状态 {state}")
        if rule and rule not in wb.catalogue.rules:
            raise PageError(400, f"未知的规则 {rule}")
        try:
            page = max(int(q.get("page", "1")), 1)
        except ValueError as exc:
            raise PageError(400, "页码应为正整数") from exc
        scope = user.authorities()
        authorities = scope if scope is not None else ([authority] if authority else None)
        where = EntryFilter(authorities=authorities, state=None if state == "all" else state,  # type: ignore[arg-type]
                            rule_id=rule or None)
        total, rows = find_entries(engine, where, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
        clean = {"state": state, "rule": rule, "authority": authority}
        automatic = sorted((r.id, r.name) for r in wb.catalogue.rules.values() if r.automatic)
        return render(request, "autoapply.html", rows=rows, total=total, page=page,
                      pages=max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1), f=clean, rules=automatic,
                      counts=state_counts(engine, authorities), states=STATE_LABELS, today=date.today(),
                      query=lambda **kw: urlencode({**clean, **kw}))

    # ---------------------------------------------------------------------------------- administration

    @app.get("/admin/users", response_class=HTMLResponse, include_in_schema=False)
    async def users_page(request: Request) -> Response:
        user = page_user(request)
        if user.role != ADMIN:
            raise PageError(404, "没有这个页面。")
        return render(request, "users.html", users=accounts.list_users(engine), tokens=accounts.list_tokens(engine))

    @app.post("/admin/users/{name}/disable", include_in_schema=False)
    async def user_disable(request: Request, name: str) -> Response:
        user = page_user(request)
        if user.role != ADMIN:
            raise PageError(404, "没有这个页面。")
        form = await form_of(request)
        disabled = form.get("disabled", "1") == "1"
        if name == user.name and disabled:
            raise PageError(400, "不能停用自己的账号。")
        accounts.set_disabled(engine, name, disabled)
        log(request, "user_disable" if disabled else "user_enable", name)
        return RedirectResponse("/admin/users", status_code=303)

    @app.get("/admin/audit", response_class=HTMLResponse, include_in_schema=False)
    async def audit_page(request: Request) -> Response:
        user = page_user(request)
        if user.role != ADMIN:
            raise PageError(404, "没有这个页面。")
        return render(request, "audit.html", entries=accounts.audit_entries(engine, limit=300))

    # ---------------------------------------------------------------------------------- API

    @app.post("/api/v1/check", tags=["实时核查"], summary="核查一户纳税人画像（同 zhixiang check --stdin）",
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                  "type": "object", "required": ["taxpayer"],
                  "properties": {"taxpayer": {"type": "object"}, "indicators": {"type": "array"},
                                 "claims": {"type": "array"}, "risk_events": {"type": "array"}}}}}}},
              responses={200: {"description": "与 zhixiang check --json 相同的发现结果"},
                         400: {"description": "画像数据错误（error.field 指出字段路径）"}})
    async def api_check(request: Request, period: str) -> Response:
        """Body: one taxpayer's profile JSON, exactly as `zhixiang check --stdin --period P --json` reads it."""
        api_user(request, allow_session=False)
        p = _period_or_error(period)
        if int(request.headers.get("content-length") or 0) > MAX_BODY:
            raise ApiError(413, "too_large", f"请求体超过 {MAX_BODY // 1024} KB：一次只核查一户纳税人", "$")
        body = await request.body()
        if len(body) > MAX_BODY:
            raise ApiError(413, "too_large", f"请求体超过 {MAX_BODY // 1024} KB：一次只核查一户纳税人", "$")
        if not body:
            raise ApiError(400, "invalid", "请求体应为一户纳税人的 JSON 画像", "$")
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ApiError(400, "invalid", f"请求体应为 UTF-8 编码的 JSON（第 {exc.start + 1} 个字节无法解码）",
                           "$") from exc
        try:
            profile = wb.profile_from_json(text)
        except ProfileDataError as exc:
            problems = [{"field": path, "message": message} for path, message in exc.problems]
            first = problems[0] if problems else {"field": "$", "message": str(exc)}
            return _error_json(400, "invalid_profile", f"{first['field']}：{first['message']}", first["field"],
                               problems)
        return _json({"taxpayer_id": profile.taxpayer_id, "period": p.text, "judged": profile.judged_for(p),
                      "findings": wb.check(profile, p)})

    @app.get("/api/v1/taxpayers/{taxpayer_id}/findings", tags=["实时核查"],
             summary="按当前档案核查一户纳税人（同 zhixiang check --taxpayer）")
    async def api_taxpayer_findings(request: Request, taxpayer_id: str, period: str) -> Response:
        user = api_user(request, allow_session=True)
        p = _period_or_error(period)
        profile, authority = taxpayer_in_scope(user, taxpayer_id)
        if profile is None:
            if wb.profiles_error and authority:
                raise ApiError(503, "data_unavailable", wb.profiles_error)
            raise ApiError(404, "not_found", f"没有识别号为 {taxpayer_id} 的纳税人", "taxpayer_id")
        accounts.audit(engine, user.name, "api_findings", taxpayer_id, p.text, _remote(request))
        return _json({"taxpayer_id": taxpayer_id, "period": p.text, "judged": profile.judged_for(p),
                      "findings": wb.check(profile, p)})

    @app.get("/api/v1/cases", tags=["风险案件"], summary="调用方管辖范围内的案件")
    async def api_cases(request: Request, status: str | None = None, tier: str | None = None,
                        rule: str | None = None, period: str | None = None, limit: int = 100,
                        offset: int = 0) -> Response:
        user = api_user(request, allow_session=True)
        if not user.sees_cases:
            raise ApiError(403, "forbidden", "该身份无权查看案件", "Authorization")
        if status is not None and status not in STATUSES:
            raise ApiError(400, "invalid", f"状态应为 {'、'.join(STATUSES)} 之一", "status")
        if tier is not None and tier not in CASE_TIERS:
            raise ApiError(400, "invalid", f"等级应为 {'、'.join(CASE_TIERS)} 之一", "tier")
        if not 1 <= limit <= 1000:
            raise ApiError(400, "invalid", "limit 应在 1 到 1000 之间", "limit")
        if offset < 0:
            raise ApiError(400, "invalid", "offset 不能为负数", "offset")
        scope = user.authorities()
        where = CaseFilter(authorities=scope if scope is not None else [], statuses=[status] if status else [],
                           tiers=[tier] if tier else [], rules=[rule] if rule else [],
                           periods=[period] if period else [])
        total = count_cases(engine, where)
        rows = find_cases(engine, where, limit=offset + limit)[offset:]
        accounts.audit(engine, user.name, "api_cases", "", f"{len(rows)} 条", _remote(request))
        keep = ("case_no", "taxpayer_id", "taxpayer_name", "rule_id", "rule_name", "period", "kind", "tier", "status",
                "resolution", "assignee", "amount", "claimed_amount", "reasons", "tax_authority", "opened_on", "due_on")
        return _json({"total": total, "offset": offset,
                      "cases": [{k: getattr(c, k) for k in keep} for c in rows]})

    @app.get("/api/v1/cases/{case_no}", tags=["风险案件"], summary="一个案件：条件、证据、依据与处理经过")
    async def api_case(request: Request, case_no: str) -> Response:
        user = api_user(request, allow_session=True)
        case = scoped_case(user, case_no, api=True)
        accounts.audit(engine, user.name, "api_case", case.case_no, "", _remote(request))
        return _json({**case.__dict__, "history": [h.__dict__ for h in history_of(engine, case.case_no)]})

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs(request: Request) -> Response:
        return render(request, "docs.html", spec=app.openapi())

    return app


SETTINGS_ENV = "ZHIXIANG_SERVE_SETTINGS"


@dataclass(frozen=True)
class ServeSettings:
    """What `zhixiang serve` hands each uvicorn worker (through the environment: workers are started afresh)."""

    state: str
    rules: str
    data: str | None = None
    secure_cookies: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def app_from_environment() -> FastAPI:
    """The application of one worker of `zhixiang serve --workers N` (uvicorn's factory)."""
    settings = ServeSettings(**json.loads(os.environ[SETTINGS_ENV]))
    wb = Workbench.open(settings.state, rules_dir=Path(settings.rules), data=settings.data)
    wb.warm_up()
    return create_app(wb, secure_cookies=settings.secure_cookies)


def _period_or_error(text: str) -> Any:
    try:
        return parse_period(text)
    except (PeriodError, ValueError) as exc:
        raise ApiError(400, "invalid", str(exc), "period") from exc


def _safe_next(url: str) -> str:
    """Only a path on this site (no //host, no scheme): an open redirect would help phishing."""
    return url if url.startswith("/") and not url.startswith("//") and "\\" not in url else "/"


def _cell(text: str | None) -> str:
    """A text cell that Excel will not run as a formula (CSV/Excel injection)."""
    value = text or ""
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value
