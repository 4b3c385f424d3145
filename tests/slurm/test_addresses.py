"""Where the servers reach the hub and the marketplace, and the start-up refusal (offline, no Slurm)."""

import pytest
from traitlets.config import Config

from deepvre.market import service
from deepvre.site import addresses
from deepvre.site.settings import validate_settings
from deepvre_hub import modes
from deepvre_hub import slurm as hub_slurm

TWO_NODES = ["head", "node2"]


def settings(**hub):
    return validate_settings({"hub": hub, "marketplace": {"port": 10123}})


def test_loopback_names_and_addresses():
    for address in ("127.0.0.1", "127.0.1.1", "::1", "[::1]", "localhost", "LOCALHOST.", "a.localhost"):
        assert addresses.is_loopback(address), address
    for address in ("192.0.2.11", "10.0.0.1", "hub.example.org", "0.0.0.0", ""):
        assert not addresses.is_loopback(address), address


def test_the_servers_use_hub_connect_ip_else_hub_ip():
    assert addresses.hub_address(None) == "127.0.0.1"
    assert addresses.hub_address(settings()) == "127.0.0.1"
    assert addresses.hub_address(settings(hub_ip="192.0.2.11")) == "192.0.2.11"
    assert addresses.hub_address(settings(hub_ip="0.0.0.0", hub_connect_ip="hub.cluster")) == "hub.cluster"


def test_the_hub_and_the_marketplace_listen_and_are_advertised_there(hub_state):
    c = Config()
    modes.configure(c, settings(hub_ip="192.0.2.11"), hub_state)
    assert c.JupyterHub.hub_ip == "192.0.2.11" and "hub_connect_ip" not in c.JupyterHub
    market = next(s for s in c.JupyterHub.services if s["name"] == "marketplace")
    assert market["url"] == "http://192.0.2.11:10123"  # the service listens at its url
    assert c.Spawner.environment["DEEPVRE_MARKET_URL"] == "http://192.0.2.11:10123/services/marketplace/"

    c = Config()
    modes.configure(c, settings(hub_ip="0.0.0.0", hub_connect_ip="192.0.2.11"), hub_state)
    assert (c.JupyterHub.hub_ip, c.JupyterHub.hub_connect_ip) == ("0.0.0.0", "192.0.2.11")
    assert service.singleuser_environment(settings(hub_connect_ip="::1"))["DEEPVRE_MARKET_URL"].startswith(
        "http://[::1]:10123/")


def test_loopback_is_refused_with_a_node_other_than_this_machine():
    reason = hub_slurm.nodes_reach_hub_refusal(settings(), TWO_NODES, this_host="head")
    assert reason.startswith("hub.hub_ip: the users' servers run on Slurm nodes other than this machine (node2), "
                             "but the hub API and the marketplace would listen on loopback (127.0.0.1)")
    reason = hub_slurm.nodes_reach_hub_refusal(settings(hub_ip="0.0.0.0", hub_connect_ip="localhost"),
                                               TWO_NODES, this_host="head")
    assert reason.startswith("hub.hub_connect_ip: ") and "loopback (localhost)" in reason
    # every interface is no address to call, whatever the nodes
    assert hub_slurm.nodes_reach_hub_refusal(settings(hub_ip="0.0.0.0"), ["localhost"]).startswith(
        "hub.hub_ip: '0.0.0.0' means every interface")


def test_loopback_is_fine_when_every_node_is_this_machine_and_an_address_always():
    assert hub_slurm.nodes_reach_hub_refusal(settings(), ["localhost"], this_host="vm") is None
    assert hub_slurm.nodes_reach_hub_refusal(settings(), ["vm"], this_host="vm.cluster.example") is None
    assert hub_slurm.nodes_reach_hub_refusal(settings(hub_ip="192.0.2.11"), TWO_NODES, this_host="head") is None


def test_a_slurm_that_does_not_answer_is_no_refusal(monkeypatch):
    def no_slurm(env=None):
        raise hub_slurm.SlurmSettingsError("cannot ask Slurm for its nodes (sinfo -h -N -o %N): no controller")

    monkeypatch.setattr(hub_slurm, "slurm_nodes", no_slurm)
    assert hub_slurm.nodes_reach_hub_refusal(settings()) is None


def test_slurm_mode_exits_at_start_up_naming_the_setting(hub_state, monkeypatch, capsys):
    monkeypatch.setattr(hub_slurm, "unreadable_reason", lambda env: None)
    monkeypatch.setattr(hub_slurm, "slurm_nodes", lambda env=None: ["head", "node2"])
    monkeypatch.setattr(hub_slurm.socket, "gethostname", lambda: "head")
    with pytest.raises(SystemExit) as exit_:
        hub_slurm.configure(Config(), validate_settings({"mode": "slurm"}), hub_state)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.startswith(
        "deepvre: hub.hub_ip: the users' servers run on Slurm nodes other than this machine (node2)")


def test_a_dask_scheduler_on_loopback_with_workers_elsewhere_is_refused():
    from deepvre.pipelines import clusters

    kwargs = clusters.slurm_cluster_kwargs({"slurm": {"queue": "far", "host": "127.0.0.1"}})
    reason = clusters.scheduler_refusal(kwargs, ["node2"], this_host="head")
    assert reason.startswith("dask.slurm.host: the workers would run on Slurm nodes other than this machine "
                             "(node2), but the scheduler would listen on loopback (127.0.0.1)")
    assert clusters.scheduler_refusal(kwargs, ["localhost"], this_host="head") is None
    kwargs = clusters.slurm_cluster_kwargs({"slurm": {"queue": "far", "host": "192.0.2.11"}})
    assert clusters.scheduler_refusal(kwargs, ["node2"], this_host="head") is None


def test_other_spellings_of_loopback_and_every_interface_are_refused():
    """An attacker-friendly spelling must not pass the check: JupyterHub hands the servers the
    address as written, which on each node is that node itself."""
    for spelling in ("127.1", "0x7f000001", "2130706433", "::ffff:127.0.0.1"):
        assert addresses.is_loopback(spelling), spelling
        assert hub_slurm.nodes_reach_hub_refusal(settings(hub_ip=spelling), TWO_NODES, this_host="head"), spelling
    for spelling in ("0", "0.0", "::0", "0:0::0"):
        assert addresses.is_every_interface(spelling), spelling
        assert "every interface" in hub_slurm.nodes_reach_hub_refusal(settings(hub_ip=spelling), ["localhost"])
    # a host name that points at loopback on this machine (Debian maps its own name to 127.0.1.1)
    assert addresses.is_loopback("head", lambda name: ["127.0.1.1"])
    assert not addresses.is_loopback("head", lambda name: ["192.0.2.11"])


def test_a_connect_address_the_hub_does_not_listen_on_is_refused():
    """hub_connect_ip without hub_ip: the hub API would listen on loopback and the servers call an
    address where nothing listens, which any account on the machine could bind first."""
    reason = addresses.listen_refusal(settings(hub_connect_ip="192.0.2.11"))
    assert reason.startswith("hub.hub_ip: the hub API would listen on 127.0.0.1, but hub.hub_connect_ip")
    assert hub_slurm.nodes_reach_hub_refusal(settings(hub_connect_ip="192.0.2.11"), TWO_NODES, "head") == reason
    assert addresses.listen_refusal(settings(hub_ip="0.0.0.0", hub_connect_ip="192.0.2.11")) is None
    assert addresses.listen_refusal(settings(hub_ip="192.0.2.11", hub_connect_ip="192.0.2.11")) is None


def test_a_service_port_is_the_configured_one_else_one_free_port_kept_per_service():
    import socket

    assert addresses.service_port(10123, "a") == 10123
    chosen = addresses.service_port(None, "probe-a")
    assert addresses.service_port(None, "probe-a") == chosen  # the hub's config and its services agree
    with socket.socket() as s:
        s.bind(("127.0.0.1", chosen))  # it was free
    assert service.service_port({"marketplace": {"port": 10124}}) == 10124
    assert service.service_port({}) == service.service_port(None)
