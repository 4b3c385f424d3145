"""Loopback peers that the hub's notices go to, in a thread each: a webhook receiver and a small
SMTP responder (aiosmtpd is not in the lock; this speaks just the commands smtplib sends).

    with WebhookReceiver(stall={"carol": 5}) as hook, MailSink(reject={"carol@x"}) as mail:
        ...                      # hook.url, hook.events; mail.port, mail.messages
"""

import base64
import email
import json
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class WebhookReceiver:
    """Records each POST as ``{"headers", "body", "json"}``; a POST whose JSON ``user`` is in
    ``stall`` is answered only after that many seconds."""

    def __init__(self, stall=None):
        self.events, self.stall = [], dict(stall or {})
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    data = json.loads(body)
                except ValueError:
                    data = None
                receiver.events.append({"headers": dict(self.headers), "body": body, "json": data,
                                        "path": self.path})
                time.sleep(receiver.stall.get((data or {}).get("user"), 0))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/gpu"

    def for_user(self, user):
        return [e for e in self.events if (e["json"] or {}).get("user") == user]

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class MailSink:
    """An SMTP responder on loopback: EHLO (offers AUTH PLAIN, not STARTTLS), AUTH PLAIN, MAIL,
    RCPT (550 for an address in ``reject``), DATA, RSET, NOOP, QUIT. Keeps each message as
    ``{"from", "to", "message" (email.message.Message), "login"}``."""

    def __init__(self, reject=()):
        self.messages, self.reject, self.logins = [], set(reject), []
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line):
                self.wfile.write(line.encode() + b"\r\n")

            def handle(self):
                self.reply("220 mailsink ESMTP")
                sender, rcpts, login = None, [], None
                for raw in self.rfile:
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    verb = line.split(" ", 1)[0].upper()
                    if verb == "EHLO":
                        self.reply("250-mailsink")
                        self.reply("250 AUTH PLAIN")
                    elif verb == "HELO":
                        self.reply("250 mailsink")
                    elif verb == "AUTH":
                        parts = line.split()
                        _, user, password = base64.b64decode(parts[2]).decode().split("\0")
                        login = (user, password)
                        sink.logins.append(login)
                        self.reply("235 ok")
                    elif verb == "MAIL":
                        sender, rcpts = line.split(":", 1)[1].strip().split()[0].strip("<>"), []
                        self.reply("250 ok")
                    elif verb == "RCPT":
                        address = line.split(":", 1)[1].strip().strip("<>")
                        if address in sink.reject:
                            self.reply("550 no such mailbox")
                        else:
                            rcpts.append(address)
                            self.reply("250 ok")
                    elif verb == "DATA":
                        self.reply("354 go on")
                        data = b""
                        for chunk in self.rfile:
                            if chunk in (b".\r\n", b".\n"):
                                break
                            data += chunk[1:] if chunk.startswith(b"..") else chunk
                        sink.messages.append({"from": sender, "to": rcpts, "login": login,
                                              "message": email.message_from_bytes(data)})
                        self.reply("250 queued")
                    elif verb in ("RSET", "NOOP"):
                        self.reply("250 ok")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("502 not implemented")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]

    def to(self, address):
        return [m for m in self.messages if address in m["to"]]

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
