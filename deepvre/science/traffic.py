"""Synthetic network traffic for two data centres, written as Zeek ``conn.log`` files, with labelled attacks.

No flow or intrusion data set installs offline, so the security use case generates
its own, in the format Zeek writes (and MODS used): ``#separator \\x09``, ``#set_separator``,
``#empty_field (empty)``, ``#unset_field -``, ``#path conn``, ``#open``, ``#fields``,
``#types``, tab-separated rows, ``-`` for unset values, ``(empty)`` for the empty
``tunnel_parents`` set (as Zeek 2.x-4.x wrote it), and ``#close``. One file per day:
``conn.YYYY-MM-DD.log``.

What the generator promises (the tests check each):

* **Diurnal cycle.** The connection rate is ``base * (1 + amplitude * cos(2 pi (h - peak_hour) / 24))``,
  so the peak/trough ratio of hourly counts is ``(1 + amplitude) / (1 - amplitude)``:
  centre A (an institute: offices and labs) peaks at 14:00 with amplitude 0.6 (ratio 4);
  centre B (a consumer cloud service) peaks at 20:00 with amplitude 0.3 (ratio about 1.9).
* **Weekly pattern.** Saturdays and Sundays are scaled by ``weekend_factor``: 0.45 in A
  (a weekend dip), 1.15 in B (busier at weekends).
* **Service mix.** Each centre's share of connections per service (``service_mix``):
  A is web, DNS and SSH heavy (researchers log in to clusters); B is HTTPS and mail heavy.
* **Hosts.** A has 300 internal clients, B 120; client activity is Zipf-distributed.
* **Attacks** (ground truth in ``labels.json`` beside the logs: type, start, end, hosts):

  - ``port_scan``: one external source probes 1000 distinct TCP ports of one internal
    server in 5 minutes (states ``REJ``/``S0``, no payload) -> distinct destination ports
    of one source rise;
  - ``ddos``: 400 external sources open 15 000 connections to one internal web server
    in 10 minutes (mostly ``S0``) -> connection count to one destination rises;
  - ``exfiltration``: one internal client uploads about 2 GB to one external host over
    HTTPS in 60 connections within 40 minutes -> ``orig_bytes`` of one host rises.

Everything is drawn from one ``numpy.random.Generator`` seeded by ``seed``: the same
arguments give byte-identical files.
"""

import dataclasses
import datetime as dt
import json
import os

import numpy as np

FIELDS = ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service",
          "duration", "orig_bytes", "resp_bytes", "conn_state", "local_orig", "local_resp",
          "missed_bytes", "history", "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes",
          "tunnel_parents")
TYPES = ("time", "string", "addr", "port", "addr", "port", "enum", "string", "interval", "count",
         "count", "string", "bool", "bool", "count", "string", "count", "count", "count", "count",
         "set[string]")
DEFAULT_START = "2026-01-05"  # a Monday
ATTACK_TYPES = ("port_scan", "ddos", "exfiltration")


@dataclasses.dataclass(frozen=True)
class Service:
    """A service: protocol, port, Zeek's service name, log-normal sizes (mu, sigma of ln bytes) and duration."""

    proto: str
    port: int
    zeek: str
    orig_bytes: tuple
    resp_bytes: tuple
    duration: tuple
    internal_server: bool = False  # answered inside the centre (DNS resolver, mail relay)


SERVICES = {
    "http": Service("tcp", 80, "http", (6.0, 0.8), (9.0, 1.5), (-1.0, 1.0)),
    "https": Service("tcp", 443, "ssl", (7.0, 1.0), (10.0, 1.5), (0.0, 1.2)),
    "dns": Service("udp", 53, "dns", (3.8, 0.3), (5.0, 0.4), (-4.0, 0.8), internal_server=True),
    "ssh": Service("tcp", 22, "ssh", (8.0, 1.5), (8.5, 1.5), (3.0, 1.5)),
    "smtp": Service("tcp", 25, "smtp", (9.0, 1.5), (6.0, 0.5), (0.5, 0.8), internal_server=True),
    "ntp": Service("udp", 123, "ntp", (3.87, 0.01), (3.87, 0.01), (-3.0, 0.5)),
    "other": Service("tcp", 0, "-", (6.0, 2.0), (6.0, 2.0), (0.0, 2.0)),
}


@dataclasses.dataclass(frozen=True)
class CentreProfile:
    """One data centre's traffic profile (see the module docstring for what each number means)."""

    name: str
    description: str
    net: str                 # internal /16 prefix, e.g. "10.10"
    clients: int             # internal client hosts
    conns_per_day: float     # mean connections per weekday
    peak_hour: float
    amplitude: float         # diurnal: rate = base * (1 + amplitude * cos(...))
    weekend_factor: float
    service_mix: dict        # service -> share of connections (sums to 1)
    failed_share: float = 0.03  # connections that fail (S0 or REJ)

    def peak_trough_ratio(self):
        return (1 + self.amplitude) / (1 - self.amplitude)


PROFILES = {
    "A": CentreProfile(
        "A", "research institute: office hours, weekend dip, web/DNS/SSH", "10.10", 300, 60_000,
        peak_hour=14, amplitude=0.6, weekend_factor=0.45,
        service_mix={"https": 0.40, "http": 0.12, "dns": 0.28, "ssh": 0.10, "smtp": 0.03, "ntp": 0.04,
                     "other": 0.03}),
    "B": CentreProfile(
        "B", "consumer cloud service: evening peak, busier weekends, HTTPS/mail", "10.20", 120, 40_000,
        peak_hour=20, amplitude=0.3, weekend_factor=1.15,
        service_mix={"https": 0.58, "http": 0.04, "dns": 0.18, "ssh": 0.02, "smtp": 0.14, "ntp": 0.02,
                     "other": 0.02}),
}

UID_ALPHABET = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"))


def profile(centre):
    try:
        return PROFILES[str(centre).upper()]
    except KeyError:
        raise ValueError(f"unknown centre {centre!r}: choose one of {sorted(PROFILES)}") from None


def rate_per_hour(prof, hours_since_start, start):
    """Expected connections per hour at each time (hours since ``start``, a datetime at midnight UTC)."""
    hours_since_start = np.asarray(hours_since_start, dtype=float)
    hour_of_day = hours_since_start % 24
    weekday = (start.weekday() + hours_since_start // 24) % 7
    diurnal = 1 + prof.amplitude * np.cos(2 * np.pi * (hour_of_day - prof.peak_hour) / 24)
    weekly = np.where(weekday >= 5, prof.weekend_factor, 1.0)
    return prof.conns_per_day / 24 * diurnal * weekly


def _ips(prefix, idx):
    idx = np.asarray(idx)
    return np.char.add(np.char.add(f"{prefix}.", (idx // 250 + 1).astype(str)),
                       np.char.add(".", (idx % 250 + 1).astype(str)))


def _external_ips(rng, n):
    """``n`` distinct public-looking addresses (documentation and unallocated-looking ranges avoided)."""
    a = rng.choice(np.array([23, 31, 45, 52, 64, 81, 93, 104, 142, 151, 172, 185, 203]), size=n)
    rest = rng.integers(0, 2**24, size=n)
    ips = np.char.add(a.astype(str), np.char.add(".", (rest >> 16).astype(str)))
    ips = np.char.add(ips, np.char.add(".", ((rest >> 8) & 255).astype(str)))
    return np.char.add(ips, np.char.add(".", np.maximum(rest & 255, 1).astype(str)))


def _lognormal(rng, params, n):
    mu, sigma = params
    return rng.lognormal(mu, sigma, n)


def _columns(n):
    return {
        "ts": np.zeros(n), "id.orig_h": np.empty(n, dtype=object), "id.orig_p": np.zeros(n, dtype=np.int64),
        "id.resp_h": np.empty(n, dtype=object), "id.resp_p": np.zeros(n, dtype=np.int64),
        "proto": np.empty(n, dtype=object), "service": np.empty(n, dtype=object),
        "duration": np.full(n, np.nan), "orig_bytes": np.full(n, -1, dtype=np.int64),
        "resp_bytes": np.full(n, -1, dtype=np.int64), "conn_state": np.empty(n, dtype=object),
    }


def _background(prof, start, days, rng):
    """Normal traffic: Poisson counts per minute following the rate, spread uniformly in each minute."""
    minutes = np.arange(days * 24 * 60)
    counts = rng.poisson(rate_per_hour(prof, minutes / 60, start) / 60)
    n = int(counts.sum())
    ts = np.repeat(minutes * 60.0, counts) + rng.random(n) * 60
    cols = _columns(n)
    cols["ts"] = ts
    names = list(prof.service_mix)
    shares = np.array([prof.service_mix[s] for s in names])
    svc_idx = rng.choice(len(names), size=n, p=shares / shares.sum())
    client_w = 1.0 / np.arange(1, prof.clients + 1) ** 0.8
    clients = rng.choice(prof.clients, size=n, p=client_w / client_w.sum())
    cols["id.orig_h"] = _ips(prof.net, clients + 250)
    cols["id.orig_p"] = rng.integers(32768, 61000, size=n)
    externals = _external_ips(rng, 2000)
    ext_w = 1.0 / np.arange(1, len(externals) + 1) ** 1.1
    resp_ext = externals[rng.choice(len(externals), size=n, p=ext_w / ext_w.sum())]
    failed = rng.random(n) < prof.failed_share
    for i, name in enumerate(names):
        svc = SERVICES[name]
        sel = svc_idx == i
        k = int(sel.sum())
        cols["proto"][sel] = svc.proto
        cols["service"][sel] = svc.zeek
        if svc.internal_server:
            cols["id.resp_h"][sel] = f"{prof.net}.0.{svc.port}"
        else:
            cols["id.resp_h"][sel] = resp_ext[sel]
        cols["id.resp_p"][sel] = svc.port if svc.port else rng.integers(1024, 32768, size=k)
        cols["orig_bytes"][sel] = _lognormal(rng, svc.orig_bytes, k).astype(np.int64)
        cols["resp_bytes"][sel] = _lognormal(rng, svc.resp_bytes, k).astype(np.int64)
        cols["duration"][sel] = _lognormal(rng, svc.duration, k)
    cols["conn_state"][:] = "SF"
    fail_tcp = failed & (cols["proto"] == "tcp")
    rej = fail_tcp & (rng.random(n) < 0.4)
    _fail(cols, fail_tcp & ~rej, rej)
    return cols


def _fail(cols, s0, rej):
    """Unanswered (S0: one SYN, sizes unset) and rejected (REJ: answered by RST) connections."""
    cols["conn_state"][s0] = "S0"
    cols["service"][s0 | rej] = "-"
    cols["duration"][s0] = np.nan
    cols["orig_bytes"][s0] = -1
    cols["resp_bytes"][s0] = -1
    cols["conn_state"][rej] = "REJ"
    cols["duration"][rej] = np.abs(cols["duration"][rej]) % 0.01 + 1e-4
    cols["orig_bytes"][rej] = 0
    cols["resp_bytes"][rej] = 0


def _pick_window(rng, days, day_offset, length_s, hour_range=(0, 24)):
    day = min(day_offset, days - 1)
    lo, hi = hour_range
    start = day * 86400 + rng.uniform(lo * 3600, hi * 3600 - length_s)
    return start, start + length_s


def _tcp_flows(rng, n, t0, t1, orig_h, resp_h, resp_p, service, orig_ports=(32768, 61000)):
    """``n`` TCP connections in [t0, t1) between the given hosts (each may be one value or an array)."""
    cols = _columns(n)
    cols["ts"] = np.sort(rng.uniform(t0, t1, n))
    cols["id.orig_h"][:] = orig_h
    cols["id.orig_p"] = rng.integers(*orig_ports, size=n)
    cols["id.resp_h"][:] = resp_h
    cols["id.resp_p"][:] = resp_p
    cols["proto"][:] = "tcp"
    cols["service"][:] = service
    cols["conn_state"][:] = "SF"
    return cols


def _attack_port_scan(prof, days, rng, t0, t1):
    n = 1000
    source = str(_external_ips(rng, 1)[0])
    target = f"{prof.net}.0.80"
    cols = _tcp_flows(rng, n, t0, t1, source, target, rng.permutation(np.arange(1, 65536))[:n], "-")
    cols["duration"] = rng.uniform(1e-4, 5e-3, n)
    rej = rng.random(n) < 0.7
    _fail(cols, ~rej, rej)
    hosts = {"source": source, "target": target}
    return cols, hosts, "one external source probes 1000 distinct TCP ports of one server"


def _attack_ddos(prof, days, rng, t0, t1):
    n = 15_000
    sources = _external_ips(rng, 400)
    target = f"{prof.net}.0.80"
    cols = _tcp_flows(rng, n, t0, t1, sources[rng.integers(0, len(sources), n)], target, 80, "http",
                      orig_ports=(1024, 65536))
    cols["duration"] = rng.uniform(1e-3, 0.05, n)
    cols["orig_bytes"][:] = rng.integers(40, 200, n)
    cols["resp_bytes"][:] = 0
    s0 = rng.random(n) < 0.8
    _fail(cols, s0, np.zeros(n, bool))
    hosts = {"sources": sorted(set(cols["id.orig_h"])), "target": target}
    return cols, hosts, "400 external sources flood one web server with 15000 connections"


def _attack_exfiltration(prof, days, rng, t0, t1):
    n = 60
    source = str(_ips(prof.net, np.array([250 + int(rng.integers(10, prof.clients))]))[0])
    dest = str(_external_ips(rng, 1)[0])
    cols = _tcp_flows(rng, n, t0, t1 - 120, source, dest, 443, "ssl")
    cols["orig_bytes"] = rng.lognormal(np.log(33e6), 0.3, n).astype(np.int64)
    cols["resp_bytes"] = rng.lognormal(8.0, 0.5, n).astype(np.int64)
    cols["duration"] = cols["orig_bytes"] / rng.uniform(0.5e6, 2e6, n)
    hosts = {"source": source, "destination": dest}
    return cols, hosts, "one internal client uploads about 2 GB to one external host over HTTPS"


ATTACKS = {
    # type: (builder, day offset, duration in seconds, hours of day it may start in)
    "port_scan": (_attack_port_scan, 1, 300, (1, 6)),
    "ddos": (_attack_ddos, 2, 600, (9, 17)),
    "exfiltration": (_attack_exfiltration, 3, 2400, (19, 23)),
}


def _concat(parts):
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _parse_start(start):
    day = dt.date.fromisoformat(str(start))
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def generate(centre, days, seed, start=DEFAULT_START, attacks=ATTACK_TYPES):
    """Connections of ``days`` days for ``centre`` (A or B), sorted by time, with injected ``attacks``.

    Returns ``(frame, labels)``: a pandas DataFrame with Zeek's conn.log fields (unset
    values as NaN / -1 before writing) and an extra ``attack`` column (``""`` for normal
    traffic), and the labels dict written to ``labels.json``.
    """
    import pandas as pd

    prof = profile(centre)
    if int(days) < 1:
        raise ValueError(f"days must be >= 1, not {days}")
    unknown = set(attacks) - set(ATTACKS)
    if unknown:
        raise ValueError(f"unknown attack types {sorted(unknown)}: choose from {list(ATTACKS)}")
    days = int(days)
    t_start = _parse_start(start)
    epoch = t_start.timestamp()
    rng = np.random.default_rng(seed)
    parts = [_background(prof, t_start, days, rng)]
    kinds = [np.full(len(parts[0]["ts"]), "", dtype=object)]
    labels = []
    for kind in attacks:
        builder, day_offset, length, hours = ATTACKS[kind]
        t0, t1 = _pick_window(rng, days, day_offset, length, hours)
        cols, hosts, description = builder(prof, days, rng, t0, t1)
        parts.append(cols)
        kinds.append(np.full(len(cols["ts"]), kind, dtype=object))
        labels.append({
            "type": kind, "description": description,
            "start": _iso(epoch + t0), "end": _iso(epoch + t1),
            "start_ts": round(epoch + t0, 6), "end_ts": round(epoch + t1, 6),
            "hosts": hosts, "connections": len(cols["ts"]),
        })
    cols = _concat(parts)
    cols["attack"] = np.concatenate(kinds)
    cols["ts"] = cols["ts"] + epoch
    order = np.argsort(cols["ts"], kind="stable")
    frame = pd.DataFrame({k: v[order] for k, v in cols.items()})
    frame.insert(1, "uid", _uids(rng, len(frame)))
    _fill_derived(frame, prof)
    meta = {
        "format": "zeek conn.log", "generator": "deepvre.science.traffic", "centre": prof.name,
        "profile": dataclasses.asdict(prof), "peak_trough_ratio": prof.peak_trough_ratio(),
        "seed": seed, "start": t_start.isoformat(), "days": days, "connections": len(frame),
        "attacks": labels,
    }
    return frame, meta


def _iso(ts):
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


def _uids(rng, n):
    chars = UID_ALPHABET[rng.integers(0, len(UID_ALPHABET), size=(n, 17))]
    return np.char.add("C", chars.view("<U17").ravel())


def _fill_derived(frame, prof):
    """Zeek's derived columns: local flags, history, packet and IP byte counts."""
    tcp = (frame["proto"] == "tcp").to_numpy()
    state = frame["conn_state"].to_numpy()
    ob = np.maximum(frame["orig_bytes"].to_numpy(), 0)
    rb = np.maximum(frame["resp_bytes"].to_numpy(), 0)
    frame["local_orig"] = np.where(frame["id.orig_h"].str.startswith(prof.net + "."), "T", "F")
    frame["local_resp"] = np.where(frame["id.resp_h"].str.startswith(prof.net + "."), "T", "F")
    frame["missed_bytes"] = 0
    history = np.where(tcp, "ShADadFf", "Dd")
    history = np.where(state == "S0", np.where(tcp, "S", "D"), history)
    history = np.where(state == "REJ", "Sr", history)
    frame["history"] = history
    opk = np.where(state == "SF", np.ceil(ob / 1448) + np.where(tcp, 3, 0), 1).astype(np.int64)
    rpk = np.where(state == "SF", np.ceil(rb / 1448) + np.where(tcp, 2, 0), np.where(state == "REJ", 1, 0))
    rpk = rpk.astype(np.int64)
    hdr = np.where(tcp, 40, 28)
    frame["orig_pkts"], frame["orig_ip_bytes"] = opk, ob + opk * hdr
    frame["resp_pkts"], frame["resp_ip_bytes"] = rpk, rb + rpk * hdr
    frame["tunnel_parents"] = "(empty)"


def _format_rows(frame):
    """Tab-separated rows as Zeek writes them: 6 decimals for time/interval, ``-`` for unset."""
    ts = np.char.mod("%.6f", frame["ts"].to_numpy())
    dur = frame["duration"].to_numpy()
    dur_s = np.where(np.isnan(dur), "-", np.char.mod("%.6f", np.nan_to_num(dur)))
    cols = []
    for name in FIELDS:
        if name == "ts":
            cols.append(ts)
        elif name == "duration":
            cols.append(dur_s)
        elif name in ("orig_bytes", "resp_bytes"):
            v = frame[name].to_numpy()
            cols.append(np.where(v < 0, "-", v.astype(str)))
        else:
            cols.append(frame[name].to_numpy().astype(str))
    out = cols[0].astype(object)
    for c in cols[1:]:
        out = out + "\t" + c.astype(object)
    return out


def header_lines(open_time):
    """Zeek's header for a conn.log opened at ``open_time`` (a datetime)."""
    return [
        "#separator \\x09", "#set_separator\t,", "#empty_field\t(empty)", "#unset_field\t-", "#path\tconn",
        f"#open\t{open_time.strftime('%Y-%m-%d-%H-%M-%S')}",
        "#fields\t" + "\t".join(FIELDS), "#types\t" + "\t".join(TYPES),
    ]


def write_logs(frame, meta, out_dir):
    """Write ``conn.YYYY-MM-DD.log`` per day and ``labels.json`` into ``out_dir`` (which must be empty or new).

    Returns the list of log paths.
    """
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        raise FileExistsError(f"{out_dir} is not empty; choose a new folder (nothing was overwritten)")
    os.makedirs(out_dir, exist_ok=True)
    start = dt.datetime.fromisoformat(meta["start"])
    day_index = ((frame["ts"].to_numpy() - start.timestamp()) // 86400).astype(int)
    rows = _format_rows(frame)
    paths = []
    for day in range(meta["days"]):
        opened = start + dt.timedelta(days=day)
        closed = opened + dt.timedelta(days=1)
        path = os.path.join(out_dir, f"conn.{opened.date().isoformat()}.log")
        with open(path, "w", newline="\n") as fh:
            fh.write("\n".join(header_lines(opened)) + "\n")
            chunk = rows[day_index == day]
            if len(chunk):
                fh.write("\n".join(chunk) + "\n")
            fh.write(f"#close\t{closed.strftime('%Y-%m-%d-%H-%M-%S')}\n")
        paths.append(path)
    with open(os.path.join(out_dir, "labels.json"), "w") as fh:
        json.dump(meta, fh, indent=1)
    return paths


def generate_logs(out_dir, centre, days, seed, start=DEFAULT_START, attacks=ATTACK_TYPES):
    """:func:`generate` then :func:`write_logs`; returns ``(paths, labels)``."""
    frame, meta = generate(centre, days, seed, start=start, attacks=attacks)
    return write_logs(frame, meta, out_dir), meta
