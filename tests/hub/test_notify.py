"""Notices that a server is ready (deepvre_hub.notify): the event, its HMAC signature, the e-mail
and the address, sent to a real loopback webhook receiver and SMTP responder; each failure is
logged and raised to nobody (issue 19, item 1). The real hub's path: test_notify_hub.py."""

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import logging
import smtplib

import pytest

from deepvre.site.settings import SettingsError, validate_settings
from deepvre_hub import notify
from tests.hub.receivers import MailSink, WebhookReceiver

NOW = dt.datetime(2026, 12, 1, 13, 0, tzinfo=dt.UTC)
PAYLOAD = notify.event("alice", "", "gpu-1", ["0"], "https://hub.example.org/user/alice/", 42.26, NOW)


def test_the_event_and_its_signature():
    assert PAYLOAD == {"event": "server-ready", "user": "alice", "server": "", "profile": "gpu-1", "gpu_ids": ["0"],
                       "url": "https://hub.example.org/user/alice/", "waited_seconds": 42.3,
                       "time": "2026-12-01T13:00:00Z"}
    url, headers, body = notify.webhook_request({"url": "http://127.0.0.1:1/h"}, PAYLOAD, b"s3cret", 1764594000)
    assert url == "http://127.0.0.1:1/h" and json.loads(body) == PAYLOAD
    expected = hmac.new(b"s3cret", b"1764594000." + body, hashlib.sha256).hexdigest()
    assert headers["X-Deepvre-Signature"] == "sha256=" + expected
    assert headers["X-Deepvre-Timestamp"] == "1764594000" and headers["Content-Type"] == "application/json"
    # another body or timestamp gives another signature; no secret: unsigned
    assert notify.signature(b"s3cret", "1764594001", body) != headers["X-Deepvre-Signature"]
    assert "X-Deepvre-Signature" not in notify.webhook_request({"url": url}, PAYLOAD)[1]
    assert notify.server_url("https://hub.example.org/", "/user/al%40ce/gpu/") == "https://hub.example.org/user/al%40ce/gpu/"
    assert notify.server_url("", "/user/alice/") == "/user/alice/"


def test_who_is_told_and_at_which_address():
    webhook = {"webhook": {"url": "http://127.0.0.1:9/h"}, "when": "queued"}
    assert notify.wanted(webhook, queued=True) and not notify.wanted(webhook, queued=False)
    assert notify.wanted({**webhook, "when": "all"}, queued=False)
    assert not notify.wanted({"webhook": {"timeout": 10}, "email": {"smtp_port": 587}}, queued=True)  # no channel
    assert not notify.wanted({}, queued=True)
    mail = {"address_template": "{username}@lab.example.org"}
    assert notify.address(mail, "bob", {"oauth_user": {"email": "bob@uni.example"}}) == "bob@uni.example"
    assert notify.address(mail, "bob", {"email": "b@x.example"}) == "b@x.example"
    assert notify.address(mail, "bob", None, "bob@signup.example") == "bob@signup.example"
    assert notify.address(mail, "bob", {"email": "evil@x\nBcc: all@x"}) == "bob@lab.example.org"  # no header injection
    assert notify.address({}, "bob") is None


def test_the_settings_section():
    settings = validate_settings({"notify": {"webhook": {"url": "https://chat.example.org/h"}}})["notify"]
    assert settings["when"] == "queued" and settings["webhook"]["timeout"] == 10
    assert settings["email"]["starttls"] is True and settings["email"]["smtp_port"] == 587
    for bad, key in (({"webhook": {"url": "ftp://x"}}, "notify.webhook.url"),
                     ({"email": {"address_template": "all@x"}}, "notify.email.address_template"),
                     ({"email": {"credentials_file": "relative"}}, "notify.email.credentials_file"),
                     ({"when": "sometimes"}, "notify.when")):
        with pytest.raises(SettingsError) as err:
            validate_settings({"notify": bad})
        assert key in str(err.value)


def test_the_e_mail_text():
    message = notify.email_message({"from": "deepvre@lab.example.org"}, PAYLOAD, "alice@lab.example.org")
    assert message["Subject"] == "Your server is ready" and message["To"] == "alice@lab.example.org"
    text = message.get_content()
    assert "with profile gpu-1 has started on GPU 0, after 42 s in the GPU queue." in text
    assert "Open it: https://hub.example.org/user/alice/" in text
    named = notify.email_message({"from": "d@x"}, {**PAYLOAD, "server": "big", "waited_seconds": None}, "a@x")
    assert named["Subject"] == "Your server 'big' is ready" and "in the GPU queue" not in named.get_content()


def test_sent_to_real_loopback_peers(tmp_path, caplog):
    secret = tmp_path / "secret"
    secret.write_text("hook-secret\n")
    credentials = tmp_path / "smtp"
    credentials.write_text("relay-user\nrelay pass\n")
    log = logging.getLogger("test-notify")
    with WebhookReceiver(stall={"slow": 3}) as hook, MailSink(reject={"gone@lab.example.org"}) as sink:
        settings = {"webhook": {"url": hook.url, "secret_file": str(secret), "timeout": 1},
                    "email": {"smtp_host": "127.0.0.1", "smtp_port": sink.port, "starttls": False, "timeout": 5,
                              "from": "deepvre@lab.example.org", "credentials_file": str(credentials)}}
        with caplog.at_level(logging.INFO, "test-notify"):
            asyncio.run(notify.tell(settings, PAYLOAD, "alice@lab.example.org", log))
        (event,) = hook.events
        assert event["json"] == PAYLOAD and event["path"] == "/hooks/gpu"
        stamp = event["headers"]["X-Deepvre-Timestamp"]
        assert event["headers"]["X-Deepvre-Signature"] == notify.signature(b"hook-secret", stamp, event["body"])
        (mail,) = sink.to("alice@lab.example.org")
        assert mail["from"] == "deepvre@lab.example.org" and mail["login"] == ("relay-user", "relay pass")
        assert "https://hub.example.org/user/alice/" in mail["message"].get_payload()
        assert "told the webhook that alice/ is ready" in caplog.text and "mailed alice@lab.example.org" in caplog.text

        # failures: a stalling webhook, a refused address, a relay without STARTTLS when it is required
        caplog.clear()
        slow = {**PAYLOAD, "user": "slow"}
        with caplog.at_level(logging.INFO, "test-notify"):
            asyncio.run(notify.tell(settings, slow, "gone@lab.example.org", log))  # raises nothing
            tls = {**settings, "webhook": {}, "email": {**settings["email"], "starttls": True}}
            asyncio.run(notify.tell(tls, PAYLOAD, "alice@lab.example.org", log))
        assert "the webhook for slow/ failed" in caplog.text
        assert "the e-mail to gone@lab.example.org for slow/ failed" in caplog.text
        assert "STARTTLS extension not supported" in caplog.text
        assert len(sink.to("alice@lab.example.org")) == 1  # nothing went out in plain text
        with pytest.raises(smtplib.SMTPNotSupportedError):
            notify.send_email(tls["email"], notify.email_message(tls["email"], PAYLOAD, "alice@lab.example.org"))
