"""Taskcluster scopes: satisfaction, role expansion and scope expressions, as the auth service does.

Pure functions; the emulator's auth layer and the API routes use them to decide who may do what.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Expression = str | dict[str, Any]

_PARAMETER = re.compile(r"<([^<>]+)>")
_VALID = re.compile(r"[\x20-\x7e]*")
MAX_EXPANDED_SCOPES = 10_000
MAX_CACHED_EXPANSIONS = 1_000
# Scope sets kept arranged, and the answers each keeps: a caller asks for a few scopes again and
# again (its routes, priorities), never thousands.
MAX_ARRANGED_SETS = 1_000
MAX_REMEMBERED_GRANTS = 1_000


class ExpressionError(ValueError):
    """A scope-expression template refers to a parameter the request did not provide."""


def valid(scope: object) -> bool:
    """A scope is a string of printable ASCII (spaces allowed, no other whitespace)."""
    return isinstance(scope, str) and _VALID.fullmatch(scope) is not None


def satisfies(held: Iterable[str] | Held, required: str) -> bool:
    """A held scope grants `required` if it equals it, or is a prefix of it ending in `*`."""
    return arranged(held).grant(required)


def arranged(held: Iterable[str] | Held) -> Held:
    """`held` as a Held; the same scopes (every call's caller holds one of a few sets) are
    arranged once."""
    return held if isinstance(held, Held) else _arranged(tuple(held))


@functools.lru_cache(maxsize=MAX_ARRANGED_SETS)
def _arranged(held: tuple[str, ...]) -> Held:
    return Held(held)


class Held:
    """Scopes held, arranged to check many required scopes against: callers hold hundreds, and
    a lookup of each length of star prefix beats comparing with every one of them."""

    def __init__(self, scopes: Iterable[str]) -> None:
        self._exact = frozenset(scopes)
        self._prefixes = frozenset(scope[:-1] for scope in self._exact if scope.endswith("*"))
        self._lengths = tuple(sorted({len(prefix) for prefix in self._prefixes}))
        # The same few scopes are asked for again and again (a project's routes, priorities).
        self._granted: dict[str, bool] = {}

    def grant(self, required: str) -> bool:
        granted = self._granted.get(required)
        if granted is None:
            if len(self._granted) >= MAX_REMEMBERED_GRANTS:
                self._granted.clear()
            # A slice past the end is `required` itself, shorter than the prefixes of that length.
            granted = self._granted[required] = required in self._exact or any(
                required[:length] in self._prefixes for length in self._lengths
            )
        return granted


def normalize(scopes: Iterable[str]) -> list[str]:
    """The smallest sorted set granting the same: drops duplicates and scopes a star covers."""
    unique = sorted(set(scopes))
    stars = [scope for scope in unique if scope.endswith("*")]
    return [
        scope
        for scope in unique
        if not any(star != scope and scope.startswith(star[:-1]) for star in stars)
    ]


class Roles:
    """The deployment's roles; `expand` gives every scope a set of scopes grants through them."""

    def __init__(self, roles: Mapping[str, Sequence[str]] | None = None) -> None:
        self._roles: dict[str, list[str]] = {}
        # Every call expands its caller's scopes: the same few sets, while the roles stay put.
        self._expanded: dict[frozenset[str], tuple[str, ...]] = {}
        for role_id, scopes in (roles or {}).items():
            self.set(role_id, scopes)

    def set(self, role_id: str, scopes: Sequence[str]) -> None:
        self._roles[role_id] = list(scopes)
        self._expanded.clear()

    def remove(self, role_id: str) -> None:
        self._roles.pop(role_id, None)
        self._expanded.clear()

    def get(self, role_id: str) -> list[str] | None:
        return self._roles.get(role_id)

    def ids(self) -> list[str]:
        return sorted(self._roles)

    def expand(self, scopes: Iterable[str]) -> list[str]:
        given = frozenset(scopes)
        expanded = self._expanded.get(given)
        if expanded is None:
            if len(self._expanded) >= MAX_CACHED_EXPANSIONS:
                self._expanded.clear()
            expanded = self._expanded[given] = tuple(self._expand(given))
        return list(expanded)

    def _expand(self, scopes: Iterable[str]) -> list[str]:
        found = set(scopes)
        pending = list(found)
        while pending:
            scope = pending.pop()
            for granted in self._granted_by(scope):
                if granted not in found:
                    found.add(granted)
                    pending.append(granted)
            if len(found) > MAX_EXPANDED_SCOPES:
                break
        return normalize(found)

    def _granted_by(self, scope: str) -> Iterable[str]:
        if not (
            scope.startswith("assume:")
            or (scope.endswith("*") and "assume:".startswith(scope[:-1]))
        ):
            return
        for role_id, role_scopes in self._roles.items():
            remainder = _assumed(scope, role_id)
            if remainder is None:
                continue
            for role_scope in role_scopes:
                yield _parameterized(role_scope, remainder)

    def __repr__(self) -> str:
        return f"Roles({len(self._roles)} roles)"


def _assumed(scope: str, role_id: str) -> str | None:
    """What `scope` binds to a role's `*` if it lets its holder assume the role, else None.

    "" means the role is assumed without a parameter; "*" means every parameter.
    """
    target = "assume:" + role_id
    if role_id.endswith("*"):
        prefix = target[:-1]
        if scope.startswith(prefix):
            return scope[len(prefix) :]
        if scope.endswith("*") and prefix.startswith(scope[:-1]):
            return "*"
        return None
    if scope == target or (scope.endswith("*") and target.startswith(scope[:-1])):
        return ""
    return None


def _parameterized(role_scope: str, remainder: str) -> str:
    if "<..>" not in role_scope:
        return role_scope
    if remainder.endswith("*"):
        # A star in the parameter grants everything after it, so the rest of the scope is moot.
        return role_scope[: role_scope.index("<..>")] + remainder
    return role_scope.replace("<..>", remainder)


def render(template: Any, params: Mapping[str, Any]) -> Expression | list[str] | None:
    """Instantiate an API reference's `scopes` template for one request.

    `{for, in, each}` becomes a list of scopes (spliced into the enclosing AllOf/AnyOf),
    `{if, then}` disappears when its parameter is falsy, `<name>` takes the parameter's value.
    """
    if isinstance(template, str):
        return _instantiated(template, params)
    if "if" in template:
        return render(template["then"], params) if _param(params, template["if"]) else None
    if "for" in template:
        values = _param(params, template["in"])
        if not isinstance(values, list):
            raise ExpressionError(f"scope parameter {template['in']!r} is not a list")
        scopes = []
        each_params = dict(params)
        for value in values:
            each_params[template["for"]] = value
            rendered = render(template["each"], each_params)
            assert isinstance(rendered, str)
            scopes.append(rendered)
        return scopes
    (operator, operands), *_ = template.items()
    rendered_operands: list[Expression] = []
    for operand in operands:
        rendered = render(operand, params)
        if isinstance(rendered, list):
            rendered_operands.extend(rendered)
        elif rendered is not None:
            rendered_operands.append(rendered)
    return {operator: rendered_operands}


def _instantiated(template: str, params: Mapping[str, Any]) -> str:
    """`template` with each `<name>` replaced by the parameter's value."""
    pieces = _pieces(template)
    if len(pieces) == 1:
        return template
    parts = list(pieces)
    for index in range(1, len(parts), 2):
        parts[index] = str(_param(params, parts[index]))
    return "".join(parts)


@functools.lru_cache(maxsize=4096)
def _pieces(template: str) -> tuple[str, ...]:
    """The template split at its parameters: text at even indexes, parameter names at odd ones
    (splitting once per template, not matching on every request, is most of a render)."""
    return tuple(_PARAMETER.split(template))


def _param(params: Mapping[str, Any], name: str) -> Any:
    if name not in params:
        raise ExpressionError(f"scope parameter {name!r} has no value")
    return params[name]


def evaluate(expression: Expression | None, held: Sequence[str]) -> bool:
    return unsatisfied(expression, held) is None


def unsatisfied(expression: Expression | None, held: Iterable[str]) -> Expression | None:
    """The part of `expression` that `held` does not satisfy, or None when it is satisfied."""
    return _unsatisfied(expression, arranged(held))


def _unsatisfied(expression: Expression | None, held: Held) -> Expression | None:
    if expression is None:
        return None
    if isinstance(expression, str):
        return None if held.grant(expression) else expression
    if "AllOf" in expression:
        missing = [
            part
            for part in (_unsatisfied(operand, held) for operand in expression["AllOf"])
            if part is not None
        ]
        if not missing:
            return None
        return missing[0] if len(missing) == 1 else {"AllOf": missing}
    operands = expression["AnyOf"]
    if any(_unsatisfied(operand, held) is None for operand in operands):
        return None
    return expression
