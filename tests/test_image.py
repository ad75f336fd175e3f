"""The container image, built as deploy/README.md says (`make image`) with no image registry:
on a base made from Debian's packages, from wheels made beforehand. Its own files then run
`tc-scheduler --version`, `check`, a dry-run `tick` and the service with its health check, as
its unprivileged user on its read-only root. Slow (a minute or more): `make test-image`, and
`make test` where podman is installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.corpus import REPOSITORY_ROOT
from tests.support.image import (
    STATE_DIR,
    MountedImage,
    copy_repository,
    inspect,
    local_base,
    missing_tools,
    podman,
)
from tests.support.repos import Repository
from tests.support.service import Service
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.process]

UID = 10001  # the image's user (deploy/container/Containerfile)
# Put in the clone the image is built from, where a developer's credentials could be: none
# may reach the image.
CANARY = "canary-" + uuid.uuid4().hex
CRON = """\
jobs:
  - name: nightly
    job: {type: decision-task, treeherder-symbol: N, target-tasks-method: nightly}
    when: [{hour: 10, minute: 0}]
"""
# The copy is no clone: the revision the image is labelled with is given.
REVISION = subprocess.run(
    ["git", "rev-parse", "HEAD"], cwd=REPOSITORY_ROOT, capture_output=True, text=True, check=True
).stdout.strip()
NOW = "2026-11-23T10:07:00Z"  # the commands' clock (TC_SCHEDULER_NOW): within the 10:00 slot


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MountedImage]:
    missing = missing_tools()
    if missing:
        pytest.skip(f"no {', '.join(missing)} here: `make test-image` installs them")
    work = tmp_path_factory.mktemp("image")
    base = local_base(work)
    clone = work / "clone"
    copy_repository(clone)
    (clone / ".env").write_text(f"TASKCLUSTER_ACCESS_TOKEN={CANARY}\n")
    (clone / ".tc-scheduler").mkdir(exist_ok=True)
    (clone / ".tc-scheduler" / "credentials.json").write_text(json.dumps({"accessToken": CANARY}))
    name = f"localhost/tc-scheduler-test:{uuid.uuid4().hex[:12]}"
    # The wheels must be for the base's Python: its python3 names the version.
    mount = Path(podman("image", "mount", base))
    base_python = (mount / "usr/bin/python3").readlink().name.removeprefix("python")
    podman("image", "unmount", base)
    built = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "image",
            f"IMAGE={name}",
            f"IMAGE_BASE={base}",
            f"IMAGE_PYTHON={base_python}",
            # No intermediate images are kept (--layers=false): the test removes only what
            # it named, never what another run on this machine is building or using.
            "IMAGE_BUILD_FLAGS=--isolation=chroot --layers=false",
            f"VENV={Path(sys.executable).parent.parent}",
            f"REVISION={REVISION}",
        ],
        cwd=clone,
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    try:
        root = Path(podman("image", "mount", name))
        yield MountedImage(name, root, inspect(name))
    finally:
        podman("image", "unmount", name, check=False)
        podman("rmi", "--force", name, check=False)


@pytest.fixture
def state(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A state directory for the image's user, holding a project's repository and a
    configuration that schedules it (dry-run: no credentials), and a /tmp."""
    state_dir, scratch = tmp_path / "state", tmp_path / "tmp"
    Repository(
        state_dir / "repo",
        {
            ".cron.yml": CRON,
            ".taskcluster.yml": (REPOSITORY_ROOT / ".taskcluster.yml").read_text(),
        },
    )
    (state_dir / "config.yml").write_text(
        "taskcluster:\n"
        "  root-url: https://taskcluster.example.com\n"
        f"state-dir: {STATE_DIR}\n"
        "api:\n"
        "  listen: 127.0.0.1:0\n"
        "projects:\n"
        "  - name: demo\n"
        "    repository: https://github.com/example/demo\n"
        f"    fetch-from: file://{STATE_DIR}/repo\n"
        "    trust-domain: tcs\n"
    )
    scratch.mkdir()
    scratch.chmod(0o1777)
    for directory, _, files in os.walk(state_dir):
        for name in (directory, *(os.path.join(directory, f) for f in files)):
            os.chown(name, UID, UID)
    yield state_dir, scratch
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_the_image_is_described_and_unprivileged(image: MountedImage) -> None:
    config = image.config
    assert image.user == f"{UID}:{UID}"
    assert config["Entrypoint"] == ["tc-scheduler"]
    assert config["Cmd"] == ["run"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.title"] == "tc-scheduler"
    assert labels["org.opencontainers.image.version"] == "0.1.0"
    assert labels["org.opencontainers.image.revision"] == REVISION
    assert "/livez" in " ".join(config["Healthcheck"]["Test"])
    assert image.environment["TC_SCHEDULER_CONFIG"] == "/etc/tc-scheduler/config.yml"


def test_no_secret_of_the_clone_reaches_the_image(image: MountedImage) -> None:
    history = podman("history", "--no-trunc", "--format", "{{.CreatedBy}}", image.name)
    assert CANARY not in history
    for directory in ("opt", "etc", "var", "wheels", "root", "tmp"):
        for path in (image.root / directory).rglob("*"):
            assert path.name not in {".env", "credentials.json"}, path
            if path.is_file() and not path.is_symlink():
                assert CANARY.encode() not in path.read_bytes(), path
    assert not (image.root / "wheels").exists(), "the wheels stay in the build stage"


def test_the_image_runs_its_commands_as_its_user(
    image: MountedImage, state: tuple[Path, Path]
) -> None:
    state_dir, scratch = state
    version = image.run(["tc-scheduler", "--version"], state_dir, scratch)
    assert (version.returncode, version.stdout.strip()) == (0, "tc-scheduler, version 0.1.0")
    who = image.run(["id", "-u"], state_dir, scratch)
    assert who.stdout.strip() == str(UID)
    checked = image.run(
        ["tc-scheduler", "check", "--json", f"{STATE_DIR}/repo/.cron.yml"], state_dir, scratch
    )
    assert checked.returncode == 0, checked.stderr
    [report] = json.loads(checked.stdout)["files"]
    assert (report["jobs"], report["errors"]) == (1, [])
    # Writing anywhere but the state directory and /tmp fails: the root is read-only.
    written = image.run(["touch", "/opt/tc-scheduler/x"], state_dir, scratch)
    assert written.returncode != 0


def test_a_dry_run_tick_in_the_image_fires_the_slot_and_records_it(
    image: MountedImage, state: tuple[Path, Path]
) -> None:
    state_dir, scratch = state
    config = f"{STATE_DIR}/config.yml"
    ticked = image.run(
        ["tc-scheduler", "tick", "--at", "2026-11-23T10:00:00Z", "--json", "--config", config],
        state_dir,
        scratch,
        {"TC_SCHEDULER_NOW": NOW},
    )
    assert ticked.returncode == 0, ticked.stderr[-3000:]
    [slot] = json.loads(ticked.stdout)
    [fire] = slot["fires"]
    assert (fire["job"], fire["state"]) == ("nightly", "dry-run")
    assert (state_dir / "ledger.db").exists()
    history = image.run(
        ["tc-scheduler", "history", "--json", "--config", config],
        state_dir,
        scratch,
        {"TC_SCHEDULER_NOW": NOW},
    )
    assert [f["state"] for f in json.loads(history.stdout)] == ["dry-run"]
    upgraded = image.run(
        ["tc-scheduler", "ledger", "upgrade", "--json", "--config", config],
        state_dir,
        scratch,
        {"TC_SCHEDULER_NOW": NOW},
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert json.loads(upgraded.stdout)["upgraded"] is False  # the tick made it current


def test_the_service_runs_in_the_image_and_answers_its_health_check(
    image: MountedImage, state: tuple[Path, Path]
) -> None:
    state_dir, scratch = state
    config = f"{STATE_DIR}/config.yml"
    command = image.command(["tc-scheduler", "run", "--config", config], state_dir, scratch)
    service = Service(command, image.environment)
    try:
        assert wait_until(lambda: any(line["event"] == "serving the API" for line in service.lines))
        [serving] = [line for line in service.lines if line["event"] == "serving the API"]
        health_check = image.config["Healthcheck"]["Test"]
        assert health_check[0] == "CMD"
        url = f"{serving['url']}/livez"
        healthy = image.run(health_check[1:], state_dir, scratch, {"TC_SCHEDULER_HEALTH_URL": url})
        assert healthy.returncode == 0, healthy.stderr
        nowhere = f"{serving['url']}/no-such-path"
        unhealthy = image.run(
            health_check[1:], state_dir, scratch, {"TC_SCHEDULER_HEALTH_URL": nowhere}
        )
        assert unhealthy.returncode != 0
    finally:
        assert service.stop() == 0, service.lines[-5:]
    assert service.lines[-1]["event"] == "stopped"
