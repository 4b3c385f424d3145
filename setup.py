"""deepvre's two packages, found under their two roots: ``deepvre`` in ``extensions/``, ``deepvre_hub`` in ``hub/``.

Everything else is declared in setup.cfg. The packages are found here because setup.cfg's ``find:``
searches a single folder (``[options.packages.find] where``), and these are two.
"""

from setuptools import find_packages, setup

ROOTS = {"deepvre": "extensions", "deepvre_hub": "hub"}

setup(
    package_dir={name: f"{root}/{name}" for name, root in ROOTS.items()},
    packages=[found for name, root in ROOTS.items() for found in find_packages(root, include=[name, f"{name}.*"])],
)
