"""Source: branch heads and files read with real git from repositories the tests create.

Every repository here is made with `git init` and served by a `file://` URL; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import socket
import subprocess
import threading
from collections import Counter
from collections.abc import Mapping
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from scheduler.common.redaction import redact
from scheduler.git.parsing import check_paths
from scheduler.git.process import SourceError, scrub
from scheduler.git.repository import cache_name
from scheduler.git.source import MAX_FILE_SIZE, GitSource, Snapshot
from tests.support.repos import Repository
from tests.support.waiting import wait_until

CRON = "jobs:\n  - name: nightly\n    job: {type: decision-task, treeherder-symbol: N}\n"
TEMPLATE = "version: 1\ntasks: []\n"


def git_environment() -> dict[str, str]:
    """The tests' own git, unaffected by the config of whoever runs them."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("GIT_")}
    environment.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, LC_ALL="C")
    return environment


class Upstream:
    """A repository with a working tree, changed by committing files into it."""

    def __init__(self, path: Path, branch: str = "main") -> None:
        self.path = path
        self.branch = branch
        self.git("init", "--quiet", f"--initial-branch={branch}", str(path), cwd=path.parent)

    @property
    def url(self) -> str:
        return self.path.as_uri()

    def git(self, *arguments: str, cwd: Path | None = None) -> str:
        result = subprocess.run(
            ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *arguments],
            cwd=cwd or self.path,
            env=git_environment(),
            check=True,
            capture_output=True,
        )
        return result.stdout.decode().strip()

    def commit(self, files: Mapping[str, str | bytes | None], message: str = "change") -> str:
        """Write (or, for None, delete) `files`, commit them and return the new revision."""
        for name, content in files.items():
            target = self.path / name
            if content is None:
                target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
        self.git("add", "--all")
        self.git("commit", "--quiet", "--allow-empty", "--message", message)
        return self.git("rev-parse", "HEAD")

    def move_branch(self, revision: str) -> None:
        """What a force-push does to the branch."""
        self.git("reset", "--quiet", "--hard", revision)

    def forget_unreachable(self) -> None:
        """Delete commits no branch reaches any more, as a host eventually does."""
        self.git("reflog", "expire", "--expire=now", "--all")
        self.git("gc", "--quiet", "--prune=now")


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    (tmp_path / "upstream").mkdir()
    return Upstream(tmp_path / "upstream" / "project")


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def source(cache_dir: Path) -> GitSource:
    # No waiting between attempts: the retries are counted, not timed.
    return GitSource(cache_dir, attempts=3, max_wait=0.0, timeout=30.0)


def test_head_is_the_tip_of_the_branch(upstream: Upstream, source: GitSource) -> None:
    upstream.commit({".cron.yml": CRON})
    tip = upstream.commit({".cron.yml": CRON + "# two\n"})
    upstream.git("branch", "release", "HEAD~1")

    assert asyncio.run(source.head(upstream.url, "main")) == tip
    assert asyncio.run(source.head(upstream.url, "release")) == upstream.git("rev-parse", "HEAD~1")
    assert source.commands == Counter({"ls-remote": 2})


def test_reads_files_at_the_revision_asked_for(upstream: Upstream, source: GitSource) -> None:
    first = upstream.commit({".cron.yml": CRON, "taskcluster/config.yml": "trust-domain: a\n"})
    second = upstream.commit({".cron.yml": "jobs: []\n", "taskcluster/config.yml": None})
    paths = [".cron.yml", "taskcluster/config.yml"]

    async def both() -> tuple[dict[str, str | None], dict[str, str | None]]:
        return await source.read(upstream.url, second, paths), await source.read(
            upstream.url, first, paths
        )

    at_second, at_first = asyncio.run(both())

    assert at_second == {".cron.yml": "jobs: []\n", "taskcluster/config.yml": None}
    assert at_first == {".cron.yml": CRON, "taskcluster/config.yml": "trust-domain: a\n"}


def test_a_missing_cron_file_is_none_beside_a_present_template(
    upstream: Upstream, source: GitSource
) -> None:
    revision = upstream.commit({".taskcluster.yml": TEMPLATE})

    snapshot = asyncio.run(source.snapshot(upstream.url, "main"))

    assert snapshot.revision == revision
    assert snapshot.branch == "main"
    assert snapshot.url == upstream.url
    assert dict(snapshot.files) == {".cron.yml": None, ".taskcluster.yml": TEMPLATE}


def test_a_missing_branch_fails_at_once_naming_it(upstream: Upstream, source: GitSource) -> None:
    upstream.commit({".cron.yml": CRON})

    with pytest.raises(SourceError, match="no branch 'releases/v9'") as raised:
        asyncio.run(source.snapshot(upstream.url, "releases/v9"))

    assert "refs/heads/releases/v9" in str(raised.value)
    # The remote answered: a missing branch is not worth another attempt.
    assert source.commands == Counter({"ls-remote": 1})


def test_a_branch_whose_name_only_ends_like_the_one_asked_for_is_not_it(
    upstream: Upstream, source: GitSource
) -> None:
    # ls-remote patterns match ref tails: `refs/heads/main` also matches this ref.
    upstream.commit({".cron.yml": CRON}, message="first")
    upstream.git("update-ref", "refs/heads/x/refs/heads/main", "HEAD")
    upstream.git("branch", "--quiet", "-m", "main", "other")

    with pytest.raises(SourceError, match="no branch 'main'"):
        asyncio.run(source.head(upstream.url, "main"))


def test_an_unreachable_repository_fails_after_every_attempt(tmp_path: Path) -> None:
    source = GitSource(tmp_path / "cache", attempts=3, max_wait=0.0)

    with pytest.raises(SourceError) as raised:
        asyncio.run(source.snapshot("file:///nonexistent/project.git", "main"))

    message = str(raised.value)
    assert "file:///nonexistent/project.git" in message
    assert "3 attempts" in message
    assert "does not appear to be a git repository" in message
    assert source.commands == Counter({"ls-remote": 3})


def test_credentials_in_a_url_never_reach_messages_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing listens on port 9 (discard): the connection is refused at once.
    url = "https://user:secret@127.0.0.1:9/repo.git"
    source = GitSource(tmp_path / "cache", attempts=2, max_wait=0.0)
    caplog.set_level(logging.DEBUG, logger="scheduler.git")

    with pytest.raises(SourceError) as raised:
        asyncio.run(source.snapshot(url, "main"))

    message = str(raised.value)
    assert "secret" not in message
    assert "https://***@127.0.0.1:9/repo.git" in message
    assert "2 attempts" in message
    assert source.commands == Counter({"ls-remote": 2})
    assert "retrying" in caplog.text
    assert "secret" not in caplog.text
    assert "secret" not in repr(Snapshot(url, "main", "0" * 40, {}))


def test_scrub_removes_credentials_however_git_quotes_them() -> None:
    url = "https://bot:p%40ss@host.example/org/repo.git"
    said = "fatal: unable to access 'https://bot:p@ss@host.example/org/repo.git/': p@ss p%40ss"

    scrubbed = scrub(said, url)

    assert "p@ss" not in scrubbed
    assert "p%40ss" not in scrubbed
    assert "host.example/org/repo.git" in scrubbed
    assert redact("https://ghp_token@github.com/o/r") == "https://***@github.com/o/r"
    assert redact("git@github.com:o/r.git") == "git@github.com:o/r.git"


def test_cache_directories_are_named_by_a_hash_not_by_the_url() -> None:
    with_token = cache_name("https://user:secret@host.example/org/gecko.git")

    assert with_token == cache_name("https://host.example/org/gecko.git")
    assert with_token.startswith("gecko-")
    assert "secret" not in with_token
    assert "/" not in with_token
    assert cache_name("https://host.example/org/gecko.git") != cache_name(
        "https://host.example/other/gecko.git"
    )


def test_an_idle_tick_costs_one_ls_remote_and_no_fetch(
    upstream: Upstream, source: GitSource
) -> None:
    upstream.commit({".cron.yml": CRON, ".taskcluster.yml": TEMPLATE})
    first = asyncio.run(source.snapshot(upstream.url, "main"))
    assert source.commands["fetch"] == 1
    source.commands.clear()

    again = asyncio.run(source.snapshot(upstream.url, "main"))

    assert again == first
    assert source.commands == Counter({"ls-remote": 1})


def test_a_new_commit_gives_a_new_revision_and_its_content(
    upstream: Upstream, source: GitSource
) -> None:
    old = upstream.commit({".cron.yml": CRON, ".taskcluster.yml": TEMPLATE})
    assert asyncio.run(source.snapshot(upstream.url, "main")).revision == old
    new = upstream.commit({".cron.yml": "jobs: []\n"})
    source.commands.clear()

    snapshot = asyncio.run(source.snapshot(upstream.url, "main"))

    assert snapshot.revision == new != old
    assert dict(snapshot.files) == {".cron.yml": "jobs: []\n", ".taskcluster.yml": TEMPLATE}
    assert source.commands["ls-remote"] == 1
    assert source.commands["fetch"] == 1


def test_a_branch_force_pushed_to_an_older_commit(
    upstream: Upstream, source: GitSource, cache_dir: Path
) -> None:
    older = upstream.commit({".cron.yml": CRON})
    upstream.commit({".cron.yml": "jobs: []\n"})
    asyncio.run(source.snapshot(upstream.url, "main"))
    upstream.move_branch(older)

    snapshot = asyncio.run(source.snapshot(upstream.url, "main"))

    assert snapshot.revision == older
    assert snapshot.files[".cron.yml"] == CRON
    # A restarted service finds both revisions in the cache directory: no fetch.
    restarted = GitSource(cache_dir, attempts=1, max_wait=0.0)
    assert asyncio.run(restarted.snapshot(upstream.url, "main")) == snapshot
    assert restarted.commands["fetch"] == 0


class MovingUpstreamSource(GitSource):
    """Moves the branch (and deletes the commit it listed) between ls-remote and fetch."""

    def __init__(self, cache_dir: Path, upstream: Upstream, files: Mapping[str, str]) -> None:
        super().__init__(cache_dir, attempts=2, max_wait=0.0)
        self.upstream = upstream
        self.files = files
        self.moved_to: str | None = None

    async def head(self, url: str, branch: str) -> str:
        listed = await super().head(url, branch)
        if self.moved_to is None:
            self.upstream.move_branch("HEAD~1")
            self.moved_to = self.upstream.commit(self.files, message="raced")
            self.upstream.forget_unreachable()
        return listed


def test_a_branch_moved_while_fetching_gives_files_of_the_revision_reported(
    upstream: Upstream, cache_dir: Path
) -> None:
    first = upstream.commit({".cron.yml": CRON})
    listed = upstream.commit({".cron.yml": "jobs: []\n"})
    source = MovingUpstreamSource(cache_dir, upstream, {".cron.yml": "# raced\njobs: []\n"})

    snapshot = asyncio.run(source.snapshot(upstream.url, "main"))

    assert snapshot.revision == source.moved_to != listed
    assert snapshot.files[".cron.yml"] == "# raced\njobs: []\n"
    # The listed commit is gone, so the branch was fetched instead.
    assert source.commands["fetch"] == 2
    # Without a branch to fall back on, a revision is still fetched by id.
    assert asyncio.run(source.read(upstream.url, first, [".cron.yml"])) == {".cron.yml": CRON}
    with pytest.raises(SourceError, match="no longer available"):
        asyncio.run(source.read(upstream.url, listed, [".cron.yml"], branch="main"))


def test_an_unknown_revision_fails_after_every_attempt(
    upstream: Upstream, source: GitSource
) -> None:
    upstream.commit({".cron.yml": CRON})

    with pytest.raises(SourceError, match=r"could not fetch revision 0{40}.*3 attempts"):
        asyncio.run(source.read(upstream.url, "0" * 40, [".cron.yml"]))

    assert source.commands["fetch"] == 3


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"jobs: []\n# caf\xe9\n", r"is not UTF-8 text \(byte 0xe9 at offset 14\)"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        (b"#" * (MAX_FILE_SIZE + 1), f"is {MAX_FILE_SIZE + 1} bytes"),
    ],
    ids=["latin-1", "binary", "oversized"],
)
def test_a_file_that_is_not_readable_text_fails_naming_it(
    upstream: Upstream, source: GitSource, content: bytes, problem: str
) -> None:
    revision = upstream.commit({".cron.yml": content, ".taskcluster.yml": TEMPLATE})

    with pytest.raises(SourceError, match=problem) as raised:
        asyncio.run(source.snapshot(upstream.url, "main"))

    assert f".cron.yml at revision {revision}" in str(raised.value)


def test_a_file_of_the_largest_size_read_is_read(upstream: Upstream, source: GitSource) -> None:
    upstream.commit({".cron.yml": "#" * MAX_FILE_SIZE})

    files = asyncio.run(source.snapshot(upstream.url, "main")).files

    assert files[".cron.yml"] == "#" * MAX_FILE_SIZE


def test_a_directory_or_link_in_place_of_a_file_fails(
    upstream: Upstream, source: GitSource
) -> None:
    upstream.commit({".cron.yml/jobs.yml": CRON})
    with pytest.raises(SourceError, match=r"\.cron\.yml at revision \w+ of .* is a directory"):
        asyncio.run(source.snapshot(upstream.url, "main"))

    upstream.git("rm", "--quiet", "-r", ".cron.yml")
    (upstream.path / "cron.yml").write_text(CRON)
    (upstream.path / ".cron.yml").symlink_to("cron.yml")
    upstream.commit({})
    with pytest.raises(SourceError, match="is a symbolic link"):
        asyncio.run(source.snapshot(upstream.url, "main"))


@pytest.mark.parametrize("branch", ["", "-main", "a..b", "main.lock", "x y", "a:b", "@{1}"])
def test_branch_names_git_would_refuse_are_refused_before_running_it(
    source: GitSource, branch: str
) -> None:
    with pytest.raises(SourceError, match="not a valid git branch name"):
        asyncio.run(source.head("file:///nonexistent", branch))

    assert source.commands == Counter()


def test_paths_must_be_relative_and_distinct() -> None:
    assert check_paths([".cron.yml", ".cron.yml", "a/b.yml"]) == (".cron.yml", "a/b.yml")
    for bad in (["/etc/passwd"], ["../x"], ["a//b"], ["a", "a/b"]):
        with pytest.raises(ValueError, match="path"):
            check_paths(bad)


def test_a_git_that_does_not_answer_in_time_is_stopped(tmp_path: Path) -> None:
    # A host that takes the connection and never answers: the kernel accepts it on our behalf.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        source = GitSource(tmp_path / "cache", attempts=2, max_wait=0.0, timeout=0.25)

        with pytest.raises(SourceError) as raised:
            asyncio.run(source.head(f"http://127.0.0.1:{port}/repo.git", "main"))

    assert "(2 attempts): git ls-remote did not finish within 0.25 s" in str(raised.value)
    assert source.commands == Counter({"ls-remote": 2})


def processes_mentioning(text: str) -> list[str]:
    """Command lines of running processes that contain `text` (Linux /proc)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        line = " ".join(word.decode(errors="replace") for word in words)
        if text in line:
            found.append(line)
    return found


def test_a_cancelled_read_leaves_no_git_running(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/cancelled.git"
        source = GitSource(tmp_path / "cache", attempts=1, timeout=30.0)

        async def give_up_soon() -> str:
            return await asyncio.wait_for(source.head(url, "main"), timeout=0.2)

        with pytest.raises(TimeoutError):
            asyncio.run(give_up_soon())

        assert source.commands == Counter({"ls-remote": 1})
        # SIGKILL went to git's whole process group; its helpers die as soon as the kernel
        # schedules them, which on a loaded machine is a moment after git itself was reaped.
        wait_until(lambda: not processes_mentioning(url))
        assert processes_mentioning(url) == []


def test_branches_whose_names_nest_share_a_cache(upstream: Upstream, source: GitSource) -> None:
    # Git cannot hold branches `a` and `a/b` at once, but one can replace the other.
    upstream.commit({".cron.yml": CRON})
    upstream.git("branch", "--quiet", "-m", "main", "release")
    first = asyncio.run(source.snapshot(upstream.url, "release"))
    upstream.git("branch", "--quiet", "-m", "release", "release/v2")
    revision = upstream.commit({".cron.yml": "jobs: []\n"})

    second = asyncio.run(source.snapshot(upstream.url, "release/v2"))

    assert second.revision == revision != first.revision
    assert second.files[".cron.yml"] == "jobs: []\n"
    # Each fetch landed on its own ref at the first attempt.
    assert source.commands["fetch"] == 2


def test_locks_left_by_a_stopped_git_are_cleared(
    upstream: Upstream, source: GitSource, cache_dir: Path
) -> None:
    upstream.commit({".cron.yml": CRON})
    asyncio.run(source.snapshot(upstream.url, "main"))
    repository = cache_dir / cache_name(upstream.url)
    (repository / "shallow.lock").write_text("")
    (repository / "refs" / "tc-scheduler" / "heads" / "main.lock").write_text("")
    new = upstream.commit({".cron.yml": "jobs: []\n"})

    snapshot = asyncio.run(source.snapshot(upstream.url, "main"))

    assert snapshot.revision == new
    assert not (repository / "shallow.lock").exists()


def test_twenty_projects_at_once(tmp_path: Path, source: GitSource) -> None:
    projects = []
    for number in range(20):
        (tmp_path / "upstream").mkdir(exist_ok=True)
        project = Upstream(tmp_path / "upstream" / f"project-{number}")
        cron = f"# project {number}\n{CRON}"
        projects.append((project, project.commit({".cron.yml": cron}), cron))

    async def all_snapshots() -> list[Snapshot]:
        return await asyncio.gather(
            *(source.snapshot(project.url, "main") for project, _, _ in projects)
        )

    snapshots = asyncio.run(all_snapshots())

    for snapshot, (project, revision, cron) in zip(snapshots, projects, strict=True):
        assert (snapshot.url, snapshot.revision) == (project.url, revision)
        assert snapshot.files == {".cron.yml": cron, ".taskcluster.yml": None}
    assert source.commands["fetch"] == 20
    assert len(list((tmp_path / "cache").glob("project-*.git"))) == 20


def test_two_instances_sharing_a_cache_directory(tmp_path: Path, cache_dir: Path) -> None:
    projects = []
    for number in range(5):
        (tmp_path / "upstream").mkdir(exist_ok=True)
        project = Upstream(tmp_path / "upstream" / f"shared-{number}")
        projects.append((project, project.commit({".cron.yml": f"# {number}\n{CRON}"})))
    sources = [GitSource(cache_dir, attempts=1, max_wait=0.0) for _ in range(2)]
    start = threading.Barrier(len(sources))
    results: dict[int, list[Snapshot] | BaseException] = {}

    async def every_project(source: GitSource) -> list[Snapshot]:
        return await asyncio.gather(
            *(source.snapshot(project.url, "main") for project, _ in projects)
        )

    def service(index: int) -> None:
        start.wait()
        try:
            results[index] = asyncio.run(every_project(sources[index]))
        except BaseException as error:
            results[index] = error

    threads = [threading.Thread(target=service, args=(index,)) for index in range(len(sources))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    expected = [revision for _, revision in projects]
    for index in range(len(sources)):
        outcome = results[index]
        assert isinstance(outcome, list), outcome
        assert [snapshot.revision for snapshot in outcome] == expected
    # Whichever instance fetched a revision first, the other found it in the shared cache.
    assert sum(source.commands["fetch"] for source in sources) == len(projects)


# -- a cache shared by processes ------------------------------------------------------------------

# The revisions' files, as (url, revision, {path: content or None}).
Plan = list[tuple[str, str, dict[str, str | None]]]


def _commit_object_there(repository: Path, revision: str) -> bool:
    if not (repository / "HEAD").exists():
        return False
    check = subprocess.run(
        ["git", f"--git-dir={repository}", "cat-file", "-e", f"{revision}^{{commit}}"],
        env=git_environment(),
        capture_output=True,
        check=False,
    )
    return check.returncode == 0


def read_in_turns(
    turn: int, cache_dir: Path, plan: Plan, start: Barrier, results: Queue[list[str]]
) -> None:
    """One process sharing the cache: it fetches every n-th revision itself; for the others it
    waits until their commit object appears (another process is fetching them) and reads them
    at once, which is when a fetch may have written the commit but not yet its files."""
    source = GitSource(cache_dir, attempts=3, max_wait=0.0)
    problems = []
    start.wait()
    for number, (url, revision, expected) in enumerate(plan):
        if number % start.parties != turn:
            repository = cache_dir / cache_name(url)
            for _ in range(5000):  # polls, each a git process; bounded in case the fetch failed
                if _commit_object_there(repository, revision):
                    break
        try:
            files = asyncio.run(source.read(url, revision, list(expected)))
        except SourceError as error:
            problems.append(f"{revision}: {error}")
            continue
        if files != expected:
            problems.append(f"{revision}: read {files}, not {expected}")
    results.put(problems)


def test_processes_sharing_a_cache_read_whole_revisions_while_others_fetch(
    tmp_path: Path, cache_dir: Path
) -> None:
    """The service, the command line and replicas may share a state directory: a revision read
    while another process fetches it into the same cache is read whole, or waited for, never
    half (git writes a commit before its trees and files: `ls-tree` then says `BAD`)."""
    repository = Repository(tmp_path / "shared")
    plan: Plan = []
    for number in range(10):
        # Many files, so that writing them out takes a while after the commit.
        files: dict[str, str | bytes | None] = {
            f"src/d{index % 5}/f{index}.txt": f"{number}.{index}\n".encode() * 4000
            for index in range(40)
        }
        cron, nested = f"# revision {number}\n{CRON}", f"level: {number}\n"
        files |= {".cron.yml": cron, "ci/deep/settings.yml": nested}
        revision = repository.commit(files)
        expected = {".cron.yml": cron, "ci/deep/settings.yml": nested, ".taskcluster.yml": None}
        plan.append((repository.url, revision, expected))
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(4)
    results: Queue[list[str]] = context.Queue()
    processes = [
        context.Process(target=read_in_turns, args=(turn, cache_dir, plan, start, results))
        for turn in range(start.parties)
    ]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=300) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=60)
    assert [process.exitcode for process in processes] == [0] * len(processes)
    assert [problem for problems in outcomes for problem in problems] == []


def _loose_object(repository: Path, oid: str) -> Path:
    return repository / "objects" / oid[:2] / oid[2:]


@pytest.mark.parametrize("missing", ["file", "directory"])
def test_a_revision_a_stopped_fetch_left_half_written_is_fetched_again(
    upstream: Upstream, cache_dir: Path, missing: str
) -> None:
    """A fetch killed after writing the commit but before some of its objects leaves the commit
    there; the next read finds what is missing and fetches the revision again."""
    revision = upstream.commit({".cron.yml": CRON, "ci/settings.yml": "level: 3\n"})
    paths = [".cron.yml", "ci/settings.yml"]
    asyncio.run(GitSource(cache_dir).read(upstream.url, revision, paths))
    repository = cache_dir / cache_name(upstream.url)
    gone = upstream.git("rev-parse", f"{revision}:{'.cron.yml' if missing == 'file' else 'ci'}")
    _loose_object(repository, gone).unlink()
    source = GitSource(cache_dir, attempts=1, max_wait=0.0)

    files = asyncio.run(source.read(upstream.url, revision, paths))

    assert files == {".cron.yml": CRON, "ci/settings.yml": "level: 3\n"}
    assert source.commands["fetch"] == 1
    assert _loose_object(repository, gone).exists()


def test_a_half_written_revision_the_host_no_longer_has_fails_naming_it(
    upstream: Upstream, cache_dir: Path
) -> None:
    base = upstream.commit({"README": "a project\n"})
    revision = upstream.commit({".cron.yml": CRON})
    asyncio.run(GitSource(cache_dir).read(upstream.url, revision))
    repository = cache_dir / cache_name(upstream.url)
    _loose_object(repository, upstream.git("rev-parse", f"{revision}:.cron.yml")).unlink()
    upstream.move_branch(base)
    upstream.forget_unreachable()  # the host no longer has the revision either

    with pytest.raises(SourceError) as raised:
        asyncio.run(GitSource(cache_dir, attempts=1, max_wait=0.0).read(upstream.url, revision))

    assert f"could not fetch revision {revision}" in str(raised.value)
    assert "the revision still exists" in str(raised.value)
