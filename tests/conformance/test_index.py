"""The index: inserting and finding tasks, ranks, expiry, listings and their pages, artifacts."""

from __future__ import annotations

import functools
import urllib.parse
from datetime import timedelta
from typing import Any

import requests
import slugid

from tests.conformance.target import (
    ApiFailure,
    Clients,
    Target,
    eventually,
    expect_error,
    iso,
    parse_iso,
    public_and_private,
)


def entry(task_id: str, target: Target, *, rank: float = 0, **extra: Any) -> dict[str, Any]:
    """An insertTask request expiring in an hour (unless told otherwise)."""
    request = {
        "taskId": task_id,
        "rank": rank,
        "data": {"by": "tc-scheduler conformance"},
        "expires": iso(target.now() + timedelta(hours=1)),
    }
    request.update(extra)
    return request


def insert(target: Target, path: str, request: dict[str, Any]) -> None:
    """Insert as root (for tests about something else); removed at teardown."""
    target.root("index").insertTask(path, request)
    target.track_index(path)


def test_insert_task_then_find_it(api: Clients, target: Target) -> None:
    """insertTask answers the entry; findTask gives it back with namespace, rank, data, expires."""
    path = f"{target.index_namespace()}.latest"
    task_id = slugid.nice()
    request = entry(task_id, target, rank=3, data={"revision": "abc"})
    reply = api.index().insertTask(path, request)
    target.track_index(path)
    assert reply == {
        "namespace": path,
        "taskId": task_id,
        "rank": 3,
        "data": {"revision": "abc"},
        "expires": request["expires"],
    }
    assert api.index().findTask(path) == reply


def test_higher_rank_wins_and_equal_rank_replaces(api: Clients, target: Target) -> None:
    """A lower rank does not replace the indexed task (still 200); an equal or higher one does."""
    path = f"{target.index_namespace()}.latest"
    first, lower, equal = slugid.nice(), slugid.nice(), slugid.nice()
    api.index().insertTask(path, entry(first, target, rank=5))
    target.track_index(path)
    api.index().insertTask(path, entry(lower, target, rank=1))
    assert api.index().findTask(path)["taskId"] == first
    api.index().insertTask(path, entry(equal, target, rank=5))
    assert api.index().findTask(path)["taskId"] == equal


def test_find_task_of_a_missing_or_expired_entry_is_404(api: Clients, target: Target) -> None:
    """findTask is 404 for a path never indexed and for an entry whose `expires` has passed."""
    namespace = target.index_namespace()
    expect_error(404, "ResourceNotFound", api.index().findTask, f"{namespace}.never")
    past = iso(target.now() - timedelta(minutes=1))
    insert(target, f"{namespace}.expired", entry(slugid.nice(), target, expires=past))
    expect_error(404, "ResourceNotFound", api.index().findTask, f"{namespace}.expired")


def test_find_task_is_404_once_the_entry_expires(api: Clients, target: Target) -> None:
    """An entry is found until its expiry; after it, findTask is 404 and listTasks omits it."""
    emulator = target.require_control()
    namespace = target.index_namespace()
    insert(target, f"{namespace}.soon", entry(slugid.nice(), target))
    assert api.index().findTask(f"{namespace}.soon")["namespace"] == f"{namespace}.soon"
    emulator.clock.advance(timedelta(hours=2))
    expect_error(404, "ResourceNotFound", api.index().findTask, f"{namespace}.soon")
    assert api.index().listTasks(namespace)["tasks"] == []


def test_list_namespaces_and_tasks(api: Clients, target: Target) -> None:
    """listNamespaces gives the child namespaces, listTasks the entries directly below."""
    root = target.index_namespace()
    task_id = slugid.nice()
    for path in (f"{root}.a.one", f"{root}.a.two", f"{root}.b.three", f"{root}.direct"):
        insert(target, path, entry(task_id, target))

    namespaces = api.index().listNamespaces(root)["namespaces"]
    assert sorted((n["name"], n["namespace"]) for n in namespaces) == [
        ("a", f"{root}.a"),
        ("b", f"{root}.b"),
    ]
    assert [t["namespace"] for t in api.index().listTasks(root)["tasks"]] == [f"{root}.direct"]
    assert sorted(t["namespace"] for t in api.index().listTasks(f"{root}.a")["tasks"]) == [
        f"{root}.a.one",
        f"{root}.a.two",
    ]
    assert api.index().listNamespaces(f"{root}.a")["namespaces"] == []

    first = api.index().listNamespaces(root, query={"limit": 1})
    second = api.index().listNamespaces(
        root, query={"limit": 1, "continuationToken": first["continuationToken"]}
    )
    assert [n["name"] for n in first["namespaces"] + second["namespaces"]] == ["a", "b"]


def test_list_tasks_pages(api: Clients, target: Target) -> None:
    """listTasks pages at most 1000 entries (or `limit`), with continuation tokens to the end.

    Against the emulator 2,500 entries are seeded directly; a deployment gets five through
    the API, listed two at a time.
    """
    namespace = target.index_namespace()
    names = [f"t{number:04d}" for number in range(2500 if target.control else 5)]
    task_id = slugid.nice()
    if target.control is not None:
        expires = target.now() + timedelta(hours=1)
        for name in names:
            target.control.index.insert(f"{namespace}.{name}", task_id, expires=expires)
        limit = None
    else:
        for name in names:
            insert(target, f"{namespace}.{name}", entry(task_id, target))
        limit = 2

    pages: list[list[str]] = []
    query: dict[str, Any] = {} if limit is None else {"limit": limit}
    while True:
        page = api.index().listTasks(namespace, query=query)
        pages.append([t["namespace"].rsplit(".", 1)[1] for t in page["tasks"]])
        if "continuationToken" not in page:
            break
        query = {**query, "continuationToken": page["continuationToken"]}
    assert sorted(name for page in pages for name in page) == names
    assert all(len(page) <= (limit or 1000) for page in pages)
    assert len(pages) >= 3

    if target.control is not None:
        assert [len(page) for page in pages] == [1000, 1000, 500]
        capped = api.index().listTasks(namespace, query={"limit": 5000})
        assert len(capped["tasks"]) == 1000
        assert "continuationToken" in capped
        small = api.index().listTasks(namespace, query={"limit": 700})
        assert len(small["tasks"]) == 700

    collected: list[str] = []
    api.index().listTasks(
        namespace,
        paginationHandler=lambda reply: collected.extend(t["namespace"] for t in reply["tasks"]),
        paginationLimit=limit or 1000,
    )
    assert len(collected) == len(names)


def test_find_tasks_at_index(api: Clients, target: Target) -> None:
    """findTasksAtIndex gives the entries at the paths that are indexed, skipping the others."""
    namespace = target.index_namespace()
    tasks = {f"{namespace}.{name}": slugid.nice() for name in ("one", "two")}
    for path, task_id in tasks.items():
        insert(target, path, entry(task_id, target))
    reply = api.index().findTasksAtIndex({"indexes": [*tasks, f"{namespace}.missing"]})
    assert {found["namespace"]: found["taskId"] for found in reply["tasks"]} == tasks


def test_delete_task_removes_the_entry(api: Clients, target: Target) -> None:
    """deleteTask removes an entry: findTask is 404 afterwards and listTasks omits it."""
    namespace = target.index_namespace()
    insert(target, f"{namespace}.gone", entry(slugid.nice(), target))
    insert(target, f"{namespace}.kept", entry(slugid.nice(), target))
    api.index().deleteTask(f"{namespace}.gone")
    expect_error(404, "ResourceNotFound", api.index().findTask, f"{namespace}.gone")
    assert [t["namespace"] for t in api.index().listTasks(namespace)["tasks"]] == [
        f"{namespace}.kept"
    ]


def test_delete_task_replies_with_an_empty_object(api: Clients, target: Target) -> None:
    """deleteTask's reply is an empty JSON object."""
    path = f"{target.index_namespace()}.gone"
    insert(target, path, entry(slugid.nice(), target))
    assert api.index().deleteTask(path) == {}


def test_insert_task_needs_the_namespace_scope(api: Clients, target: Target) -> None:
    """insertTask needs `index:insert-task:<namespace>`; a client limited elsewhere gets 403."""
    namespace = target.index_namespace()
    credentials = target.make_client([f"index:insert-task:{namespace}.allowed.*"])
    index = api.index(credentials)
    index.insertTask(f"{namespace}.allowed.x", entry(slugid.nice(), target))
    target.track_index(f"{namespace}.allowed.x")
    body = expect_error(
        403,
        "InsufficientScopes",
        index.insertTask,
        f"{namespace}.other",
        entry(slugid.nice(), target),
    )
    assert f"index:insert-task:{namespace}.other" in body["message"]
    expect_error(404, "ResourceNotFound", api.index().findTask, f"{namespace}.other")


def test_find_artifact_from_task_redirects_to_the_queue(target: Target) -> None:
    """findArtifactFromTask is a 303 to the queue's getLatestArtifact URL of the indexed task."""
    path = f"{target.index_namespace()}.latest"
    task_id = target.create_task()
    insert(target, path, entry(task_id, target))
    for name in ("public/build/result.json", "private/secret.txt"):
        url = target.root("index").buildSignedUrl("findArtifactFromTask", path, name)
        response = requests.get(url, allow_redirects=False, timeout=10)
        assert response.status_code == 303, response.text
        location = urllib.parse.urlsplit(response.headers["Location"])
        assert urllib.parse.unquote(location.path) == urllib.parse.unquote(
            urllib.parse.urlsplit(
                target.root("queue").buildUrl("getLatestArtifact", task_id, name)
            ).path
        )
    url = target.root("index").buildSignedUrl("findArtifactFromTask", f"{path}x", "public/a")
    assert requests.get(url, allow_redirects=False, timeout=10).status_code == 404


def test_find_artifact_from_task_through_the_client(api: Clients, target: Target) -> None:
    """Both client flavours hand back the 303 response itself, with its Location header."""
    path = f"{target.index_namespace()}.latest"
    task_id = target.create_task()
    insert(target, path, entry(task_id, target))
    reply = api.index().findArtifactFromTask(path, "public/build/result.json")
    assert isinstance(reply, dict), reply
    response = reply["response"]
    status = getattr(response, "status_code", None) or response.status
    assert status == 303
    assert f"/api/queue/v1/task/{task_id}/artifacts/" in response.headers["Location"]


@public_and_private
def test_find_artifact_from_task_leads_to_public_content(target: Target) -> None:
    """Without credentials, findArtifactFromTask's redirects reach a public artifact, if the
    anonymous role grants `queue:get-artifact:public/*` (else the index refuses, 403)."""
    name = "public/build/result.json"
    path = f"{target.index_namespace()}.latest"
    task_id = target.create_task()
    target.run_task(task_id)
    target.add_artifact(task_id, name, {"ok": True}, "application/json")
    insert(target, path, entry(task_id, target))
    url = target.root("index").buildUrl("findArtifactFromTask", path, name)
    response = requests.get(url, timeout=10)
    if target.anonymous_may(f"queue:get-artifact:{name}"):
        assert response.json() == {"ok": True}
    else:
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "InsufficientScopes"


def test_find_artifact_from_task_signs_the_redirect_for_private_artifacts(target: Target) -> None:
    """The redirect to a private artifact carries the caller's authority (a signed URL)."""
    path = f"{target.index_namespace()}.latest"
    task_id = target.create_task()
    target.run_task(task_id)
    target.add_artifact(task_id, "private/secret.txt", "s3cr3t", "text/plain")
    insert(target, path, entry(task_id, target))
    url = target.root("index").buildSignedUrl("findArtifactFromTask", path, "private/secret.txt")
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.text == "s3cr3t"


def test_completed_task_with_index_routes_is_indexed(api: Clients, target: Target) -> None:
    """Completing a task with `index.<path>` routes indexes it there, with extra.index's rank.

    A deployment's index handlers do this in the background, after the queue's message.
    """
    namespace = target.index_namespace()
    routes = [f"index.{namespace}.latest", f"index.{namespace}.revision.abc"]
    task_id = target.create_task(
        routes=routes, extra={"index": {"rank": 7, "data": {"revision": "abc"}}}
    )
    failed = target.create_task(routes=[f"index.{namespace}.failed"])
    for route in [*routes, f"index.{namespace}.failed"]:
        target.track_index(route.removeprefix("index."))
    expect_error(404, "ResourceNotFound", api.index().findTask, f"{namespace}.latest")

    # The failed task first: once the completed one is indexed, the failed one had its chance.
    target.resolve_task(failed, "failed")
    target.resolve_task(task_id, "completed")
    expires = api.queue().task(task_id)["expires"]
    for path in (route.removeprefix("index.") for route in routes):
        found = eventually(
            functools.partial(_found, api, path),
            lambda found: found is not None,
            f"task {task_id} to be indexed at {path}",
        )
        assert found is not None
        assert (found["taskId"], found["rank"], found["data"]) == (task_id, 7, {"revision": "abc"})
        assert parse_iso(found["expires"]) == parse_iso(expires)
    expect_error(404, "ResourceNotFound", api.index().findTask, f"{namespace}.failed")


def _found(api: Clients, path: str) -> dict[str, Any] | None:
    """The index entry at `path`, or None while there is none."""
    try:
        entry: dict[str, Any] = api.index().findTask(path)
    except ApiFailure as error:
        if getattr(error, "status_code", None) != 404:
            raise
        return None
    return entry
