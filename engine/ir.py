"""The rule tree: backend-neutral nodes for conditions and formulas.

Nothing here imports a backend. The Polars compiler (engine/backends/polars.py) and the durable-rules
backend (engine/backends/durable.py) each translate these nodes; parity tests run every node through
both. Every node keeps the `Span` it was parsed from, so type errors point into the rule file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Literal, Union

CompareOp = Literal["<", "<=", ">", ">=", "==", "!="]
ArithOp = Literal["+", "-", "*", "/"]


@dataclass(frozen=True)
class Span:
    """Where a node came from: the rule file and the 1-based line and column."""

    file: str = "<expr>"
    line: int = 1
    col: int = 1


@dataclass(frozen=True)
class Field:
    """A profile field (a column of taxpayers or indicators for the period)."""

    name: str
    span: Span = field(default=Span(), compare=False)


@dataclass(frozen=True)
class Param:
    """A rule parameter, resolved to the value in force for the period being judged."""

    name: str
    span: Span = field(default=Span(), compare=False)


LiteralValue = Union[bool, int, Decimal, str, date, None, tuple["LiteralValue", ...]]  # noqa: UP007 (recursive alias)


@dataclass(frozen=True)
class Literal_:
    """A constant: number (int or exact Decimal), string, date, boolean, or a list of those."""

    value: LiteralValue
    span: Span = field(default=Span(), compare=False)


@dataclass(frozen=True)
class Compare:
    op: CompareOp
    left: Node
    right: Node
    span: Span = field(default=Span(), compare=False)


@dataclass(frozen=True)
class In:
    """`item in [..]` (or `not in`); the list is a literal or a list parameter."""

    item: Node
    options: Node
    negated: bool = False
    span: Span = field(default=Span(), compare=False)


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]
    span: Span = field(default=Span(), compare=False)


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]
    span: Span = field(default=Span(), compare=False)


@dataclass(frozen=True)
class Not:
    item: Node
    span: Span = field(default=Span(), compare=False)


@dataclass(frozen=True)
class Arith:
    op: ArithOp
    left: Node
    right: Node
    span: Span = field(default=Span(), compare=False)


@dataclass(frozen=True)
class Neg:
    item: Node
    span: Span = field(default=Span(), compare=False)


@dataclass(frozen=True)
class IfElse:
    """`then if cond else otherwise` — an unknown condition gives an unknown value."""

    cond: Node
    then: Node
    otherwise: Node
    span: Span = field(default=Span(), compare=False)


@dataclass(frozen=True)
class Call:
    """A built-in function (see engine/functions.py for the list and their meaning)."""

    name: str
    args: tuple[Node, ...]
    span: Span = field(default=Span(), compare=False)


Node = Field | Param | Literal_ | Compare | In | And | Or | Not | Arith | Neg | IfElse | Call


def children(node: Node) -> tuple[Node, ...]:
    """The direct sub-nodes of a node."""
    if isinstance(node, Compare | Arith):
        return (node.left, node.right)
    if isinstance(node, In):
        return (node.item, node.options)
    if isinstance(node, And | Or):
        return node.items
    if isinstance(node, Not | Neg):
        return (node.item,)
    if isinstance(node, IfElse):
        return (node.cond, node.then, node.otherwise)
    if isinstance(node, Call):
        return node.args
    return ()


def walk(node: Node) -> Iterator[Node]:
    """Every node of the tree, depth first, the root first."""
    yield node
    for child in children(node):
        yield from walk(child)


def fields_of(node: Node) -> list[str]:
    """Profile fields the expression reads, in order of first use."""
    seen: dict[str, None] = {}
    for n in walk(node):
        if isinstance(n, Field):
            seen.setdefault(n.name)
        elif isinstance(n, Call) and n.name == "has" and n.args and isinstance(n.args[0], Field):
            seen.setdefault(n.args[0].name)
    return list(seen)


def rules_referenced(node: Node, function: str) -> list[str]:
    """Rule ids named by `eligible("...")` / `claimed("...")` calls in the expression."""
    out: list[str] = []
    for n in walk(node):
        if isinstance(n, Call) and n.name == function and n.args and isinstance(n.args[0], Literal_):
            out.append(str(n.args[0].value))
    return out
