"""Prometheus gauges of the usage accounting, on the hub's own ``/hub/metrics`` (JupyterHub's
registry; its ``read:metrics`` scope, admins and a monitoring service): per user, the servers
running, the GPUs they hold and the GPU-hours of the last 7 days. Read from the rows at each scrape.
"""

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily

from . import quotas, usage


class UsageCollector:
    def __init__(self, url):
        self.url = url

    def describe(self):
        return []  # no collect() at registration: the rows are read at scrape time

    def collect(self):
        now = usage.utcnow()
        rows = usage.book(self.url).rows(since=now - quotas.WINDOW)
        running = GaugeMetricFamily("deepvre_servers_running", "Servers running, per user", labels=["user"])
        gpus = GaugeMetricFamily("deepvre_gpus_held", "GPUs held by running servers, per user", labels=["user"])
        hours = GaugeMetricFamily("deepvre_gpu_hours_7d", "GPU-hours over the last 7 days, per user", labels=["user"])
        for user in sorted({r["user"] for r in rows}):
            mine = [r for r in rows if r["user"] == user]
            open_rows = [r for r in mine if r["end"] is None]
            running.add_metric([user], len(open_rows))
            gpus.add_metric([user], sum(r["gpus"] for r in open_rows))
            hours.add_metric([user], quotas.gpu_hours(mine, now))
        yield from (running, gpus, hours)


_REGISTERED = set()


def register(url):
    """Add the gauges of the usage database ``url`` to the hub's registry (once per process)."""
    if url not in _REGISTERED:
        REGISTRY.register(UsageCollector(url))
        _REGISTERED.add(url)
