"""Where the users' servers reach the hub's API and the marketplace (pure).

The hub's internal API listens on ``hub.hub_ip`` (JupyterHub's ``hub_ip``); the servers call it
at ``hub.hub_connect_ip`` (JupyterHub's ``hub_connect_ip``), else at ``hub.hub_ip``. The hub's
services that servers call (the marketplace) listen on, and are advertised at, that same address
(:func:`hub_address`). Loopback (the default) works only while every server runs on the hub's
machine: in Slurm mode :func:`loopback_refusal` says why it cannot, from the cluster's node names.

- ``hub_address(settings)``: the address the servers use, e.g. ``10.0.0.1``;
- ``is_loopback(address)``: ``127.0.0.1``, ``::1``, ``localhost`` and the like;
- ``loopback_refusal(settings, nodes, this_host)``: the sentence naming the setting, or ``None``;
- ``other_nodes(nodes, this_host)``: the nodes that are not this machine (Dask's scheduler check,
  ``deepvre.pipelines.clusters``, uses it the same way).
"""

import ipaddress

LOOPBACK = "127.0.0.1"
EVERY_INTERFACE = ("", "0.0.0.0", "::")


def hub_address(settings):
    """The address the users' servers reach the hub API and the marketplace at:
    ``hub.hub_connect_ip``, else ``hub.hub_ip``, else ``127.0.0.1`` (a settings dict, any section absent)."""
    hub = (settings or {}).get("hub") or {}
    return hub.get("hub_connect_ip") or hub.get("hub_ip") or LOOPBACK


def is_loopback(address):
    """True for a loopback address or name (``127.0.0.2``, ``::1``, ``localhost``)."""
    name = (address or "").strip().lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def this_machine(node, this_host):
    """Whether the Slurm node name ``node`` is the hub's own machine (host name ``this_host``)."""
    short = (this_host or "").split(".")[0]
    return node in ("localhost", this_host, short) or is_loopback(node)


def other_nodes(nodes, this_host):
    """The Slurm node names of ``nodes`` that are not this machine, sorted."""
    return sorted(n for n in nodes if not this_machine(n, this_host))


def shown_nodes(names):
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def loopback_refusal(settings, nodes, this_host):
    """Why the servers on the Slurm ``nodes`` could not reach the hub (a sentence naming the setting),
    or ``None``: the address is not loopback and not every interface, or every node is this machine."""
    address = hub_address(settings)
    hub = (settings or {}).get("hub") or {}
    key = "hub.hub_connect_ip" if hub.get("hub_connect_ip") else "hub.hub_ip"
    if address in EVERY_INTERFACE:
        return (f"{key}: {address or 'an empty address'!r} means every interface, which is not an address the "
                "servers on the Slurm nodes can call: set hub.hub_connect_ip to this machine's address on "
                "the cluster's network, e.g. 10.0.0.1.")
    others = other_nodes(nodes, this_host)
    if not is_loopback(address) or not others:
        return None
    return (f"{key}: the users' servers run on Slurm nodes other than this machine ({shown_nodes(others)}), but "
            f"the hub API and the marketplace would listen on loopback ({address}), which those nodes cannot reach. "
            "Set hub.hub_ip to this machine's address on the cluster's network, e.g. 10.0.0.1 (or hub_ip 0.0.0.0 "
            "and hub.hub_connect_ip that address).")
