"""The Zeek conn.log traffic generator: format, the properties its docs claim (cycles, sessions, heavy
tails, host heterogeneity) and its graded attacks, checked from the outside on what it generates."""

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from deepvre.science import traffic
from tests.prereqs import require

DAYS = 7
PORT_SERVICE = {443: "https", 80: "http", 53: "dns", 22: "ssh", 25: "smtp", 123: "ntp"}


@pytest.fixture(scope="module")
def frames():
    return {c: traffic.generate(c, DAYS, seed=3) for c in ("A", "B")}


def zat_frame(paths):
    try:
        from zat.log_to_dataframe import LogToDataFrame
    except ImportError:
        require(False, "zat (data-packages.txt) reads Zeek logs")
    reader = LogToDataFrame()
    df = pd.concat([reader.create_dataframe(p) for p in paths]).reset_index()
    df["ts"] = df["ts"].astype("int64") / 1e9
    return df


@pytest.fixture(scope="module")
def written(frames, tmp_path_factory):
    out = tmp_path_factory.mktemp("traffic") / "A"
    frame, meta = frames["A"]
    return traffic.write_logs(frame, meta, str(out)), str(out)


@pytest.fixture(scope="module")
def parsed(written):
    """The written logs read back by zat, a real Zeek log reader."""
    return zat_frame(written[0])


def _hours(frame, meta):
    start = pd.Timestamp(meta["start"]).timestamp()
    return ((frame["ts"].to_numpy() - start) // 3600).astype(int)


# --- normal traffic: four weeks per centre, attack-free ------------------------------------------

@pytest.fixture(scope="module")
def four_weeks():
    """Connections per hour (28 days x 24) per centre, and the last week's frame (seeds 3..6)."""
    out = {}
    for centre in ("A", "B"):
        hourly = []
        for seed in (3, 4, 5, 6):
            frame, meta = traffic.generate(centre, DAYS, seed, attacks=())
            hourly.append(np.bincount(_hours(frame, meta), minlength=DAYS * 24).reshape(DAYS, 24))
        out[centre] = (np.concatenate(hourly), frame)
    return out


def diurnal(hourly):
    """Peak/trough ratio and peak hour from the first harmonic of hourly counts (the hour bins damp it by sinc)."""
    z = np.sum(hourly * np.exp(-2j * np.pi * (np.arange(24) + 0.5) / 24)) / np.sum(hourly)
    a = 2 * np.abs(z) / np.sinc(1 / 24)
    return (1 + a) / (1 - a), (-np.angle(z) * 24 / (2 * np.pi)) % 24


@pytest.mark.parametrize("centre", ["A", "B"])
def test_diurnal_and_weekly_cycle(four_weeks, centre):
    prof = traffic.profile(centre)
    hourly, _ = four_weeks[centre]
    ratio, peak = diurnal(hourly.sum(axis=0))
    # measured on these seeds: A 3.92 (4.0), B 1.82 (1.86); sessions last minutes, so the peak runs late by < 0.4 h
    assert ratio == pytest.approx(prof.peak_trough_ratio(), rel=0.08)
    assert -0.2 < peak - prof.peak_hour < 0.6
    daily = hourly.sum(axis=1)
    weekend = np.arange(len(daily)) % 7 >= 5  # the data start on a Monday
    assert daily[weekend].mean() / daily[~weekend].mean() == pytest.approx(prof.weekend_factor, rel=0.05)
    # the weekly cycle is visible: every weekend day lies on its side of every weekday (A dips, B rises)
    if prof.weekend_factor < 1:
        assert daily[weekend].max() < daily[~weekend].min()
    else:
        assert np.median(daily[weekend]) > np.median(daily[~weekend])
    # days differ by more than Poisson noise (a day-level factor of about 12 %)
    assert daily[~weekend].std() / daily[~weekend].mean() > 0.08


@pytest.mark.parametrize("centre", ["A", "B"])
def test_sessions_make_counts_overdispersed(four_weeks, centre):
    _, frame = four_weeks[centre]
    per_window = np.bincount(((frame["ts"] - frame["ts"].min()) // 300).astype(int))
    assert per_window.var() / per_window.mean() > 20  # Poisson: 1; measured 111 (A), 69 (B)
    # one host's connections come in bursts: gaps between its connections vary far more than a Poisson stream's
    busiest = frame["id.orig_h"].value_counts().index[0]
    gaps = np.diff(np.sort(frame.loc[frame["id.orig_h"] == busiest, "ts"].to_numpy()))
    assert gaps.std() / gaps.mean() > 3


def _hill(values, top=0.01):
    """The Hill estimate of a tail index from the largest ``top`` share of ``values``."""
    v = np.sort(np.asarray(values, float))
    tail = v[-max(int(len(v) * top), 10):]
    return 1.0 / np.mean(np.log(tail / tail[0]))


@pytest.mark.parametrize("centre", ["A", "B"])
def test_heavy_tailed_sizes_and_host_heterogeneity(four_weeks, centre):
    _, frame = four_weeks[centre]
    sizes = (frame["orig_bytes"].clip(lower=0) + frame["resp_bytes"].clip(lower=0)).to_numpy()
    sizes = sizes[sizes > 0]
    assert _hill(sizes) < 1.5 and sizes.max() > 1e4 * np.median(sizes)  # measured: 0.86 / 0.80; 1e5-1e6
    durations = frame["duration"].dropna().to_numpy()
    assert _hill(durations) < 2.0  # measured 1.4 / 1.1
    clients = frame.loc[frame["local_orig"] == "T", "id.orig_h"].value_counts()
    assert clients.iloc[:len(clients) // 10].sum() > 0.35 * clients.sum()  # a tenth of the hosts: 46 % / 51 %
    assert clients.iloc[0] > 10 * clients.median()


@pytest.mark.parametrize("centre", ["A", "B"])
def test_service_mix(four_weeks, centre):
    _, frame = four_weeks[centre]
    shares = frame["id.resp_p"].map(PORT_SERVICE).fillna("other").value_counts(normalize=True)
    for name, share in traffic.profile(centre).service_mix.items():
        # session sizes are heavy-tailed, so a week's connection shares scatter by a few per cent of the total
        assert shares.get(name, 0.0) == pytest.approx(share, abs=0.05 + 0.2 * share), name


def test_nightly_backups_are_large_legitimate_uploads(frames):
    frame, meta = frames["A"]
    normal = frame[frame["attack"] == ""]
    sent = normal.groupby([_hours(normal, meta), "id.orig_h"])["orig_bytes"].sum()
    (hour, host), top = sent.idxmax(), sent.max()
    assert host.startswith("10.10.0.2") and 1 <= hour % 24 <= 3 and top > 1e9
    exf = next(a for a in meta["attacks"] if a["type"] == "exfiltration")
    # a loud exfiltration (2 GB in 40 minutes) is no larger than a night's backup from one server
    assert exf["scale"] == 1.0 and frame.loc[frame["attack"] == "exfiltration", "orig_bytes"].sum() < 1.5 * top


def test_centres_differ(frames):
    mix = {c: frames[c][0]["id.resp_p"].map(PORT_SERVICE).value_counts(normalize=True) for c in ("A", "B")}
    assert mix["A"]["ssh"] > 3 * mix["B"]["ssh"] and mix["B"]["smtp"] > 3 * mix["A"]["smtp"]
    hosts = {c: frames[c][0].loc[lambda f: f["local_orig"] == "T", "id.orig_h"].nunique() for c in "AB"}
    assert hosts["A"] > 250 and 80 < hosts["B"] <= 130


# --- attacks, at graded magnitudes -----------------------------------------------------------------

# one day per grade; each day holds every type at a fixed hour
HOURS = {"port_scan": 1, "ddos": 3, "exfiltration": 5, "distributed_scan": 8, "slow_exfiltration": 12}
PLAN = [{"type": kind, "grade": grade, "start_s": day * 86400 + hour * 3600}
        for day, grade in enumerate(traffic.GRADES) for kind, hour in HOURS.items()]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Three days of centre B with every attack type at each grade, written and read back by zat."""
    frame, meta = traffic.generate("B", 3, seed=8, attacks=PLAN)
    paths = traffic.write_logs(frame, meta, str(tmp_path_factory.mktemp("graded") / "B"))
    df = zat_frame(paths)
    labels = json.loads(Path(paths[0]).with_name("labels.json").read_text())["attacks"]
    return df, labels


def _during(df, label):
    return df[(df["ts"] >= label["start_ts"]) & (df["ts"] < label["end_ts"])]


def test_attack_magnitudes_as_specified(graded):
    df, labels = graded
    assert [(a["type"], a["grade"]) for a in labels] == [(p["type"], p["grade"]) for p in PLAN]
    for a in labels:
        scale, during = a["scale"], _during(df, a)
        assert scale == traffic.GRADES[a["grade"]]
        if a["type"] == "port_scan":
            ports = during[during["id.orig_h"] == a["hosts"]["source"]]["id.resp_p"].nunique()
            assert ports == round(1000 * scale)
        elif a["type"] == "distributed_scan":
            probes = during[during["id.orig_h"].isin(a["hosts"]["sources"])]
            assert len(probes) == round(2000 * scale) and len(a["hosts"]["sources"]) == 20
            assert probes.groupby("id.orig_h")["id.resp_p"].nunique().max() == 1  # one port per source
            # each source is slow: at most a few probes per 5 minutes even at the loud grade
            per_window = probes.groupby([probes["id.orig_h"], probes["ts"] // 300]).size()
            assert per_window.mean() < 6 and set(probes["conn_state"]) <= {"S0", "REJ"}
        elif a["type"] == "ddos":
            flood = during[(during["id.resp_h"] == a["hosts"]["target"]) & during["id.orig_h"].isin(a["hosts"]["sources"])]
            assert len(flood) == round(15000 * scale) and len(a["hosts"]["sources"]) >= 10
        else:
            upload = during[(during["id.orig_h"] == a["hosts"]["source"])
                            & (during["id.resp_h"] == a["hosts"]["destination"])]
            total = upload["orig_bytes"].sum()
            if a["type"] == "exfiltration":
                assert total == pytest.approx(2e9 * scale, rel=0.15) and len(upload) == 60
            else:  # low and slow: one connection a minute over six hours, each of ordinary duration
                assert total == pytest.approx(2e8 * scale, rel=0.15) and len(upload) == 360
                assert upload["ts"].max() - upload["ts"].min() > 5.5 * 3600
                assert upload["duration"].dt.total_seconds().median() < 5


def test_subtle_attacks_hide_in_normal_variation(graded):
    """A subtle distributed scan adds fewer failed connections per 5 minutes than normal traffic's own
    spread; a subtle slow exfiltration sends less per 5 minutes than the busiest normal host often does."""
    df, labels = graded
    normal = df[~np.any([(df["ts"] >= a["start_ts"]) & (df["ts"] < a["end_ts"]) for a in labels], axis=0)]
    windows = normal["ts"] // 300
    failed = normal["conn_state"].isin(["S0", "REJ"]).groupby(windows).sum()
    scan = next(a for a in labels if a["type"] == "distributed_scan" and a["grade"] == "subtle")
    assert round(2000 * scan["scale"]) / 24 < failed.std()
    sent = normal["orig_bytes"].fillna(0).groupby([windows, normal["id.orig_h"]]).sum().groupby(level=0).max()
    slow = next(a for a in labels if a["type"] == "slow_exfiltration" and a["grade"] == "subtle")
    assert 2e8 * slow["scale"] / 72 < sent.quantile(0.9)


def test_loud_attacks_visible_in_parsed_logs(parsed, frames):
    """At the loud grade, the port scan and the DDoS top their feature, at their labelled time and host."""
    meta = frames["A"][1]
    scan = next(a for a in meta["attacks"] if a["type"] == "port_scan")
    w = (parsed["ts"] // 300).astype(int)
    ports = parsed.assign(w=w).groupby(["w", "id.orig_h"])["id.resp_p"].nunique()
    (window, src), top = ports.idxmax(), ports.max()
    assert src == scan["hosts"]["source"] and scan["start_ts"] // 300 <= window <= scan["end_ts"] // 300
    assert top > 10 * ports.drop(index=src, level=1).max()
    ddos = next(a for a in meta["attacks"] if a["type"] == "ddos")
    conns = parsed.assign(w=w).groupby(["w", "id.resp_h"]).size()
    (window, dst), top = conns.idxmax(), conns.max()
    assert dst == ddos["hosts"]["target"] and ddos["start_ts"] // 300 <= window <= ddos["end_ts"] // 300


def test_schedule_is_random_graded_and_never_overlaps():
    plan = traffic.schedule(14, seed=0, per_day=2)
    assert len(plan) == 28 and {p["type"] for p in plan} == set(traffic.ATTACK_TYPES)
    assert {p["grade"] for p in plan} == set(traffic.GRADES)
    spans = sorted((p["start_s"], p["start_s"] + traffic.attack_length(p["type"])) for p in plan)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    assert all(p["start_s"] % 86400 >= 3600 and (p["start_s"] % 86400) + traffic.attack_length(p["type"]) <= 86400
               for p in plan)
    assert traffic.schedule(14, seed=0, per_day=2) == plan != traffic.schedule(14, seed=1, per_day=2)


# --- the format ----------------------------------------------------------------------------------

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
    assert [a["type"] for a in labels["attacks"]] == list(traffic.ATTACK_TYPES)
    assert all(a["start"] < a["end"] and a["grade"] == "loud" for a in labels["attacks"])


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
    with pytest.raises(ValueError, match="scale"):
        traffic.generate("A", 1, seed=0, attacks=[{"type": "ddos", "scale": 0}])


def test_cli(tmp_path):
    from deepvre.cli import main

    out = tmp_path / "logs"
    result = CliRunner().invoke(main, ["data", "traffic", str(out), "--centre", "B", "--days", "2", "--seed", "4"])
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(out)) == ["conn.2026-01-05.log", "conn.2026-01-06.log", "labels.json"]
    labels = json.loads((out / "labels.json").read_text())
    assert labels["centre"] == "B" and labels["seed"] == 4 and len(labels["attacks"]) == len(traffic.ATTACK_TYPES)
    again = CliRunner().invoke(main, ["data", "traffic", str(out), "--centre", "B", "--days", "2"])
    assert again.exit_code != 0 and "not empty" in again.output
