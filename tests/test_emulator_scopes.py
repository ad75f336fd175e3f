"""The emulator's scope logic: satisfaction, role expansion and scope expressions."""

from __future__ import annotations

import pytest

from tests.emulator import scopes
from tests.emulator.scopes import ExpressionError, Roles


@pytest.mark.parametrize(
    ("held", "required", "expected"),
    [
        (["queue:create-task:x"], "queue:create-task:x", True),
        (["queue:create-task:*"], "queue:create-task:x/y", True),
        (["queue:*"], "queue:", True),
        (["*"], "anything:at:all", True),
        (["queue:create-task:x"], "queue:create-task:xy", False),
        (["queue:create-task"], "queue:create-task:x", False),
        (["queue:create*task"], "queue:create-task", False),
        ([], "queue:ping", False),
        (["queue:create-task:*"], "queue:create-task:", True),
        (["queue:create-task:*", "index:*"], "queue:", False),
    ],
)
def test_satisfies(held: list[str], required: str, expected: bool) -> None:
    assert scopes.satisfies(held, required) is expected


def test_normalize_drops_duplicates_and_covered_scopes() -> None:
    assert scopes.normalize(["a:b", "a:*", "a:b", "c", "a:c:*"]) == ["a:*", "c"]


def test_roles_expand_transitively() -> None:
    roles = Roles({"a": ["assume:b", "x"], "b": ["y"], "c": ["z"]})
    assert roles.expand(["assume:a"]) == ["assume:a", "assume:b", "x", "y"]


def test_expansions_follow_every_change_of_the_roles() -> None:
    roles = Roles({"a": ["x"]})
    assert roles.expand(["assume:a"]) == ["assume:a", "x"]
    roles.set("a", ["y"])
    assert roles.expand(["assume:a"]) == ["assume:a", "y"]
    roles.remove("a")
    assert roles.expand(["assume:a"]) == ["assume:a"]
    expanded = roles.expand(["assume:a"])
    expanded.append("changed by its caller")
    assert roles.expand(["assume:a"]) == ["assume:a"]


def test_role_with_trailing_star_is_assumed_by_any_matching_scope() -> None:
    roles = Roles({"repo:github.com/org/*": ["queue:route:index.org.*"]})
    assert "queue:route:index.org.*" in roles.expand(["assume:repo:github.com/org/project"])
    assert roles.expand(["assume:repo:github.com/other/project"]) == [
        "assume:repo:github.com/other/project"
    ]


def test_star_scope_assumes_every_role_it_covers() -> None:
    roles = Roles({"hook-id:g/one": ["one"], "hook-id:g/two": ["two"], "other": ["no"]})
    assert roles.expand(["assume:hook-id:g/*"]) == ["assume:hook-id:g/*", "one", "two"]


def test_parameterized_role_substitutes_what_the_star_matched() -> None:
    roles = Roles({"project:*": ["secrets:get:project/<..>/ci", "queue:route:<..>.*"]})
    expanded = roles.expand(["assume:project:ml"])
    assert "secrets:get:project/ml/ci" in expanded
    assert "queue:route:ml.*" in expanded
    # A star in the parameter grants the rest of the scope too.
    assert "secrets:get:project/m*" in roles.expand(["assume:project:m*"])


def test_role_cycles_terminate() -> None:
    roles = Roles({"a": ["assume:b"], "b": ["assume:a", "q"]})
    assert roles.expand(["assume:a"]) == ["assume:a", "assume:b", "q"]


def test_render_for_if_and_parameters() -> None:
    template = {
        "AllOf": [
            {"for": "route", "in": "routes", "each": "queue:route:<route>"},
            "queue:scheduler-id:<schedulerId>",
            {"if": "private", "then": "queue:private:<taskId>"},
        ]
    }
    rendered = scopes.render(template, {"routes": ["a", "b"], "schedulerId": "s", "private": False})
    assert rendered == {"AllOf": ["queue:route:a", "queue:route:b", "queue:scheduler-id:s"]}
    with_private = scopes.render(
        template, {"routes": [], "schedulerId": "s", "private": True, "taskId": "T"}
    )
    assert with_private == {"AllOf": ["queue:scheduler-id:s", "queue:private:T"]}


def test_render_without_a_parameter_is_an_error() -> None:
    with pytest.raises(ExpressionError, match="taskId"):
        scopes.render("queue:get-task:<taskId>", {})


def test_unsatisfied_names_only_what_is_missing() -> None:
    expression = {"AllOf": ["a", "b", {"AnyOf": ["c", "d"]}]}
    assert scopes.unsatisfied(expression, ["a", "b", "d"]) is None
    assert scopes.unsatisfied(expression, ["a", "c"]) == "b"
    assert scopes.unsatisfied(expression, ["a"]) == {"AllOf": ["b", {"AnyOf": ["c", "d"]}]}
    assert scopes.unsatisfied({"AnyOf": []}, ["*"]) == {"AnyOf": []}
    assert scopes.evaluate({"AllOf": []}, [])
