"""Quotas (the ``quotas:`` settings section): pure checks over the accounting rows
(:mod:`deepvre_hub.usage`), made at spawn before a GPU is taken.

Three limits, each optional: ``gpus`` (GPUs at once), ``servers`` (servers at once) and
``gpu_hours_per_week`` (GPU-hours over the rolling 7 days before now). A user's own limits are
``default`` with ``users[name]``'s keys over it. A group's limits apply to the sum over its
members. A user in several groups must fit every one of them (the strictest wins), besides their
own limits. :func:`refusal` returns the message that names the first limit hit and when it frees
up, or None.
"""

import datetime

from .usage import hours

WINDOW = datetime.timedelta(days=7)
KEYS = ("servers", "gpus", "gpu_hours_per_week")


def user_limits(quotas, user):
    """The limits of ``user`` alone: ``default`` with ``users[user]`` over it (a key set to null
    there lifts the default)."""
    merged = {**(quotas.get("default") or {}), **((quotas.get("users") or {}).get(user) or {})}
    return {k: merged[k] for k in KEYS if merged.get(k) is not None}


def group_limits(quotas, groups):
    """``{group: limits}`` of the groups in ``groups`` that have any."""
    section = quotas.get("groups") or {}
    return {g: {k: section[g][k] for k in KEYS if section[g].get(k) is not None}
            for g in sorted(groups) if section.get(g)}


def when(moment):
    """``Tue 2 Dec 14:00 UTC`` (rounded up to the minute)."""
    if moment.second or moment.microsecond:
        moment = moment.replace(second=0, microsecond=0) + datetime.timedelta(minutes=1)
    return f"{moment:%a} {moment.day} {moment:%b %H:%M} UTC"


def gpu_hours(rows, now, window=WINDOW):
    """GPU-hours of ``rows`` in the window that ends ``now``."""
    return sum(r["gpus"] * hours(r, now - window, now) for r in rows)


def back_under(rows, limit, now, window=WINDOW):
    """The first moment after ``now`` at which the window's GPU-hours of ``rows`` fall below
    ``limit``, if nothing runs after ``now`` (bisection: the sum only falls as the window moves)."""
    def used(t):
        return sum(r["gpus"] * hours(r, t - window, now) for r in rows)

    low, high = now, now + window
    while (high - low).total_seconds() > 1:
        middle = low + (high - low) / 2
        low, high = (low, middle) if used(middle) < limit else (middle, high)
    return high


def held(rows):
    """``alice/ (GPU 0), alice/b (GPU 1,2)``: the open rows' servers and their GPUs."""
    return ", ".join(f"{r['user']}/{r['server']}" + (f" (GPU {r['gpu_ids']})" if r["gpus"] else "")
                     for r in rows) or "none"


def check(limits, rows, request_gpus, now, whose, window=WINDOW, kind="server"):
    """The message of the first of ``limits`` that a start of ``request_gpus`` GPUs would break,
    given the ``rows`` it counts (open rows hold resources; the window's rows count GPU-hours);
    ``whose``: ``"your"`` or ``"group team's"``; ``kind``: a ``server`` or a batch ``run`` (runs
    count towards the GPU limits, not towards servers at once). None if it fits."""
    running = [r for r in rows if r["end"] is None]
    servers = [r for r in running if r.get("kind", "server") == "server"]
    if kind == "server" and "servers" in limits and len(servers) + 1 > limits["servers"]:
        return (f"Servers at once ({whose} limit): {len(servers)} of {limits['servers']} running "
                f"({held(servers)}). It frees up when one of them stops.")
    if request_gpus and "gpus" in limits:
        holding = [r for r in running if r["gpus"]]
        total = sum(r["gpus"] for r in holding)
        if total + request_gpus > limits["gpus"]:
            return (f"GPUs at once ({whose} limit): {total} of {limits['gpus']} held ({held(holding)}); this "
                    f"profile needs {request_gpus}. It frees up when a GPU server stops or a GPU run ends; "
                    "or pick a CPU profile.")
    if request_gpus and "gpu_hours_per_week" in limits:
        limit = limits["gpu_hours_per_week"]
        used = gpu_hours(rows, now, window)
        if used >= limit:
            if limit <= 0:
                return f"GPU-hours this week ({whose} limit): none allowed. Pick a CPU profile."
            return (f"GPU-hours this week ({whose} limit): {used:.1f} of {limit:g} in the last 7 days; under the "
                    f"limit again on {when(back_under(rows, limit, now, window))}. Pick a CPU profile until then.")
    return None


def refusal(quotas, user, server, groups, rows, request_gpus, now, kind="server"):
    """Why ``user`` may not start ``server`` with ``request_gpus`` GPUs now, or None.

    ``groups``: ``{group: [member names]}`` of the user's groups; ``rows``: the accounting rows of
    the user and those members that are open or ended within the window. The server's own
    earlier row does not count (it is being replaced): only a row of the same ``kind`` (``server`` or
    ``run``, a batch run), for a run's row holds its run id where a server's holds its name.
    """
    rows = [r for r in rows if not (r["user"] == user and r["server"] == server and r["end"] is None
                                    and r.get("kind", "server") == kind)]
    message = check(user_limits(quotas, user), [r for r in rows if r["user"] == user], request_gpus, now, "your",
                    kind=kind)
    if message:
        return message
    for group, limits in group_limits(quotas, groups).items():
        members = set(groups[group])
        message = check(limits, [r for r in rows if r["user"] in members], request_gpus, now, f"group {group}'s",
                        kind=kind)
        if message:
            return message
    return None


def watched_users(quotas, user, groups):
    """The users whose rows a check of ``user`` needs: the user, and the members of their groups
    that have limits."""
    names = {user}
    for group in group_limits(quotas, groups):
        names.update(groups[group])
    return names
