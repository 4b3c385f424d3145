"""The Zeek conn.log traffic generator: format, the statistics its docs claim, and its attacks."""

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from deepvre.science import traffic
from tests.prereqs import require
from tests.science import agreement

DAYS = 7
PORT_SERVICE = {443: "https", 80: "http", 53: "dns", 22: "ssh", 25: "smtp", 123: "ntp"}


@pytest.fixture(scope="module")
def frames():
    return {c: traffic.generate(c, DAYS, seed=3) for c in ("A", "B")}


@pytest.fixture(scope="module")
def written(frames, tmp_path_factory):
    out = tmp_path_factory.mktemp("traffic") / "A"
    frame, meta = frames["A"]
    return traffic.write_logs(frame, meta, str(out)), str(out)


@pytest.fixture(scope="module")
def parsed(written):
    """The written logs read back by zat, a real Zeek log reader."""
    try:
        from zat.log_to_dataframe import LogToDataFrame
    except ImportError:
        require(False, "zat (data-packages.txt) reads Zeek logs")
    paths, _ = written
    reader = LogToDataFrame()
    df = pd.concat([reader.create_dataframe(p) for p in paths]).reset_index()
    df["ts"] = df["ts"].astype("int64") / 1e9
    return df


def _hours(frame, meta):
    start = pd.Timestamp(meta["start"]).timestamp()
    return (frame["ts"].to_numpy() - start) // 3600


# The statistics the docs promise, from five weeks per centre: the module's week plus four more.
# Hourly, daily and per-service counts are Poisson, so their errors are known (agreement.check_counts).
MORE_SEEDS = (4, 5, 6, 7)
SERVICES = ("https", "http", "dns", "ssh", "smtp", "ntp", "other")
LAG = 1 / 120  # hours: the generator holds each minute's rate at its start value, so the cycle runs 30 s late


def counts(frame, meta):
    """Normal traffic per hour of day (24), per weekday and weekend (totals and days), per service (7)."""
    normal = frame[frame["attack"] == ""]
    hours = _hours(normal, meta)
    weekend = (hours // 24) % 7 >= 5  # the data start on a Monday
    days = np.arange(meta["days"]) % 7 >= 5
    names = normal["id.resp_p"].map(PORT_SERVICE).fillna("other").value_counts()
    return {"hourly": np.bincount((hours % 24).astype(int), minlength=24),
            "weekly": np.array([(~weekend).sum(), weekend.sum()]), "days": np.array([(~days).sum(), days.sum()]),
            "services": np.array([names.get(s, 0) for s in SERVICES])}


def weeks(centre, seeds):
    """:func:`counts` of one week per seed, without attacks (one week in memory at a time)."""
    return [counts(*traffic.generate(centre, DAYS, seed, attacks=())) for seed in seeds]


def summed(parts):
    return {k: sum(p[k] for p in parts) for k in parts[0]}


@pytest.fixture(scope="module")
def five_weeks(frames):
    return {c: summed([counts(*frames[c])] + weeks(c, MORE_SEEDS)) for c in ("A", "B")}


def diurnal(hourly):
    """Peak/trough ratio and peak hour from the first harmonic of hourly counts (the hour bins damp it by sinc)."""
    z = np.sum(hourly * np.exp(-2j * np.pi * (np.arange(24) + 0.5) / 24)) / np.sum(hourly)
    a = 2 * np.abs(z) / np.sinc(1 / 24)
    return [(1 + a) / (1 - a), (-np.angle(z) * 24 / (2 * np.pi)) % 24]


# The shared checks, each of one promise: the real tests and the biased twin run them
def check_ratio(c, prof):
    return agreement.check_counts(c["hourly"], lambda n: diurnal(n)[0], prof.peak_trough_ratio())


def check_peak(c, prof):
    return agreement.check_counts(c["hourly"], lambda n: diurnal(n)[1], prof.peak_hour + LAG)


def check_weekly(c, prof):
    return agreement.check_counts(c["weekly"], lambda n: (n[1] / c["days"][1]) / (n[0] / c["days"][0]),
                                  prof.weekend_factor)


def check_services(c, prof):
    return agreement.check_counts(c["services"], lambda n: n / n.sum(), [prof.service_mix[s] for s in SERVICES])


CHECKS = {"ratio": check_ratio, "peak": check_peak, "weekly": check_weekly, "services": check_services}


def biased(prof):
    """The profile 2 % off: amplitude (5 % in B: its small cycle needs it), peak hour, weekend factor, top share."""
    mix = dict(prof.service_mix)
    top, second = sorted(mix, key=mix.get, reverse=True)[:2]
    moved = (agreement.BIAS - 1) * mix[top]
    mix[top], mix[second] = mix[top] + moved, mix[second] - moved
    amplitude = agreement.BIAS if prof.name == "A" else 1.05
    return dataclasses.replace(prof, amplitude=prof.amplitude * amplitude, peak_hour=prof.peak_hour * agreement.BIAS,
                               weekend_factor=prof.weekend_factor * agreement.BIAS, service_mix=mix)


@pytest.mark.parametrize("centre", ["A", "B"])
def test_diurnal_peak_trough_ratio(five_weeks, centre):
    prof, wrong = traffic.profile(centre), biased(traffic.profile(centre))
    ratio, peak = check_ratio(five_weeks[centre], prof), check_peak(five_weeks[centre], prof)
    assert ratio.ok and peak.ok, f"{centre}: ratio {ratio}; peak hour {peak}"
    # small enough to matter: the biased twin's changes are more than 8 errors
    assert abs(wrong.peak_trough_ratio() - prof.peak_trough_ratio()) > 8 * ratio.error
    assert abs(wrong.peak_hour - prof.peak_hour) > 8 * peak.error


def test_weekly_pattern(frames, five_weeks):
    for centre in ("A", "B"):
        prof = traffic.profile(centre)
        verdict = check_weekly(five_weeks[centre], prof)
        assert verdict.ok, f"{centre}: {verdict}"
        assert abs(biased(prof).weekend_factor - prof.weekend_factor) > 8 * verdict.error
    # A dips at weekends, B rises (in normal traffic: B's weekday DDoS alone would bring it to 1.06)
    a, b = (np.bincount((_hours(f[f["attack"] == ""], m) // 24).astype(int)) for f, m in frames.values())
    assert a[5:].mean() < 0.6 * a[:5].mean() and b[5:].mean() > 1.05 * b[:5].mean()


def _service_mix(frame):
    normal = frame[frame["attack"] == ""]
    names = normal["id.resp_p"].map(PORT_SERVICE).fillna("other")
    return names.value_counts(normalize=True).to_dict()


@pytest.mark.parametrize("centre", ["A", "B"])
def test_service_mix(five_weeks, centre):
    prof = traffic.profile(centre)
    verdict = check_services(five_weeks[centre], prof)
    assert verdict.ok, f"{centre}: {verdict}"
    shift = np.abs([biased(prof).service_mix[s] - prof.service_mix[s] for s in SERVICES])
    assert np.all((shift > 8 * verdict.error) | (shift == 0))


def biased_weeks(centre, seeds=(3,) + MORE_SEEDS):
    """Five weeks of counts generated with the :func:`biased` profile."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(traffic.PROFILES, centre, biased(traffic.profile(centre)))
        return summed(weeks(centre, seeds))


@pytest.fixture(scope="module")
def biased_five_weeks():
    return {c: biased_weeks(c) for c in ("A", "B")}


@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("centre", ["A", "B"])
def test_a_two_percent_wrong_profile_fails_each_check(biased_five_weeks, centre, check):
    """Each check above, on traffic generated from a profile 2 % off, rejects it: the tests have that power."""
    verdict = CHECKS[check](biased_five_weeks[centre], traffic.profile(centre))
    assert not verdict.ok, f"{centre} {check}: generated 2 % off, yet {verdict}"


def test_centres_differ(frames):
    a, b = (_service_mix(frames[c][0]) for c in ("A", "B"))
    assert a["ssh"] > 3 * b["ssh"] and b["smtp"] > 3 * a["smtp"]
    hosts = {c: frames[c][0].loc[lambda f: f["local_orig"] == "T", "id.orig_h"].nunique() for c in "AB"}
    assert hosts["A"] > 250 and 80 < hosts["B"] <= 120


def _windows(df, seconds):
    return (df["ts"] // seconds).astype(int)


def _attack(meta, kind):
    return next(a for a in meta["attacks"] if a["type"] == kind)


def _inside(window, label, seconds):
    return label["start_ts"] // seconds <= window <= label["end_ts"] // seconds


def check_attacks_visible(df, meta):
    """Each attack stands out in the feature it should perturb, at its labelled time and host."""
    # port scan: distinct destination ports per source per 5 minutes
    scan = _attack(meta, "port_scan")
    ports = df.assign(w=_windows(df, 300)).groupby(["w", "id.orig_h"])["id.resp_p"].nunique()
    (w, src), top = ports.idxmax(), ports.max()
    assert src == scan["hosts"]["source"] and _inside(w, scan, 300)
    assert top > 10 * ports.drop(index=src, level=1).max()
    # DDoS: connections per destination per 5 minutes
    ddos = _attack(meta, "ddos")
    conns = df.assign(w=_windows(df, 300)).groupby(["w", "id.resp_h"]).size()
    (w, dst), top = conns.idxmax(), conns.max()
    assert dst == ddos["hosts"]["target"] and _inside(w, ddos, 300)
    quiet = [not any(_inside(i, a, 300) for a in meta["attacks"]) for i in conns.index.get_level_values(0)]
    assert top > 10 * conns[quiet].max()  # the busiest destination of normal traffic
    # exfiltration: bytes sent per source per hour
    exf = _attack(meta, "exfiltration")
    sent = df.assign(w=_windows(df, 3600)).groupby(["w", "id.orig_h"])["orig_bytes"].sum()
    (w, src), top = sent.idxmax(), sent.max()
    assert src == exf["hosts"]["source"]
    assert exf["start_ts"] // 3600 <= w <= exf["end_ts"] // 3600
    assert top > 10 * sent.drop(index=src, level=1).max()


def test_attacks_visible_in_parsed_logs(parsed, frames):
    check_attacks_visible(parsed, frames["A"][1])


def test_attacks_visible_in_centre_b(frames):
    frame, meta = frames["B"]
    df = frame.assign(orig_bytes=frame["orig_bytes"].clip(lower=0))
    check_attacks_visible(df, meta)


def test_zeek_format(written, parsed, frames):
    paths, out = written
    frame, _ = frames["A"]
    assert [os.path.basename(p) for p in paths] == [f"conn.2026-01-{d:02d}.log" for d in range(5, 12)]
    lines = Path(paths[0]).read_text().split("\n")
    assert lines[0] == "#separator \\x09"
    assert lines[1:5] == ["#set_separator\t,", "#empty_field\t(empty)", "#unset_field\t-", "#path\tconn"]
    assert lines[6].split("\t")[1:] == list(traffic.FIELDS)
    assert lines[7].split("\t")[1:] == list(traffic.TYPES)
    assert lines[-2].startswith("#close\t") and lines[-1] == ""
    rows = [line.split("\t") for line in lines[8:-2]]
    assert all(len(r) == len(traffic.FIELDS) for r in rows)
    s0 = [r for r in rows if r[11] == "S0"]
    assert s0 and all(r[8] == r[9] == r[10] == "-" for r in s0)
    assert all(r[20] == "(empty)" for r in rows)
    # zat and a plain pandas reader with the #fields header agree with what was generated
    assert len(parsed) == len(frame)
    plain = pd.read_csv(paths[0], sep="\t", comment="#", names=lines[6].split("\t")[1:], na_values="-",
                        keep_default_na=False)
    assert len(plain) == len(rows)
    assert plain["duration"].isna().sum() == len(s0)
    assert parsed["uid"].is_unique
    with open(os.path.join(out, "labels.json")) as fh:
        labels = json.load(fh)
    assert [a["type"] for a in labels["attacks"]] == ["port_scan", "ddos", "exfiltration"]
    assert all(a["start"] < a["end"] for a in labels["attacks"])


def test_deterministic_for_a_seed(tmp_path):
    def files(seed, name):
        paths, _ = traffic.generate_logs(str(tmp_path / name), "B", 1, seed=seed)
        return open(paths[0], "rb").read()

    assert files(5, "one") == files(5, "two")
    assert files(5, "one-again") != files(6, "other")


def test_refuses_to_overwrite_and_bad_input(tmp_path):
    (tmp_path / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError):
        traffic.generate_logs(str(tmp_path), "A", 1, seed=0)
    assert (tmp_path / "mine.txt").read_text() == "keep"
    with pytest.raises(ValueError, match="centre"):
        traffic.generate("C", 1, seed=0)
    with pytest.raises(ValueError, match="attack"):
        traffic.generate("A", 1, seed=0, attacks=["worm"])


def test_cli(tmp_path):
    from deepvre.cli import main

    out = tmp_path / "logs"
    result = CliRunner().invoke(main, ["data", "traffic", str(out), "--centre", "B", "--days", "2", "--seed", "4"])
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(out)) == ["conn.2026-01-05.log", "conn.2026-01-06.log", "labels.json"]
    labels = json.loads((out / "labels.json").read_text())
    assert labels["centre"] == "B" and labels["seed"] == 4 and len(labels["attacks"]) == 3
    again = CliRunner().invoke(main, ["data", "traffic", str(out), "--centre", "B", "--days", "2"])
    assert again.exit_code != 0 and "not empty" in again.output
