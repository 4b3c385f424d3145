"""On a real local hub (root, one listed GPU, the idle culler every 2 s):

- a server's maximum lifetime (a profile's ``max_age``): the queue's progress page says when the
  holder's GPU frees up at the latest, the culler stops the busy holder at that age, and its usage
  row ends as ``lifetime`` (issue 19, item 1's "at the latest");
- the user whose spawn waited is told when the server is ready: a signed webhook to a loopback
  receiver and an e-mail to a loopback SMTP responder; a stalling webhook and a refused address
  are logged and the server starts all the same (issue 19, item 1's notification).
"""

import secrets

import pytest

from deepvre_hub import gpu_queue, notify, usage
from tests.hub.hubprocess import HubProcess, wait_for
from tests.hub.receivers import MailSink, WebhookReceiver
from tests.hub.test_gpu_queue_hub import queue_event, queue_post
from tests.prereqs import require_proxy, require_root

pytestmark = [pytest.mark.hub, pytest.mark.root]

LIFETIME = 60  # seconds: the short GPU profile's max_age (a loaded machine takes up to 30 s to spawn)
PROFILES = [
    {"slug": "cpu", "display_name": "CPU", "cpu": 1, "memory": "1G", "default": True},
    {"slug": "gpu-short", "display_name": "1 GPU, 1 min", "cpu": 1, "gpus": 1, "max_age": LIFETIME},
    {"slug": "gpu-1", "display_name": "1 GPU", "cpu": 1, "gpus": 1},
]
PASSWORD = "notify-" + secrets.token_hex(6)
DOMAIN = "lab.example.org"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    require_root()
    require_proxy()
    folder = tmp_path_factory.mktemp("notify-hub")
    secret = folder / "hook-secret"
    secret.write_text("hook-" + secrets.token_hex(8))
    secret.chmod(0o600)
    names = {role: f"n{secrets.token_hex(3)}{role}" for role in ("alice", "bob", "carol")}
    with WebhookReceiver(stall={names["carol"]: 6}) as hook, MailSink(reject={f"{names['carol']}@{DOMAIN}"}) as sink:
        process = HubProcess({
            "profiles": PROFILES,
            "gpus": {"discovery": "list", "devices": [{"index": "0"}]},
            "culling": {"enabled": True, "timeout": 7200, "gpu_timeout": 7200, "every": 2},
            "notify": {"public_url": "https://hub.example.org",
                       "webhook": {"url": hook.url, "secret_file": str(secret), "timeout": 2},
                       "email": {"smtp_host": "127.0.0.1", "smtp_port": sink.port, "starttls": False,
                                 "from": f"deepvre@{DOMAIN}", "address_template": "{username}@" + DOMAIN}},
        }, folder / "state")
        with process.running():
            admin = process.login(process.admin, process.admin_password)
            users = {role: (name, *process.approved_user(admin, name, PASSWORD)) for role, name in names.items()}
            yield process, users, hook, sink, secret.read_bytes()


def test_lifetime_at_the_latest_and_the_notices(hub):
    process, users, hook, sink, secret = hub
    (alice, _, alice_t), (bob, _, bob_t), (carol, _, carol_t) = users["alice"], users["bob"], users["carol"]
    assert process.spawn(alice_t, alice, profile="gpu-short").status_code in (201, 202)
    queue_post(process, bob_t, bob)
    message = queue_event(process, bob_t, bob)
    assert message.startswith("Waiting for a GPU: 1st in the queue; a GPU frees up by "), message
    assert f"when {alice}'s server reaches its maximum age ({gpu_queue.duration(LIFETIME)})." in message, message

    # alice's server is stopped at its age although it is not idle; bob's spawn goes on
    process.wait_ready(bob_t, bob, timeout=LIFETIME + 120)
    assert process.server_model(alice_t, alice) is None
    book = usage.UsageBook(usage.default_url(process.state_dir))
    (row,) = [r for r in book.rows(users=[alice]) if r["profile"] == "gpu-short"]
    assert (row["reason"], row["ended_by"]) == (usage.LIFETIME, "service:idle-culler"), row
    assert (row["end"] - row["start"]).total_seconds() < LIFETIME + 30, row  # the row starts after the spawn's start

    # bob, who waited, is told: a signed webhook and an e-mail; alice, who did not wait, is not
    (event,) = wait_for(lambda: hook.for_user(bob), 30, "bob's webhook")
    body = event["json"]
    assert {k: body[k] for k in ("event", "user", "server", "profile", "gpu_ids", "url")} == {
        "event": "server-ready", "user": bob, "server": "", "profile": "gpu-1", "gpu_ids": ["0"],
        "url": f"https://hub.example.org/user/{bob}/"}
    assert body["waited_seconds"] > 5
    headers = event["headers"]
    assert headers["X-Deepvre-Signature"] == notify.signature(secret, headers["X-Deepvre-Timestamp"], event["body"])
    assert bob_t not in event["body"].decode() and "token" not in event["body"].decode().lower()
    (mail,) = wait_for(lambda: sink.to(f"{bob}@{DOMAIN}"), 30, "bob's e-mail")
    assert mail["message"]["Subject"] == "Your server is ready"
    assert f"https://hub.example.org/user/{bob}/" in mail["message"].get_payload()
    assert hook.for_user(alice) == [] and sink.to(f"{alice}@{DOMAIN}") == []

    # carol's webhook stalls past its timeout and her address is refused: logged, and she gets her server
    queue_post(process, carol_t, carol)
    process.stop_server(bob_t, bob)
    process.wait_ready(carol_t, carol, timeout=120)
    wait_for(lambda: f"the webhook for {carol}/ failed" in process.log_text(), 30, "the webhook's failure in the log")
    wait_for(lambda: f"the e-mail to {carol}@{DOMAIN} for {carol}/ failed" in process.log_text(), 30,
             "the e-mail's failure in the log")
    assert (process.server_model(carol_t, carol) or {}).get("ready")
    assert sink.to(f"{carol}@{DOMAIN}") == []
    process.stop_server(carol_t, carol)
