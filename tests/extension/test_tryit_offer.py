"""The server's side of try-it: the launch command, the address it offers, the page's URL (pure)."""

from deepvre.serving.launch import parse
from deepvre_jupyter.jobs import TryitOffer, tryit_command, tryit_host


def test_the_try_it_command_is_what_the_launcher_accepts(tmp_path):
    command, env = tryit_command("colours", "1.0.0", "/run/s/deepaas.sock", "/user/ana@lab.org/deepvre/services/1",
                                 "/run/s/uploads", "10.0.0.7", "/run/s/port", str(tmp_path), python="/v/bin/python")
    assert command[:3] == ["/v/bin/python", "-m", "deepvre.serving.launch"]
    args = parse(command[3:])
    assert (args.socket, args.also_tcp, args.ip, args.port, args.port_file) == (
        "/run/s/deepaas.sock", True, "10.0.0.7", 0, "/run/s/port")
    assert args.exit_with_parent and args.base_path == "/user/ana@lab.org/deepvre/services/1"
    assert env["DEEPVRE_SERVE_MODEL"] == "colours:1.0.0" and str(tmp_path / "entry") in env["PYTHONPATH"]
    assert "DEEPVRE_SERVE_TRY_TOKEN" not in env and "DEEPVRE_SERVE_TOKEN" not in env
    assert not any("token" in part.lower() for part in command)  # secrets never on the command line


def test_the_offered_host_is_the_servers_own():
    assert tryit_host("http://127.0.0.1:41234/user/ana/") == "127.0.0.1"
    assert tryit_host("http://10.1.2.3:8888/user/ana/") == "10.1.2.3"
    assert tryit_host("http://0.0.0.0:8888/user/ana/", resolve=lambda host: "10.9.8.7") == "10.9.8.7"  # a pod
    assert tryit_host("http://jupyter-ana:8888/", resolve={"jupyter-ana": "10.4.4.4"}.get) == "10.4.4.4"
    assert tryit_host(None) == "127.0.0.1"


def test_the_page_is_under_the_marketplaces_path_with_names_escaped():
    offer = TryitOffer("http://127.0.0.1:10101/services/marketplace/", "t", "127.0.0.1")
    assert offer.page("colours", "1.0.0") == "/services/marketplace/try/colours/1.0.0"
    assert offer.page("a/b?c", "1#2") == "/services/marketplace/try/a%2Fb%3Fc/1%232"
    env = {"DEEPVRE_MARKET_URL": "http://h:1/services/marketplace/", "DEEPVRE_MARKET_TOKEN": "t",
           "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:5/user/a/"}
    assert TryitOffer.from_environment(env) is None  # not in a hub: no offer
    assert TryitOffer.from_environment({**env, "JUPYTERHUB_API_TOKEN": "x"}).host == "127.0.0.1"
