"""What every backend shares and none owns: the untranslatable-node error and which nodes are numbers.

The Polars, SQL and durable-rules backends each import this module; none of them imports another
backend for it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from engine import ir
from engine.catalogue import Rule
from engine.functions import FUNCTIONS, NUMBER
from profiles.periods import Period
from profiles.schema import PROFILE_FIELDS


class NotTranslatableError(NotImplementedError):
    """A node this backend has no translation for (a bug: the type-checker should have refused it)."""


class HasRule(Protocol):
    """A translation scope: the period judged and the rule whose parameters are read (if any)."""

    @property
    def period(self) -> Period: ...

    @property
    def rule(self) -> Rule | None: ...


def is_numeric(node: ir.Node, ctx: HasRule) -> bool:
    """Whether the node computes a number (so branches and operands can share the exact decimal type)."""
    if isinstance(node, ir.Arith | ir.Neg):
        return True
    if isinstance(node, ir.Literal_):
        return isinstance(node.value, int | Decimal) and not isinstance(node.value, bool)
    if isinstance(node, ir.Param):
        value = ctx.rule.parameters[node.name].at(ctx.period.start) if ctx.rule else None
        return isinstance(value, int | Decimal) and not isinstance(value, bool)
    if isinstance(node, ir.Field):
        return PROFILE_FIELDS[node.name].kind in ("money", "number", "int")
    if isinstance(node, ir.Call):
        return FUNCTIONS[node.name].returns == NUMBER
    if isinstance(node, ir.IfElse):
        return is_numeric(node.then, ctx)
    return False
