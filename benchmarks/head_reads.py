"""Read the branch heads of many repositories served by a local `git http-backend`, by
`git ls-remote` processes and by protocol v2 `ls-refs` over one HTTP session, and print what each
costs: min / median / max over several runs of wall time and CPU per head read, of this process
with its children (the git processes) and of the server apart (its own process, with the
http-backend processes it runs).

Usage: python benchmarks/head_reads.py [--repositories 100] [--runs 3]

`ls-refs, first` is an engine's first read of each repository (capabilities, then ls-refs);
`ls-refs, again` is every later tick's (the capabilities remembered: one request per head).
Figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.figures import own_cpu, spread
from scheduler.git.remote_http import RemoteHttp
from scheduler.git.source import GitSource
from tests.support.git_http import serving
from tests.support.repos import Repository


def serve(root: Path, replies: Connection) -> None:
    """The server's process: serve `root`, then answer its CPU used so far until told to stop."""
    with serving(root) as server:
        replies.send(server.url)
        while replies.recv() == "cpu":
            replies.send(own_cpu())


async def read_heads(source: GitSource, urls: list[str]) -> None:
    await asyncio.gather(*(source.head(url, "main") for url in urls))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repositories", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="head-reads-") as directory:
        root = Path(directory) / "served"
        for number in range(args.repositories):
            Repository(root / f"project-{number}", {".cron.yml": "jobs: []\n"})
        ours, theirs = multiprocessing.get_context("fork").Pipe()
        server = multiprocessing.get_context("fork").Process(target=serve, args=(root, theirs))
        server.start()
        try:
            base = ours.recv()
            urls = [f"{base}/project-{number}" for number in range(args.repositories)]
            figures = run_all(Path(directory) / "cache", urls, args.runs, ours)
        finally:
            ours.send("stop")
            server.join(timeout=30)
    report(figures, args.repositories, args.runs)


def run_all(
    cache: Path, urls: list[str], runs: int, server: Connection
) -> dict[str, list[tuple[float, float, float]]]:
    figures: dict[str, list[tuple[float, float, float]]] = {
        "git ls-remote": [],
        "ls-refs, first": [],
        "ls-refs, again": [],
    }

    async def one_run() -> tuple[tuple[float, float, float], ...]:
        by_process = await timed(server, lambda: read_heads(GitSource(cache), urls))
        async with RemoteHttp() as http:
            source = GitSource(cache, http=http)
            first = await timed(server, lambda: read_heads(source, urls))
            again = await timed(server, lambda: read_heads(source, urls))
        return by_process, first, again

    for _ in range(runs):
        for name, figure in zip(figures, asyncio.run(one_run()), strict=True):
            figures[name].append(figure)
    return figures


async def timed(
    server: Connection, work: Callable[[], Awaitable[None]]
) -> tuple[float, float, float]:
    """Wall seconds, this process's CPU seconds and the server's CPU seconds of `work`."""
    server.send("cpu")
    server_before, client_before, started = server.recv(), own_cpu(), time.perf_counter()
    await work()
    wall, client = time.perf_counter() - started, own_cpu() - client_before
    server.send("cpu")
    return wall, client, server.recv() - server_before


def report(figures: dict[str, list[tuple[float, float, float]]], heads: int, runs: int) -> None:
    print(f"head reads: {heads} repositories on a local git http-backend, {runs} runs")
    print(
        "  (min / median / max)            wall s              "
        "CPU ms per head, here      CPU ms per head, server"
    )
    for name, runs_of in figures.items():
        wall = [figure[0] for figure in runs_of]
        client = [figure[1] * 1000 / heads for figure in runs_of]
        served = [figure[2] * 1000 / heads for figure in runs_of]
        print(f"  {name:<16} {spread(wall)}   {spread(client)}   {spread(served)}")


if __name__ == "__main__":
    main()
