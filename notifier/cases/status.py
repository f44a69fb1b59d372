"""The life of a risk-review case: its statuses, who may move it where, and the errors for wrong moves.

The whole workflow is the one table `TRANSITIONS`. Officers take a case (待分派 → 核实中), decide it
(→ 已更正 / 放弃优惠 / 误报) and close it (→ 已关闭); the system clears a case a later run no longer
finds (→ 已消除) and reopens one whose problem comes back (→ 待分派). Anything not in the table is
refused with a message that names the case, its status and the moves that are allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from engine.errors import EXIT_USAGE, ZhixiangError

PENDING = "待分派"
VERIFYING = "核实中"
CORRECTED = "已更正"  # the taxpayer corrected the claim
WAIVED = "放弃优惠"  # the taxpayer gave up the relief
FALSE_ALARM = "误报"  # the finding was wrong; needs a reason
CLOSED = "已关闭"
CLEARED = "已消除"  # set by the system: a later run no longer finds the problem

STATUSES: tuple[str, ...] = (PENDING, VERIFYING, CORRECTED, WAIVED, FALSE_ALARM, CLOSED, CLEARED)
#: Work still to do: these appear on task lists, count as overdue and are cleared by the system.
OPEN_STATUSES: frozenset[str] = frozenset({PENDING, VERIFYING})
#: An officer's decision on a case; kept in `cases.resolution` after the case is closed.
RESOLUTIONS: tuple[str, ...] = (CORRECTED, WAIVED, FALSE_ALARM)
#: Decisions that confirm the finding was right — the numerator of a rule's precision.
CONFIRMED: frozenset[str] = frozenset({CORRECTED, WAIVED})

Actor = Literal["officer", "system"]

#: Every allowed move: from status → {to status: who may make it}. The one place the workflow lives.
TRANSITIONS: Mapping[str, Mapping[str, Actor]] = {
    PENDING: {VERIFYING: "officer", CLEARED: "system"},
    # 核实中 → 核实中 is a reassignment to another officer.
    VERIFYING: {VERIFYING: "officer", CORRECTED: "officer", WAIVED: "officer", FALSE_ALARM: "officer",
                CLEARED: "system"},
    # A decision can be sent back for more verification before it is closed; the system reopens a
    # decided case only when new evidence arrives (see notifier/cases/ledger.py).
    CORRECTED: {CLOSED: "officer", VERIFYING: "officer", PENDING: "system"},
    WAIVED: {CLOSED: "officer", VERIFYING: "officer", PENDING: "system"},
    FALSE_ALARM: {CLOSED: "officer", VERIFYING: "officer", PENDING: "system"},
    CLOSED: {PENDING: "system"},
    CLEARED: {PENDING: "system"},
}

#: English names accepted on the command line beside the Chinese ones.
STATUS_ALIASES: Mapping[str, str] = {
    "pending": PENDING,
    "verifying": VERIFYING,
    "corrected": CORRECTED,
    "waived": WAIVED,
    "gave_up": WAIVED,
    "false_alarm": FALSE_ALARM,
    "closed": CLOSED,
    "close": CLOSED,
    "cleared": CLEARED,
}


class CaseError(ZhixiangError):
    """Something an officer asked of the case ledger cannot be done."""

    exit_code = EXIT_USAGE


class CaseNotFoundError(CaseError):
    """No case has the given number."""


class TransitionError(CaseError):
    """A status change that the workflow does not allow."""


def allowed_next(status: str, actor: Actor = "officer") -> tuple[str, ...]:
    """The statuses `actor` may move a case in `status` to, in workflow order."""
    moves = TRANSITIONS.get(status, {})
    return tuple(s for s in STATUSES if moves.get(s) == actor)


def check_transition(case_no: str, current: str, target: str, actor: Actor = "officer") -> None:
    """Raise TransitionError unless `actor` may move case `case_no` from `current` to `target`."""
    if TRANSITIONS.get(current, {}).get(target) == actor:
        return
    nexts = allowed_next(current, actor)
    allowed = "、".join(nexts) if nexts else "无（该案件已办结，只有新一轮运行发现新的证据时才会由系统重新打开）"
    if target == CLEARED or (target == PENDING and actor == "officer"):
        why = f"「{target}」只能由系统在比对运行结果时设置"
    else:
        why = f"不能从「{current}」变更为「{target}」"
    raise TransitionError(f"案件 {case_no} 当前状态为「{current}」，{why}。允许的下一状态：{allowed}")


def parse_status(text: str) -> str:
    """A status from its Chinese name or English alias; CaseError listing the valid names otherwise."""
    value = text.strip()
    if value in STATUSES:
        return value
    if value.lower() in STATUS_ALIASES:
        return STATUS_ALIASES[value.lower()]
    names = "、".join(STATUSES)
    raise CaseError(f"未知的案件状态 {text!r}：应为 {names}（或英文 {', '.join(sorted(STATUS_ALIASES))}）")
