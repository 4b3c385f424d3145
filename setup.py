"""deepvre's three packages, one per floor, each found under its own root: the core ``deepvre``
at the top, the Jupyter side ``deepvre_jupyter`` in ``extensions/``, ``deepvre_hub`` in ``hub/``.

Everything else is declared in setup.cfg. The packages are found here because setup.cfg's ``find:``
searches a single folder (``[options.packages.find] where``), and these are three.
"""

from setuptools import find_packages, setup

ROOTS = {"deepvre": ".", "deepvre_jupyter": "extensions", "deepvre_hub": "hub"}

setup(
    package_dir={name: name if root == "." else f"{root}/{name}" for name, root in ROOTS.items()},
    packages=[found for name, root in ROOTS.items() for found in find_packages(root, include=[name, f"{name}.*"])],
)
