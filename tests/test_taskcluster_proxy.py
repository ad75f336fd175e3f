"""Inside a Taskcluster task: with TASKCLUSTER_PROXY_URL, every call goes to the task's
taskcluster-proxy unsigned, and the proxy signs it with the task's credentials. The proxy here
is a small one written for the test, as taskcluster-proxy works: it takes `/api/<service>/v1/...`
requests without credentials, signs each with Hawk with the credentials it holds, and forwards
it to the deployment (the emulator)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import mohawk
import pytest
from click.testing import CliRunner, Result

from scheduler.cli import main
from scheduler.clock import NOW_VARIABLE, offset_setting
from scheduler.config.errors import ConfigError
from scheduler.config.loading import load_config
from tests.emulator import Emulator
from tests.support.http_serving import QuietHandler, on_loopback
from tests.support.projects import HOURLY, OWN_TEMPLATE, write_service_config
from tests.support.repos import Repository

# What the task running the service may do: its repository's cron role (the deployment's
# `repo:*` role grants creating tasks), and reading its scopes.
TASK_SCOPES = ["assume:repo:github.com/example/*", "auth:current-scopes"]


@dataclass
class Proxy:
    """A taskcluster-proxy: what it was asked (method, path, whether it came signed)."""

    root_url: str
    credentials: dict[str, str]
    asked: list[tuple[str, str, bool]] = field(default_factory=list)
    url: str = ""

    def forward(self, method: str, path: str, body: bytes, content_type: str) -> httpx.Response:
        target = f"{self.root_url}{path}"
        sender = mohawk.Sender(
            credentials={
                "id": self.credentials["clientId"],
                "key": self.credentials["accessToken"],
                "algorithm": "sha256",
            },
            url=target,
            method=method,
            content=body,
            content_type=content_type,
        )
        headers = {"Authorization": sender.request_header}
        if content_type:
            headers["Content-Type"] = content_type
        return httpx.request(method, target, content=body, headers=headers, timeout=30)


def _handler(proxy: Proxy) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            proxy.asked.append((self.command, self.path, "Authorization" in self.headers))
            if not self.path.startswith("/api/"):
                self.send_error(404, "the proxy serves /api/<service>/v1/... only")
                return
            answer = proxy.forward(
                self.command, self.path, body, self.headers.get("Content-Type", "")
            )
            kind = answer.headers.get("Content-Type", "text/plain")
            self.answer(answer.status_code, answer.content, {"Content-Type": kind})

        # http.server calls do_<METHOD>: the names are its own.
        do_GET = do_PUT = do_POST = do_DELETE = _serve  # noqa: N815

    return Handler


@pytest.fixture
def proxy(emulator: Emulator) -> Iterator[Proxy]:
    held = emulator.add_client("task/cron-task", TASK_SCOPES)
    running = Proxy(emulator.root_url, held)
    with on_loopback(_handler(running)) as running.url:
        yield running


def _in_the_task(emulator: Emulator, proxy: Proxy) -> dict[str, str]:
    """A task's environment: the deployment's root URL and its proxy, no credentials."""
    return {
        "TASKCLUSTER_ROOT_URL": emulator.root_url,
        "TASKCLUSTER_PROXY_URL": proxy.url,
        NOW_VARIABLE: offset_setting(emulator.clock.now()),
    }


def invoke(*arguments: str, env: dict[str, str]) -> Result:
    return CliRunner().invoke(main, list(arguments), env=env, catch_exceptions=False)


def test_a_fire_inside_a_task_creates_its_task_through_the_proxy(
    emulator: Emulator, proxy: Proxy, tmp_path: Path
) -> None:
    repository = Repository(
        tmp_path / "demo", {".cron.yml": HOURLY, ".taskcluster.yml": OWN_TEMPLATE}
    )
    config = str(write_service_config(tmp_path, repository))
    env = _in_the_task(emulator, proxy)

    fired = invoke("fire", "demo", "hourly", "--json", "--config", config, env=env)

    assert fired.exit_code == 0, fired.output
    answer = json.loads(fired.stdout)
    assert answer["state"] == "created"  # not a dry run: the proxy signs
    [task] = emulator.tasks()
    assert task.task_id == answer["task_id"]
    assert task.definition["scopes"] == ["assume:repo:github.com/example/demo:cron:hourly"]
    created = [(m, p) for m, p, _ in proxy.asked if m == "PUT"]
    assert created == [("PUT", f"/api/queue/v1/task/{task.task_id}")]
    assert proxy.asked, "every call went through the proxy"
    assert not any(signed for _, _, signed in proxy.asked), "nothing signed before the proxy"
    # Links name the deployment, never the proxy.
    history = invoke("history", "--json", "--config", config, env=env)
    assert proxy.url not in history.stdout


def test_config_check_and_preflight_say_the_tasks_scopes_bound_every_project(
    emulator: Emulator, proxy: Proxy, tmp_path: Path
) -> None:
    repository = Repository(
        tmp_path / "demo", {".cron.yml": HOURLY, ".taskcluster.yml": OWN_TEMPLATE}
    )
    config = str(write_service_config(tmp_path, repository))
    env = _in_the_task(emulator, proxy)

    checked = invoke("config", "check", "--json", "--config", config, env=env)

    assert checked.exit_code == 0, checked.output
    shown = json.loads(checked.stdout)
    assert shown["taskcluster"]["proxy-url"] == proxy.url
    assert shown["dry-run"] is False
    note = "Taskcluster bounds them by the task's scopes, not by each project's"
    assert f"note: calls go through the task's Taskcluster proxy ({proxy.url})" in checked.stderr
    assert note in checked.stderr
    assert "demo: warning: calls go through the task's Taskcluster proxy" in checked.stderr
    assert "1 project preflighted: 0 errors, 1 warning" in checked.stderr
    assert ("GET", "/api/auth/v1/scopes/current", False) in proxy.asked


def test_the_proxy_and_credentials_together_are_refused() -> None:
    text = "projects: []\n"
    environ = {
        "TASKCLUSTER_ROOT_URL": "https://tc.example.com",
        "TASKCLUSTER_PROXY_URL": "http://taskcluster",
        "TASKCLUSTER_CLIENT_ID": "c",
        "TASKCLUSTER_ACCESS_TOKEN": "t",
    }
    with pytest.raises(ConfigError, match="both TASKCLUSTER_PROXY_URL and Taskcluster credentials"):
        load_config(text, "service.yml", environ)
    del environ["TASKCLUSTER_CLIENT_ID"], environ["TASKCLUSTER_ACCESS_TOKEN"]
    config = load_config(text, "service.yml", environ)
    assert (config.proxy_url, config.root_url, config.dry_run) == (
        "http://taskcluster",
        "https://tc.example.com",
        False,
    )
