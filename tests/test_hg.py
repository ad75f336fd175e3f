"""Mercurial projects as build-decision reads them: the head and its push from `json-pushes`, files
from `raw-file`, against a real `hg serve` (behind the tests' pushlog); and a corpus project
rendered and fired with a real push against the emulator."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from scheduler.config.errors import ConfigError
from scheduler.config.loading import load_config
from scheduler.config.model import Config, Project
from scheduler.git.hg import HgSource, latest_push
from scheduler.git.process import SourceError
from scheduler.git.remote_http import RemoteHttp
from scheduler.git.source import Pushed
from scheduler.ids import decision_task_id
from scheduler.ledger import FireState
from tests.emulator import Emulator
from tests.support.corpus import CORPUS
from tests.support.engine import created_task_ids, fires, run, tick
from tests.support.hg import HgRepository, HgServer, served
from tests.support.projects import DAY, HOURLY, make_config

T = TypeVar("T")

TEMPLATE_V1 = "version: 1\ntasks: []\n"
# When the pushes were made: seconds since the epoch, as the pushlog records them.
PUSHED_AT = int((DAY - timedelta(days=2)).timestamp())

# A template in the shape of comm-central's (and gecko's) .taskcluster.yml, written for these
# tests: the decision task names its push (pushlog id and date) in its Treeherder route and on
# `mach taskgraph decision`'s command line, as theirs do. The corpus has comm-central's
# .cron.yml but not its .taskcluster.yml.
COMM_TEMPLATE = """\
version: 1
tasks:
  - $let:
      ownerEmail: {$if: '"@" in push.owner', then: '${push.owner}', else: '${push.owner}@noreply.mozilla.org'}
    in:
      taskId: '${ownTaskId}'
      taskGroupId: '${ownTaskId}'
      schedulerId: 'comm-level-${repository.level}'
      created: {$fromNow: ''}
      deadline: {$fromNow: '1 day'}
      expires: {$fromNow: '1 year'}
      metadata:
        owner: '${ownerEmail}'
        source: '${repository.url}/raw-file/${push.revision}/.taskcluster.yml'
        name: 'Decision Task for cron job ${cron.job_name}'
        description: 'Created by a cron fire'
      taskQueueId: 'comm-${repository.level}/decision'
      routes:
        - 'tc-treeherder.v2.${repository.project}.${push.revision}.${push.pushlog_id}'
        - 'index.comm.v2.${repository.project}.latest.taskgraph.decision-${cron.job_name}'
      scopes:
        - 'assume:repo:${repository.url[8:]}:cron:${cron.job_name}'
      payload:
        env:
          COMM_HEAD_REPOSITORY: '${repository.url}'
          COMM_HEAD_REV: '${push.revision}'
        command:
          - bash
          - -cx
          - >
            ./mach taskgraph decision --root=comm/taskcluster/ci
            --pushlog-id='${push.pushlog_id}' --pushdate='${push.pushdate}'
            --project='${repository.project}' --owner='${ownerEmail}'
            --level='${repository.level}' --repository-type='${repository.type}'
            ${cron.quoted_args}
        maxRunTime: 1800
      extra:
        treeherder: {groupSymbol: cron, symbol: '${cron.job_symbol}'}
        cron: {$json: {$eval: 'cron'}}
"""


def hg_run(work: Callable[[HgSource], Awaitable[T]], *, attempts: int = 3) -> T:
    async def main() -> T:
        # No waiting between attempts: the retries are counted, not timed.
        async with RemoteHttp(attempts=attempts, max_wait=0.0) as http:
            return await work(HgSource(http))

    return asyncio.run(main())


@pytest.fixture
def repository(tmp_path: Path) -> HgRepository:
    repository = HgRepository(
        tmp_path / "comm", {".cron.yml": HOURLY, ".taskcluster.yml": TEMPLATE_V1}
    )
    repository.push(date=PUSHED_AT, user="ffxbld")
    return repository


@pytest.fixture
def server(repository: HgRepository) -> Iterator[HgServer]:
    with served(repository) as running:
        yield running


# -- head and push from json-pushes ------------------------------------------------------------


def test_the_head_and_its_push_come_from_json_pushes(
    repository: HgRepository, server: HgServer
) -> None:
    repository.commit({"a": "1\n"}, "first of the push")
    tip = repository.commit({".cron.yml": HOURLY + "# changed\n"}, "second of the push")
    repository.push(date=PUSHED_AT + 3600, user="someone@example.com")

    snapshot = hg_run(lambda hg: hg.snapshot(server.url, "default"))

    assert snapshot.revision == tip
    assert snapshot.push == Pushed(
        pushlog_id="2", pushdate=PUSHED_AT + 3600, user="someone@example.com"
    )
    assert snapshot.files[".cron.yml"] == HOURLY + "# changed\n"
    assert any(path.startswith("/json-pushes?") for path in server.requests)


def test_each_named_branch_has_its_own_head_and_push(
    repository: HgRepository, server: HgServer
) -> None:
    default_head = repository.hg("log", "--rev", "default", "--template", "{node}")
    beta = repository.commit({".cron.yml": "jobs: []\n"}, "beta", branch="beta")
    repository.push(date=PUSHED_AT + 60, user="release@example.com")

    on_default = hg_run(lambda hg: hg.snapshot(server.url, "default"))
    on_beta = hg_run(lambda hg: hg.snapshot(server.url, "beta"))

    assert (on_default.revision, on_default.push) == (
        default_head,
        Pushed("1", PUSHED_AT, "ffxbld"),
    )
    assert (on_beta.revision, on_beta.files[".cron.yml"]) == (beta, "jobs: []\n")
    assert on_beta.push == Pushed("2", PUSHED_AT + 60, "release@example.com")


def test_a_branch_the_repository_lacks_fails_at_once_naming_it(server: HgServer) -> None:
    with pytest.raises(SourceError) as raised:
        hg_run(lambda hg: hg.head(server.url, "nosuch"))
    assert "has no branch 'nosuch'" in str(raised.value)
    assert "json-pushes answered 404" in str(raised.value)
    # A 404 is an answer, not a passing failure: asked once.
    assert sum(path.startswith("/json-pushes") for path in server.requests) == 1


# -- files from raw-file -----------------------------------------------------------------------


def test_files_are_read_by_raw_file_at_the_revision_asked_for(
    repository: HgRepository, server: HgServer
) -> None:
    old = repository.hg("log", "--rev", "tip", "--template", "{node}")
    repository.commit({".taskcluster.yml": "version: 1\ntasks: [{}]\n"}, "new template")
    repository.push(date=PUSHED_AT + 60)

    files = hg_run(lambda hg: hg.read(server.url, old))

    assert files == {".cron.yml": HOURLY, ".taskcluster.yml": TEMPLATE_V1}
    assert sorted(path for path in server.requests if "/raw-file/" in path) == [
        f"/raw-file/{old}/.cron.yml",
        f"/raw-file/{old}/.taskcluster.yml",
    ]


def test_a_missing_file_is_none_as_git_reports_it(
    repository: HgRepository, server: HgServer
) -> None:
    repository.commit({".cron.yml": None}, "no more cron")
    repository.push(date=PUSHED_AT + 60)

    snapshot = hg_run(lambda hg: hg.snapshot(server.url, "default"))

    assert snapshot.files == {".cron.yml": None, ".taskcluster.yml": TEMPLATE_V1}


def test_a_revision_the_server_does_not_know_fails_rather_than_reading_as_no_files(
    server: HgServer,
) -> None:
    unknown = "0123456789" * 4
    with pytest.raises(SourceError) as raised:
        hg_run(lambda hg: hg.read(server.url, unknown))
    message = str(raised.value)
    assert f"at revision {unknown}" in message
    assert "raw-file answered HTTP 404" in message


def test_a_file_that_is_not_text_fails_naming_it(
    repository: HgRepository, server: HgServer
) -> None:
    repository.commit({".cron.yml": b"jobs:\x00\xff"}, "binary")
    repository.push(date=PUSHED_AT + 60)
    with pytest.raises(SourceError, match=r"\.cron\.yml at revision [0-9a-f]{40} of .* binary"):
        hg_run(lambda hg: hg.snapshot(server.url, "default"))


# -- retries -----------------------------------------------------------------------------------


def test_a_transient_5xx_is_retried(repository: HgRepository, server: HgServer) -> None:
    server.faults.count, server.faults.status = 2, 503
    snapshot = hg_run(lambda hg: hg.snapshot(server.url, "default"), attempts=3)
    assert snapshot.push == Pushed("1", PUSHED_AT, "ffxbld")
    # Two 503s, then the pushlog's answer, then the two files.
    assert len(server.requests) == 5


def test_a_lasting_5xx_fails_after_every_attempt_without_credentials(
    server: HgServer,
) -> None:
    server.faults.count, server.faults.status = 100, 502
    token = "s3cr3t-t0ken-value"
    url = server.url.replace("http://", f"http://bot:{token}@")
    with pytest.raises(SourceError) as raised:
        hg_run(lambda hg: hg.snapshot(url, "default"), attempts=3)
    message = str(raised.value)
    assert "could not read the pushlog of" in message
    assert "(3 attempts): json-pushes answered HTTP 502" in message
    assert token not in message
    assert len(server.requests) == 3


def test_an_unchanged_head_costs_one_request(server: HgServer) -> None:
    async def twice(hg: HgSource) -> dict[str, int]:
        await hg.snapshot(server.url, "default")
        await hg.snapshot(server.url, "default")
        return dict(hg.http.requests)

    assert hg_run(twice) == {"json-pushes": 2, "raw-file": 2}


# -- json-pushes answers that are not the documented format ------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>", "not JSON"),
        (b'{"lastpushid": 1}', "no `pushes` object"),
        (b'{"pushes": {}}', "no push introduced the branch's head"),
        (b'{"pushes": {"x": {}}}', "push ids that are not numbers"),
        (b'{"pushes": {"4": {"changesets": [], "date": 1, "user": "u"}}}', "lists no changesets"),
        (b'{"pushes": {"4": {"changesets": ["abc"], "date": 1, "user": "u"}}}', "not a 40-digit"),
        (
            b'{"pushes": {"4": {"changesets": ["' + b"a" * 40 + b'"], "date": "x", "user": "u"}}}',
            "no date",
        ),
    ],
)
def test_a_pushlog_answer_not_in_the_documented_format_says_what_is_wrong(
    body: bytes, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        latest_push(body)


def test_the_latest_push_of_several_counts_and_full_answers_are_read() -> None:
    node, older = "b" * 40, "a" * 40
    body = (
        b'{"lastpushid": 12, "pushes": {'
        b'"9": {"changesets": ["' + older.encode() + b'"], "date": 100, "user": "a"},'
        b'"12": {"changesets": [{"node": "' + node.encode() + b'"}], "date": 200, "user": "b"}}}'
    )
    assert latest_push(body) == (node, Pushed("12", 200, "b"))


# -- the configuration -------------------------------------------------------------------------


def hg_config(repository: str, extra: str = "") -> str:
    return (
        textwrap.dedent(
            f"""\
        taskcluster:
          root-url: https://tc.example.com
        projects:
          - name: comm-central
            repository: {repository}
            trust-domain: comm
            repository-type: hg
        """
        )
        + extra
    )


def test_an_hg_project_reads_its_default_branch_over_https() -> None:
    config = load_config(hg_config("https://hg.mozilla.org/comm-central"), "service.yml", {})
    [comm] = config.projects
    assert (comm.repository_type, comm.branch) == ("hg", "default")


@pytest.mark.parametrize(
    ("url", "fetch_from"),
    [
        ("https://hg.mozilla.org/comm-central", "http://127.0.0.1:8000/comm-central"),
        ("https://hg.mozilla.org/comm-central", "http://localhost:8000/"),
    ],
)
def test_plain_http_is_read_from_this_machine_only(url: str, fetch_from: str) -> None:
    config = load_config(hg_config(url, f"    fetch-from: {fetch_from}\n"), "service.yml", {})
    assert config.projects[0].git_url == fetch_from


@pytest.mark.parametrize(
    ("url", "extra", "key"),
    [
        ("http://hg.example.com/comm-central", "", "repository"),
        ("ssh://hg.mozilla.org/comm-central", "", "repository"),
        ("https://hg.mozilla.org/comm-central", "    fetch-from: file:///srv/comm\n", "fetch-from"),
    ],
)
def test_an_hg_url_read_without_https_is_refused_naming_the_place(
    url: str, extra: str, key: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(hg_config(url, extra), "service.yml", {})
    [problem] = [str(d) for d in raised.value.diagnostics]
    line = 5 if key == "repository" else 8
    assert problem.startswith(f"service.yml:{line}:17: error: project `comm-central`: {key} `")
    assert "is not an https:// URL" in problem


# -- the corpus's comm-central, fired with a real push -----------------------------------------


@pytest.fixture
def comm_central(emulator: Emulator, tmp_path: Path) -> Iterator[tuple[Config, str]]:
    """The corpus's comm-central .cron.yml in a Mercurial repository whose second push (by
    someone, at PUSHED_AT) is its head, served; the configuration of its project, and that
    head."""
    repository = HgRepository(
        tmp_path / "comm-central",
        {
            ".cron.yml": (CORPUS / "cron" / "mozilla__releases-comm-central.cron.yml").read_text(),
            ".taskcluster.yml": COMM_TEMPLATE,
        },
    )
    repository.push(date=PUSHED_AT - 86400, user="ffxbld")
    repository.commit({"mail/config/version.txt": "150.0a1\n"}, "Bug 1 - bump")
    [tip] = repository.push(date=PUSHED_AT, user="thunderbird@example.com").changesets[-1:]
    with served(repository) as server:
        comm = Project(
            name="comm-central",
            repository="https://hg.mozilla.org/comm-central",
            fetch_from=server.url,
            repository_type="hg",
            branch="default",
            trust_domain="comm",
            level=3,
        )
        yield make_config(emulator, tmp_path, comm), tip


def assert_fired_with_the_push(definition: dict[str, Any], tip: str) -> None:
    assert definition["routes"][0] == f"tc-treeherder.v2.comm-central.{tip}.2"
    command = definition["payload"]["command"][2]
    assert f"--pushlog-id='2' --pushdate='{PUSHED_AT}'" in command
    assert "--repository-type='hg'" in command
    assert definition["payload"]["env"]["COMM_HEAD_REV"] == tip
    # build-decision's cron context: the owner is cron, whoever pushed.
    assert definition["metadata"]["owner"] == "cron@noreply.mozilla.org"


def test_comm_central_corpus_jobs_fire_with_the_real_push(
    emulator: Emulator, comm_central: tuple[Config, str]
) -> None:
    config, tip = comm_central
    slot = DAY.replace(hour=11)
    [result] = tick(config, emulator, slot)

    assert result.error is None
    fired = {f.job: f.state for f in result.fires}
    assert fired == {"nightly-desktop": FireState.CREATED, "searchfox-index": FireState.CREATED}
    assert created_task_ids(emulator) == sorted(
        decision_task_id(emulator.root_url, "comm-central", job, slot) for job in fired
    )
    for task in emulator.tasks():
        assert_fired_with_the_push(task.definition, tip)
    assert {record.revision for record in fires(config)} == {tip}


def test_a_hook_only_comm_central_job_fired_by_hand_has_the_real_push(
    emulator: Emulator, comm_central: tuple[Config, str]
) -> None:
    config, tip = comm_central
    emulator.clock.set(DAY.replace(hour=9, minute=7), frozen=True)
    fired = run(config, emulator, lambda engine: engine.fire_now("comm-central", "nightly-linux"))
    assert (fired.state, fired.error) == (FireState.CREATED, None)
    [task] = emulator.tasks()
    assert task.task_id == fired.task_id
    assert_fired_with_the_push(task.definition, tip)


def test_missing_files_at_the_head_are_reported_as_for_git(
    emulator: Emulator, tmp_path: Path
) -> None:
    repository = HgRepository(tmp_path / "bare", {".cron.yml": HOURLY})
    repository.push(date=PUSHED_AT)
    empty = HgRepository(tmp_path / "empty", {"README": "no cron here\n"})
    empty.push(date=PUSHED_AT)
    with served(repository) as server, served(empty) as empty_server:
        projects = [
            Project(
                name=name,
                repository=f"https://hg.example.com/{name}",
                fetch_from=url,
                repository_type="hg",
                branch="default",
                trust_domain="tcs",
            )
            for name, url in (("bare", server.url), ("empty", empty_server.url))
        ]
        config = make_config(emulator, tmp_path, *projects)
        bare, nothing = tick(config, emulator, DAY.replace(hour=10))

    # No .taskcluster.yml: the decision task cannot be made, and the fire says why.
    [fire] = bare.fires
    assert fire.state is FireState.FAILED
    assert fire.error is not None
    assert fire.error.startswith(f"bare has no .taskcluster.yml at {bare.revision}")
    # No .cron.yml: no jobs, as build-decision reads it; the slot is evaluated all the same.
    assert (nothing.error, nothing.fires) == (None, ())
    assert nothing.revision == empty.hg("log", "--rev", "tip", "--template", "{node}")
