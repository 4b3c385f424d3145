"""Synthetic network traffic for two data centres, written as Zeek ``conn.log`` files, with labelled attacks.

No flow or intrusion data set installs offline (see notebooks/security/README.md for what was searched),
so the security use case generates its own, in the format Zeek writes (and MODS used):
``#separator \\x09``, ``#set_separator``, ``#empty_field (empty)``, ``#unset_field -``, ``#path conn``,
``#open``, ``#fields``, ``#types``, tab-separated rows, ``-`` for unset values, ``(empty)`` for the empty
``tunnel_parents`` set (as Zeek 2.x-4.x wrote it), and ``#close``. One file per day:
``conn.YYYY-MM-DD.log``.

Normal traffic is not a smooth Poisson stream: it is made of what makes real traffic hard to model.

* **Diurnal cycle.** Sessions start at the rate ``base * (1 + amplitude * cos(2 pi (h - peak_hour) / 24))``
  (times the factors below, each of mean 1 and flat over the day), so the expected peak/trough ratio of
  hourly counts is ``(1 + amplitude) / (1 - amplitude)``: centre A (an institute: offices and labs) peaks
  at 14:00 with amplitude 0.6 (ratio 4); centre B (a consumer cloud service) at 20:00 with 0.3 (about 1.9).
* **Weekly cycle.** Saturdays and Sundays are scaled by ``weekend_factor``: 0.45 in A (a weekend dip),
  1.15 in B (busier at weekends).
* **Day-to-day level.** Each day's level is multiplied by a log-normal factor of mean 1 (``day_sigma``).
* **Sessions.** Connections come in sessions of one host to one service (mostly one destination): the
  session count per minute is Poisson, a session's size is heavy-tailed (``1 + Poisson(c X)``, ``X`` Lomax
  with index ``session_tail``, mean ``session_mean``) and its length grows with its size. Counts per window
  are therefore over-dispersed (variance well above the mean), not Poisson.
* **Bursts.** ``bursts_per_day`` flash crowds or batch jobs per day at uniformly random times, each
  multiplying the session rate by ``1 + h`` (``h`` log-normal around ``burst_height``) for 3-120 minutes.
* **Heavy-tailed sizes and durations.** Bytes follow a log-normal body per service; a share
  ``heavy_share`` of connections is a large transfer with a Pareto (index 1.2) size multiplier, and its
  duration follows from its size. Whole sessions fail (``S0``/``REJ``) with probability ``failed_share``.
* **Host heterogeneity.** Client activity weights are log-normal (``host_sigma``): a few hosts dominate.
* **Nightly backups.** ``backup_hosts`` internal servers each upload a few GB to one external backup
  service at about ``backup_hour`` every night: large legitimate uploads.
* **Service mix.** Each centre's share of sessions (and so of connections) per service (``service_mix``):
  A is web, DNS and SSH heavy (researchers log in to clusters); B is HTTPS and mail heavy.

**Attacks** (ground truth in ``labels.json`` beside the logs: type, grade, scale, start, end, hosts), each
at a ``scale`` (1 is the loud grade; :data:`GRADES` names ``loud`` 1, ``medium`` 0.3, ``subtle`` 0.1):

- ``port_scan``: one external source probes ``1000 * scale`` distinct TCP ports of one server in 5 minutes;
- ``distributed_scan``: 20 external sources, each slow, probe one port (22, 445, 3389 or 23) on internal
  hosts, ``2000 * scale`` probes in all over 2 hours (mostly ``S0``/``REJ``, one port per source);
- ``ddos``: ``400 * scale`` (at least 10) external sources open ``15000 * scale`` connections to one
  internal web server in 10 minutes (mostly ``S0``);
- ``exfiltration``: one internal client uploads ``2 GB * scale`` to one external host over HTTPS in 60
  connections within 40 minutes;
- ``slow_exfiltration`` (low and slow): one internal client uploads ``200 MB * scale`` over 6 hours, one
  HTTPS connection a minute of ordinary length, to one external host.

Everything is drawn from one ``numpy.random.Generator`` seeded by ``seed``: the same arguments give
byte-identical files.
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
ATTACK_TYPES = ("port_scan", "distributed_scan", "ddos", "exfiltration", "slow_exfiltration")
GRADES = {"loud": 1.0, "medium": 0.3, "subtle": 0.1}


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
    conns_per_day: float     # mean connections per weekday before bursts (bursts add bursts_per_day * ~1 %)
    peak_hour: float
    amplitude: float         # diurnal: rate = base * (1 + amplitude * cos(...))
    weekend_factor: float
    service_mix: dict        # service -> share of sessions (sums to 1)
    failed_share: float = 0.03   # sessions that fail (S0 or REJ)
    session_mean: float = 8.0    # mean connections per session
    session_tail: float = 1.5    # Lomax index of session sizes (heavier tail when smaller)
    day_sigma: float = 0.12      # log-normal spread of each day's level
    bursts_per_day: float = 3.0
    burst_height: float = 1.5    # median extra rate multiple during a burst
    heavy_share: float = 0.02    # connections that are large transfers (Pareto tail)
    host_sigma: float = 1.3      # log-normal spread of client activity
    backup_hosts: int = 3
    backup_hour: float = 2.0

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
SESSION_CAP = 3000  # connections in one session at most


def profile(centre):
    try:
        return PROFILES[str(centre).upper()]
    except KeyError:
        raise ValueError(f"unknown centre {centre!r}: choose one of {sorted(PROFILES)}") from None


def rate_per_hour(prof, hours_since_start, start):
    """Expected connections per hour at each time (hours since ``start``, a datetime at midnight UTC),
    before the day-level factor and bursts (each of mean 1, flat over the day)."""
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


def client_ip(prof, index):
    """The address of internal client ``index`` (0 .. clients - 1)."""
    return str(_ips(prof.net, np.array([250 + int(index)]))[0])


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


def host_weights(prof, seed=0):
    """Activity weight of each internal client (log-normal, sums to 1): the same for every run of a centre."""
    w = np.random.default_rng([seed, prof.clients]).lognormal(0.0, prof.host_sigma, prof.clients)
    return w / w.sum()


def _session_rate(prof, start, days, rng):
    """Sessions expected per minute: the diurnal/weekly rate times each day's level and the bursts."""
    minutes = np.arange(days * 1440)
    day_level = rng.lognormal(-prof.day_sigma ** 2 / 2, prof.day_sigma, days)
    burst = np.ones(len(minutes))
    n_bursts = rng.poisson(prof.bursts_per_day * days)
    starts = rng.integers(0, len(minutes), n_bursts)
    lengths = np.clip(rng.lognormal(np.log(15), 0.7, n_bursts), 3, 120).astype(int)
    heights = rng.lognormal(np.log(prof.burst_height), 0.5, n_bursts)
    for s, length, h in zip(starts, lengths, heights):
        burst[s:s + length] += h
    conns = rate_per_hour(prof, minutes / 60, start) / 60 * day_level[minutes // 1440] * burst
    return conns / prof.session_mean


def _background(prof, start, days, rng):
    """Normal traffic: sessions of heavy-tailed size from heterogeneous hosts (see the module docstring)."""
    per_minute = rng.poisson(_session_rate(prof, start, days, rng))
    n_sessions = int(per_minute.sum())
    session_start = np.repeat(np.arange(len(per_minute)) * 60.0, per_minute) + rng.random(n_sessions) * 60
    alpha = prof.session_tail
    size = 1 + rng.poisson((prof.session_mean - 1) * (alpha - 1) * rng.pareto(alpha, n_sessions))
    size = np.minimum(size, SESSION_CAP)
    length = rng.lognormal(np.log(30.0), 1.0, n_sessions) * np.sqrt(size)  # seconds
    names = list(prof.service_mix)
    shares = np.array([prof.service_mix[s] for s in names])
    session_service = rng.choice(len(names), size=n_sessions, p=shares / shares.sum())
    session_host = rng.choice(prof.clients, size=n_sessions, p=host_weights(prof))
    externals = _external_ips(rng, 2000)
    ext_w = 1.0 / np.arange(1, len(externals) + 1) ** 1.1
    session_dest = rng.choice(len(externals), size=n_sessions, p=ext_w / ext_w.sum())
    session_port = rng.integers(1024, 32768, size=n_sessions)
    session_failed = rng.random(n_sessions) < prof.failed_share

    sid = np.repeat(np.arange(n_sessions), size)
    n = len(sid)
    cols = _columns(n)
    cols["ts"] = session_start[sid] + rng.random(n) * length[sid]
    cols["id.orig_h"] = _ips(prof.net, session_host[sid] + 250)
    cols["id.orig_p"] = rng.integers(32768, 61000, size=n)
    dest = session_dest[sid]
    stray = rng.random(n) < 0.2  # a fifth of a session's connections go elsewhere (CDNs, redirects)
    dest[stray] = rng.choice(len(externals), size=int(stray.sum()), p=ext_w / ext_w.sum())
    resp_ext = externals[dest]
    svc_idx = session_service[sid]
    heavy = rng.random(n) < prof.heavy_share
    upload = rng.random(n) < 0.3
    multiplier = 30.0 * (1.0 + rng.pareto(1.2, n))
    for i, name in enumerate(names):
        svc = SERVICES[name]
        sel = svc_idx == i
        k = int(sel.sum())
        cols["proto"][sel] = svc.proto
        cols["service"][sel] = svc.zeek
        cols["id.resp_h"][sel] = f"{prof.net}.0.{svc.port}" if svc.internal_server else resp_ext[sel]
        cols["id.resp_p"][sel] = svc.port if svc.port else session_port[sid[sel]]
        ob, rb = _lognormal(rng, svc.orig_bytes, k), _lognormal(rng, svc.resp_bytes, k)
        big = heavy[sel] & (svc.proto == "tcp")
        ob = np.where(big & upload[sel], ob * multiplier[sel], ob)
        rb = np.where(big & ~upload[sel], rb * multiplier[sel], rb)
        cols["orig_bytes"][sel] = np.minimum(ob, 5e10).astype(np.int64)
        cols["resp_bytes"][sel] = np.minimum(rb, 5e10).astype(np.int64)
        cols["duration"][sel] = _lognormal(rng, svc.duration, k) + np.where(big, (ob + rb) / 2e6, 0.0)
    cols["conn_state"][:] = "SF"
    failed = session_failed[sid] & (cols["proto"] == "tcp")
    rej = failed & (rng.random(n) < 0.4)
    _fail(cols, failed & ~rej, rej)
    return _concat([cols, _backups(prof, start, days, rng)])


def _backups(prof, start, days, rng):
    """Nightly backups: each backup server uploads a few GB to one external service in a few connections."""
    parts = []
    target = str(_external_ips(rng, 1)[0])
    for day in range(days):
        for host in range(prof.backup_hosts):
            k = int(rng.integers(1, 6))
            t0 = day * 86400 + (prof.backup_hour + rng.normal(0, 0.3)) * 3600
            cols = _tcp_flows(rng, k, t0, t0 + 1800, f"{prof.net}.0.{200 + host}", target, 443, "ssl")
            cols["orig_bytes"] = rng.lognormal(np.log(3e9 / k), 0.5, k).astype(np.int64)
            cols["resp_bytes"] = rng.lognormal(9.0, 0.5, k).astype(np.int64)
            cols["duration"] = cols["orig_bytes"] / rng.uniform(20e6, 80e6, k)
            parts.append(cols)
    return _concat(parts) if parts else _columns(0)


def _fail(cols, s0, rej):
    """Unanswered (S0: one SYN, sizes unset) and rejected (REJ: answered by RST) connections."""
    cols["conn_state"][s0] = "S0"
    cols["service"][s0 | rej] = "-"
    cols["duration"][s0] = np.nan
    cols["orig_bytes"][s0] = -1
    cols["resp_bytes"][s0] = -1
    cols["conn_state"][rej] = "REJ"
    cols["duration"][rej] = np.abs(np.nan_to_num(cols["duration"][rej])) % 0.01 + 1e-4
    cols["orig_bytes"][rej] = 0
    cols["resp_bytes"][rej] = 0


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


def _victim(prof, rng):
    """An internal client that is not among the ten busiest (an ordinary workstation)."""
    busiest = set(np.argsort(host_weights(prof))[-10:].tolist())
    choices = [i for i in range(prof.clients) if i not in busiest]
    return client_ip(prof, choices[int(rng.integers(0, len(choices)))])


def _attack_port_scan(prof, rng, t0, t1, scale):
    n = max(5, int(round(1000 * scale)))
    source = str(_external_ips(rng, 1)[0])
    target = f"{prof.net}.0.80"
    cols = _tcp_flows(rng, n, t0, t1, source, target, rng.permutation(np.arange(1, 65536))[:n], "-")
    cols["duration"] = rng.uniform(1e-4, 5e-3, n)
    rej = rng.random(n) < 0.7
    _fail(cols, ~rej, rej)
    return cols, {"source": source, "target": target}, f"one external source probes {n} distinct TCP ports of one server"


def _attack_distributed_scan(prof, rng, t0, t1, scale):
    n, k = max(20, int(round(2000 * scale))), 20
    sources = _external_ips(rng, k)
    ports = rng.choice(np.array([22, 445, 3389, 23]), size=k)
    who = rng.integers(0, k, n)
    targets = _ips(prof.net, 250 + rng.integers(0, prof.clients, n))
    cols = _tcp_flows(rng, n, t0, t1, sources[who], targets, ports[who], "-", orig_ports=(1024, 65536))
    cols["duration"] = rng.uniform(1e-4, 5e-3, n)
    rej = rng.random(n) < 0.5
    _fail(cols, ~rej, rej)
    return cols, {"sources": sorted(set(sources.tolist()))}, f"{k} external sources slowly probe {n} internal host ports"


def _attack_ddos(prof, rng, t0, t1, scale):
    n, k = max(50, int(round(15_000 * scale))), max(10, int(round(400 * scale)))
    sources = _external_ips(rng, k)
    target = f"{prof.net}.0.80"
    cols = _tcp_flows(rng, n, t0, t1, sources[rng.integers(0, k, n)], target, 80, "http", orig_ports=(1024, 65536))
    cols["duration"] = rng.uniform(1e-3, 0.05, n)
    cols["orig_bytes"][:] = rng.integers(40, 200, n)
    cols["resp_bytes"][:] = 0
    _fail(cols, rng.random(n) < 0.8, np.zeros(n, bool))
    return cols, {"sources": sorted(set(cols["id.orig_h"])), "target": target}, \
        f"{k} external sources flood one web server with {n} connections"


def _attack_exfiltration(prof, rng, t0, t1, scale):
    n = 60
    source, dest = _victim(prof, rng), str(_external_ips(rng, 1)[0])
    cols = _tcp_flows(rng, n, t0, t1 - 120, source, dest, 443, "ssl")
    cols["orig_bytes"] = rng.lognormal(np.log(2e9 * scale / n), 0.3, n).astype(np.int64)
    cols["resp_bytes"] = rng.lognormal(8.0, 0.5, n).astype(np.int64)
    cols["duration"] = cols["orig_bytes"] / rng.uniform(0.5e6, 2e6, n)
    return cols, {"source": source, "destination": dest}, \
        f"one internal client uploads about {2 * scale:.2g} GB to one external host over HTTPS"


def _attack_slow_exfiltration(prof, rng, t0, t1, scale):
    n = max(10, int((t1 - t0) // 60))
    source, dest = _victim(prof, rng), str(_external_ips(rng, 1)[0])
    cols = _tcp_flows(rng, n, t0, t1 - 30, source, dest, 443, "ssl")
    cols["orig_bytes"] = rng.lognormal(np.log(2e8 * scale / n), 0.3, n).astype(np.int64)
    cols["resp_bytes"] = rng.lognormal(8.0, 0.5, n).astype(np.int64)
    cols["duration"] = rng.lognormal(0.0, 1.2, n)
    return cols, {"source": source, "destination": dest}, \
        f"one internal client uploads about {200 * scale:.3g} MB over 6 hours, one connection a minute"


ATTACKS = {
    # type: (builder, default day offset, duration in seconds, hours of day it may start in by default)
    "port_scan": (_attack_port_scan, 1, 300, (1, 6)),
    "distributed_scan": (_attack_distributed_scan, 1, 7200, (8, 18)),
    "ddos": (_attack_ddos, 2, 600, (9, 17)),
    "exfiltration": (_attack_exfiltration, 3, 2400, (19, 23)),
    "slow_exfiltration": (_attack_slow_exfiltration, 4, 21600, (6, 17)),
}


def attack_length(kind):
    """Seconds an attack of type ``kind`` lasts."""
    return ATTACKS[kind][2]


def schedule(days, seed, per_day=2, types=ATTACK_TYPES, grades=GRADES, first_hour=1.0):
    """A random plan of attacks: ``per_day`` a day at random times (none before ``first_hour``), of random
    type and grade, no two overlapping. Returns dicts for :func:`generate`'s ``attacks``."""
    rng = np.random.default_rng([seed, 16])
    plan, names = [], list(grades)
    for day in range(int(days)):
        taken = []
        for _ in range(per_day):
            kind = str(types[int(rng.integers(0, len(types)))])
            length = attack_length(kind)
            for _try in range(50):
                t0 = day * 86400 + rng.uniform(first_hour * 3600, 86400 - length)
                if all(t0 + length <= a or t0 >= b for a, b in taken):
                    break
            else:
                continue
            taken.append((t0, t0 + length))
            grade = names[int(rng.integers(0, len(names)))]
            plan.append({"type": kind, "grade": grade, "scale": grades[grade], "start_s": round(float(t0), 3)})
    return plan


def _pick_window(rng, days, day_offset, length_s, hour_range=(0, 24)):
    day = min(day_offset, days - 1)
    lo, hi = hour_range
    start = day * 86400 + rng.uniform(lo * 3600, min(hi * 3600, 86400 - length_s))
    return start, start + length_s


def _concat(parts):
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _parse_start(start):
    day = dt.date.fromisoformat(str(start))
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _attack_spec(item):
    """``"ddos"`` or ``{"type": ..., "scale" or "grade": ..., "start_s": ...}`` -> (type, grade, scale, start_s)."""
    spec = {"type": item} if isinstance(item, str) else dict(item)
    kind = spec.get("type")
    if kind not in ATTACKS:
        raise ValueError(f"unknown attack type {kind!r}: choose from {list(ATTACKS)}")
    grade = spec.get("grade", "loud" if "scale" not in spec else "custom")
    scale = float(spec.get("scale", GRADES.get(grade, 1.0)))
    if not 0 < scale <= 10:
        raise ValueError(f"attack scale must be in (0, 10], not {scale}")
    return kind, grade, scale, spec.get("start_s")


def generate(centre, days, seed, start=DEFAULT_START, attacks=ATTACK_TYPES):
    """Connections of ``days`` days for ``centre`` (A or B), sorted by time, with injected ``attacks``.

    ``attacks``: type names (each loud, at its default day and hours) or dicts with ``type``, ``grade``
    or ``scale``, and ``start_s`` (seconds after ``start``), e.g. from :func:`schedule`.
    Returns ``(frame, labels)``: a pandas DataFrame with Zeek's conn.log fields (unset values as NaN / -1
    before writing) and an extra ``attack`` column (``""`` for normal traffic), and the labels dict
    written to ``labels.json``.
    """
    import pandas as pd

    prof = profile(centre)
    if int(days) < 1:
        raise ValueError(f"days must be >= 1, not {days}")
    specs = [_attack_spec(a) for a in attacks]
    days = int(days)
    t_start = _parse_start(start)
    epoch = t_start.timestamp()
    rng = np.random.default_rng(seed)
    parts = [_background(prof, t_start, days, rng)]
    kinds = [np.full(len(parts[0]["ts"]), "", dtype=object)]
    labels = []
    for kind, grade, scale, start_s in specs:
        builder, day_offset, length, hours = ATTACKS[kind]
        if start_s is None:
            t0, t1 = _pick_window(rng, days, day_offset, length, hours)
        else:
            t0, t1 = float(start_s), float(start_s) + length
        cols, hosts, description = builder(prof, rng, t0, t1, scale)
        parts.append(cols)
        kinds.append(np.full(len(cols["ts"]), kind, dtype=object))
        labels.append({
            "type": kind, "grade": grade, "scale": scale, "description": description,
            "start": _iso(epoch + t0), "end": _iso(epoch + t1),
            "start_ts": round(epoch + t0, 6), "end_ts": round(epoch + t1, 6),
            "hosts": hosts, "connections": len(cols["ts"]),
        })
    cols = _concat(parts)
    cols["attack"] = np.concatenate(kinds)
    keep = cols["ts"] < days * 86400  # sessions running past the last midnight end with the logs
    cols = {k: v[keep] for k, v in cols.items()}
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
