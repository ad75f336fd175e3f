"""Run the local Taskcluster standalone: `python -m tests.emulator --port 0 [--latency-ms N]`.

Prints one JSON line with `rootUrl`, `clientId` and `accessToken` of a root client, then serves
until interrupted. `--clients FILE` (JSON or YAML) adds `clients: {id: {scopes, accessToken}}`
and `roles: {id: [scopes]}`. `--private` serves a private deployment (no `anonymous` role).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from tests.emulator import serving
from tests.emulator.server import Emulator


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.emulator", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every API call")
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="random extra latency")
    parser.add_argument("--clients", type=Path, help="JSON or YAML file of clients and roles")
    parser.add_argument("--max-deadline-days", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0, help="seed of injected faults")
    parser.add_argument(
        "--private",
        action="store_true",
        help="a private deployment: no anonymous role, so nothing works without credentials",
    )
    return parser.parse_args(argv)


def _load_clients(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise SystemExit(f"{path}: cannot read clients file: {error}") from None
    if not isinstance(loaded, dict) or not set(loaded) <= {"clients", "roles"}:
        raise SystemExit(f"{path}: expected a mapping with `clients` and/or `roles`")
    return loaded


def main(argv: list[str] | None = None) -> int:
    arguments = _arguments(argv)
    config = _load_clients(arguments.clients)
    emulator = Emulator(
        clients=config.get("clients"),
        roles=config.get("roles"),
        max_deadline=timedelta(days=arguments.max_deadline_days),
        seed=arguments.seed,
        private=arguments.private,
    )
    if arguments.latency_ms or arguments.jitter_ms:
        emulator.faults.add("*", latency_ms=arguments.latency_ms, jitter_ms=arguments.jitter_ms)
    sock = serving.bind(arguments.port)
    emulator.root_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    print(json.dumps({"rootUrl": emulator.root_url, **emulator.root_credentials}), flush=True)
    # What start-up loaded (the corpus's references) lives as long as the process: the
    # collector's full passes, which the tasks kept make frequent, need not walk it each time.
    gc.freeze()
    with contextlib.suppress(KeyboardInterrupt):
        serving.serve_forever(emulator, sock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
