"""What a fire costs in CPU besides the ledger and git: rendering its `.taskcluster.yml`, and its
createTask call through the Taskcluster client library.

Renders: every corpus template that renders for cron, with json-e's own `render` and with the
project's (`scheduler/common/jsone_cache.py`, each expression parsed once per process, its
cache warm as in a running service), in turns of about `--seconds` of CPU each, within each run.
createTask: `--calls` calls (`--concurrency` at a time) of the translations decision task, each
limited to a project's scopes (authorizedScopes), against the standalone emulator on this
machine; signed by the client library itself (mohawk, which pretty-prints every body into a debug
message) and by the service's session (`scheduler/taskcluster_signing.py`), in turns within each
run. CPU of this process and of the emulator's, per call. min / median / max over `--runs`.
Figures are printed, not asserted; the issue's target is a tick of 2 ms of CPU per fire.
Usage: `python benchmarks/per_fire.py [--runs 3] [--calls 500] [--concurrency 20]`.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import jsone
import slugid
import taskcluster.aio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.figures import process_cpu, spread
from scheduler.common import jsone_cache, logs
from scheduler.render import Push, Repository, _parsed_template, cron_context, format_json_e_time
from scheduler.taskcluster_session import for_the_library
from tests.emulator.standalone import start_standalone
from tests.support.rendering import REVISION, ROOT_URL, SLOT, corpus_cases, render_corpus

Render = Callable[[Any, dict[str, Any]], Any]
# The scopes of a corpus project's cron fires, as the service limits its calls to.
PROJECT_SCOPES = [
    "assume:repo:github.com/mozilla/translations:cron:*",
    "queue:create-task:*",
    "queue:route:*",
    "queue:scheduler-id:*",
]


# -- renders ---------------------------------------------------------------------------------


def corpus_renders() -> list[tuple[Any, dict[str, Any]]]:
    """Each corpus template that renders for cron (parsed YAML) with its fire's context."""
    renders = []
    for path, job in corpus_cases():
        owner, name = path.name.removesuffix(".taskcluster.yml").split("__")[:2]
        context = cron_context(
            root_url=ROOT_URL,
            repository=Repository(f"https://github.com/{owner}/{name}", name, "3"),
            push=Push(REVISION, branch="main"),
            job=job,
            kind=job.kind,
            task_id=slugid.nice(),
            now=SLOT,
        )
        document = _parsed_template(path.read_bytes())
        try:
            jsone.render(document, context)
        except jsone.JSONTemplateError:
            continue  # a template that needs more than cron gives (tests/support/rendering.py)
        renders.append((document, context))
    return renders


def renders_per_second(
    render: Render, renders: list[tuple[Any, dict[str, Any]]], seconds: float
) -> float:
    """Whole passes over the corpus for about `seconds` of CPU: templates rendered per CPU s."""
    count, started = 0, time.process_time()
    while (spent := time.process_time() - started) < seconds or not count:
        for document, context in renders:
            render(document, context)
        count += len(renders)
        spent = time.process_time() - started
    return count / spent


# -- createTask ------------------------------------------------------------------------------


def decision_task() -> dict[str, Any]:
    """The translations decision task, created now (the emulator refuses stale `created`)."""
    path, job = next(case for case in corpus_cases() if "translations" in case[0].name)
    definition = copy.deepcopy(render_corpus(path, job).definition)
    now = datetime.now(UTC)
    definition["created"] = format_json_e_time(now)
    definition["deadline"] = format_json_e_time(now + timedelta(days=1))
    definition["expires"] = format_json_e_time(now + timedelta(days=30))
    return definition


async def create_tasks(
    credentials: Mapping[str, str], signed_by_session: bool, calls: int, concurrency: int
) -> float:
    """`calls` createTask calls; the CPU seconds this process spent on them."""
    options = {
        "rootUrl": credentials["rootUrl"],
        "credentials": {k: credentials[k] for k in ("clientId", "accessToken")},
        "authorizedScopes": PROJECT_SCOPES,
        "maxRetries": 5,
    }
    definition = decision_task()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
        if signed_by_session:
            signing, unsigned = for_the_library(session, options)
            queue = taskcluster.aio.Queue(unsigned, session=signing)
        else:
            queue = taskcluster.aio.Queue(options, session=session)
        await queue.createTask(slugid.nice(), definition)  # the connection, opened
        gate = asyncio.Semaphore(concurrency)

        async def create() -> None:
            async with gate:
                await queue.createTask(slugid.nice(), definition)

        started = time.process_time()
        await asyncio.gather(*(create() for _ in range(calls)))
        return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement (3)")
    parser.add_argument("--seconds", type=float, default=1.0, help="CPU s per render turn (1)")
    parser.add_argument("--calls", type=int, default=500, help="createTask calls per turn (500)")
    parser.add_argument("--concurrency", type=int, default=20, help="calls at a time (20)")
    arguments = parser.parse_args()
    logs.configure(level="info")  # the service's default: no debug, as in production

    renders = corpus_renders()
    plain: list[float] = []
    cached: list[float] = []
    for _ in range(arguments.runs):
        plain.append(renders_per_second(jsone.render, renders, arguments.seconds))
        cached.append(renders_per_second(jsone_cache.render, renders, arguments.seconds))
    ratios = [c / p for c, p in zip(cached, plain, strict=True)]
    print(
        f"renders of {len(renders)} corpus templates for cron, per CPU second (min / median / max):"
    )
    print(f"  json-e's render:         {spread(plain, ',.0f')}")
    kept = f"{spread(cached, ',.0f')}  ({spread(ratios, ',.2f', 'x')} as many)"
    print(f"  parsed expressions kept: {kept}")
    before, after = [1e3 / r for r in plain], [1e3 / r for r in cached]
    print(f"  CPU per render: {spread(before, ',.2f', ' ms')} -> {spread(after, ',.2f', ' ms')}")

    process, credentials = start_standalone()
    try:
        results: dict[bool, tuple[list[float], list[float]]] = {False: ([], []), True: ([], [])}
        for _ in range(arguments.runs):
            for by_session in (False, True):
                emulator_before = process_cpu(process.pid)
                own = asyncio.run(
                    create_tasks(credentials, by_session, arguments.calls, arguments.concurrency)
                )
                emulator = process_cpu(process.pid) - emulator_before
                results[by_session][0].append(own / arguments.calls * 1e6)
                results[by_session][1].append(emulator / arguments.calls * 1e6)
    finally:
        process.terminate()
        process.wait()
    print(
        f"createTask x {arguments.calls} ({arguments.concurrency} at a time), CPU per call "
        "(min / median / max):"
    )
    for by_session, label in (
        (False, "signed by the client library"),
        (True, "signed by the session"),
    ):
        own_cpu, emulator_cpu = results[by_session]
        print(f"  {label:29} this process {spread(own_cpu, ',.0f', ' us')}, ", end="")
        print(f"emulator {spread(emulator_cpu, ',.0f', ' us')}")
    saved = [b - a for b, a in zip(results[False][0], results[True][0], strict=True)]
    print(f"  saved per call in this process: {spread(saved, ',.0f', ' us')}")


if __name__ == "__main__":
    main()
