"""Taxpayer-facing text is never a drafting note.

Some fields of a rule file reach the taxpayer: letters and policy packages print the name, the tax, the
legal basis, the benefit label, the claim guide and the records; the evidence lines they quote are built
from the scope and condition labels and the labels and units of the parameters compared with. A doubt
written there ("行次未核实", "近似口径", "TODO") would go out as an act of the tax bureau. The catalogue
loader refuses such text, at the file, line and column of the note, and says where it belongs: the
staff-only fields `verification_note`, `basis[].note` and `basis[].verification`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from engine.errors import RuleProblem
from engine.rulefile import RuleFile

#: Words of a drafting note, as they occur in the catalogue's notes. Bare 核实/确认 are finished Chinese
#: ("经税务机关核实后办理"); the doubts are the 未/待/需 forms. 口径 in a rule file is always a doubt about
#: the reading ("近似口径", "以主管税务机关口径为准"); a taxpayer never needs a question mark.
DRAFTING_NOTE = re.compile(
    r"(?:未|待|需|尚未|有待)核实|待核|(?:未|待|需|有待)确认|存疑|口径|待定|待查|查证|推测|记忆|暂按"
    r"|[?？]|(?<![A-Za-z])(?:TODO|FIXME|TBD|XXX|verify|unverified)(?![A-Za-z])",
    re.IGNORECASE,
)

#: What each taxpayer-facing field is, for the message.
FIELD_LABELS = {
    "name": "政策名称", "tax": "税费种", "scope": "适用对象表述", "conditions": "条件表述",
    "benefit": "测算金额的说明", "claim": "办理指引", "records": "留存备查资料", "parameters": "参数名称或单位",
    "basis": "法律依据（文件名称、条款）", "apply": "自动享受的说明和依据",
}

Locate = Callable[[tuple[Any, ...]], tuple[int, int]]


def taxpayer_facing_texts(spec: RuleFile) -> Iterator[tuple[tuple[Any, ...], str]]:
    """(location in the file, text) of every field a taxpayer may read."""
    yield ("name",), spec.name
    yield ("tax",), spec.tax
    yield ("scope", "label"), spec.scope.label
    for i, c in enumerate(spec.conditions):
        yield ("conditions", i, "label"), c.label
        yield ("conditions", i, "unit"), c.unit
    yield ("benefit", "label"), spec.benefit.label
    yield ("claim", "where"), spec.claim.where
    yield ("claim", "form"), spec.claim.form
    yield ("claim", "deadline"), spec.claim.deadline
    for i, step in enumerate(spec.claim.steps):
        yield ("claim", "steps", i), step
    for i, record in enumerate(spec.records):
        yield ("records", i), record
    for name, p in spec.parameters.items():
        yield ("parameters", name, "label"), p.label
        yield ("parameters", name, "unit"), p.unit
    for i, b in enumerate(spec.basis):
        yield ("basis", i, "document"), b.document
        if b.verification != "unverified":  # letters leave out the article of an unverified basis
            yield ("basis", i, "article"), b.article
    yield ("apply", "label"), spec.apply.label
    for i, b in enumerate(spec.apply.basis):  # printed on the auto-apply list and in the policy package
        yield ("apply", "basis", i, "document"), b.document
        if b.verification != "unverified":
            yield ("apply", "basis", i, "article"), b.article


def drafting_note_problems(path: Path, text: str, spec: RuleFile, locate: Locate) -> list[RuleProblem]:
    """One problem per drafting note in a taxpayer-facing field, at the note itself where the text shows it."""
    lines = text.splitlines()
    problems = []
    for loc, value in taxpayer_facing_texts(spec):
        cursor = locate(loc)
        for m in DRAFTING_NOTE.finditer(value or ""):
            line, col = _find(lines, *cursor, m.group(0))
            cursor = (line, col + 1)
            where = ".".join(str(p) for p in loc)
            problems.append(RuleProblem(
                str(path), line, col,
                f"{where}：面向纳税人的文字含有起草备注「{m.group(0)}」（{FIELD_LABELS[str(loc[0])]}会写入通知书和政策礼包）",
                expected="此处只写给纳税人看的定稿中文；未核实之处、疑问和待查来源移到 verification_note"
                         "（或 basis[].note、basis[].verification），并从此处删去",
            ))
    return problems


def _find(lines: list[str], line: int, col: int, word: str) -> tuple[int, int]:
    """The word's own position: on the value's line from its column, else on the next lines (folded text)."""
    for n in range(line - 1, min(len(lines), line + 20)):
        start = col - 1 if n == line - 1 else 0
        at = lines[n].find(word, start)
        if at >= 0:
            return n + 1, at + 1
    return line, col
