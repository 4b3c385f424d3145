"""Lattice file formats and observables, against hand-computed values."""

import numpy as np
import pytest

from deepvre.pipelines import lattice_io
from deepvre.pipelines.dataset import open_split
from deepvre.pipelines.run import preprocess
from deepvre.science import lattice_observables


def charge_config(L, Q):
    """A 2D U(1) configuration whose every plaquette angle is 2 pi Q / L^2 (charge Q)."""
    theta = np.zeros((2, L, L))
    x = np.arange(L)[:, None]
    theta[1] = 2 * np.pi * Q * x / L**2 + np.zeros((1, L))
    theta[0, L - 1, :] = -2 * np.pi * Q * np.arange(L) / L
    return theta


def random_su2(shape, rng):
    a = rng.normal(size=shape + (4,))
    a /= np.linalg.norm(a, axis=-1, keepdims=True)
    u = np.empty(shape + (2, 2), complex)
    u[..., 0, 0] = a[..., 0] + 1j * a[..., 3]
    u[..., 0, 1] = a[..., 2] + 1j * a[..., 1]
    u[..., 1, 0] = -a[..., 2] + 1j * a[..., 1]
    u[..., 1, 1] = a[..., 0] - 1j * a[..., 3]
    return u


def test_cold_u1_configuration():
    cold = np.zeros((2, 6, 6))
    assert lattice_observables.plaquette(cold) == pytest.approx(1.0)
    assert lattice_observables.polyakov(cold) == pytest.approx(1.0)
    assert lattice_observables.topological_charge(cold) == pytest.approx(0.0)


@pytest.mark.parametrize("Q", [1, -2])
def test_charge_configuration(Q):
    L = 8
    theta = charge_config(L, Q)
    assert lattice_observables.topological_charge(theta) == pytest.approx(Q)
    assert lattice_observables.plaquette(theta) == pytest.approx(np.cos(2 * np.pi * Q / L**2))


def test_polyakov_loop_by_hand():
    L = 4
    theta = np.zeros((2, L, L))
    theta[1] = np.array([0.0, np.pi / 2, 0.0, np.pi / 2])[:, None] / L  # x-dependent time links
    # loops: exp(i*0), exp(i*pi/2), 1, i -> mean (1 + i)/2, modulus sqrt(2)/2
    assert lattice_observables.polyakov(theta) == pytest.approx(np.sqrt(2) / 2)


def test_gauge_transform_leaves_observables():
    rng = np.random.default_rng(1)
    theta = rng.uniform(-np.pi, np.pi, (2, 6, 6))
    alpha = rng.uniform(-np.pi, np.pi, (6, 6))
    moved = np.stack([theta[mu] + alpha - np.roll(alpha, -1, axis=mu) for mu in range(2)])
    for f in (lattice_observables.plaquette, lattice_observables.polyakov, lattice_observables.topological_charge):
        assert f(moved) == pytest.approx(f(theta))


def test_su2_cold_and_gauge_invariance():
    rng = np.random.default_rng(2)
    cold = np.broadcast_to(np.eye(2, dtype=complex), (2, 4, 4, 2, 2)).copy()
    assert lattice_observables.plaquette(cold) == pytest.approx(1.0)
    assert lattice_observables.polyakov(cold) == pytest.approx(1.0)
    u = random_su2((2, 4, 4), rng)
    g = random_su2((4, 4), rng)
    moved = np.stack([g @ u[mu] @ np.conj(np.swapaxes(np.roll(g, -1, axis=mu), -1, -2)) for mu in range(2)])
    assert lattice_observables.plaquette(moved) == pytest.approx(lattice_observables.plaquette(u))
    assert np.isnan(lattice_observables.topological_charge(u))


@pytest.mark.parametrize("fmt", ["deepvre", "ildg"])
def test_round_trip_u1(tmp_path, fmt):
    theta = np.random.default_rng(3).uniform(-np.pi, np.pi, (2, 4, 6))
    path = tmp_path / f"c.{'dvgauge' if fmt == 'deepvre' else 'lime'}"
    lattice_io.write_config(path, theta, {"beta": 2.0}, format=fmt)
    links, header = lattice_io.read_config(path)
    assert links.shape == (2, 4, 6)
    assert np.allclose(np.exp(1j * links), np.exp(1j * theta))
    assert header["metadata"]["beta"] == 2.0


def test_ildg_su3_layout(tmp_path):
    rng = np.random.default_rng(4)
    dims = (2, 3, 4, 5)
    links = rng.normal(size=(4,) + dims + (3, 3)) + 1j * rng.normal(size=(4,) + dims + (3, 3))
    path = tmp_path / "su3.lime"
    lattice_io.write_ildg(path, links)
    back, header = lattice_io.read_ildg(path)
    assert header["group"] == "SU3" and header["dims"] == list(dims)
    assert np.array_equal(back, links)
    records = dict(lattice_io.read_lime(path))
    assert "<field>su3gauge</field>" in records["ildg-format"].decode()
    assert "<lx>2</lx><ly>3</ly><lz>4</lz><lt>5</lt>" in records["ildg-format"].decode()
    raw = np.frombuffer(records["ildg-binary-data"], ">c16")
    # file order: t slowest, x fastest, then mu, then the matrix row-major
    assert raw[0] == links[0, 0, 0, 0, 0, 0, 0]
    assert raw[1] == links[0, 0, 0, 0, 0, 0, 1]
    assert raw[9] == links[1, 0, 0, 0, 0, 0, 0]
    assert raw[36] == links[0, 1, 0, 0, 0, 0, 0]


def test_damaged_files_are_refused(tmp_path):
    path = tmp_path / "c.dvgauge"
    lattice_io.write_deepvre(path, np.zeros((2, 4, 4)))
    data = path.read_bytes()
    path.write_bytes(data[:-8])
    with pytest.raises(lattice_io.GaugeFormatError, match="checksum"):
        lattice_io.read_config(path)
    lime = tmp_path / "c.lime"
    lattice_io.write_ildg(lime, np.zeros((2, 4, 4)))
    lime.write_bytes(lime.read_bytes()[:-64])
    with pytest.raises(lattice_io.GaugeFormatError):
        lattice_io.read_config(lime)


def test_lattice_pipeline(tmp_path, dask_client):
    src = tmp_path / "configs"
    src.mkdir()
    L = 8
    for i, Q in enumerate([0, 1, -1, 2] * 3):
        fmt = "ildg" if i % 2 else "deepvre"
        lattice_io.write_config(src / f"c{i:02d}.{'lime' if i % 2 else 'dvgauge'}", charge_config(L, Q),
                                {"beta": 1.0 + i % 2}, format=fmt)
    (src / "broken.dvgauge").write_bytes(b"DVGAUGE\0\x05\0\0\0{bad}")
    result = preprocess("lattice", str(src), str(tmp_path / "out"), {"split": "0.5,0.25,0.25"},
                        client=dask_client, progress=False)
    m = result.manifest
    assert sum(s["n"] for s in m["splits"].values()) == 12
    assert m["bad_records"]["count"] == 1 and m["bad_records"]["records"][0]["record"] == "broken.dvgauge"
    x, y, obs = open_split(str(tmp_path / "out"), "train", arrays=("x", "y", "observables"))
    assert x.shape[1:] == (L, L, 4)
    assert set(np.round(y).astype(int)) <= {0, 1, -1, 2}
    assert np.allclose(y, obs[:, 2])
