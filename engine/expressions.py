"""Parse condition and formula text into the rule tree — parsed, never evaluated.

The syntax is a small, Python-like language tax staff can read: `taxable_income <= income_cap and
not restricted_industry`, `credit_grade in ["A", "B"]`, `events(["refund_fraud"], 36) == 0`. Python's
own parser gives the structure and exact positions; only the node types listed here are accepted,
anything else (attribute access, subscripts, lambdas, imports …) is a located error.
"""

from __future__ import annotations

import ast
import re
from datetime import date
from decimal import Decimal

from engine import ir
from engine.errors import RuleProblem
from engine.functions import FUNCTIONS

_COMPARE: dict[type, ir.CompareOp] = {
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
}
_ARITH: dict[type, ir.ArithOp] = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

#: Words tax staff may type from habit, and what to write instead.
_HINTS = {
    "&&": "and", "||": "or", "!": "not", "=": "==", "AND": "and", "OR": "or", "NOT": "not",
    "且": "and", "或": "or", "非": "not", "true": "True", "false": "False",
}


#: Bounds on one expression (issue 13): the catalogue's longest is ~420 characters and 12 levels deep. Beyond
#: these an expression is refused at load, before Python's parser or the backends could recurse or allocate
#: without bound (`not` x 10,000, a 500-term sum, 3,000 nested if/else).
MAX_EXPRESSION_CHARS = 2_000
MAX_EXPRESSION_DEPTH = 50


def _depth(tree: ast.AST) -> int:
    """Nesting depth of a syntax tree, computed without recursion."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_EXPRESSION_DEPTH:
            return depth
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


class ExpressionError(Exception):
    """Raised with every problem found in one expression."""

    def __init__(self, problems: list[RuleProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(p.message for p in problems))


def parse_expression(text: str, *, file: str = "<expr>", line: int = 1, col: int = 1) -> ir.Node:
    """Parse one expression whose first character sits at (line, col) of `file`."""
    source = str(text).strip()
    problems: list[RuleProblem] = []
    if not source:
        raise ExpressionError([RuleProblem(file, line, col, "表达式为空", expected="条件或公式，如 sales <= 300000")])
    if len(source) > MAX_EXPRESSION_CHARS:
        raise ExpressionError([RuleProblem(
            file, line, col, f"表达式过长：{len(source):,} 个字符，上限 {MAX_EXPRESSION_CHARS:,}",
            expected="把长条件拆成几个条件，或把重复的部分写成参数")])
    try:
        tree = ast.parse(source, mode="eval")
    except (RecursionError, MemoryError):
        raise ExpressionError([RuleProblem(
            file, line, col, f"表达式嵌套过深：超过 {MAX_EXPRESSION_DEPTH} 层",
            expected="把深层嵌套拆成几个条件")]) from None
    except SyntaxError as exc:
        ln = line + (exc.lineno or 1) - 1
        cl = (col if (exc.lineno or 1) == 1 else 1) + max((exc.offset or 1) - 1, 0)
        suggestion = ""
        for wrong, right in _HINTS.items():
            if re.search(rf"(^|[^=!<>]){re.escape(wrong)}([^=]|$)", source):
                suggestion = f"用 {right} 代替 {wrong}"
                break
        raise ExpressionError([
            RuleProblem(file, ln, cl, f"无法解析表达式 {source!r}（{exc.msg}）",
                        expected="比较、and/or/not、in、四则运算或函数调用",
                        suggestion=suggestion,
                        example='taxable_income <= income_cap and credit_grade in ["A", "B"]')
        ]) from None
    if _depth(tree) > MAX_EXPRESSION_DEPTH:
        raise ExpressionError([RuleProblem(
            file, line, col, f"表达式嵌套过深：超过 {MAX_EXPRESSION_DEPTH} 层（如一长串 not、加法或 if/else）",
            expected="把深层嵌套拆成几个条件，或把重复的部分写成参数")])
    builder = _Builder(source, file, line, col, problems)
    node = builder.build(tree.body)
    if problems:
        raise ExpressionError(problems)
    return node


class _Builder:
    def __init__(self, source: str, file: str, line: int, col: int, problems: list[RuleProblem]) -> None:
        self.source, self.file, self.line, self.col, self.problems = source, file, line, col, problems

    def span(self, node: ast.AST) -> ir.Span:
        lineno = getattr(node, "lineno", 1)
        offset = getattr(node, "col_offset", 0)
        return ir.Span(self.file, self.line + lineno - 1, (self.col if lineno == 1 else 1) + offset)

    def fail(self, node: ast.AST, message: str, **kw: str) -> ir.Node:
        s = self.span(node)
        self.problems.append(RuleProblem(s.file, s.line, s.col, message, **kw))
        return ir.Literal_(None, s)

    def build(self, node: ast.expr) -> ir.Node:
        sp = self.span(node)
        if isinstance(node, ast.BoolOp):
            items = tuple(self.build(v) for v in node.values)
            return ir.And(items, sp) if isinstance(node.op, ast.And) else ir.Or(items, sp)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                return ir.Not(self.build(node.operand), sp)
            if isinstance(node.op, ast.USub):
                inner = self.build(node.operand)
                if isinstance(inner, ir.Literal_) and isinstance(inner.value, int | Decimal):
                    return ir.Literal_(-inner.value, sp)
                return ir.Neg(inner, sp)
            if isinstance(node.op, ast.UAdd):
                return self.build(node.operand)
            return self.fail(node, "不支持的一元运算符", expected="not 或负号 -")
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.BinOp):
            op = _ARITH.get(type(node.op))
            if op is None:
                return self.fail(node, "不支持的运算符", expected="+ - * /",
                                 suggestion="乘方、取余等请改写为乘除法")
            return ir.Arith(op, self.build(node.left), self.build(node.right), sp)
        if isinstance(node, ast.IfExp):
            return ir.IfElse(self.build(node.test), self.build(node.body), self.build(node.orelse), sp)
        if isinstance(node, ast.Name):
            if node.id in ("True", "False", "None"):
                return ir.Literal_({"True": True, "False": False, "None": None}[node.id], sp)
            if node.id in ("true", "false"):
                return self.fail(node, f"未知名称 {node.id}", suggestion=node.id.capitalize())
            return ir.Field(node.id, sp)  # field or parameter: the type-checker decides
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            values = []
            for elt in node.elts:
                item = self.build(elt)
                if not isinstance(item, ir.Literal_):
                    self.fail(elt, "列表中只能写常量", expected='["A", "B"] 或 [1, 2]')
                    continue
                values.append(item.value)
            return ir.Literal_(tuple(values), sp)
        if isinstance(node, ast.Call):
            return self._call(node)
        return self.fail(node, f"不支持的写法（{type(node).__name__}）",
                         expected="字段、参数、常量、比较、and/or/not、in、四则运算或函数调用")

    def _constant(self, node: ast.Constant) -> ir.Node:
        sp = self.span(node)
        v = node.value
        if isinstance(v, bool) or v is None:
            return ir.Literal_(v, sp)
        if isinstance(v, int):
            return ir.Literal_(v, sp)
        if isinstance(v, float):
            # Exact money: the literal's own digits, never the binary float.
            text = (ast.get_source_segment(self.source, node) or repr(v)).replace("_", "")
            return ir.Literal_(Decimal(text), sp)
        if isinstance(v, str):
            return ir.Literal_(v, sp)
        return self.fail(node, f"不支持的常量 {v!r}", expected="数字、文本、True/False")

    def _compare(self, node: ast.Compare) -> ir.Node:
        sp = self.span(node)
        parts: list[ir.Node] = []
        left = self.build(node.left)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = self.build(comparator)
            if isinstance(op, ast.In | ast.NotIn):
                parts.append(ir.In(left, right, isinstance(op, ast.NotIn), sp))
            elif type(op) in _COMPARE:
                parts.append(ir.Compare(_COMPARE[type(op)], left, right, sp))
            else:
                parts.append(self.fail(node, "不支持 is / is not", expected="== 或 !=，判断空值用 has(字段)"))
            left = right
        return parts[0] if len(parts) == 1 else ir.And(tuple(parts), sp)

    def _call(self, node: ast.Call) -> ir.Node:
        sp = self.span(node)
        if not isinstance(node.func, ast.Name):
            return self.fail(node, "只能调用内置函数", expected=", ".join(sorted(FUNCTIONS)))
        name = node.func.id
        if name not in FUNCTIONS:
            from engine.errors import did_you_mean

            return self.fail(node, f"未知函数 {name}()", expected="内置函数之一：" + ", ".join(sorted(FUNCTIONS)),
                             suggestion=did_you_mean(name, FUNCTIONS))
        if node.keywords:
            return self.fail(node, f"{name}() 不接受关键字参数", example=FUNCTIONS[name].signature)
        if name == "cit_rate":
            if node.args:
                return self.fail(node, "cit_rate() 不接受参数", example=FUNCTIONS[name].signature)
            from engine.functions import MACROS

            return parse_expression(MACROS[name], file=sp.file, line=sp.line, col=sp.col)
        args = tuple(self.build(a) for a in node.args)
        if name == "date":
            if len(args) != 1 or not isinstance(args[0], ir.Literal_) or not isinstance(args[0].value, str) \
                    or not _DATE.match(args[0].value):
                return self.fail(node, "date() 需要一个 YYYY-MM-DD 格式的日期文本", example='date("2019-04-01")')
            try:
                return ir.Literal_(date.fromisoformat(args[0].value), sp)
            except ValueError:
                return self.fail(node, f"日期 {args[0].value} 不存在", example='date("2019-04-01")')
        return ir.Call(name, args, sp)
