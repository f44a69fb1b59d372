"""Type-check a parsed expression against the profile schema and the rule's parameters.

Names are resolved here: a name is a rule parameter if the rule declares it, else a profile field;
anything else is an error with a did-you-mean. Every problem is collected, none stops the check.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from engine import ir
from engine.errors import RuleProblem, did_you_mean
from engine.functions import BOOL, BRACKETS, DATE, FIELD, FUNCTIONS, LIST, NUMBER, RULE, STRING, TYPE_LABELS
from profiles.schema import PROFILE_FIELDS, Column

_KIND_TYPES = {
    "id": STRING, "string": STRING, "enum": STRING, "period": STRING, "bool": BOOL, "date": DATE,
    "money": NUMBER, "number": NUMBER, "int": NUMBER,
}
UNKNOWN = "?"  # type of an erroneous node; suppresses cascades


def field_type(column: Column) -> str:
    return _KIND_TYPES[column.kind]


def value_type(value: Any) -> str:
    """Type of a literal or parameter value."""
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int | Decimal | float):
        return NUMBER
    if isinstance(value, date):
        return DATE
    if isinstance(value, str):
        return STRING
    if isinstance(value, tuple | list):
        if value and all(isinstance(v, dict) for v in value):
            return BRACKETS
        return LIST
    return UNKNOWN


class TypeChecker:
    """Resolves names and infers types for one rule's expressions."""

    def __init__(
        self,
        *,
        parameters: Mapping[str, Any],  # name -> a representative value (for its type)
        rule_ids: Collection[str],
        problems: list[RuleProblem],
        fields: Mapping[str, Column] = PROFILE_FIELDS,
    ) -> None:
        self.parameters = parameters
        self.rule_ids = rule_ids
        self.problems = problems
        self.fields = fields

    def check(self, node: ir.Node, expected: str) -> ir.Node:
        """Resolve names in `node` and report a problem unless its type is `expected`."""
        node, typ = self.infer(node)
        if typ not in (expected, UNKNOWN):
            self._problem(node, f"表达式的结果是{TYPE_LABELS.get(typ, typ)}，这里需要{TYPE_LABELS[expected]}",
                          expected=TYPE_LABELS[expected])
        return node

    def _problem(self, node: ir.Node, message: str, **kw: str) -> None:
        s = node.span
        self.problems.append(RuleProblem(s.file, s.line, s.col, message, **kw))

    def infer(self, node: ir.Node) -> tuple[ir.Node, str]:
        if isinstance(node, ir.Field):
            return self._name(node)
        if isinstance(node, ir.Param):
            return node, value_type(self.parameters[node.name])
        if isinstance(node, ir.Literal_):
            return node, value_type(node.value) if node.value is not None else UNKNOWN
        if isinstance(node, ir.And | ir.Or):
            items = tuple(self._expect(i, BOOL, "and/or 两边") for i in node.items)
            return dataclasses.replace(node, items=items), BOOL
        if isinstance(node, ir.Not):
            return dataclasses.replace(node, item=self._expect(node.item, BOOL, "not 之后")), BOOL
        if isinstance(node, ir.Neg):
            return dataclasses.replace(node, item=self._expect(node.item, NUMBER, "负号之后")), NUMBER
        if isinstance(node, ir.Arith):
            left = self._expect(node.left, NUMBER, f"运算符 {node.op} 两边")
            right = self._expect(node.right, NUMBER, f"运算符 {node.op} 两边")
            return dataclasses.replace(node, left=left, right=right), NUMBER
        if isinstance(node, ir.Compare):
            return self._compare(node)
        if isinstance(node, ir.In):
            return self._in(node)
        if isinstance(node, ir.IfElse):
            cond = self._expect(node.cond, BOOL, "if 之后的条件")
            then, t1 = self.infer(node.then)
            otherwise, t2 = self.infer(node.otherwise)
            if UNKNOWN not in (t1, t2) and t1 != t2:
                self._problem(node, f"if/else 两个分支类型不同：{TYPE_LABELS.get(t1, t1)} 与 {TYPE_LABELS.get(t2, t2)}")
            return dataclasses.replace(node, cond=cond, then=then, otherwise=otherwise), t1
        if isinstance(node, ir.Call):
            return self._call(node)
        raise TypeError(f"unknown node {node!r}")  # pragma: no cover

    def _expect(self, node: ir.Node, typ: str, where: str) -> ir.Node:
        node, got = self.infer(node)
        if got not in (typ, UNKNOWN):
            self._problem(node, f"{where}需要{TYPE_LABELS[typ]}，这里是{TYPE_LABELS.get(got, got)}",
                          expected=TYPE_LABELS[typ])
        return node

    def _name(self, node: ir.Field) -> tuple[ir.Node, str]:
        if node.name in self.parameters:
            param = ir.Param(node.name, node.span)
            return param, value_type(self.parameters[node.name])
        column = self.fields.get(node.name)
        if column is not None:
            return node, field_type(column)
        guess = did_you_mean(node.name, [*self.fields, *self.parameters])
        self._problem(node, f"未知名称 {node.name}：既不是纳税人档案字段，也不是本规则的参数",
                      expected="profiles/schema.py 中的字段，或本文件 parameters 下定义的参数",
                      suggestion=guess)
        return node, UNKNOWN

    def _enum_column(self, node: ir.Node) -> Column | None:
        if isinstance(node, ir.Field):
            column = self.fields.get(node.name)
            if column is not None and column.kind == "enum":
                return column
        return None

    def _check_enum_literal(self, column: Column, lit: ir.Node) -> None:
        if not isinstance(lit, ir.Literal_):
            return
        values = lit.value if isinstance(lit.value, tuple) else (lit.value,)
        for v in values:
            if isinstance(v, str) and v not in column.values:
                self._problem(lit, f"{column.name} 没有取值 {v!r}",
                              expected="、".join(column.values), suggestion=did_you_mean(v, column.values))

    def _compare(self, node: ir.Compare) -> tuple[ir.Node, str]:
        left, lt = self.infer(node.left)
        right, rt = self.infer(node.right)
        if UNKNOWN not in (lt, rt):
            if lt != rt:
                self._problem(node, f"不能比较{TYPE_LABELS.get(lt, lt)}和{TYPE_LABELS.get(rt, rt)}",
                              expected="比较两边类型相同（数值与数值、日期与日期、文本与文本）")
            elif lt in (STRING, BOOL) and node.op not in ("==", "!="):
                self._problem(node, f"{TYPE_LABELS[lt]}只能用 == 或 != 比较")
            elif lt in (LIST, BRACKETS):
                self._problem(node, "列表不能比较大小", suggestion="判断是否属于列表请用 in")
        for a, b in ((left, right), (right, left)):
            column = self._enum_column(a)
            if column is not None:
                self._check_enum_literal(column, b)
        return dataclasses.replace(node, left=left, right=right), BOOL

    def _in(self, node: ir.In) -> tuple[ir.Node, str]:
        item, it = self.infer(node.item)
        options, ot = self.infer(node.options)
        if ot not in (LIST, UNKNOWN):
            self._problem(node.options, "in 之后需要一个列表", example='credit_grade in ["A", "B"]')
        elif isinstance(options, ir.Literal_) and isinstance(options.value, tuple) and it != UNKNOWN:
            for v in options.value:
                if value_type(v) != it:
                    self._problem(options, f"列表中的 {v!r} 与 {TYPE_LABELS.get(it, it)} 类型不同")
                    break
        column = self._enum_column(item)
        if column is not None:
            self._check_enum_literal(column, options)
        return dataclasses.replace(node, item=item, options=options), BOOL

    def _call(self, node: ir.Call) -> tuple[ir.Node, str]:
        fn = FUNCTIONS[node.name]
        variadic = fn.params and fn.params[0].startswith("*")
        if variadic:
            if len(node.args) < 1:
                self._problem(node, f"{fn.name}() 至少需要一个参数", example=fn.signature)
            params = tuple(fn.params[0][1:] for _ in node.args)
        else:
            params = fn.params
            if len(node.args) != len(params):
                self._problem(node, f"{fn.name}() 需要 {len(params)} 个参数，这里有 {len(node.args)} 个",
                              example=fn.signature)
                return node, fn.returns
        args: list[ir.Node] = []
        for arg, typ in zip(node.args, params, strict=True):
            args.append(self._arg(fn.name, arg, typ))
        if fn.name == "startswith" and isinstance(args[1], ir.Literal_) and isinstance(args[1].value, str):
            args[1] = dataclasses.replace(args[1], value=(args[1].value,))
        if fn.name in ("events", "events_since"):
            # The counts are aggregated once per taxpayer before the rules run, keyed by these constants;
            # a parameter or field here would be counted as no events at all (or fail at run time).
            second = "月数" if fn.name == "events" else "起始日期"
            for arg in args:
                if not isinstance(arg, ir.Literal_):
                    self._problem(arg, f"{fn.name}() 的事件列表和{second}须直接写出，不能用参数或字段",
                                  example=fn.signature)
        return dataclasses.replace(node, args=tuple(args)), fn.returns

    def _arg(self, fn: str, arg: ir.Node, typ: str) -> ir.Node:
        example = FUNCTIONS[fn].signature
        if typ == FIELD:
            if not isinstance(arg, ir.Field):
                self._problem(arg, f"{fn}() 的参数必须是字段名", example=example)
                return arg
            return self.infer(arg)[0]
        if typ == RULE:
            if not (isinstance(arg, ir.Literal_) and isinstance(arg.value, str)):
                self._problem(arg, f"{fn}() 的参数必须是用引号括起的规则编号", example=example)
            elif arg.value not in self.rule_ids:
                self._problem(arg, f"没有编号为 {arg.value!r} 的规则",
                              suggestion=did_you_mean(arg.value, self.rule_ids))
            return arg
        if typ == LIST and isinstance(arg, ir.Literal_) and isinstance(arg.value, str):
            return dataclasses.replace(arg, value=(arg.value,))  # a single string is a one-item list
        if fn in ("events", "events_since") and typ == LIST and isinstance(arg, ir.Literal_) \
                and isinstance(arg.value, tuple):
            from profiles.schema import RISK_EVENTS

            for v in arg.value:
                if v not in RISK_EVENTS:
                    self._problem(arg, f"未知风险事件 {v!r}", expected="、".join(RISK_EVENTS),
                                  suggestion=did_you_mean(str(v), RISK_EVENTS))
        return self._expect(arg, typ, f"{fn}() 的参数")

