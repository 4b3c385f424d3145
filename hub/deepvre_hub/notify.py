"""Telling users their server started (the ``notify:`` settings section): a webhook and an e-mail.

When a spawn that waited in the GPU queue has its server ready (``notify.when: queued``; or every
spawn, ``all``), the hub POSTs a JSON event to the site's webhook and mails the user, besides
JupyterHub's own progress events. Both are the admin's settings, never the user's. The event
holds no token. Each failure is logged and never touches the spawn.

The webhook body is signed when a secret file is set: header ``X-Deepvre-Signature:
sha256=<hex HMAC-SHA256 of "<X-Deepvre-Timestamp>.<body>">``, so a receiver can check both the
sender and the freshness. The e-mail goes through an SMTP relay (STARTTLS on by default; with a
credentials file, a login). The user's address comes from the auth state (OIDC ``email``), from
NativeAuthenticator's sign-up record, or from ``email.address_template``.
"""

import asyncio
import datetime
import email.message
import hashlib
import hmac
import json
import re
import smtplib
import ssl
import time
from pathlib import Path

EVENT = "server-ready"
SIGNATURE_HEADER = "X-Deepvre-Signature"
TIMESTAMP_HEADER = "X-Deepvre-Timestamp"


def wanted(settings, queued):
    """Whether a ready server is told about: a queued spawn, or any with ``when: all``."""
    channels = settings and ((settings.get("webhook") or {}).get("url") or (settings.get("email") or {}).get("smtp_host"))
    if not channels:
        return False
    return queued or settings.get("when", "queued") == "all"


def event(user, server, profile, gpu_ids, url, waited, now=None):
    """The event both channels tell: who, which server, where, and how long it waited (seconds)."""
    now = now or datetime.datetime.now(datetime.UTC)
    return {"event": EVENT, "user": user, "server": server, "profile": profile, "gpu_ids": list(gpu_ids),
            "url": url, "waited_seconds": round(waited, 1) if waited is not None else None,
            "time": now.strftime("%Y-%m-%dT%H:%M:%SZ")}


def server_url(public_url, path):
    """The server's address for the user to open: the hub's ``public_url`` (if set) + its ``path``."""
    return public_url.rstrip("/") + path if public_url else path


def signature(secret, timestamp, body):
    """``sha256=<hex>``: HMAC-SHA256 of ``<timestamp>.<body>`` with ``secret`` (bytes)."""
    return "sha256=" + hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def read_secret(path):
    """A secret file's content (bytes, without the final newline); ``None`` for no path."""
    return Path(path).read_bytes().rstrip(b"\r\n") if path else None


def webhook_request(webhook, payload, secret=None, timestamp=None):
    """``(url, headers, body)`` of the POST that tells ``payload`` to ``webhook``'s URL."""
    body = json.dumps(payload, sort_keys=True).encode()
    timestamp = str(int(timestamp if timestamp is not None else time.time()))
    headers = {"Content-Type": "application/json", "User-Agent": "deepvre-hub", "X-Deepvre-Event": payload["event"],
               TIMESTAMP_HEADER: timestamp}
    if secret:
        headers[SIGNATURE_HEADER] = signature(secret, timestamp, body)
    return webhook["url"], headers, body


# one plain mailbox: no list, display name, comment, quotes or white space (they would mail others)
MAILBOX = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")


def mailbox(text):
    """``text`` (stripped) if it is one plain address, else None."""
    text = text.strip(" ") if isinstance(text, str) else ""
    return text if MAILBOX.fullmatch(text) else None


def address(mail, username, auth_state=None, signup_email=None):
    """The user's e-mail address: the auth state's ``email`` (top level or under ``oauth_user``),
    the sign-up record's, else ``mail.address_template`` with ``{username}``; None if none. Only
    one plain address counts (:func:`mailbox`): a list would make the relay mail whoever it names."""
    for found in ((auth_state or {}).get("email"), ((auth_state or {}).get("oauth_user") or {}).get("email"),
                  signup_email):
        if mailbox(found):
            return mailbox(found)
    template = (mail or {}).get("address_template")
    return mailbox(template.format(username=username)) if template else None


def email_message(mail, payload, to):
    """The e-mail that tells ``payload`` to ``to``."""
    message = email.message.EmailMessage()
    message["From"] = mail["from"]
    message["To"] = to
    name = f"server {payload['server']!r}" if payload["server"] else "server"
    message["Subject"] = f"Your {name} is ready"
    waited = payload.get("waited_seconds")
    lines = [f"Hello {payload['user']},", "",
             f"your {name} with profile {payload['profile']} has started"
             + (f" on GPU {', '.join(payload['gpu_ids'])}" if payload["gpu_ids"] else "")
             + (f", after {waited:.0f} s in the GPU queue." if waited else "."),
             "", f"Open it: {payload['url']}", "",
             "Idle servers are stopped after a while; stop it yourself when you are done.",
             "", "-- deepvre (an automatic message)"]
    message.set_content("\n".join(lines))
    return message


def read_credentials(path):
    """``(user, password)`` from a file of two lines; None for no path."""
    if not path:
        return None
    lines = Path(path).read_text().splitlines()
    if len(lines) < 2 or not lines[0].strip():
        raise ValueError(f"{path}: expected two lines, the SMTP user and the password")
    return lines[0].strip(), lines[1]


def send_email(mail, message):
    """Send ``message`` through ``mail``'s SMTP relay (blocking: run it in a thread)."""
    timeout = mail.get("timeout", 10)
    with smtplib.SMTP(mail["smtp_host"], mail.get("smtp_port", 587), timeout=timeout) as smtp:
        smtp.ehlo()
        if mail.get("starttls", True):
            smtp.starttls(context=ssl.create_default_context())  # refuses to go on in plain text
            smtp.ehlo()
        credentials = read_credentials(mail.get("credentials_file"))
        if credentials:
            smtp.login(*credentials)
        smtp.send_message(message)


async def post_webhook(webhook, payload):
    """POST ``payload`` to the webhook; raises on a failure or an answer other than 2xx."""
    from tornado.httpclient import AsyncHTTPClient, HTTPRequest

    url, headers, body = webhook_request(webhook, payload, read_secret(webhook.get("secret_file")))
    timeout = webhook.get("timeout", 10)
    request = HTTPRequest(url, method="POST", headers=headers, body=body, follow_redirects=False,
                          connect_timeout=timeout, request_timeout=timeout)
    response = await AsyncHTTPClient().fetch(request, raise_error=False)
    if response.code == 599 or not 200 <= response.code < 300:
        raise RuntimeError(f"answered {response.code}" + (f" ({response.error})" if response.error else ""))


async def tell(settings, payload, to, log):
    """Send ``payload`` by webhook and e-mail (to ``to``) as ``settings`` say; log each outcome."""
    webhook, mail = settings.get("webhook") or {}, settings.get("email") or {}
    who = f"{payload['user']}/{payload['server']}"
    if webhook.get("url"):
        try:
            await post_webhook(webhook, payload)
            log.info("deepvre: told the webhook that %s is ready", who)
        except Exception as err:  # never the spawn's failure
            log.warning("deepvre: the webhook for %s failed: %s", who, err)
    if mail.get("smtp_host"):
        if not to:
            log.info("deepvre: no e-mail address for %s: not mailed", payload["user"])
            return
        try:
            await asyncio.to_thread(send_email, mail, email_message(mail, payload, to))
            log.info("deepvre: mailed %s that %s is ready", to, who)
        except Exception as err:
            log.warning("deepvre: the e-mail to %s for %s failed: %s", to, who, err)
