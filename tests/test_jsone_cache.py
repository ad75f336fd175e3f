"""The JSON-e renderer with cached expressions renders exactly what json-e renders: the same
bytes, or the same error, for every corpus template in cron, push and action contexts, and for
generated expressions."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsone
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from scheduler.common import jsone_cache
from scheduler.common.jsone_cache import jsone_render
from scheduler.render import _parsed_template
from tests.support.corpus import corpus_templates
from tests.support.rendering import REVISION, ROOT_URL

Render = Callable[[Any, dict[str, Any]], Any]
NOW = "2026-11-24T10:00:00.000Z"
TASK_ID = "fN9gT9n1Q2mJqoT0hQeY5w"
BASE_REVISION = "0a1b2c3d" * 5


def outcome(render: Render, template: Any, context: dict[str, Any]) -> str:
    """What rendering gives, as bytes would carry it: the JSON, or the error and its message."""
    try:
        return json.dumps(render(template, context))
    except Exception as error:
        return f"{type(error).__module__}.{type(error).__qualname__}: {error}"


def repository(template: Path) -> dict[str, Any]:
    owner, name = template.name.removesuffix(".taskcluster.yml").split("__")[:2]
    return {"url": f"https://github.com/{owner}/{name}", "project": name, "level": "3"}


def base_context(template: Path, tasks_for: str) -> dict[str, Any]:
    return {
        "tasks_for": tasks_for,
        "taskcluster_root_url": ROOT_URL,
        "repository": repository(template),
        "now": NOW,
        "ownTaskId": TASK_ID,
    }


def cron_context(template: Path) -> dict[str, Any]:
    return base_context(template, "cron") | {
        "push": {"owner": "cron", "revision": REVISION, "branch": "main"},
        "cron": {
            "task_id": TASK_ID,
            "job_name": "nightly",
            "job_symbol": "Nd",
            "quoted_args": "--target-tasks-method=nightly",
            "input": {},
        },
    }


def push_context(template: Path) -> dict[str, Any]:
    """build-decision's context for a GitHub push to main."""
    url = repository(template)["url"]
    owner, name = url.rsplit("/", 2)[-2:]
    return base_context(template, "github-push") | {
        # Taskcluster-GitHub's: a task id per name, the same for every use of the name.
        "as_slugid": lambda name: (name + TASK_ID)[:22],
        "push": {"owner": "dev@example.com", "revision": REVISION, "branch": "main"},
        "event": {
            "ref": "refs/heads/main",
            "base_ref": None,
            "before": BASE_REVISION,
            "after": REVISION,
            "pusher": {"name": "dev", "email": "dev@example.com"},
            "sender": {"login": "dev"},
            "head_commit": {"message": "Bug 1 - a change"},
            "repository": {
                "name": name,
                "full_name": f"{owner}/{name}",
                "html_url": url,
                "clone_url": f"{url}.git",
                "ssh_url": f"git@github.com:{owner}/{name}.git",
            },
        },
    }


def action_context(template: Path) -> dict[str, Any]:
    """build-decision's (taskgraph's) context for an action task."""
    return base_context(template, "action") | {
        "push": {
            "owner": "dev@example.com",
            "revision": REVISION,
            "base_revision": BASE_REVISION,
            "branch": "main",
            "pushlog_id": "0",
        },
        "action": {
            "name": "retrigger",
            "title": "Retrigger",
            "description": "Create a clone of the task.",
            "taskGroupId": TASK_ID,
            "cb_name": "retrigger",
            "symbol": "rt",
            "repo_scope": "assume:repo:github.com/example/example:action:generic",
            "action_perm": "generic",
        },
        "input": {"times": 1},
        "taskId": TASK_ID,
        "taskGroupId": TASK_ID,
        "clientId": "dev",
    }


CONTEXTS = {"cron": cron_context, "push": push_context, "action": action_context}


@pytest.mark.parametrize("tasks_for", CONTEXTS)
@pytest.mark.parametrize("template_path", corpus_templates(), ids=lambda path: path.name)
def test_corpus_templates_render_to_the_same_bytes(template_path: Path, tasks_for: str) -> None:
    document = _parsed_template(template_path.read_bytes())
    context = CONTEXTS[tasks_for](template_path)
    expected = outcome(jsone.render, document, context)
    # Twice: the first parses every expression, the second reuses the parse trees.
    assert outcome(jsone_cache.render, document, context) == expected
    assert outcome(jsone_cache.render, document, context) == expected


def test_most_corpus_templates_render_a_task_in_each_context() -> None:
    """The contexts above are build-decision's, or the comparison would be of errors only."""
    for tasks_for, context_of in CONTEXTS.items():
        outcomes = [
            outcome(jsone.render, _parsed_template(path.read_bytes()), context_of(path))
            for path in corpus_templates()
        ]
        rendered = [said for said in outcomes if '"tasks": [{' in said]
        assert len(rendered) >= len(outcomes) * 3 // 4, tasks_for


def test_the_cache_is_used_and_bounded() -> None:
    template = {"a": "${x + 1} ${x}", "b": {"$if": "x > 0", "then": {"$eval": "[x, x * 2]"}}}
    jsone_cache.render(template, {"x": 1})
    before = jsone_cache.cache_info()
    assert jsone_cache.render(template, {"x": 2}) == {"a": "3 2", "b": [2, 4]}
    after = jsone_cache.cache_info()
    assert after["expressions"].hits - before["expressions"].hits == 2
    assert after["expressions"].misses == before["expressions"].misses
    assert after["interpolations"].hits - before["interpolations"].hits == 2
    assert after["interpolations"].misses == before["interpolations"].misses
    assert after["expressions"].maxsize == jsone_cache.CACHE_SIZE


def test_json_e_itself_is_left_as_it_is() -> None:
    assert jsone_render.parse is not jsone_cache._parse
    assert jsone_render.parse_until_terminator is not jsone_cache._parse_until_terminator
    before = jsone_cache.cache_info()
    jsone.render({"$eval": "1 + 2"}, {})
    assert jsone_cache.cache_info() == before


# Expressions: JSON-e's operators, literals, context values, calls, indexing, and anything else
# its tokens make (most of which does not parse, and must fail alike).
CONTEXT = {"x": 2, "y": -1.5, "s": "ab", "l": [1, "a", None], "o": {"k": True, "n": {"m": 3}}}
ATOMS = ["x", "y", "s", "l", "o", "o.k", "o.n", "l[1]", "s[0:1]", "1", "2.5", "'q'", '"r"']
ATOMS += ["true", "false", "null", "len(l)", "lowercase(s)", "max(1, x)", "[x, 1]", "{a: x}"]
TOKENS = [*ATOMS, "+", "-", "*", "/", "**", "==", "!=", "<", ">=", "&&", "||", "!", "in", "(", ")"]
TOKENS += ["[", "]", ".", ",", ":", "{", "}", "$", "unknown", "x.", " "]


def expressions() -> st.SearchStrategy[str]:
    binary = ["+", "-", "*", "/", "**", "==", "!=", "<", ">=", "&&", "||", "in"]
    return st.recursive(
        st.sampled_from(ATOMS),
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from(binary), inner).map(" ".join),
            inner.map(lambda e: f"!({e})"),
            inner.map(lambda e: f"-({e})"),
            inner.map(lambda e: f"[{e}]"),
            st.tuples(inner, inner).map(lambda p: f"{{a: {p[0]}, b: {p[1]}}}"),
            inner.map(lambda e: f"({e})[0]"),
        ),
        max_leaves=8,
    )


def token_soup() -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(TOKENS), min_size=1, max_size=8).map(" ".join)


def templates(expression: str) -> list[Any]:
    return [
        {"$eval": expression},
        {"$if": expression, "then": "yes", "else": "no"},
        f"<${{{expression}}}>${{x}}$${{{expression}}}",
        {"$switch": {expression: 1, "$default": 2}},
        {"$match": {expression: "m", "x > 1": "n"}},
        {"$map": [3, 1, 2], "each(v)": {"$eval": f"[v, {expression}]"}},
        {"$sort": [3, 1, 2], "by(v)": expression},
        {"$let": {"z": {"$eval": expression}}, "in": "${z}"},
    ]


@settings(max_examples=300, deadline=None)
@given(st.one_of(expressions(), token_soup()))
@example("x +")
@example("${x")
@example("x }")
@example("")
def test_generated_expressions_render_alike(expression: str) -> None:
    for template in templates(expression):
        expected = outcome(jsone.render, template, CONTEXT)
        assert outcome(jsone_cache.render, template, CONTEXT) == expected
        assert outcome(jsone_cache.render, template, CONTEXT) == expected


@pytest.mark.parametrize(
    "template",
    [{"$if": 3, "then": 1}, {"$eval": ["x"]}, {"$switch": {"x": 1, "$x": 2}}, {"$let": 1}],
)
def test_operators_given_no_expression_fail_alike(template: Any) -> None:
    assert outcome(jsone_cache.render, template, CONTEXT) == outcome(
        jsone.render, template, CONTEXT
    )
