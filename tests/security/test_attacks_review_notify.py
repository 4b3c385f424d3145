"""The hostile review of the notices that a server is ready (deepvre_hub.notify, issue 19 item 1).

The e-mail goes to the address the user's identity gives (the OIDC ``email`` claim, which many
identity providers let a person edit, or NativeAuthenticator's sign-up record). Before the fix any
text with an ``@`` and no line break was taken whole as the ``To`` header, so bob's address
``bob@lab, victim@elsewhere, ...`` (or ``Name <victim@elsewhere>``) made the site's SMTP relay mail the
notice to anyone he listed, at every start. Now only one plain address is used; anything else falls
back to the site's ``address_template`` (or no e-mail). A real loopback SMTP responder counts the
recipients; header injection through a user or server name stays refused.
"""

import asyncio
import logging

from deepvre_hub import notify
from tests.hub.receivers import MailSink

LISTS = [
    "bob@lab.example.org, victim@else.example",
    "bob@lab.example.org,victim@else.example,other@else.example",
    "bob@lab.example.org;victim@else.example",
    "Bob <victim@else.example>",
    '"bob@lab.example.org" <victim@else.example>',
    "bob@lab.example.org victim@else.example",
    "bob@lab.example.org\tvictim@else.example",
    "bob@lab.example.org\rBcc: victim@else.example",
    "victim@else.example (bob@lab.example.org)",
]


def test_a_users_address_names_one_mailbox_or_none():
    mail = {"address_template": "{username}@lab.example.org"}
    for text in LISTS:
        for found in (notify.address(mail, "bob", {"email": text}),
                      notify.address(mail, "bob", {"oauth_user": {"email": text}}),
                      notify.address(mail, "bob", None, text)):
            assert found == "bob@lab.example.org", (text, found)
        assert notify.address({}, "bob", {"email": text}) is None, text
    # a plain address is still used as it is
    assert notify.address(mail, "bob", {"email": " bob.b+gpu@uni.example "}) == "bob.b+gpu@uni.example"


def test_the_relay_mails_only_the_user(caplog):
    log = logging.getLogger("test-notify-review")
    with MailSink() as sink:
        settings = {"email": {"smtp_host": "127.0.0.1", "smtp_port": sink.port, "starttls": False, "timeout": 5,
                              "from": "deepvre@lab.example.org", "address_template": "{username}@lab.example.org"}}
        payload = notify.event("bob", "big\r\nBcc: victim@else.example", "gpu-1", ["0"], "/user/bob/big/", 3)
        with caplog.at_level(logging.INFO, "test-notify-review"):
            for text in LISTS:
                to = notify.address(settings["email"], "bob", {"email": text})
                asyncio.run(notify.tell(settings, payload, to, log))
        rcpts = {r for m in sink.messages for r in m["to"]}
        assert rcpts == {"bob@lab.example.org"}, rcpts
        assert len(sink.messages) == len(LISTS)
        for message in sink.messages:
            assert message["message"].get_all("Bcc") is None and message["message"]["To"] == "bob@lab.example.org"
            assert "\n" not in message["message"]["Subject"] and "\r" not in message["message"]["Subject"]
