"""deploy/, checked offline: every rendered Kubernetes manifest against Kubernetes' schemas (and
the ServiceMonitor against the prometheus-operator's CRD models), the invariants a deployment
keeps, the systemd unit (`systemd-analyze`), the image's Containerfile, and the example
configurations through the project's own loader, so that none of them can drift."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from sqlalchemy.engine import make_url

from scheduler.cli.registry import COMMANDS
from scheduler.common.redaction import is_secret_key, redact
from scheduler.config.errors import ConfigError
from scheduler.config.loading import load_config, load_ledger_settings
from scheduler.durations import parse_duration
from scheduler.monitoring.monitor import LEDGER_PATIENCE
from scheduler.service import SHUTDOWN_BUDGET
from scheduler.web.app import health
from tests.support.corpus import REPOSITORY_ROOT
from tests.support.deploy import (
    DEPLOY,
    KUBERNETES,
    KUSTOMIZATIONS,
    all_containers,
    container_environment,
    environment_file,
    one,
    pod_spec,
    problems,
    render,
    service_config,
    tool,
    unit_settings,
)

# The oldest Kubernetes the manifests are for, and the newest the schemas bundled know.
KUBERNETES_VERSIONS = ("1.29", kubernetes_validate.latest_version())
# Beyond the longest stop (SHUTDOWN_BUDGET: the grace, the API closing, the claims released),
# what a replica needs before SIGKILL: the interpreter's own exit once `run` has returned.
EXIT_MARGIN = 5
UNIT = DEPLOY / "systemd" / "tc-scheduler.service"
# How the manifests' comments state the longest stop, so that they say what the code does.
STATED_BUDGET = f"{int(SHUTDOWN_BUDGET.total_seconds())} s at most"
CONTAINERFILE = DEPLOY / "container" / "Containerfile"


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {kustomization: render(kustomization) for kustomization in KUSTOMIZATIONS}


def routes() -> set[str]:
    return {getattr(route, "path", "") for route in health.routes}


# -- Kubernetes: schemas -------------------------------------------------------------------------


@pytest.mark.process
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_manifest_is_valid_for_kubernetes(
    rendered: dict[str, list[dict[str, Any]]], version: str
) -> None:
    for kustomization, objects in rendered.items():
        kinds = {o["kind"] for o in objects}
        assert {
            "Deployment",
            "Service",
            "ConfigMap",
            "PodDisruptionBudget",
            "NetworkPolicy",
            "ServiceAccount",
            "ServiceMonitor",
        } <= kinds, kustomization
        for manifest in objects:
            if manifest["kind"] == "ServiceMonitor":
                continue  # a CRD's: below
            try:
                kubernetes_validate.validate(manifest, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                where = ".".join(map(str, error.path))
                pytest.fail(f"{kustomization}: {manifest['kind']}: {where}: {error.message}")


def test_the_schemas_refuse_a_field_kubernetes_does_not_know() -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"ports": [{"port": 8080, "targetPort": "http"}], "sessionAfinity": "None"},
    }
    with pytest.raises(kubernetes_validate.ValidationError, match="sessionAfinity"):
        kubernetes_validate.validate(manifest, KUBERNETES_VERSIONS[0], strict=True)


@pytest.mark.process
def test_the_service_monitor_fits_the_prometheus_operator_crd(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    from cloudcoil.models.prometheus_operator.v1 import ServiceMonitor  # noqa: PLC0415 (large)

    for kustomization, objects in rendered.items():
        manifest = one(objects, "ServiceMonitor")
        model = ServiceMonitor.model_validate(manifest)
        # The models leave out what the CRD does not know: nothing may be lost.
        assert model.model_dump(by_alias=True, exclude_none=True) == manifest, kustomization
        service = one(objects, "Service")
        labels = service["metadata"]["labels"]
        assert manifest["spec"]["selector"]["matchLabels"].items() <= labels.items()
        [endpoint] = manifest["spec"]["endpoints"]
        assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}


def test_the_crd_models_refuse_what_the_crd_refuses() -> None:
    from cloudcoil.models.prometheus_operator.v1 import ServiceMonitor  # noqa: PLC0415 (large)

    # The check above can fail: a field of the wrong type is refused.
    with pytest.raises(ValueError, match="endpoints"):
        ServiceMonitor.model_validate(
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "ServiceMonitor",
                "metadata": {"name": "x"},
                "spec": {"selector": {}, "endpoints": "not a list"},
            }
        )


# -- Kubernetes: invariants ----------------------------------------------------------------------


@pytest.mark.process
def test_the_rendered_manifests_keep_the_deployment_rules(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for kustomization, objects in rendered.items():
        assert list(problems(objects)) == [], kustomization
        assert one(objects, "Deployment")["spec"]["replicas"] >= 2


@pytest.mark.process
def test_the_rules_are_broken_by_what_they_forbid(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objects = copy.deepcopy(rendered["overlays/production"])
    config_map = one(objects, "ConfigMap")
    config = yaml.safe_load(config_map["data"]["config.yml"])
    config["ledger"] = "sqlite:////var/lib/tc-scheduler/ledger.db"
    config_map["data"]["config.yml"] = yaml.safe_dump(config)
    container = pod_spec(objects)["containers"][0]
    container["env"].append({"name": "SLACK_BOT_TOKEN", "value": "xoxb-inline"})
    container["readinessProbe"]["httpGet"]["port"] = "metrics"
    objects.append({"kind": "Secret", "metadata": {"name": "tc-scheduler"}})
    found = list(problems(objects))
    assert len(found) == 4, found
    assert "several replicas need PostgreSQL" in found[0]


@pytest.mark.process
def test_probes_and_metrics_point_at_the_services_real_paths(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    paths = routes()
    for objects in rendered.values():
        [container] = pod_spec(objects)["containers"]
        probes = {
            probe: container[probe]["httpGet"]["path"]
            for probe in ("livenessProbe", "readinessProbe", "startupProbe")
        }
        assert probes["livenessProbe"] == "/livez"
        assert probes["readinessProbe"] == "/readyz"
        # /readyz gives the ledger LEDGER_PATIENCE to answer: a probe that gives up sooner
        # would never see the answer that says which check failed.
        patience = LEDGER_PATIENCE.total_seconds()
        assert container["readinessProbe"]["timeoutSeconds"] > patience
        assert set(probes.values()) <= paths
        [port] = container["ports"]
        api = yaml.safe_load(service_config(objects))["api"]["listen"]
        assert api == f"0.0.0.0:{port['containerPort']}", "the API must listen on the pod's port"
        service = one(objects, "Service")
        assert service["spec"]["ports"][0]["targetPort"] == port["name"]


@pytest.mark.process
def test_the_service_monitor_scrapes_metrics(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for objects in rendered.values():
        [endpoint] = one(objects, "ServiceMonitor")["spec"]["endpoints"]
        assert endpoint["path"] == "/metrics"
        assert endpoint["path"] in routes()
        # A scrape reads the outbox's backlog from the ledger, within LEDGER_PATIENCE.
        assert parse_duration(endpoint["scrapeTimeout"]) > LEDGER_PATIENCE


@pytest.mark.process
def test_a_replica_stops_and_starts_within_what_kubernetes_allows(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for objects in rendered.values():
        spec = pod_spec(objects)
        grace = spec["terminationGracePeriodSeconds"]
        assert grace >= SHUTDOWN_BUDGET.total_seconds() + EXIT_MARGIN
        assert STATED_BUDGET in (KUBERNETES / "base" / "deployment.yaml").read_text()
        [service] = spec["containers"]
        config = load_config(service_config(objects), "config.yml", container_environment(service))
        startup = service["startupProbe"]
        allowed = startup["periodSeconds"] * startup["failureThreshold"]
        assert allowed > config.ledger_wait.total_seconds(), (
            "liveness would kill a replica waiting for its ledger"
        )


@pytest.mark.process
def test_replicas_run_unprivileged_on_a_read_only_root(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    uid = int(re.search(r"useradd .*--uid (\d+)", CONTAINERFILE.read_text(), re.S)[1])  # type: ignore[index]
    for objects in rendered.values():
        spec = pod_spec(objects)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == uid
        assert spec["automountServiceAccountToken"] is False
        config = yaml.safe_load(service_config(objects))
        writable = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for container in all_containers(spec):
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert "memory" in container["resources"]["limits"]
            assert container["resources"]["requests"]
            mounted = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounted["/tmp"] in writable
        [service] = spec["containers"]
        mounted = {m["mountPath"]: m["name"] for m in service["volumeMounts"]}
        assert mounted[config["state-dir"]] in writable


@pytest.mark.process
def test_selectors_find_the_replicas(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for objects in rendered.values():
        deployment = one(objects, "Deployment")
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selectors = [
            one(objects, "Service")["spec"]["selector"],
            deployment["spec"]["selector"]["matchLabels"],
            one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
            one(objects, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
        ]
        for selector in selectors:
            assert selector
            assert selector.items() <= labels.items()
        budget = one(objects, "PodDisruptionBudget")["spec"]
        assert budget["maxUnavailable"] < deployment["spec"]["replicas"]


@pytest.mark.process
def test_each_overlay_has_its_own_namespace_and_configuration(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    namespaces = {
        name: {o["metadata"].get("namespace") for o in objects}
        for name, objects in rendered.items()
    }
    assert namespaces["overlays/staging"] == {"tc-scheduler-staging"}
    assert namespaces["overlays/production"] == {"tc-scheduler"}
    configs = {service_config(objects) for objects in rendered.values()}
    assert len(configs) == len(KUSTOMIZATIONS)


@pytest.mark.process
def test_each_configmap_is_a_valid_configuration_for_its_containers(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for kustomization, objects in rendered.items():
        text = service_config(objects)
        assert redact(text) == text, f"{kustomization}: the configuration holds a secret"
        path = f"{kustomization}/config.yml"
        spec = pod_spec(objects)
        [service] = spec["containers"]
        environment = container_environment(service, secret=f"test-{kustomization}")
        assert {"TASKCLUSTER_CLIENT_ID", "TASKCLUSTER_ACCESS_TOKEN", "PGPASSWORD"} <= set(
            environment
        )
        # The loader refuses secrets in the file, and a notify section without its secret.
        config = load_config(text, path, environment)
        assert str(config.state_dir) == "/var/lib/tc-scheduler"
        ledger = make_url(config.ledger_url)
        assert ledger.get_backend_name() == "postgresql"
        assert ledger.password is None, "the password comes from PGPASSWORD"
        # `ledger upgrade` reads the ledger's settings alone, with the ledger's password, and
        # waits for the ledger as long as the service would.
        for container in spec["initContainers"]:
            given = container_environment(container, secret=f"test-{kustomization}")
            assert set(given) == {"PGPASSWORD"}
            settings = load_ledger_settings(text, path, given)
            assert (settings.url, settings.wait) == (config.ledger_url, config.ledger_wait)


@pytest.mark.process
def test_the_containers_run_commands_the_cli_has(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    commands = {
        container["args"][0]
        for objects in rendered.values()
        for container in all_containers(pod_spec(objects))
    }
    assert commands == {"run", "ledger"}
    assert commands <= set(COMMANDS)


# -- systemd -------------------------------------------------------------------------------------


def test_the_unit_is_hardened_and_keeps_its_state_and_secrets_apart() -> None:
    unit = unit_settings(UNIT)
    service = unit["Service"]
    assert service.get("DynamicUser") == "yes" or service.get("User") not in (None, "root")
    assert service["ProtectSystem"] == "strict"
    assert service["NoNewPrivileges"] == "yes"
    assert service["StateDirectory"] == "tc-scheduler"
    assert service["EnvironmentFile"] == "/etc/tc-scheduler/secrets.env"
    assert service["Restart"] in {"on-failure", "always"}
    assert service["ExecStart"].endswith("tc-scheduler run")
    stop = parse_duration(service["TimeoutStopSec"])
    assert stop.total_seconds() >= SHUTDOWN_BUDGET.total_seconds() + EXIT_MARGIN
    assert STATED_BUDGET in UNIT.read_text()
    example = DEPLOY / "systemd" / "config.yml"
    config = yaml.safe_load(example.read_text())
    assert config["state-dir"] == f"/var/lib/{service['StateDirectory']}"
    # ExecStartPre's `ledger upgrade` waits up to ledger-wait for the ledger: the start allows it.
    settings = load_ledger_settings(example.read_text(), str(example), {})
    assert parse_duration(service["TimeoutStartSec"]) > settings.wait


def test_the_units_example_configuration_loads_with_its_secrets_file() -> None:
    example = DEPLOY / "systemd" / "config.yml"
    secrets = environment_file(DEPLOY / "systemd" / "secrets.env.example")
    assert {"TASKCLUSTER_ACCESS_TOKEN", "SLACK_BOT_TOKEN", "SENTRY_DSN"} <= set(secrets)
    assert all(value == "" for name, value in secrets.items() if is_secret_key(name))
    filled = {name: value or f"test-systemd-{name.lower()}" for name, value in secrets.items()}
    config = load_config(example.read_text(), str(example), filled, base_dir=example.parent)
    assert config.ledger_url == "sqlite:////var/lib/tc-scheduler/ledger.db"
    assert not config.dry_run  # credentials given: it fires for real
    # Without a Slack token, the example says what is missing rather than starting.
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN"):
        load_config(example.read_text(), str(example), {}, base_dir=example.parent)


@pytest.mark.process
def test_systemd_analyze_finds_nothing_wrong_in_the_unit(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze")
    if analyze is None:
        pytest.skip("no systemd-analyze here (Debian's systemd package has it)")
    # verify checks that the commands exist: the same unit, its /opt/tc-scheduler here.
    (tmp_path / "bin").mkdir()
    command = tmp_path / "bin" / "tc-scheduler"
    command.write_text("#!/bin/sh\n")
    command.chmod(0o755)
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/tc-scheduler/bin", str(command.parent)))
    verified = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, check=False
    )
    assert (verified.returncode, verified.stdout + verified.stderr) == (0, "")
    security = subprocess.run(
        [analyze, "security", "--offline=yes", "--threshold=20", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert security.returncode == 0, security.stdout[-2000:]
    # And it fails on a mistake: a misspelt setting is reported.
    unit.write_text(unit.read_text().replace("ProtectHome=", "ProtectHomes="))
    misspelt = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, check=False
    )
    assert "ProtectHomes" in misspelt.stderr


def test_the_unit_runs_commands_the_cli_has() -> None:
    service = unit_settings(UNIT)["Service"]
    for key in ("ExecStartPre", "ExecStart"):
        assert service[key].split()[1] in COMMANDS, key


# -- the image -----------------------------------------------------------------------------------


def test_the_containerfile_builds_from_wheels_as_an_unprivileged_user() -> None:
    text = CONTAINERFILE.read_text()
    assert re.search(r"^ARG BASE=docker\.io/library/python:3\.12-slim$", text, re.M)
    assert text.count("FROM ${BASE}") == 2, "two stages, both on the base argument"
    copies = re.findall(r"^COPY (.*)$", text, re.M)
    assert copies == [
        "build/wheels/ /wheels/",
        "--from=install /opt/tc-scheduler /opt/tc-scheduler",
    ]
    assert "--no-index" in text
    [user] = re.findall(r"^USER (\S+)$", text, re.M)
    assert user.split(":")[0] not in {"0", "root"}
    assert re.search(r"^HEALTHCHECK .*\n.*/livez", text, re.M)
    assert re.search(r'^ENTRYPOINT \["tc-scheduler"\]\nCMD \["run"\]$', text, re.M)
    for label in ("title", "version", "revision", "source", "licenses"):
        assert f"org.opencontainers.image.{label}=" in text
    for name in re.findall(r"^(?:ARG|ENV) (\w+)", text, re.M):
        assert redact(f"{name}=somethingsecret") == f"{name}=somethingsecret", name


def test_the_build_context_holds_only_the_wheels() -> None:
    ignore = (REPOSITORY_ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line for line in ignore if line.strip() and not line.startswith("#")]
    assert patterns == ["*", "!build/wheels/*.whl"]
    assert (REPOSITORY_ROOT / ".containerignore").resolve() == REPOSITORY_ROOT / ".dockerignore"


# -- the README ----------------------------------------------------------------------------------


def test_the_deploy_readme_names_only_what_exists() -> None:
    readme = (DEPLOY / "README.md").read_text()
    makefile = (REPOSITORY_ROOT / "Makefile").read_text()
    for target in set(re.findall(r"(?:^|`)make ([a-z][a-z-]*)", readme, re.M)):
        assert re.search(rf"^{target}:", makefile, re.M), f"make {target}"
    # A command as written: in code, at a line's start, or run from the virtual environment.
    for command in set(re.findall(r"(?:^|`|bin/)tc-scheduler ([a-z]+)", readme, re.M)):
        assert command in COMMANDS, command
    for path in set(re.findall(r"\b((?:deploy|scripts|tests)/[\w./-]*\w)", readme)):
        assert (REPOSITORY_ROOT / path).exists(), path
