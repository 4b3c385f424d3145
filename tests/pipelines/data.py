"""Small inputs in the real formats, written by the tests themselves."""

import os

import numpy as np

ZEEK_FIELDS = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service", "duration", "orig_bytes", "resp_bytes", "conn_state", "local_orig", "local_resp", "missed_bytes", "history", "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes", "tunnel_parents"]
ZEEK_TYPES = ["time", "string", "addr", "port", "addr", "port", "enum", "string", "interval", "count", "count", "string", "bool", "bool", "count", "string", "count", "count", "count", "count", "set[string]"]


def class_folders(root, n_per_class=12, classes=("healthy", "sick"), size=(40, 52), corrupt=1, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in classes:
        os.makedirs(os.path.join(root, c), exist_ok=True)
        for i in range(n_per_class):
            img = rng.integers(0, 255, size + (3,), dtype=np.uint8)
            Image.fromarray(img).save(os.path.join(root, c, f"{i:03d}.png" if i % 2 else f"{i:03d}.jpg"))
    for i in range(corrupt):
        with open(os.path.join(root, classes[0], f"corrupt{i}.png"), "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n" + b"truncated")
    return root


def masks_layout(root, n=4, seed=0):
    """images/ + masks/: each mask a label image with 3 square objects (1, 2, 3)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "images"))
    os.makedirs(os.path.join(root, "masks"))
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (80, 80, 3), dtype=np.uint8)).save(f"{root}/images/cell{i}.png")
        mask = np.zeros((80, 80), np.uint8)
        for k, (r, c) in enumerate([(5, 5), (30, 40), (60, 10)], start=1):
            mask[r:r + 12, c:c + 12] = k
        Image.fromarray(mask).save(f"{root}/masks/cell{i}.png")
    return root


def boxes_layout(root, n=4, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    rows = ["image_path,xmin,ymin,xmax,ymax,label"]
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (100, 120, 3), dtype=np.uint8)).save(f"{root}/tile{i}.png")
        rows += [f"tile{i}.png,10,10,40,30,Tree", f"tile{i}.png,60,50,90,95,Snag", f"tile{i}.png,5,60,30,90,Tree"]
    rows.append("tile0.png,50,50,40,60,Tree")  # an empty box: a bad record
    with open(f"{root}/annotations.csv", "w") as f:
        f.write("\n".join(rows) + "\n")
    return root


def conn_log(path, n=2000, hosts=4, start=1_700_000_000.0, bad_lines=2, seed=0):
    """A Zeek conn.log as Zeek writes it (header, TSV rows, #close)."""
    rng = np.random.default_rng(seed)
    states = ["SF", "S0", "REJ", "RSTO", "SH"]
    out = ["#separator \\x09", "#set_separator\t,", "#empty_field\t(empty)", "#unset_field\t-", "#path\tconn",
           "#open\t2026-11-20-10-00-00", "#fields\t" + "\t".join(ZEEK_FIELDS), "#types\t" + "\t".join(ZEEK_TYPES)]
    ts = start
    for k in range(n):
        ts += float(rng.exponential(1.0))
        state = states[int(rng.integers(0, len(states)))]
        dur = "-" if state == "S0" else f"{rng.exponential(2):.6f}"
        ob = "-" if state == "S0" else str(int(rng.integers(0, 5000)))
        out.append("\t".join([
            f"{ts:.6f}", f"C{k:08x}", f"10.0.0.{k % hosts + 1}", str(int(rng.integers(1024, 65535))),
            f"192.168.1.{int(rng.integers(1, 20))}", str(int(rng.choice([22, 53, 80, 443, 8080]))), "tcp", "-",
            dur, ob, ob, state, "T", "F", "0", "ShADadFf", "5", "400", "4", "300", "-"]))
        if bad_lines and k in (n // 3, 2 * n // 3):
            out.append("this\tline\tis\tbroken")
    out.append("#close\t2026-11-20-11-00-00")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    return path


def geotiff_scene(path, labels_path, size=(192, 256), seed=0):
    """A 3-band uint16 GeoTIFF (tiled) and a co-registered half-resolution label raster."""
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(seed)
    h, w = size
    data = rng.integers(0, 10000, (3, h, w), dtype=np.uint16)
    profile = dict(driver="GTiff", height=h, width=w, count=3, dtype="uint16", crs="EPSG:32633",
                   transform=from_origin(500000, 5000000, 10, 10), tiled=True, blockxsize=64, blockysize=64)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    lights = np.zeros((h // 2, w // 2), np.float32)
    lights[: h // 4, : w // 4] = 50.0  # a "city" in the top-left quarter
    with rasterio.open(labels_path, "w", driver="GTiff", height=h // 2, width=w // 2, count=1, dtype="float32",
                       crs="EPSG:32633", transform=from_origin(500000, 5000000, 20, 20)) as dst:
        dst.write(lights[None])
    return path, labels_path


def tree_sha(root):
    from deepvre.pipelines.manifest import tree_sha256

    return tree_sha256(root)
