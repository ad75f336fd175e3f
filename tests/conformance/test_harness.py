"""The suite's own checks: they must be able to fail, or a passing run proves nothing."""

from __future__ import annotations

import pytest

from tests.conformance.target import check_error_body, check_reply, emulator_bug, satisfies


def test_reply_check_rejects_replies_that_break_the_output_schema() -> None:
    """A reply missing required members, or with a malformed date-time, is caught."""
    with pytest.raises(AssertionError, match="breaks its output schema"):
        check_reply("queue", "status", {"status": {"taskId": "x"}})
    with pytest.raises(AssertionError, match="date-time"):
        check_reply(
            "hooks",
            "getHookStatus",
            {"lastFire": {"result": "no-fire"}, "nextScheduledDate": "soon"},
        )
    with pytest.raises(AssertionError, match="not JSON"):
        check_reply("queue", "status", None)
    check_reply("auth", "currentScopes", None)  # no auth schemas in the corpus: nothing to check
    check_reply("index", "findArtifactFromTask", {"response": object()})  # declares no output


def test_error_body_check_needs_code_message_and_request_info() -> None:
    """An error body without `requestInfo` (or naming another method) is caught."""
    info = {"method": "task", "params": {}, "payload": {}, "time": "2026-01-01T00:00:00.000Z"}
    check_error_body({"code": "ResourceNotFound", "message": "m", "requestInfo": info}, "task")
    with pytest.raises(AssertionError):
        check_error_body({"code": "ResourceNotFound", "message": "m"})
    with pytest.raises(AssertionError):
        check_error_body(
            {"code": "ResourceNotFound", "message": "m", "requestInfo": info}, "status"
        )


def test_satisfies_follows_star_prefixes() -> None:
    """`a:*` grants `a:b`; `a:b` grants only itself."""
    assert satisfies(["a:*"], "a:b")
    assert satisfies(["a:b"], "a:b")
    assert not satisfies(["a:b"], "a:c")
    assert not satisfies(["a:b*"], "a:c")


def test_emulator_bug_marks_are_strict_xfails() -> None:
    """Emulator-bug marks are strict, so a fixed emulator shows up as XPASS (a failure)."""
    mark = emulator_bug("example").mark
    assert mark.name == "xfail"
    assert mark.kwargs["strict"] is True
    assert mark.kwargs["reason"].startswith("emulator bug: ")
