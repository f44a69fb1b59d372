"""The reason sentence of one condition, defined once as data: literal parts and slots.

`sentence(explanation)` says how a condition's verdict reads — e.g. a comparison is
`("从业人数 ", VALUE, " 人，", VERB, " ", THRESHOLD, " 人上限")` — and each backend only fills the slots
with its own values: the batch (Polars) renders the parts with `concat_str` (`render_expr`), the
real-time path with `join` (`render`). A null slot makes the whole sentence null in both, as
`concat_str` does. The evidence struct a rule's finding carries when the rule's effective window
does not cover the period is written here once too (`out_of_window_evidence`).

Slots: VALUE (the subject's figure, or every field the condition reads for fixed and generic
conditions), THRESHOLD (the compared figure), VERB (pass or fail verb by status), DETAIL (the fields in
parentheses, generic conditions), MISSING (the fields whose absence made the verdict unknown).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl

from engine.evidence import Explanation, Subject
from profiles.periods import Period

SlotName = Literal["value", "threshold", "verb", "detail", "missing"]


@dataclass(frozen=True)
class Slot:
    """A place in a sentence that a backend fills with a row's value."""

    name: SlotName


Part = str | Slot
VALUE, THRESHOLD, VERB, DETAIL, MISSING = (Slot("value"), Slot("threshold"), Slot("verb"), Slot("detail"),
                                           Slot("missing"))

FIELD_SEPARATOR = "；"  # between the fields of a generic condition, and between the reasons of a finding
MISSING_SEPARATOR = "、"
NO_FIELD_MISSING = "所需数据"  # what an unknown verdict names when no field it reads is empty
DETAIL_OPEN, DETAIL_CLOSE = "（", "）"
MISSING_FIELD = "缺失"  # Subject.empty_text of a field whose absence is named in an unknown verdict


@dataclass(frozen=True)
class Sentence:
    """How one condition reads: the parts for a known verdict and for an unknown one, and which
    subjects fill VALUE and THRESHOLD (None: VALUE is the fields' text, THRESHOLD `threshold_text`)."""

    explanation: Explanation
    known: tuple[Part, ...]
    unknown: tuple[Part, ...]
    value: Subject | None
    threshold: Subject | None
    threshold_text: str
    fields: tuple[Subject, ...]  # every field the condition reads, shown by `field_parts`

    @property
    def missing_fields(self) -> tuple[Subject, ...]:
        """The fields named when they are empty and the verdict is unknown."""
        return tuple(f for f in self.fields if f.empty_text == MISSING_FIELD)


def sentence(ex: Explanation) -> Sentence:
    """The sentence of an explained condition (engine.evidence.explain_condition)."""
    unknown = (f"{ex.label}：缺少", MISSING, "，无法判断")
    if ex.shape == "compare" and ex.subject is not None and ex.threshold is not None:
        unit = f" {ex.subject.unit}" if ex.subject.unit else ""
        label = f"{ex.subject.label} " if ex.subject.label else ""
        threshold = None if ex.threshold_text else Subject(
            ex.threshold.label, ex.threshold.unit,
            ex.subject.fmt if ex.threshold.fmt == "number" else ex.threshold.fmt, ex.threshold.node)
        known: tuple[Part, ...] = (label, VALUE, unit + "，", VERB, " ", THRESHOLD, unit + ex.bound)
        return Sentence(ex, known, unknown, ex.subject, threshold, ex.threshold_text, ex.fields)
    if ex.shape == "fixed":
        return Sentence(ex, (VERB,), unknown, None, None, "", ex.fields)
    if ex.shape == "in" and ex.subject is not None:
        known = (f"{ex.subject.label}为", VALUE, "，", VERB, THRESHOLD)
        return Sentence(ex, known, unknown, ex.subject, None, ex.threshold_text, ex.fields)
    return Sentence(ex, (f"{ex.label}：", VERB, DETAIL), unknown, None, None, "", ex.fields)


def field_parts(subject: Subject) -> tuple[str, str]:
    """(before, after) the value of a field shown with its label and unit: `从业人数 301 人`."""
    return f"{subject.label} ", f" {subject.unit}" if subject.unit else ""


# ------------------------------------------------------------------------------ Python: join


def render(parts: Sequence[Part], ex: Explanation, status: str, slots: Mapping[str, str | None]) -> str | None:
    """The sentence for one row; None when a slot it uses is None (as concat_str gives null)."""
    out: list[str] = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
            continue
        value = (ex.pass_verb if status == "pass" else ex.fail_verb) if part is VERB else slots[part.name]
        if value is None:
            return None
        out.append(value)
    return "".join(out)


def field_text(value: str | None, subject: Subject) -> str:
    before, after = field_parts(subject)
    return before + (subject.empty_text if value is None else value) + after


def detail(fields_text: str) -> str:
    return f"{DETAIL_OPEN}{fields_text}{DETAIL_CLOSE}" if fields_text else ""


def missing(labels: Sequence[str]) -> str:
    return MISSING_SEPARATOR.join(labels) if labels else NO_FIELD_MISSING


def reason(s: Sentence, status: str, slots: Mapping[str, str | None]) -> str | None:
    """The condition's reason line for a status (pass / fail / unknown)."""
    return render(s.unknown if status == "unknown" else s.known, s.explanation, status, slots)


# ------------------------------------------------------------------------------ Polars: concat_str


def render_expr(parts: Sequence[Part], ex: Explanation, status: pl.Expr, slots: Mapping[str, pl.Expr]) -> pl.Expr:
    """`render` over columns: one concat_str (a null slot makes the row's sentence null)."""
    exprs: list[pl.Expr] = []
    for part in parts:
        if isinstance(part, str):
            if part:
                exprs.append(pl.lit(part))
        elif part is VERB:
            exprs.append(pl.when(status == "pass").then(pl.lit(ex.pass_verb)).otherwise(pl.lit(ex.fail_verb)))
        else:
            exprs.append(slots[part.name])
    return exprs[0] if len(exprs) == 1 else pl.concat_str(exprs)


def field_text_expr(value: pl.Expr, subject: Subject) -> pl.Expr:
    before, after = field_parts(subject)
    text = pl.when(value.is_null()).then(pl.lit(subject.empty_text)).otherwise(value)
    return pl.concat_str([pl.lit(before), text, pl.lit(after)])


def detail_expr(fields_text: pl.Expr) -> pl.Expr:
    return pl.when(fields_text == "").then(pl.lit("")).otherwise(
        pl.concat_str([pl.lit(DETAIL_OPEN), fields_text, pl.lit(DETAIL_CLOSE)]))


def missing_expr(labels: Sequence[pl.Expr]) -> pl.Expr:
    """`labels` are null where the field is present."""
    # concat_str, not concat_list: list building is row-wise in Polars and dominates at 10M rows.
    joined = pl.concat_str(list(labels), separator=MISSING_SEPARATOR, ignore_nulls=True) if labels else pl.lit("")
    return pl.when(joined == "").then(pl.lit(NO_FIELD_MISSING)).otherwise(joined)


def reason_expr(s: Sentence, status: pl.Expr, slots: Mapping[str, pl.Expr]) -> pl.Expr:
    ex = s.explanation
    return pl.when(status == "unknown").then(render_expr(s.unknown, ex, status, slots)).otherwise(
        render_expr(s.known, ex, status, slots))


# ------------------------------------------------------------------------------ out of the window

OUT_OF_WINDOW_CONDITION = "effective"
OUT_OF_WINDOW_LABEL = "政策执行期限"


def out_of_window_evidence(window_label: str, period: Period) -> dict[str, Any]:
    """The one evidence item of a claim of a rule whose effective window does not cover the period."""
    text = f"政策执行期限为 {window_label}，所属期 {period.label} 不在执行期内"
    return {"condition": OUT_OF_WINDOW_CONDITION, "label": OUT_OF_WINDOW_LABEL, "status": "fail",
            "value": period.text, "threshold": window_label, "reason": text}
