"""The container image under test, with no image registry: a base made from Debian's packages
(mmdebstrap, imported into podman), the image built by `make image` on it, and its own files
run by chroot as its user (podman cannot run containers on these machines: crun cannot set
rlimits), on its root filesystem mounted read-only, as Kubernetes runs it."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.corpus import REPOSITORY_ROOT
from tests.support.deploy import tool

# What the base needs: Python with venv (as the official python images have), and git.
BASE_SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "git", "ca-certificates")
STATE_DIR = "/var/lib/tc-scheduler"  # the image's state directory (its user's own)
TOOLS = ("podman", "mmdebstrap", "unshare", "chroot", "mount")


def missing_tools() -> list[str]:
    return [name for name in TOOLS if tool(name) is None]


def podman(*arguments: str, check: bool = True) -> str:
    done = subprocess.run(
        ["podman", *arguments],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(arguments)}: {done.stderr.strip()}")
    return done.stdout.strip()


def local_base(work: Path) -> str:
    """A base image of Debian's packages, made once per package list and kept: mmdebstrap
    (some 20 s to a minute and a half), then `podman import`."""
    digest = hashlib.sha256(" ".join((BASE_SUITE, *BASE_PACKAGES)).encode()).hexdigest()[:12]
    name = f"localhost/tc-scheduler-test-base:{BASE_SUITE}-{digest}"
    if subprocess.run(["podman", "image", "exists", name], check=False).returncode == 0:
        return name
    rootfs = work / "rootfs.tar"
    subprocess.run(
        [
            "mmdebstrap",
            "--quiet",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            BASE_SUITE,
            str(rootfs),
        ],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    podman("import", "--quiet", str(rootfs), name)
    rootfs.unlink()
    return name


def copy_repository(destination: Path) -> None:
    """This repository's files as a clone has them (tracked, or new and not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPOSITORY_ROOT / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the work tree, not yet in the index
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(source.readlink())
        else:
            shutil.copy2(source, target)


@dataclass
class MountedImage:
    """An image's root filesystem, mounted read-only, and how to run its commands."""

    name: str
    root: Path
    config: dict[str, Any]

    @property
    def user(self) -> str:
        return str(self.config["User"])

    @property
    def environment(self) -> dict[str, str]:
        return dict(entry.split("=", 1) for entry in self.config["Env"])

    def command(self, argv: Sequence[str], state: Path, scratch: Path) -> list[str]:
        """`argv` run in the image as its user: in a mount namespace of its own, `state` is
        the state directory and `scratch` /tmp (what a pod mounts), the rest read-only."""
        script = (
            'set -e; mount --bind "$1" "$2/var/lib/tc-scheduler"; mount --bind "$3" "$2/tmp"; '
            'root=$2; user=$4; shift 4; exec chroot --userspec="$user" "$root" "$@"'
        )
        return [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
            str(state),
            str(self.root),
            str(scratch),
            self.user,
            *argv,
        ]

    def run(
        self,
        argv: Sequence[str],
        state: Path,
        scratch: Path,
        environment: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(argv, state, scratch),
            env={**self.environment, **(environment or {})},
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )


def inspect(name: str) -> dict[str, Any]:
    [described] = json.loads(podman("image", "inspect", name))
    config: dict[str, Any] = described["Config"]
    config["Healthcheck"] = described.get("Healthcheck")
    return config
