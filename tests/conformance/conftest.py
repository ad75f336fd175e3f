"""Fixtures of the conformance suite: the target (emulator or real deployment) and the clients.

`target` is a fresh emulator per test (checked with `assert_conforming()` at teardown; public,
or private for tests marked `public_and_private`), or the deployment named by `TC_CONFORMANCE_*`
when all three variables are set; see `target.py`.
`api` gives the services through the real `taskcluster` client, once per flavour (sync, aio).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

from tests.conformance.target import DEPLOYMENTS, FLAVOURS, Clients, Target, real_settings
from tests.emulator import Emulator


@pytest.fixture
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """The deployment under test; an emulated one is public unless the test asks for a private
    one (`public_and_private`)."""
    settings, problem = real_settings()
    if problem:
        pytest.fail(problem)
    if settings is not None:
        real = Target.real(settings)
        yield real
        for leftover in real.close():
            warnings.warn(f"conformance clean-up: {leftover}", stacklevel=1)
        return
    deployment = getattr(request, "param", "public")
    assert deployment in DEPLOYMENTS, deployment
    with Emulator(private=deployment == "private") as emulator:
        emulated = Target.emulated(emulator)
        yield emulated
        leftovers = emulated.close()
        emulator.assert_conforming()
        assert not leftovers, leftovers


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def api(target: Target, flavour: str) -> Clients:
    return Clients(target, flavour)
