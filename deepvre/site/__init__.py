"""The ground floor: the site's settings (one loader, JSON Schemas holding every default), the
``DEEPVRE_*`` environment variables (``environment``: each declared once, with who sets and reads
it), hardware profiles, and each backend's terms (``slurm_terms``, ``kubernetes_terms``).

It imports nothing from the rest of deepvre nor from the hub: the core (market, pipelines,
runs, science, training, serving) builds on it, and the hub and the Jupyter side on the core
(``tests/test_imports.py`` checks the direction).
"""
