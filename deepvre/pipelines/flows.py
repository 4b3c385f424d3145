"""Network flows (security): Zeek ``conn.log`` -> features per time window -> sequences.

INPUT is a ``conn.log`` (TSV with Zeek's ``#fields`` header) or a folder of them
(``conn*.log``, rotated files included). Lines are parsed with ``dask.dataframe`` on
the cluster; a line with the wrong number of fields or an unparseable time stamp
or port is a bad record (counted, up to 100 listed, logged). Features per window
(``window`` seconds) per host (``by=host``: the originator) or service
(``by=service``: responder address, port and protocol): connections, bytes each way,
mean duration, distinct destination ports and hosts, and counts per connection state.

Sequences for forecasting: ``x`` = ``seq_len`` consecutive windows of log1p features,
``y`` = the next window's. Split by time (train first, then val, then test), each
sequence wholly inside its split.
"""

import glob
import os

import numpy as np

from .params import resolve
from .registry import register_pipeline
from .run import Plan, Shard
from .splits import SPLITS, chunked

STATES = ("S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR", "OTH")
FEATURES = ("conns", "orig_bytes", "resp_bytes", "duration", "dst_ports", "dst_hosts") + tuple(
    f"state_{s}" for s in STATES)
NEEDED = ("ts", "id.orig_h", "id.resp_h", "id.resp_p", "proto", "duration", "orig_bytes", "resp_bytes", "conn_state")
MAX_LISTED = 100
DEFAULTS = {
    "window": 60,         # seconds per time window
    "by": "host",         # host or service
    "seq_len": 12,        # windows per input sequence
    "split": (0.7, 0.15, 0.15),
    "hosts_per_shard": 16,
    "blocksize": "4MB",   # bytes per dask.dataframe partition (a task each: several per worker)
}


def read_fields(path):
    """Zeek's ``#fields`` header of a log file (opened as text, gzip too)."""
    import gzip

    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", errors="replace") as f:
        for line in f:
            if line.startswith("#fields"):
                return line.rstrip("\n").split("\t")[1:]
            if not line.startswith("#"):
                break
    raise ValueError(f"flows: {path} has no #fields header (not a Zeek log?)")


def parse_lines(frame, fields):
    """Parse a partition of raw lines into typed columns; ``error`` is set for bad lines."""
    import pandas as pd

    lines = frame["line"].astype(str)
    keep = ~lines.str.startswith("#") & (lines.str.len() > 0)
    lines, paths = lines[keep], frame["path"][keep].astype(str)
    parts = lines.str.split("\t", expand=False)
    n_fields = parts.str.len()
    cols = {}
    for name in NEEDED:
        i = fields.index(name)
        cols[name] = parts.str[i].where(n_fields == len(fields))
    out = pd.DataFrame(cols, index=lines.index)
    ts = pd.to_numeric(out["ts"], errors="coerce")
    port = pd.to_numeric(out["id.resp_p"], errors="coerce")
    error = pd.Series("", index=lines.index, dtype=object)
    error = error.mask(ts.isna(), "unparseable ts").mask(port.isna(), "unparseable id.resp_p")
    error = error.mask(n_fields != len(fields), "wrong number of fields")
    num = {k: pd.to_numeric(out[k].replace("-", "0"), errors="coerce").fillna(0.0)
           for k in ("duration", "orig_bytes", "resp_bytes")}
    return pd.DataFrame({
        "ts": ts.fillna(0.0), "orig_h": out["id.orig_h"].fillna(""), "resp_h": out["id.resp_h"].fillna(""),
        "resp_p": port.fillna(0).astype("int64"), "proto": out["proto"].fillna(""),
        "duration": num["duration"], "orig_bytes": num["orig_bytes"], "resp_bytes": num["resp_bytes"],
        "conn_state": out["conn_state"].fillna(""), "error": error,
        "path": paths.map(os.path.basename), "raw": lines.str.slice(0, 200),
    })


SUMS = ("conns", "orig_bytes", "resp_bytes", "duration") + tuple(f"state_{s}" for s in STATES)
GROUP = ["window", "key"]


def partial_features(conns, window, by):
    """One partition's share: sums per (window, key) and its distinct (window, key, port/host) rows.

    Sums add up across partitions and distinct rows de-duplicate, so :func:`combine_features`
    gives the same table whatever the partitioning.
    """
    conns = conns.assign(window=(conns["ts"] // window * window).astype("int64"))
    if by == "service":
        conns = conns.assign(key=conns["resp_h"] + ":" + conns["resp_p"].astype(str) + "/" + conns["proto"])
    else:
        conns = conns.assign(key=conns["orig_h"])
    states = {f"state_{s}": (conns["conn_state"] == s).astype("int64") for s in STATES}
    conns = conns.assign(conns=1, **states)
    sums = conns.groupby(GROUP)[list(SUMS)].sum()
    return (sums, conns[GROUP + ["resp_p"]].drop_duplicates(), conns[GROUP + ["resp_h"]].drop_duplicates())


def combine_features(parts):
    """The features per (window, key) from the partitions' :func:`partial_features`."""
    import pandas as pd

    sums = pd.concat([p[0] for p in parts]).groupby(level=GROUP).sum()
    ports = pd.concat([p[1] for p in parts]).drop_duplicates().groupby(GROUP).size()
    hosts = pd.concat([p[2] for p in parts]).drop_duplicates().groupby(GROUP).size()
    agg = sums.assign(dst_ports=ports, dst_hosts=hosts)
    agg["duration"] = agg["duration"] / agg["conns"]
    return agg


def window_features(conns, window, by):
    """Features per (window, key): a pandas frame for pandas input, a dask Delayed for a dask frame.

    On dask, one task per partition computes its partial features (no shuffle, one pass); the
    small partials are combined in one last task.
    """
    if not hasattr(conns, "to_delayed"):
        return combine_features([partial_features(conns, window, by)])
    import dask

    parts = [dask.delayed(partial_features)(part, window, by) for part in conns.to_delayed()]
    return dask.delayed(combine_features)(parts)


def _partition(conns, window, by):
    """Worker side, one partition of parsed lines: a one-row frame holding ``(partial features of
    the good lines, bad lines (capped), bad count)``, so that it fuses with the read and the parse."""
    import pandas as pd

    bad = conns[conns["error"] != ""]
    part = (partial_features(conns[conns["error"] == ""], window, by),
            bad[["path", "raw", "error"]].head(MAX_LISTED), len(bad))
    return pd.DataFrame({"partial": pd.Series([part], dtype=object)})


def _combine_partitions(frames):
    """Worker side: the features and the (capped) bad lines of all partitions."""
    import pandas as pd

    parts = [f["partial"].iloc[0] for f in frames]
    bad = pd.concat([p[1] for p in parts]).head(MAX_LISTED) if parts else pd.DataFrame(columns=["path", "raw", "error"])
    return combine_features([p[0] for p in parts]), bad, sum(p[2] for p in parts)


def features_and_bad(conns, window, by):
    """``(features, bad frame, bad count)`` in one pass over the parsed partitions, on the cluster.

    One task per partition reads, parses and reduces its lines (a ``map_partitions`` that dask
    fuses with the read and the parse); one more task combines the partials, so only the final
    table and the listed bad lines reach the client.
    """
    import dask
    import pandas as pd

    meta = pd.DataFrame({"partial": pd.Series([], dtype=object)})
    parts = conns.map_partitions(_partition, window, by, meta=meta).to_delayed()
    return dask.compute(dask.delayed(_combine_partitions)(parts))[0]


def log_files(input):
    if os.path.isfile(input):
        return [os.path.abspath(input)]
    files = sorted(glob.glob(os.path.join(input, "**", "conn*.log*"), recursive=True))
    if not files:
        raise ValueError(f"flows: no conn*.log files in {input!r}")
    return [os.path.abspath(f) for f in files]


def read_connections(files, blocksize):
    """Parsed connections as a dask DataFrame (plus the fields they were read with)."""
    import dask.dataframe as dd

    fields = read_fields(files[0])
    for f in files[1:]:
        if read_fields(f) != fields:
            raise ValueError(f"flows: {f} has other #fields than {files[0]}")
    missing = [n for n in NEEDED if n not in fields]
    if missing:
        raise ValueError(f"flows: {files[0]} lacks the fields {', '.join(missing)}")
    raw = dd.read_csv(files, sep="\x01", header=None, names=["line"], dtype=str, quoting=3,
                      na_filter=False, blocksize=blocksize, include_path_column="path",
                      compression="infer" if not files[0].endswith(".gz") else "gzip")
    meta = parse_lines(raw._meta.assign(path=raw._meta["path"].astype(str)), fields)
    return raw.map_partitions(parse_lines, fields, meta=meta)


def bad_records(bad_frame, total=None):
    """Manifest entries for bad lines: up to MAX_LISTED listed, the rest (of ``total``) counted."""
    total = len(bad_frame) if total is None else total
    rows = [{"record": f"{r.path}: {r.raw[:80]}", "error": r.error}
            for r in bad_frame.head(MAX_LISTED).itertuples()]
    if total > MAX_LISTED:
        rows.append({"record": "(further lines)", "error": "not listed", "count": total - MAX_LISTED})
    return rows


def time_splits(windows, fractions):
    """Cut the sorted distinct windows into train/val/test by time."""
    n = len(windows)
    a = int(round(fractions[0] * n))
    b = a + int(round(fractions[1] * n))
    return {"train": windows[:a], "val": windows[a:b], "test": windows[b:]}


def sequence_shard(table, windows, seq_len):
    """Sequences of ``seq_len`` windows -> next window, per key in ``table`` (one split)."""
    xs, ys = [], []
    index = np.asarray(windows)
    for _key, rows in table.groupby("key", sort=True):
        dense = rows.set_index("window")[list(FEATURES)].reindex(index, fill_value=0).to_numpy(np.float64)
        dense = np.log1p(np.maximum(dense, 0)).astype(np.float32)
        for i in range(len(index) - seq_len):
            xs.append(dense[i:i + seq_len])
            ys.append(dense[i + seq_len])
    x = np.stack(xs) if xs else np.zeros((0, seq_len, len(FEATURES)), np.float32)
    y = np.stack(ys) if ys else np.zeros((0, len(FEATURES)), np.float32)
    return {"x": x, "y": y}, {"sequences": len(xs)}, []


@register_pipeline("flows")
def plan(input, output, params):
    """Flows: Zeek conn.log -> features per window per host/service -> forecasting sequences."""
    p = resolve("flows", params, DEFAULTS)
    if p["by"] not in ("host", "service"):
        raise ValueError("flows: by must be host or service")
    files = log_files(input)
    conns = read_connections(files, p["blocksize"])
    features, bad, n_bad = features_and_bad(conns, p["window"], p["by"])
    table = features.reset_index().sort_values(["key", "window"]).reset_index(drop=True)
    # windows as a continuous range: a quiet window is a zero row, not a gap
    if len(table):
        lo, hi = int(table["window"].min()), int(table["window"].max())
        windows = list(range(lo, hi + p["window"], p["window"]))
    else:
        windows = []
    by_time = time_splits(windows, p["split"])
    keys = sorted(table["key"].unique())
    shards = []
    for split in SPLITS:
        span = by_time[split]
        if len(span) <= p["seq_len"]:
            continue
        part = table[table["window"].between(span[0], span[-1])]
        for i, group in enumerate(chunked(keys, p["hosts_per_shard"])):
            sub = part[part["key"].isin(group)].reset_index(drop=True)
            shards.append(Shard(split, i, sequence_shard,
                                {"table": sub, "windows": span, "seq_len": p["seq_len"]},
                                cost=len(group) * len(span)))
    summary = {"files": [os.path.basename(f) for f in files], "keys": len(keys), "windows": len(windows),
               "features": list(FEATURES), "connections": int(table["conns"].sum()) if len(table) else 0}
    return Plan("flows", os.path.abspath(input), p, shards, summary, chunk=256, bad=bad_records(bad, n_bad))
