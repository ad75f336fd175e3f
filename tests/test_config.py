"""The service configuration: validation with positions, resolution, environment and secrets."""

from __future__ import annotations

import json
import secrets
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from scheduler.cli import main
from scheduler.common.redaction import redact
from scheduler.config.errors import ConfigError
from scheduler.config.loading import embedded_default, load_config, read_config
from scheduler.config.model import DEFAULT_CONCURRENCY, CatchUp
from scheduler.durations import format_duration, parse_duration

MINIMAL = """\
taskcluster:
  root-url: https://tc.example.com
projects:
  - name: mozilla-central
    repository: https://hg.mozilla.org/mozilla-central
    trust-domain: gecko
"""


def load(text: str, environ: dict[str, str] | None = None, base_dir: Path | None = None):
    return load_config(textwrap.dedent(text), "service.yml", environ or {}, base_dir=base_dir)


def errors(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load(text, environ)
    return [str(d) for d in raised.value.diagnostics]


def test_minimal_configuration_resolves_with_defaults(tmp_path: Path) -> None:
    config = load(MINIMAL, base_dir=tmp_path)
    assert config.root_url == "https://tc.example.com"
    assert config.credentials is None
    assert config.dry_run is True  # auto: no credentials
    assert config.concurrency == DEFAULT_CONCURRENCY == 50
    assert config.ledger_url == f"sqlite:///{tmp_path / '.tc-scheduler' / 'ledger.db'}"
    [project] = config.projects
    assert (project.name, project.branch, project.level, project.repository_type) == (
        "mozilla-central",
        "main",
        1,
        "git",
    )
    assert project.catch_up == CatchUp("latest", timedelta(hours=6), 96)


def test_environment_wins_and_turns_dry_run_off() -> None:
    environ = {
        "TASKCLUSTER_ROOT_URL": "https://firefox-ci-tc.services.mozilla.com/",
        "TASKCLUSTER_CLIENT_ID": "project/releng/scheduler",
        "TASKCLUSTER_ACCESS_TOKEN": "s3cr3t-token",
    }
    config = load(MINIMAL, environ)
    assert config.root_url == "https://firefox-ci-tc.services.mozilla.com"
    assert config.credentials is not None
    assert config.credentials.client_id == "project/releng/scheduler"
    assert config.dry_run is False
    assert "s3cr3t-token" not in repr(config)
    assert "s3cr3t-token" not in json.dumps(config.masked())


def test_credentials_file(tmp_path: Path) -> None:
    (tmp_path / "creds.json").write_text(json.dumps({"clientId": "c", "accessToken": "t0ken"}))
    text = MINIMAL.replace("  root-url", "  credentials-file: creds.json\n  root-url")
    config = load(text, base_dir=tmp_path)
    assert config.credentials is not None
    assert config.credentials.as_options() == {"clientId": "c", "accessToken": "t0ken"}
    assert config.dry_run is False


def test_unreadable_credentials_file_is_positioned(tmp_path: Path) -> None:
    text = MINIMAL.replace("  root-url", "  credentials-file: missing.json\n  root-url")
    with pytest.raises(ConfigError) as raised:
        load(text, base_dir=tmp_path)
    [diagnostic] = raised.value.diagnostics
    assert diagnostic.line == 2
    assert "cannot read credentials file" in diagnostic.message


@pytest.mark.parametrize("key", ["access-token", "accessToken", "credentials"])
def test_secrets_in_the_file_are_refused(key: str) -> None:
    text = MINIMAL.replace("  root-url", f"  {key}: abc\n  root-url")
    [message] = errors(text)
    assert message.startswith("service.yml:2:3: error:")
    assert "never go in the configuration" in message
    assert "abc" not in message


def test_dry_run_false_without_credentials_is_an_error() -> None:
    [message] = errors(MINIMAL + "dry-run: false\n")
    assert "no Taskcluster credentials" in message


def test_missing_root_url_is_an_error() -> None:
    [message] = errors(
        MINIMAL.replace("  root-url: https://tc.example.com\n", "  {}\n").replace(
            "taskcluster:\n  {}\n", ""
        )
    )
    assert "TASKCLUSTER_ROOT_URL" in message


def test_schema_errors_say_what_to_write() -> None:
    text = """\
    taskcluster:
      root-url: https://tc.example.com
    concurrency: lots
    projects:
      - name: a
        repository: https://example.com/a
        trust-domain: x
        level: 4
        branhc: main
        catch-up:
          policy: sometimes
          max-lateness: six hours
      - repository: https://example.com/b
        trust-domain: x
    """
    messages = errors(text)
    assert any(
        m.startswith("service.yml:3:14:") and "concurrency must be a whole number" in m
        for m in messages
    )
    assert any(":8:" in m and "level must be 1, 2 or 3" in m for m in messages)
    assert any(":9:" in m and "did you mean `branch`?" in m for m in messages)
    assert any(":11:" in m and "policy must be latest" in m for m in messages)
    assert any(":12:" in m and "a duration like 6h" in m for m in messages)
    assert any(":13:" in m and "missing `name`" in m for m in messages)


def test_duplicate_project_names() -> None:
    text = MINIMAL + (
        "  - name: mozilla-central\n    repository: https://hg.mozilla.org/x\n"
        "    trust-domain: gecko\n"
    )
    [message] = errors(text)
    assert "configured twice (first at line 4)" in message


def test_per_job_catch_up_inherits_from_the_project() -> None:
    text = MINIMAL + textwrap.indent(
        "catch-up:\n  policy: all\n  max-slots: 8\n  jobs:\n    nightly: {policy: none}\n    hourly: {max-lateness: 1h}\n",
        "    ",
    )
    config = load("catch-up: {max-lateness: 12h}\n" + text)
    project = config.projects[0]
    assert project.catch_up == CatchUp("all", timedelta(hours=12), 8)
    assert project.catch_up_for("nightly") == CatchUp("none", timedelta(hours=12), 8)
    assert project.catch_up_for("hourly") == CatchUp("all", timedelta(hours=1), 8)
    assert project.catch_up_for("other") == project.catch_up


def test_yaml_errors_are_positioned() -> None:
    [message] = errors("projects: [\n")
    assert message.startswith("service.yml:")
    assert "error" in message


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        read_config(tmp_path / "nope.yml", {})


def test_embedded_default_is_valid(tmp_path: Path) -> None:
    config = load(embedded_default(tmp_path, "https://github.com/example/tc-scheduler"))
    [project] = config.projects
    # Tasks name the public URL (the queue refuses a file:// metadata.source); git reads the
    # clone itself.
    assert project.repository == "https://github.com/example/tc-scheduler"
    assert project.git_url == tmp_path.resolve().as_uri()
    assert project.authorized_scopes == ("assume:repo:github.com/example/tc-scheduler:cron:*",)
    assert config.dry_run is True
    assert config.ledger_url == f"sqlite:///{tmp_path / '.tc-scheduler' / 'ledger.db'}"
    # A clone without a hooks folder manages none.
    assert config.hooks_dir is None


def test_embedded_default_shows_the_repositorys_hooks_folder(tmp_path: Path) -> None:
    (tmp_path / "hooks").mkdir()
    config = load(embedded_default(tmp_path, "https://github.com/example/tc-scheduler"))
    assert config.hooks_dir == tmp_path / "hooks"


# -- hooks-dir -----------------------------------------------------------------------------


def test_hooks_dir_is_unset_by_default_and_relative_to_the_configuration(tmp_path: Path) -> None:
    assert load(MINIMAL, base_dir=tmp_path).hooks_dir is None
    (tmp_path / "etc" / "hooks").mkdir(parents=True)
    config_file = tmp_path / "etc" / "service.yml"
    config_file.write_text(MINIMAL + "hooks-dir: hooks\n")
    config = read_config(config_file, {})
    assert config.hooks_dir == tmp_path / "etc" / "hooks"
    assert config.masked()["hooks-dir"] == str(tmp_path / "etc" / "hooks")
    absolute = load(MINIMAL + f"hooks-dir: {tmp_path / 'etc' / 'hooks'}\n", base_dir=tmp_path)
    assert absolute.hooks_dir == tmp_path / "etc" / "hooks"


def test_a_hooks_dir_that_is_not_a_folder_names_the_setting_and_the_fix(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    for written, reason in (("nope", "there is no such folder"), ("a-file", "it is not a folder")):
        with pytest.raises(ConfigError) as raised:
            load(MINIMAL + f"hooks-dir: {written}\n", base_dir=tmp_path)
        [problem] = [str(d) for d in raised.value.diagnostics]
        assert problem == (
            f"service.yml:7:12: error: hooks-dir {tmp_path / written}: {reason}; create it, "
            f"correct the path (a relative one is read from {tmp_path}), or remove hooks-dir if "
            "this deployment manages no hooks"
        )


def test_a_hooks_dir_that_is_not_a_path_says_what_to_write(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load(MINIMAL + "hooks-dir: [hooks]\n", base_dir=tmp_path)
    [problem] = [str(d) for d in raised.value.diagnostics]
    assert problem.startswith("service.yml:7:12: error: hooks-dir")
    assert "the hooks folder's path, like hooks" in problem


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("6h", timedelta(hours=6)),
        ("90m", timedelta(minutes=90)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("30s", timedelta(seconds=30)),
    ],
)
def test_durations_round_trip(text: str, delta: timedelta) -> None:
    assert parse_duration(text) == delta
    assert parse_duration(format_duration(delta)) == delta


def test_masked_urls_hide_passwords_and_tokens() -> None:
    assert redact("postgresql+psycopg://user:pw@db:5432/x") == "postgresql+psycopg://***@db:5432/x"
    assert redact("https://x-access-token:ghs_abc@github.com/o/r") == "https://***@github.com/o/r"
    assert redact("https://ghp_token@github.com/o/r") == "https://***@github.com/o/r"
    assert redact("file:///srv/repo") == "file:///srv/repo"


def test_expiry_watch_defaults_and_overrides() -> None:
    config = load(MINIMAL)
    assert config.projects[0].expiry.threshold == timedelta(days=30)
    assert config.projects[0].expiry.action == "rebuild-cached-tasks"
    text = MINIMAL + textwrap.indent(
        "expiry:\n"
        "  namespaces: [gecko.cache.level-3]\n"
        "  task-groups: [{id: UrZyIb6TQQadkgi2J0ttYg, kinds: [toolchain]}]\n"
        "  threshold: 45d\n"
        "  action: rebuild-docker-images-and-toolchains\n"
        "  input: {force: true}\n"
        "  cooldown: 2h\n",
        "    ",
    )
    watch = load(text).projects[0].expiry
    assert watch.namespaces == ("gecko.cache.level-3",)
    assert watch.task_groups[0].task_group_id == "UrZyIb6TQQadkgi2J0ttYg"
    assert watch.task_groups[0].kinds == ("toolchain",)
    assert (watch.threshold, watch.cooldown) == (timedelta(days=45), timedelta(hours=2))
    assert watch.action_input == {"force": True}


def test_expiry_watch_errors_are_positioned() -> None:
    text = MINIMAL + "    expiry:\n      threshold: a month\n      task-groups: [{kinds: []}]\n"
    messages = errors(text)
    assert any(":8:18:" in m and "a duration like 6h" in m for m in messages), messages
    assert any(":9:21:" in m and "missing `id`" in m for m in messages), messages


def test_connections_cover_fires_and_expiry_scans() -> None:
    bare = "taskcluster: {root-url: https://tc.example.com}\nprojects: []\n"
    assert load(bare).connections == DEFAULT_CONCURRENCY
    text = MINIMAL + "    expiry: {concurrency: 80}\n"
    assert load(text).connections == 80


@pytest.mark.parametrize(("concurrency", "remote"), [(5, 32), (50, 50), (80, 80), (1000, 100)])
def test_remote_reads_have_as_many_connections_as_fires_within_bounds(
    concurrency: int, remote: int
) -> None:
    text = f"taskcluster: {{root-url: https://tc.example.com}}\nconcurrency: {concurrency}\n"
    assert load(text + "projects: []\n").remote_connections == remote


@pytest.mark.parametrize("off", ["off", "'off'", "false"])
def test_the_api_is_turned_off_by_a_bare_off_which_yaml_reads_as_false(off: str) -> None:
    text = f"taskcluster: {{root-url: https://tc.example.com}}\napi: {{listen: {off}}}\n"
    assert load(text + "projects: []\n").api.enabled is False


@pytest.mark.parametrize("listen", ["true", "nohost", "on"])
def test_an_api_listen_address_of_another_kind_is_refused(listen: str) -> None:
    text = f"taskcluster: {{root-url: https://tc.example.com}}\napi: {{listen: {listen}}}\n"
    [message] = errors(text + "projects: []\n")
    assert "listen must be host:port, like 127.0.0.1:8080, or off" in message


# -- scopes and the queue's limits ------------------------------------------------------------


@pytest.mark.parametrize(
    ("repository", "scopes"),
    [
        ("https://github.com/mozilla-mobile/fenix", "github.com/mozilla-mobile/fenix"),
        ("https://github.com/mozilla-mobile/fenix.git", "github.com/mozilla-mobile/fenix"),
        ("git@github.com:mozilla/translations.git", "github.com/mozilla/translations"),
        ("ssh://git@github.com/mozilla/translations", "github.com/mozilla/translations"),
        ("https://hg.mozilla.org/mozilla-central/", "hg.mozilla.org/mozilla-central"),
    ],
)
def test_a_project_assumes_its_repository_cron_role_by_default(
    repository: str, scopes: str
) -> None:
    text = MINIMAL.replace("https://hg.mozilla.org/mozilla-central", repository)
    [project] = load(text).projects
    assert project.authorized_scopes == (f"assume:repo:{scopes}:cron:*",)
    assert load(text).masked()["projects"][0]["scopes"] == [f"assume:repo:{scopes}:cron:*"]


def test_configured_scopes_replace_the_default() -> None:
    text = MINIMAL + "    scopes: ['assume:project:releng:cron', 'queue:route:notify.*']\n"
    [project] = load(text).projects
    assert project.authorized_scopes == ("assume:project:releng:cron", "queue:route:notify.*")


def test_a_repository_without_host_needs_scopes() -> None:
    text = MINIMAL.replace("https://hg.mozilla.org/mozilla-central", "file:///srv/repo")
    [message] = errors(text)
    assert "service.yml:5:17: error: repository `file:///srv/repo` names no host" in message
    assert "fetch-from" in message
    assert load(text + "    scopes: [assume:repo:local:cron:*]\n").projects


@pytest.mark.parametrize(
    ("repository", "plain"),
    [
        ("https://bot:{password}@github.com/org/private", "https://github.com/org/private"),
        ("https://{password}@github.com/org/private", "https://github.com/org/private"),
        ("ssh://deploy:{password}@github.com/org/private", "ssh://github.com/org/private"),
        ("deploy:{password}@github.com:org/private.git", None),
    ],
)
def test_a_repository_with_credentials_is_refused_pointing_to_fetch_from(
    repository: str, plain: str | None
) -> None:
    password = "pw" + secrets.token_hex(8)
    url = repository.format(password=password)
    text = MINIMAL.replace("https://hg.mozilla.org/mozilla-central", url)

    [message] = errors(text)

    assert message.startswith("service.yml:5:17: error: project `mozilla-central`: repository `")
    assert "holds credentials" in message
    assert "fetch-from" in message
    assert password not in message
    if plain is not None:
        assert f"give it without them (`{plain}`)" in message
    # Where credentials belong: git reads fetch-from, tasks name the plain URL.
    [project] = load(MINIMAL + f"    fetch-from: {url}\n").projects
    assert (project.repository, project.git_url) == ("https://hg.mozilla.org/mozilla-central", url)


@pytest.mark.parametrize(
    "repository",
    ["ssh://git@github.com/org/repo", "git@github.com:org/repo.git", "https://github.com/o/r"],
)
def test_a_login_name_alone_is_not_a_credential(repository: str) -> None:
    [project] = load(MINIMAL.replace("https://hg.mozilla.org/mozilla-central", repository)).projects
    assert project.repository == repository


def test_config_check_refuses_credentials_in_repository_without_showing_them(
    tmp_path: Path,
) -> None:
    password = "pw" + secrets.token_hex(8)
    url = f"https://bot:{password}@github.com/org/private"
    config = tmp_path / "service.yml"
    config.write_text(MINIMAL.replace("https://hg.mozilla.org/mozilla-central", url))

    result = CliRunner().invoke(
        main, ["config", "check", "--config", str(config)], env={}, catch_exceptions=False
    )

    assert result.exit_code == 1
    assert f"{config}:5:17: error: project `mozilla-central`" in result.stderr
    assert "fetch-from" in result.stderr
    assert "Traceback" not in result.output
    assert password not in result.output
    assert result.stdout == ""


def test_scopes_must_be_a_list_of_scopes() -> None:
    [message] = errors(MINIMAL + "    scopes: []\n")
    assert "scopes" in message
    assert load(MINIMAL).max_task_deadline == timedelta(days=5)
    longer = load(MINIMAL.replace("  root-url:", "  max-task-deadline: 10d\n  root-url:"))
    assert longer.max_task_deadline == timedelta(days=10)


def with_calls(*lines: str) -> str:
    """MINIMAL with these lines (`call-timeout: 5s`...) in its taskcluster section."""
    return MINIMAL.replace("  root-url:", "".join(f"  {line}\n" for line in lines) + "  root-url:")


def test_taskcluster_calls_are_bounded_by_default_well_inside_a_tick() -> None:
    bounds = load(MINIMAL).calls
    assert (bounds.timeout, bounds.deadline) == (timedelta(seconds=30), timedelta(minutes=2))
    set_both = load(with_calls("call-timeout: 10s", "call-deadline: 1m")).calls
    assert (set_both.timeout, set_both.deadline) == (timedelta(seconds=10), timedelta(minutes=1))
    # A deadline shorter than the default timeout shortens the timeout with it.
    short = load(with_calls("call-deadline: 5s")).calls
    assert (short.timeout, short.deadline) == (timedelta(seconds=5), timedelta(seconds=5))


@pytest.mark.parametrize(
    ("lines", "says"),
    [
        (
            ["call-timeout: 0s"],
            "service.yml:2:17: error: taskcluster.call-timeout must be from 1s to 1m (got 0s)",
        ),
        (["call-timeout: 5m"], "taskcluster.call-timeout must be from 1s to 1m (got 5m)"),
        (["call-deadline: 20m"], "taskcluster.call-deadline must be from 1s to 10m (got 20m)"),
        (
            ["call-timeout: 40s", "call-deadline: 20s"],
            "service.yml:2:17: error: taskcluster.call-timeout 40s is longer than call-deadline 20s: an "
            "attempt cannot outlast its call; make the timeout at most the deadline",
        ),
        (["call-deadline: soon"], "call-deadline must be a duration like 6h, 90m, 1d or 30s"),
    ],
)
def test_bad_taskcluster_call_bounds_are_refused_with_their_place(
    lines: list[str], says: str
) -> None:
    [message] = errors(with_calls(*lines))
    assert says in message


# -- URLs, the ledger's password, and every problem in one pass --------------------------------


@pytest.mark.parametrize(
    ("given", "where"),
    [
        ({"TASKCLUSTER_ROOT_URL": "notaurl"}, "TASKCLUSTER_ROOT_URL `notaurl` is not a URL"),
        ({"TASKCLUSTER_ROOT_URL": "https://"}, "TASKCLUSTER_ROOT_URL `https://` is not a URL"),
        ({"TASKCLUSTER_ROOT_URL": "https://tc.example.com/?x=1"}, "is not a root URL"),
    ],
)
def test_a_root_url_that_is_no_url_is_refused(given: dict[str, str], where: str) -> None:
    [message] = errors(MINIMAL, given)
    assert message.startswith("service.yml:2:13: error:")
    assert where in message
    assert "like https://firefox-ci-tc.services.mozilla.com" in message


@pytest.mark.parametrize(
    ("repository", "said"),
    [
        ("ftp://x", "is not a repository URL git reads here"),
        ("x", "is not a repository URL git reads here"),
        ("http://github.com/org/repo", "is plain http"),
        ("http://10.0.0.1/org/repo", "from this machine only (127.0.0.1, localhost)"),
        ("https://", "is not a repository URL git reads here"),
    ],
)
def test_a_repository_git_would_not_read_is_refused(repository: str, said: str) -> None:
    text = MINIMAL.replace("https://hg.mozilla.org/mozilla-central", repository)
    [message] = errors(text + "    scopes: [assume:repo:x:cron:*]\n")
    assert message.startswith("service.yml:5:17: error: project `mozilla-central`: repository")
    assert said in message
    assert "https://host/path, ssh://[user@]host/path, user@host:path or file:///path" in message


@pytest.mark.parametrize(
    "repository",
    [
        "https://github.com/o/r",
        "ssh://git@github.com/o/r",
        "git@github.com:o/r.git",
        "file:///r",
        # A local `git http-backend`: plain HTTP that never leaves this machine.
        "http://127.0.0.1:8000/r",
        "http://localhost/r.git",
    ],
)
def test_the_repositories_git_reads_are_taken(repository: str) -> None:
    text = MINIMAL.replace("https://hg.mozilla.org/mozilla-central", repository)
    [project] = load(text + "    scopes: [assume:repo:x:cron:*]\n").projects
    assert project.repository == repository


def test_a_password_in_the_ledger_url_is_refused_naming_where_it_goes() -> None:
    password = "pw" + secrets.token_hex(8)
    text = MINIMAL + f"ledger: postgresql+psycopg://tcs:{password}@db.example.com/tcs\n"
    [message] = errors(text)
    assert message.startswith("service.yml:7:9: error: the ledger URL")
    assert "holds a password" in message
    assert "set PGPASSWORD (libpq reads it), or ledger-password-file" in message
    assert password not in message


def test_the_ledger_password_comes_from_its_file_and_is_a_secret(tmp_path: Path) -> None:
    password = "p@ss/" + secrets.token_hex(8)
    (tmp_path / "ledger-password").write_text(password + "\n")
    text = MINIMAL + (
        "ledger: postgresql+psycopg://tcs@db.example.com:5432/tcs?sslmode=require\n"
        "ledger-password-file: ledger-password\n"
    )
    config = load(text, base_dir=tmp_path)
    assert config.ledger_url.startswith("postgresql+psycopg://tcs:p%40ss%2F")
    assert config.ledger_url.endswith("@db.example.com:5432/tcs?sslmode=require")
    assert password in config.secrets
    assert password not in json.dumps(config.masked())
    assert (
        redact(config.ledger_url)
        == "postgresql+psycopg://***@db.example.com:5432/tcs?sslmode=require"
    )

    sqlite = MINIMAL + "ledger-password-file: ledger-password\n"
    with pytest.raises(ConfigError) as raised:
        load(sqlite, base_dir=tmp_path)
    [diagnostic] = raised.value.diagnostics
    assert "ledger-password-file is set but the ledger URL" in diagnostic.message
    assert "names no database server and user" in diagnostic.message
    missing = MINIMAL + "ledger: postgresql+psycopg://tcs@db/tcs\nledger-password-file: nope\n"
    with pytest.raises(ConfigError) as raised:
        load(missing, base_dir=tmp_path)
    assert "cannot read ledger-password-file" in raised.value.diagnostics[0].message


def test_config_check_reports_every_problem_in_one_pass_by_line(tmp_path: Path) -> None:
    """Secrets first, then the rest on the next run, was a run per kind of problem: one run
    says all of them, in the file's order."""
    config = tmp_path / "service.yml"
    config.write_text(
        MINIMAL.replace("https://hg.mozilla.org/mozilla-central", "ftp://x").replace(
            "  root-url", "  access-token: abc\n  root-url"
        )
        + "ledger: postgresql://tcs:hunter22@db/tcs\n"
    )
    result = CliRunner().invoke(
        main,
        ["config", "check", "--config", str(config)],
        env={"TASKCLUSTER_ROOT_URL": "notaurl"},
        catch_exceptions=False,
    )
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert [line.split(": error: ")[0] for line in lines] == [
        f"{config}:2:3",
        f"{config}:3:13",
        f"{config}:6:17",
        f"{config}:8:9",
    ]
    assert "`access-token`: secrets never go in the configuration file" in lines[0]
    assert "TASKCLUSTER_ROOT_URL `notaurl` is not a URL" in lines[1]
    assert "repository `ftp://x` is not a repository URL" in lines[2]
    assert "the ledger URL" in lines[3]
    assert "hunter22" not in result.output


def test_a_missing_dsn_says_where_to_set_it_unmasked(tmp_path: Path) -> None:
    """Output is scrubbed of `key: value` secrets: the fix must not read as one."""
    config = tmp_path / "service.yml"
    config.write_text(MINIMAL + "notify: {sentry: {environment: ci}}\n")
    result = CliRunner().invoke(
        main, ["config", "check", "--config", str(config)], env={}, catch_exceptions=False
    )
    assert result.exit_code == 1
    assert "notify.sentry needs a DSN; set SENTRY_DSN, or notify.sentry.dsn-file" in result.stderr
