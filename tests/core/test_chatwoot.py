"""Chatwoot connector against a protocol-faithful fake server: mapping, polling, webhooks, sending,
auth failure, 429 + Retry-After, network loss and reconnection, duplicate delivery."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from csassist.core.errors import CsassistError
from csassist.core.io.chatwoot import WEBHOOK_PREFIX, ChatwootConnector, load_token
from csassist.core.io.chatwoot_api import ChatwootConfig, parse_key, to_message
from csassist.core.io.listen import ListenServer
from csassist.core.io.outbox import Outbox
from csassist.core.types import Message
from tests.fake_chatwoot import FakeChatwoot, fixture, post_webhook

HMAC = "hmac-secret"


@pytest.fixture
def fake() -> Iterator[FakeChatwoot]:
    server = FakeChatwoot()
    server.add_conversation(12)
    yield server
    server.close()


def _connector(fake: FakeChatwoot, tmp_path: Path, problems: list[str], **overrides: object) -> ChatwootConnector:
    values: dict[str, object] = {"url": fake.url, "account_id": 1, "token": "tok-agent", "poll_interval_s": 0.05,
                                 "webhook_secret": "url-secret", "webhook_hmac_secret": HMAC, "timeout_s": 2.0}
    values.update(overrides)
    return ChatwootConnector(ChatwootConfig(**values), ledger=tmp_path / "delivered.jsonl",  # type: ignore[arg-type]
                             outbox_path=tmp_path / "outbox.jsonl", on_problem=problems.append)


def _wait(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_field_mapping_of_documented_payloads() -> None:
    hook = fixture("webhook_message_created.json")
    message = to_message(1, 12, hook)
    assert message == Message("cw-1-12", "customer", hook["content"], ts=message.ts, customer="Ana Lima")  # type: ignore[union-attr]
    assert message is not None and time.gmtime(message.ts)[:6] == (2026, 11, 30, 9, 15, 2)
    api = fixture("api_message.json")
    assert to_message(1, 12, api) == Message("cw-1-12", "customer", api["content"], ts=1796030102.0, customer="Ana Lima")
    assert to_message(1, 12, {**api, "private": True}) is None  # a private note is not the customer's
    assert to_message(1, 12, {**api, "message_type": 2}) is None  # activity ("assigned to Sam")
    agent = to_message(1, 12, {**api, "message_type": 1, "sender": {"name": "Sam", "type": "user"}})
    assert agent is not None and agent.speaker == "agent" and agent.customer is None
    assert parse_key("cw-1-12") == (1, 12) and parse_key("c-1042") is None and parse_key("cw-x-1") is None


def test_token_from_env_or_a_private_file(tmp_path: Path) -> None:
    assert load_token("", {"CSASSIST_CHATWOOT_TOKEN": " abc "}) == "abc"
    token_file = tmp_path / "token"
    token_file.write_text("secret-token\n")
    os.chmod(token_file, 0o644)
    with pytest.raises(CsassistError, match="chmod 600"):
        load_token(str(token_file), {})
    os.chmod(token_file, 0o600)
    assert load_token(str(token_file), {}) == "secret-token"
    with pytest.raises(CsassistError, match="CSASSIST_CHATWOOT_TOKEN"):
        load_token("", {})


def test_polling_emits_each_message_once_and_follows_new_ones(fake: FakeChatwoot, tmp_path: Path) -> None:
    fake.add_message(12, "Where is my parcel?")
    fake.add_message(12, "private remark", incoming=False, private=True)
    fake.add_conversation(99, assigned=False)
    fake.add_message(99, "someone else's customer")
    got: list[Message] = []
    problems: list[str] = []
    connector = _connector(fake, tmp_path, problems)
    connector.poller.start(got.append)
    try:
        _wait(lambda: connector.poller.rounds >= 2)
        assert [(m.conversation_id, m.speaker, m.text) for m in got] == [("cw-1-12", "customer", "Where is my parcel?")]
        fake.add_message(12, "Hello? Order 1042.")
        fake.add_message(12, "I answered this in Chatwoot itself", incoming=False)  # closes the turn in csassist
        _wait(lambda: len(got) == 3)
        rounds = connector.poller.rounds
        _wait(lambda: connector.poller.rounds >= rounds + 2)
        assert [m.speaker for m in got] == ["customer", "customer", "agent"] and len(got) == 3
        gets = [p for m, p, _ in fake.requests if m == "GET" and p.endswith("/messages")]
        assert gets, "messages were fetched per conversation"
    finally:
        connector.poller.stop()
    assert not problems


def test_auth_failure_is_reported_and_nothing_is_emitted(fake: FakeChatwoot, tmp_path: Path) -> None:
    fake.add_message(12, "hello")
    got: list[Message] = []
    problems: list[str] = []
    connector = _connector(fake, tmp_path, problems, token="wrong")
    connector.poller.start(got.append)
    try:
        _wait(lambda: any("refused the API token" in p for p in problems))
    finally:
        connector.poller.stop()
    assert got == []
    connector = _connector(fake, tmp_path, problems, token="wrong")
    connector.sender.start()
    connector.sender.submit({"id": "r1", "conversation_id": "cw-1-12", "text": "Hi", "ts": time.time()})
    assert connector.sender.wait_idle(10)
    assert fake.posted == [] and any("stays in the outbox" in p for p in problems)
    connector.sender.stop()


def test_a_429_is_retried_after_retry_after_and_posted_once(fake: FakeChatwoot, tmp_path: Path) -> None:
    problems: list[str] = []
    connector = _connector(fake, tmp_path, problems)
    connector.sender.start()
    fake.fail_next(1, 429, retry_after="1")
    started = time.monotonic()
    connector.sender.submit({"id": "r1", "conversation_id": "cw-1-12", "text": "Your refund is on its way.",
                             "ts": time.time()})
    assert connector.sender.wait_idle(20)
    assert time.monotonic() - started >= 0.9  # Retry-After honoured
    assert [p["content"] for p in fake.posted] == ["Your refund is on its way."]
    assert fake.posted[0]["message_type"] == "outgoing" and fake.posted[0]["private"] is False
    connector.sender.stop()


def test_network_loss_then_reconnection_loses_nothing_and_duplicates_nothing(fake: FakeChatwoot, tmp_path: Path) -> None:
    got: list[Message] = []
    problems: list[str] = []
    connector = _connector(fake, tmp_path, problems, private_notes=True)
    connector.poller.start(got.append)
    try:
        _wait(lambda: connector.poller.rounds >= 1)
        fake.down = True
        fake.add_message(12, "Are you there?")  # arrives in Chatwoot while we are cut off
        connector.sender.submit({"id": "r2", "conversation_id": "cw-1-12", "text": "Checking now.", "ts": time.time()})
        _wait(lambda: any("messages are not lost" in p for p in problems))  # the poller noticed
        fake.down = False
        _wait(lambda: [m.text for m in got] == ["Are you there?"])
        assert connector.sender.wait_idle(30)
        rounds = connector.poller.rounds
        _wait(lambda: connector.poller.rounds >= rounds + 2)
    finally:
        connector.poller.stop()
    assert [(p["content"], p["private"]) for p in fake.posted] == [("Checking now.", True)]  # a note, once
    assert [m.text for m in got] == ["Are you there?"]  # our own note is not echoed as an agent turn
    assert any("reachable again" in p for p in problems)


def test_webhooks_secret_signature_and_duplicate_delivery(fake: FakeChatwoot, tmp_path: Path) -> None:
    got: list[Message] = []
    problems: list[str] = []
    connector = _connector(fake, tmp_path, problems, poll_interval_s=0.05)
    connector.attach(got.append)
    stored = fake.add_message(12, "My card 4111 1111 1111 1111 was charged twice")
    event = fake.webhook_event(stored)
    with ListenServer(on_message=got.append, routes={WEBHOOK_PREFIX: connector.webhook}) as server:
        url = server.url + WEBHOOK_PREFIX
        assert post_webhook(url + "wrong", event, hmac_secret=HMAC)[0] == 401
        assert post_webhook(url + "url-secret", event)[0] == 401  # signature required once configured
        assert post_webhook(url + "url-secret", event, hmac_secret="other")[0] == 401
        stale = {"X-Chatwoot-Timestamp": str(int(time.time()) - 3600)}
        assert post_webhook(url + "url-secret", event, hmac_secret=HMAC, headers=stale)[0] == 401
        assert got == []
        assert post_webhook(url + "url-secret", event, hmac_secret=HMAC) == (200, {"accepted": True})
        assert post_webhook(url + "url-secret", event, hmac_secret=HMAC) == (200, {"accepted": False})  # re-delivery
        assert post_webhook(url + "url-secret", {**event, "event": "conversation_updated"}, hmac_secret=HMAC)[0] == 200
        other = fake.webhook_event(stored)
        other["account"]["id"] = 2
        assert post_webhook(url + "url-secret", other, hmac_secret=HMAC)[0] == 403
    connector.poller.poll_once()  # the same message seen by polling too
    assert [(m.conversation_id, m.customer) for m in got] == [("cw-1-12", "Ana Lima")]


def test_replies_not_delivered_before_a_restart_are_posted_once_at_the_next_start(fake: FakeChatwoot,
                                                                                   tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.jsonl")
    outbox.send("cw-1-12", "Sent while Chatwoot was down.")
    outbox.send("c-demo", "a reply of another feed")
    outbox.close()
    for _ in range(2):  # two app starts: the second finds it delivered in the ledger
        problems: list[str] = []
        connector = _connector(fake, tmp_path, problems)
        connector.sender.start(tmp_path / "outbox.jsonl")
        assert connector.sender.wait_idle(20)
        connector.sender.stop()
    assert [p["content"] for p in fake.posted] == ["Sent while Chatwoot was down."]


def test_source_chatwoot_is_built_from_settings(fake: FakeChatwoot, monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from csassist.settings import ChatwootSettings, Settings
    from csassist.ui.intake import build_intake

    args = argparse.Namespace(source="chatwoot", follow=False, listen="127.0.0.1:0", no_demo=True, speed=1.0)
    with pytest.raises(CsassistError, match="account_id"):
        build_intake(args, Settings())
    monkeypatch.setenv("CSASSIST_CHATWOOT_TOKEN", "tok-agent")
    settings = Settings(chatwoot=ChatwootSettings(url=fake.url, account_id=1, webhook_secret="s3cret"))
    intake = build_intake(args, settings)
    assert intake.chatwoot is not None and intake.sources[0] is intake.chatwoot.poller
    assert WEBHOOK_PREFIX in intake.sources[1].routes and intake.label.startswith("chatwoot ")
    intake.outbox.close()
