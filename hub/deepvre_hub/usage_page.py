"""The usage page, ``/hub/usage`` (a JupyterHub page handler: the hub's login and scopes).

A user sees their own rows; a caller with the unfiltered ``read:users`` scope (the admins) sees
everyone's, per user and per group, and may pick one user (``?user=NAME``). ``?days=N`` (1-366,
default 28) is the period; ``?format=csv`` the rows as CSV. The sums, the chart (server-side
SVG) and the CSV are pure builders below; the handler only gathers and renders.
"""

import csv
import datetime
import html
import io
from urllib.parse import urlencode

from jupyterhub import orm
from jupyterhub.handlers.base import BaseHandler
from tornado import web

from . import quotas, usage
from .accounting import sweep_once

DAYS = 28
CSV_FIELDS = ("id", "kind", "user", "server", "profile", "gpus", "gpu_ids", "start", "end", "reason",
              "ended_by", "hours", "gpu_hours")


def totals(rows, names, now, since):
    """``{name: {"servers", "running", "hours", "gpu_hours", "gpu_hours_7d"}}`` for each of
    ``names``, a mapping from a label to the user names it covers (a user; a group's members)."""
    out = {}
    for label, members in names.items():
        mine = [r for r in rows if r["user"] in members]
        out[label] = {
            "servers": sum(1 for r in mine if (r["end"] or now) > since),
            "running": sum(1 for r in mine if r["end"] is None),
            "hours": sum(usage.hours(r, since, now) for r in mine),
            "gpu_hours": sum(r["gpus"] * usage.hours(r, since, now) for r in mine),
            "gpu_hours_7d": quotas.gpu_hours(mine, now),
        }
    return out


def daily(rows, days, now):
    """``[(date, server_hours, gpu_hours)]`` for each of the last ``days`` days (UTC), oldest first."""
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    out = []
    for back in range(days - 1, -1, -1):
        start = today - datetime.timedelta(days=back)
        end = min(start + datetime.timedelta(days=1), now)
        out.append((start.date(),
                    sum(usage.hours(r, start, end) for r in rows if r["start"] < end),
                    sum(r["gpus"] * usage.hours(r, start, end) for r in rows if r["start"] < end)))
    return out


def svg_chart(series, width=720, height=200):
    """A bar chart of ``daily()``'s output: GPU-hours (bars) and server-hours (a line) per day."""
    pad, n = 30, max(len(series), 1)
    top = max([max(s, g) for _, s, g in series] + [1.0])
    step = (width - 2 * pad) / n

    def y(value):
        return height - pad - value / top * (height - 2 * pad)

    parts = [f'<svg class="deepvre-usage-chart" xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="usage per day">',
             f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#888"/>',
             f'<text x="{pad}" y="{pad - 12}" font-size="11">max {top:.1f} h per day</text>']
    points = []
    for i, (day, server_hours, gpu_hours) in enumerate(series):
        x = pad + i * step
        parts.append(f'<rect class="gpu-hours" x="{x + 1:.1f}" y="{y(gpu_hours):.1f}" width="{max(step - 2, 1):.1f}" '
                     f'height="{height - pad - y(gpu_hours):.1f}" fill="#e67e22"><title>{day}: '
                     f'{gpu_hours:.2f} GPU-hours, {server_hours:.2f} server-hours</title></rect>')
        points.append(f"{x + step / 2:.1f},{y(server_hours):.1f}")
        if i in (0, len(series) - 1) or i % 7 == 0:
            parts.append(f'<text x="{x:.1f}" y="{height - pad + 14}" font-size="10">{day:%d %b}</text>')
    parts.append(f'<polyline class="server-hours" points="{" ".join(points)}" fill="none" stroke="#2c7fb8"/>')
    parts.append(f'<text x="{width - pad - 200}" y="{pad - 12}" font-size="11">'
                 '<tspan fill="#e67e22">■ GPU-hours</tspan> <tspan fill="#2c7fb8">— server-hours</tspan></text>')
    parts.append("</svg>")
    return "\n".join(parts)


def csv_cell(value):
    """A CSV cell a spreadsheet does not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_text(rows, now, since):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    for r in rows:
        row = {**r, "start": r["start"].isoformat() + "Z", "end": r["end"].isoformat() + "Z" if r["end"] else "",
               "hours": f"{usage.hours(r, since, now):.4f}",
               "gpu_hours": f"{r['gpus'] * usage.hours(r, since, now):.4f}"}
        writer.writerow([csv_cell(row[k]) for k in CSV_FIELDS])
    return out.getvalue()


TEMPLATE = """{% extends "page.html" %}
{% block title %}Usage{% endblock %}
{% block main %}
<div class="container deepvre-usage">
  <h1>Usage {{ scope_line }}</h1>
  <p>The last {{ days }} days (UTC), up to {{ now }}.
     <a href="?{{ csv_query }}" class="deepvre-usage-csv">Download CSV</a></p>
  {{ limits_html | safe }}
  {{ chart | safe }}
  {% for title, table in summaries %}
  <h2>{{ title }}</h2>
  <table class="table table-condensed deepvre-usage-{{ 'users' if loop.first else 'groups' }}">
    <tr><th>name</th><th>servers</th><th>running now</th><th>server-hours</th><th>GPU-hours</th>
        <th>GPU-hours, last 7 days</th></tr>
    {% for name, t in table.items() %}
    <tr data-name="{{ name }}"><td>{{ name }}</td><td>{{ t.servers }}</td><td>{{ t.running }}</td>
        <td>{{ '%.2f' % t.hours }}</td><td>{{ '%.2f' % t.gpu_hours }}</td><td>{{ '%.2f' % t.gpu_hours_7d }}</td></tr>
    {% endfor %}
  </table>
  {% endfor %}
  <h2>Servers and batch runs</h2>
  <table class="table table-condensed deepvre-usage-rows">
    <tr><th>user</th><th>server</th><th>profile</th><th>GPU ids</th><th>start (UTC)</th><th>end</th><th>reason</th></tr>
    {% for r in rows %}
    <tr data-user="{{ r.user }}"><td>{{ r.user }}</td><td>{% if r.kind == 'run' %}run {{ r.server }}{% else %}{{ r.server or '(default)' }}{% endif %}</td><td>{{ r.profile }}</td>
        <td>{{ r.gpu_ids }}</td><td>{{ r.start }}</td><td>{{ r.end or 'running' }}</td>
        <td>{{ r.reason or '' }}{% if r.ended_by %} ({{ r.ended_by }}){% endif %}</td></tr>
    {% endfor %}
  </table>
</div>
{% endblock %}
"""


def limits_html(quota_settings, user, groups):
    """The caller's own limits, one line."""
    mine = quotas.user_limits(quota_settings, user)
    theirs = quotas.group_limits(quota_settings, groups)
    if not mine and not theirs:
        return ""

    def say(limits):
        return ", ".join(f"{k.replace('_', ' ')}: {v:g}" for k, v in limits.items())
    parts = [f"yours: {say(mine)}"] if mine else []
    parts += [f"group {g}: {say(v)}" for g, v in theirs.items()]
    return f'<p class="deepvre-usage-limits">Limits ({html.escape("; ".join(parts))})</p>'


class UsageHandler(BaseHandler):
    """``GET /hub/usage``: the caller's usage (everyone's for admins), as a page or CSV."""

    def initialize(self, url, quotas=None):
        self.url = url
        self.quota_settings = quotas or {}

    def sees_everyone(self):
        return "read:users" in self.expanded_scopes

    @web.authenticated
    async def get(self):
        me = self.current_user
        everyone = self.sees_everyone()
        asked = self.get_argument("user", "")
        if asked and asked != me.name and not everyone:
            raise web.HTTPError(403, "You may see only your own usage.")
        try:
            days = int(self.get_argument("days", str(DAYS)))
        except ValueError:
            raise web.HTTPError(400, "days: a whole number of days, 1 to 366") from None
        if not 1 <= days <= 366:
            raise web.HTTPError(400, "days: a whole number of days, 1 to 366")
        kind = self.get_argument("format", "html")
        if kind not in ("html", "csv"):
            raise web.HTTPError(400, "format: html or csv")
        users = [asked] if asked else (None if everyone else [me.name])
        now = usage.utcnow()
        since = now - datetime.timedelta(days=days)
        book = usage.book(self.url)
        sweep_once(book, self.db, self.log)
        rows = book.rows(users=users, since=since)
        if kind == "csv":
            self.set_header("Content-Type", "text/csv; charset=utf-8")
            self.set_header("Content-Disposition", 'attachment; filename="usage.csv"')
            self.finish(csv_text(rows, now, since))
            return
        names = {u: {u} for u in sorted({r["user"] for r in rows} | set(users or []))}
        summaries = [("Per user", totals(rows, names, now, since))]
        if users is None:
            groups = {g.name: {u.name for u in g.users} for g in self.db.query(orm.Group).order_by(orm.Group.name)}
            summaries.append(("Per group", totals(rows, groups, now, since)))
        own_groups = {g.name: [u.name for u in g.users] for g in me.groups} if hasattr(me, "groups") else {}
        query = {"format": "csv", "days": days, **({"user": asked} if asked else {})}
        page = await self._render(
            scope_line=f"of {asked}" if asked else ("of everyone" if everyone else f"of {me.name}"),
            days=days, now=f"{now:%Y-%m-%d %H:%M} UTC", csv_query=urlencode(query),
            limits_html=limits_html(self.quota_settings, me.name, own_groups),
            chart=svg_chart(daily(rows, days, now)), summaries=summaries,
            rows=list(reversed(rows))[:1000])
        self.finish(page)

    async def _render(self, **ns):
        template_ns = {**self.template_namespace, "xsrf_token": self.xsrf_token.decode("ascii"), **ns}
        template = self.settings["jinja2_env"].from_string(TEMPLATE)
        return await template.render_async(**template_ns)


def handlers(url, quota_settings):
    """``JupyterHub.extra_handlers`` entries of the page (under the hub's prefix: ``/hub/usage``)."""
    return [(r"/usage", UsageHandler, {"url": url, "quotas": quota_settings})]
