"""Nobody reads another user's usage (issue 19): on a real local hub (root) with accounting rows
of alice and bob, bob's page and CSV hold only his rows and asking for alice's is refused; an
anonymous local process gets nothing through the proxy or the hub's own port; the database is
root's alone; names in the rows are escaped on the page and never formulas in the CSV."""

import datetime as dt
import secrets
import subprocess

import pytest
import requests

from deepvre_hub import usage
from tests.hub.hubprocess import HubProcess, cpu_only
from tests.prereqs import require_proxy, require_root

pytestmark = [pytest.mark.hub, pytest.mark.root]

PASSWORD = "usage-" + secrets.token_hex(6)
EVIL = '<script>alert("x")</script>'


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    require_root()
    require_proxy()
    process = HubProcess(cpu_only(), tmp_path_factory.mktemp("usage-attack-hub") / "state")
    with process.running():
        admin = process.login(process.admin, process.admin_password)
        users = {}
        for role in ("alice", "bob"):
            name = f"usx{secrets.token_hex(3)}{role}"
            users[role] = (name, *process.approved_user(admin, name, PASSWORD))
        book = usage.UsageBook(usage.default_url(process.state_dir))
        start = usage.utcnow() - dt.timedelta(hours=3)
        for role, server in (("alice", "secret-project"), ("bob", EVIL), ("bob", "=HYPERLINK(1)")):
            rid = book.open(users[role][0], server, "gpu-1", ["0"], start=start)
            book.close(rid, usage.USER, users[role][0], end=start + dt.timedelta(hours=1))
        yield process, users, admin


def test_a_user_cannot_read_another_users_usage(hub):
    process, users, _ = hub
    alice = users["alice"][0]
    bob, bob_session, bob_token = users["bob"]
    for query in (f"?user={alice}", f"?user={alice}&format=csv", f"?format=csv&user={alice}&days=366"):
        r = bob_session.get(f"{process.url}/hub/usage{query}", timeout=30)
        assert r.status_code == 403 and alice not in r.text.replace(f"user={alice}", ""), (query, r.status_code)
    page = bob_session.get(f"{process.url}/hub/usage", timeout=30)
    csv_text = bob_session.get(f"{process.url}/hub/usage?format=csv&days=366", timeout=30)
    assert page.status_code == 200 and csv_text.status_code == 200
    for body in (page.text, csv_text.text):
        assert alice not in body and "secret-project" not in body
    assert bob in csv_text.text
    # bob's API token reaches no more than his cookie does
    by_token = requests.get(f"{process.url}/hub/usage?format=csv&user={alice}",
                            headers={"Authorization": f"token {bob_token}"}, timeout=30, allow_redirects=False)
    assert by_token.status_code in (302, 403) and "secret-project" not in by_token.text
    # the admin, for contrast, sees both
    admin_csv = hub[2].get(f"{process.url}/hub/usage?format=csv", timeout=30).text
    assert alice in admin_csv and bob in admin_csv


def test_an_anonymous_local_process_gets_no_usage(hub):
    process, users, _ = hub
    hub_api = f"http://127.0.0.1:{process.settings['hub']['hub_port']}"
    for base in (process.url, hub_api):
        for query in ("", "?format=csv", f"?format=csv&user={users['alice'][0]}"):
            r = requests.get(f"{base}/hub/usage{query}", timeout=30, allow_redirects=False)
            assert r.status_code in (302, 403), (base, query, r.status_code)
            assert "secret-project" not in r.text and users["alice"][0] not in r.text.replace("user=", "")
            if r.status_code == 302:
                assert "/hub/login" in r.headers["Location"]
    # the database is root's alone: alice's OS account cannot read it
    path = process.state_dir / "usage.sqlite"
    assert path.stat().st_mode & 0o777 == 0o600 and path.stat().st_uid == 0
    done = subprocess.run(["runuser", "-u", users["bob"][0], "--", "cat", str(path)], capture_output=True)
    assert done.returncode != 0 and b"secret-project" not in done.stdout


def test_names_in_usage_rows_are_escaped_on_the_page_and_inert_in_the_csv(hub):
    process, users, _ = hub
    _, bob_session, _ = users["bob"]
    page = bob_session.get(f"{process.url}/hub/usage", timeout=30).text
    assert EVIL not in page and "&lt;script&gt;" in page
    text = bob_session.get(f"{process.url}/hub/usage?format=csv", timeout=30).text
    assert ",'=HYPERLINK(1)," in text and ",=HYPERLINK" not in text
