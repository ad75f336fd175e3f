"""The local Sentry fake, fed by the unmodified sentry_sdk and by hand-made envelopes.

Events, exceptions, transactions, cron check-ins, auth, encodings and injected 429/5xx.
"""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import sentry_sdk
from sentry_sdk.crons import capture_checkin, monitor

from tests.emulator.sentry import REDACTED, FakeSentry
from tests.support.fakes import SENTRY_KEY

if TYPE_CHECKING:
    from sentry_sdk._types import MonitorConfig

FLUSH = 60.0  # only a hang guard: flushing returns once everything is sent

Init = Callable[..., None]


@pytest.fixture
def init_sdk(fake_sentry: FakeSentry) -> Iterator[Init]:
    """Initialises the global SDK for one test and puts back a client that sends nowhere."""

    def init(dsn: str | None = None, **options: Any) -> None:
        sentry_sdk.init(
            dsn=dsn or fake_sentry.dsn,
            # Integrations patch libraries process-wide (Starlette included, which the fakes
            # run on); a test must not leave them behind.
            default_integrations=False,
            auto_enabling_integrations=False,
            release="tc-scheduler@test",
            environment="test",
            traces_sample_rate=1.0,
            **options,
        )

    yield init
    sentry_sdk.get_client().close(timeout=FLUSH)
    sentry_sdk.get_global_scope().set_client(None)


def post(
    fake_sentry: FakeSentry, body: bytes, headers: dict[str, str], path: str = "1/envelope"
) -> tuple[int, str]:
    url = f"{fake_sentry.url}/api/{path}/"
    request = urllib.request.Request(url, body, headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def auth(key: str = SENTRY_KEY) -> dict[str, str]:
    return {"X-Sentry-Auth": f"Sentry sentry_key={key}, sentry_version=7, sentry_client=hand/1"}


def test_capture_message_arrives_gzip_compressed_by_default(
    fake_sentry: FakeSentry, init_sdk: Init
) -> None:
    init_sdk()

    event_id = sentry_sdk.capture_message("decision task created", level="info")
    sentry_sdk.flush(FLUSH)

    [item] = fake_sentry.wait_for("event")
    assert item.json["event_id"] == event_id
    assert item.json["message"] == "decision task created"
    assert item.json["level"] == "info"
    assert item.json["release"] == "tc-scheduler@test"
    # Without the brotli module the SDK falls back to gzip.
    assert [d.encoding for d in fake_sentry.deliveries] == ["gzip"]


def test_capture_exception_carries_type_and_value(fake_sentry: FakeSentry, init_sdk: Init) -> None:
    init_sdk()

    try:
        raise LookupError("no such hook")
    except LookupError as error:
        sentry_sdk.capture_exception(error)
    sentry_sdk.flush(FLUSH)

    [event] = [i.json for i in fake_sentry.wait_for("event")]
    [exception] = event["exception"]["values"]
    assert (exception["type"], exception["value"]) == ("LookupError", "no such hook")
    assert event["level"] == "error"


def test_transaction_arrives_with_its_spans(fake_sentry: FakeSentry, init_sdk: Init) -> None:
    init_sdk()

    # The span is created after the transaction is entered, so it is the transaction's child.
    with (
        sentry_sdk.start_transaction(name="tick", op="cron.tick"),
        sentry_sdk.start_span(op="queue.createTask", name="create decision task"),
    ):
        pass
    sentry_sdk.flush(FLUSH)

    [transaction] = [i.json for i in fake_sentry.wait_for("transaction")]
    assert transaction["transaction"] == "tick"
    assert transaction["contexts"]["trace"]["op"] == "cron.tick"
    assert [s["op"] for s in transaction["spans"]] == ["queue.createTask"]
    assert fake_sentry.events == []


def test_cron_check_ins_keep_slug_status_id_and_config(
    fake_sentry: FakeSentry, init_sdk: Init
) -> None:
    init_sdk()
    config: MonitorConfig = {
        "schedule": {"type": "crontab", "value": "0 * * * *"},
        "timezone": "UTC",
    }

    check_in_id = capture_checkin(
        monitor_slug="nightly-l10n", status="in_progress", monitor_config=config
    )
    capture_checkin(monitor_slug="nightly-l10n", check_in_id=check_in_id, status="ok", duration=2.5)
    sentry_sdk.flush(FLUSH)

    opened, closed = fake_sentry.wait_for("check_in", count=2)
    assert (opened.json["monitor_slug"], opened.json["status"]) == ("nightly-l10n", "in_progress")
    assert opened.json["monitor_config"] == config
    assert closed.json["check_in_id"] == opened.json["check_in_id"] == check_in_id
    assert (closed.json["status"], closed.json["duration"]) == ("ok", 2.5)


def test_monitor_decorator_reports_success_and_failure(
    fake_sentry: FakeSentry, init_sdk: Init
) -> None:
    init_sdk()

    @monitor(monitor_slug="hourly")
    def tick(fail: bool) -> None:
        if fail:
            raise RuntimeError("createTask refused")

    tick(fail=False)
    with pytest.raises(RuntimeError):
        tick(fail=True)
    sentry_sdk.flush(FLUSH)

    check_ins = [i.json for i in fake_sentry.wait_for("check_in", count=4)]
    assert [c["status"] for c in check_ins] == ["in_progress", "ok", "in_progress", "error"]
    assert {c["monitor_slug"] for c in check_ins} == {"hourly"}
    assert check_ins[0]["check_in_id"] == check_ins[1]["check_in_id"]
    assert check_ins[1]["duration"] >= 0


def test_uncompressed_transport_is_understood(fake_sentry: FakeSentry, init_sdk: Init) -> None:
    init_sdk(_experiments={"transport_compression_level": 0})

    sentry_sdk.capture_message("plain")
    sentry_sdk.flush(FLUSH)

    assert [e["message"] for e in fake_sentry.events] == ["plain"]
    assert [d.encoding for d in fake_sentry.deliveries] == [""]


def test_wrong_public_key_records_nothing(fake_sentry: FakeSentry, init_sdk: Init) -> None:
    wrong = "fedcba9876543210fedcba9876543210"
    init_sdk(dsn=fake_sentry.dsn.replace(SENTRY_KEY, wrong))

    sentry_sdk.capture_message("should not land")
    sentry_sdk.flush(FLUSH)

    fake_sentry.wait_until(lambda fake: bool(fake.rejections), timeout=FLUSH)
    assert fake_sentry.items == []
    assert {(d.status, d.reason) for d in fake_sentry.deliveries} == {(401, "invalid public key")}
    assert wrong not in repr(fake_sentry.deliveries)


def test_auth_failures_never_echo_the_key(fake_sentry: FakeSentry) -> None:
    envelope = b'{}\n{"type":"event"}\n{"message":"x"}\n'
    offered = "not-the-key-but-secret-anyway"

    missing = post(fake_sentry, envelope, {})
    wrong = post(fake_sentry, envelope, auth(offered))

    assert missing[0] == wrong[0] == 401
    assert offered not in wrong[1]
    assert SENTRY_KEY not in missing[1] + wrong[1]
    assert fake_sentry.items == []


def test_the_public_key_is_scrubbed_from_recorded_envelope_headers(
    fake_sentry: FakeSentry, init_sdk: Init
) -> None:
    init_sdk()

    sentry_sdk.capture_message("scrubbed")
    sentry_sdk.flush(FLUSH)

    [item] = fake_sentry.wait_for("event")
    assert item.envelope["trace"]["public_key"] == REDACTED
    assert SENTRY_KEY not in json.dumps(item.envelope)


def test_rate_limit_is_honoured_by_the_sdk(fake_sentry: FakeSentry, init_sdk: Init) -> None:
    fake_sentry.rate_limit(retry_after=60)
    init_sdk()

    sentry_sdk.capture_message("refused")
    sentry_sdk.flush(FLUSH)
    # The SDK now backs off for 60 s and drops this one itself: it never reaches the fake.
    sentry_sdk.capture_message("dropped by the client")
    sentry_sdk.flush(FLUSH)

    assert fake_sentry.events == []
    assert [(d.status, d.item_types, d.injected) for d in fake_sentry.deliveries] == [
        (429, ("event",), True)
    ]


def test_rate_limit_for_one_category_lets_the_others_through(
    fake_sentry: FakeSentry, init_sdk: Init
) -> None:
    fake_sentry.rate_limit(retry_after=60, categories=["transaction"])
    init_sdk()

    with sentry_sdk.start_transaction(name="refused"):
        pass
    sentry_sdk.flush(FLUSH)
    with sentry_sdk.start_transaction(name="dropped by the client"):
        pass
    sentry_sdk.capture_message("still welcome")
    sentry_sdk.flush(FLUSH)

    assert fake_sentry.transactions == []
    assert [e["message"] for e in fake_sentry.events] == ["still welcome"]
    sent = [
        (d.status, d.item_types)
        for d in fake_sentry.deliveries
        if "client_report" not in d.item_types
    ]
    assert sent == [(429, ("transaction",)), (200, ("event",))]


def test_server_error_loses_one_envelope_and_the_sdk_reports_it(
    fake_sentry: FakeSentry, init_sdk: Init
) -> None:
    fake_sentry.server_error(status=503)
    init_sdk()

    sentry_sdk.capture_message("lost")
    sentry_sdk.flush(FLUSH)
    sentry_sdk.capture_message("kept")
    sentry_sdk.flush(FLUSH)

    assert [e["message"] for e in fake_sentry.events] == ["kept"]
    assert fake_sentry.rejections[0].status == 503
    # flush() sends the SDK's own account of what it lost.
    reports = [i.json for i in fake_sentry.wait_for("client_report")]
    discarded = [d for r in reports for d in r["discarded_events"]]
    assert {"reason": "network_error", "category": "error", "quantity": 1} in discarded


def test_hand_made_envelopes_in_every_encoding(fake_sentry: FakeSentry) -> None:
    # The second item has no length: its payload runs to the end of the line.
    envelope = (
        b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}\n'
        b'{"type":"event","length":19}\n{"message":"sized"}\n'
        b'{"type":"session"}\n{"sid":"s1","status":"ok"}\n'
        b'{"type":"attachment","length":3,"filename":"b.bin"}\n\x00\n\xff\n'
    )
    deflater = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw_deflate = deflater.compress(envelope) + deflater.flush()
    bodies = [
        ("gzip", gzip.compress(envelope)),
        ("deflate", zlib.compress(envelope)),
        ("deflate", raw_deflate),
        ("identity", envelope),
    ]

    for encoding, body in bodies:
        assert post(fake_sentry, body, {**auth(), "Content-Encoding": encoding})[0] == 200

    assert [e["message"] for e in fake_sentry.events] == ["sized"] * 4
    assert fake_sentry.sessions == [{"sid": "s1", "status": "ok"}] * 4
    assert [i.payload for i in fake_sentry.items_of("attachment")] == [b"\x00\n\xff"] * 4


@pytest.mark.parametrize(
    ("body", "headers", "reason"),
    [
        (b"{}\n", {"Content-Encoding": "compress"}, "unsupported content encoding 'compress'"),
        (b"not gzip", {"Content-Encoding": "gzip"}, "the body is not valid gzip"),
        (b"[]\n", {}, "the envelope header is not a JSON object"),
        (b'{}\n{"length":2}\n{}\n', {}, "an item header has no type"),
        (b'{}\n{"type":"event","length":99}\n{}\n', {}, "an item length runs past the end"),
    ],
)
def test_malformed_envelopes_are_refused(
    fake_sentry: FakeSentry, body: bytes, headers: dict[str, str], reason: str
) -> None:
    status, _ = post(fake_sentry, body, {**auth(), **headers})

    assert status == 400
    [delivery] = fake_sentry.deliveries
    assert delivery.reason is not None
    assert delivery.reason.startswith(reason)
    assert fake_sentry.items == []


def test_legacy_store_endpoint_and_unknown_project(fake_sentry: FakeSentry) -> None:
    event = {"event_id": "a" * 32, "message": "stored", "level": "warning"}

    stored = post(fake_sentry, json.dumps(event).encode(), auth(), path="1/store")
    unknown = post(fake_sentry, b"{}\n", auth(), path="2/envelope")

    assert stored[0] == 200
    assert fake_sentry.events == [event]
    assert unknown[0] == 404


def test_waiting_for_what_never_comes_times_out(fake_sentry: FakeSentry) -> None:
    with pytest.raises(TimeoutError):
        fake_sentry.wait_for("event", timeout=0)
