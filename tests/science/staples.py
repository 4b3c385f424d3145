"""The exact check of a lattice gauge module's staples, shared by the U(1) and SU(2) tests.

Changing one link changes the Wilson action by exactly what the staple sum at that link
predicts: no statistics, so any error in ``staple_sum`` (a wrong plaquette orientation, a missing
neighbour, a wrong sign) shows at once.
"""

import numpy as np
import pytest

SITES = [(0, 0), (3, 5), (7, 7), (0, 7)]  # inside and on the edges of the periodic 8^2 lattice
BETA = 1.3


def check_local_action_change(group, mu, new_link, local_change):
    """On a hot 8^2 lattice of ``group`` (a module with ``hot_start``, ``staple_sum`` and ``action``),
    at each of ``SITES``: replace link ``mu`` by ``new_link(old, rng)`` and assert that the action
    changes by ``local_change(new, old, staple, BETA)``, the link's own terms alone."""
    rng = np.random.default_rng(3)
    field = group.hot_start(8, rng)
    staples = group.staple_sum(field, mu)
    for x, t in SITES:
        new = field.copy()
        new[mu, x, t] = new_link(field[mu, x, t], rng)
        d_s = group.action(new, BETA) - group.action(field, BETA)
        local = local_change(new[mu, x, t], field[mu, x, t], staples[x, t], BETA)
        assert d_s == pytest.approx(local, abs=1e-10), f"link {mu} at {(x, t)}"
