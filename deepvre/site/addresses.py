"""Where the users' servers reach the hub's API and the marketplace (pure).

The hub's internal API listens on ``hub.hub_ip`` (JupyterHub's ``hub_ip``); the servers call it
at ``hub.hub_connect_ip`` (JupyterHub's ``hub_connect_ip``), else at ``hub.hub_ip``. The hub's
services that servers call (the marketplace) listen on, and are advertised at, that same address
(:func:`hub_address`). Loopback (the default) works only while every server runs on the hub's
machine: in Slurm mode :func:`loopback_refusal` says why it cannot, from the cluster's node names.

- ``hub_address(settings)``: the address the servers use, e.g. ``10.0.0.1``;
- ``is_loopback(address, resolve)``: ``127.0.0.1``, ``127.1``, ``::1``, ``localhost`` and the like
  (with ``resolve``, also names that point there); ``is_every_interface(address)``: ``0.0.0.0``, ``0``, ``::0``;
- ``listen_refusal(settings)``: ``hub_connect_ip`` set where the hub does not listen;
- ``loopback_refusal(settings, nodes, this_host)``: the sentence naming the setting, or ``None``;
- ``other_nodes(nodes, this_host)``: the nodes that are not this machine (Dask's scheduler check,
  ``deepvre.pipelines.clusters``, uses it the same way);
- ``free_loopback_port()``: a port free on loopback now; ``service_port(configured, key)``: the
  configured port, else one such port chosen once per process for ``key`` (the hub's services).
"""

import ipaddress
import socket

LOOPBACK = "127.0.0.1"
_chosen_ports = {}


def hub_address(settings):
    """The address the users' servers reach the hub API and the marketplace at:
    ``hub.hub_connect_ip``, else ``hub.hub_ip``, else ``127.0.0.1`` (a settings dict, any section absent)."""
    hub = (settings or {}).get("hub") or {}
    return hub.get("hub_connect_ip") or hub.get("hub_ip") or LOOPBACK


def parsed(address):
    """``address`` as an IP address in any spelling the C library accepts (``127.1``,
    ``0x7f000001``, ``0``, ``::0``), or ``None`` for a host name."""
    text = (address or "").strip().strip("[]")
    try:
        ip = ipaddress.ip_address(text)
        return getattr(ip, "ipv4_mapped", None) or ip  # ::ffff:127.0.0.1 is 127.0.0.1
    except ValueError:
        pass
    try:
        return ipaddress.ip_address(socket.inet_aton(text))  # the legacy IPv4 forms
    except OSError:
        return None


def is_loopback(address, resolve=None):
    """True for a loopback address or name (``127.0.0.2``, ``127.1``, ``::1``, ``localhost``);
    ``resolve(name)`` -> addresses (e.g. :func:`resolved`) also judges other names by where
    they point (a host name Debian maps to 127.0.1.1)."""
    name = (address or "").strip().lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    ip = parsed(name)
    if ip is not None:
        return ip.is_loopback
    return bool(resolve) and any(is_loopback(a) for a in resolve(name))


def is_every_interface(address):
    """True for an empty address or one meaning every interface (``0.0.0.0``, ``0``, ``::0``)."""
    ip = parsed(address)
    return not (address or "").strip() or (ip is not None and ip.is_unspecified)


def resolved(name):
    """The addresses ``name`` resolves to on this machine (none when it does not resolve)."""
    try:
        return sorted({info[4][0] for info in socket.getaddrinfo(name, None)})
    except OSError:
        return []


def this_machine(node, this_host):
    """Whether the Slurm node name ``node`` is the hub's own machine (host name ``this_host``)."""
    short = (this_host or "").split(".")[0]
    return node in ("localhost", this_host, short) or is_loopback(node)


def other_nodes(nodes, this_host):
    """The Slurm node names of ``nodes`` that are not this machine, sorted."""
    return sorted(n for n in nodes if not this_machine(n, this_host))


def shown_nodes(names):
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def listen_refusal(settings):
    """Why the hub would not listen where the servers call it (``hub.hub_connect_ip`` set, but
    ``hub.hub_ip`` neither that address nor every interface), or ``None``: nothing would answer
    at the advertised address, and any account could take it."""
    hub = (settings or {}).get("hub") or {}
    connect, bind = hub.get("hub_connect_ip"), hub.get("hub_ip") or LOOPBACK
    if not connect or is_every_interface(bind):
        return None
    if bind == connect or (parsed(bind) is not None and parsed(bind) == parsed(connect)):
        return None
    return (f"hub.hub_ip: the hub API would listen on {bind}, but hub.hub_connect_ip tells the servers to call "
            f"{connect}, where nothing of the hub's listens (and another account could): set hub.hub_ip to "
            f"{connect}, or to 0.0.0.0.")


def loopback_refusal(settings, nodes, this_host, resolve=resolved):
    """Why the servers on the Slurm ``nodes`` could not reach the hub (a sentence naming the setting),
    or ``None``: the address is not loopback and not every interface, or every node is this machine."""
    address = hub_address(settings)
    hub = (settings or {}).get("hub") or {}
    key = "hub.hub_connect_ip" if hub.get("hub_connect_ip") else "hub.hub_ip"
    mismatch = listen_refusal(settings)
    if mismatch:
        return mismatch
    if is_every_interface(address):
        return (f"{key}: {address or 'an empty address'!r} means every interface, which is not an address the "
                "servers on the Slurm nodes can call: set hub.hub_connect_ip to this machine's address on "
                "the cluster's network, e.g. 10.0.0.1.")
    others = other_nodes(nodes, this_host)
    if not is_loopback(address, resolve) or not others:
        return None
    return (f"{key}: the users' servers run on Slurm nodes other than this machine ({shown_nodes(others)}), but "
            f"the hub API and the marketplace would listen on loopback ({address}), which those nodes cannot reach. "
            "Set hub.hub_ip to this machine's address on the cluster's network, e.g. 10.0.0.1 (or hub_ip 0.0.0.0 "
            "and hub.hub_connect_ip that address).")


def free_loopback_port():
    """A TCP port free on loopback at this moment."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def service_port(configured, key):
    """``configured`` (a port from the settings), else a free loopback port chosen once per process
    for ``key``: the hub's configuration and its services' environment then agree on it."""
    if configured:
        return int(configured)
    if key not in _chosen_ports:
        _chosen_ports[key] = free_loopback_port()
    return _chosen_ports[key]
