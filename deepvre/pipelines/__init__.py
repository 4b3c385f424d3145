"""Dask preprocessing pipelines: images, rasters, flows, lattice.

    from deepvre.pipelines import preprocess
    result = preprocess("images", "data/cells", "out/cells", {"size": 64}, cluster="local")

    from deepvre.pipelines.dataset import open_split
    x, y = open_split("out/cells", "train")

One registry (``registry``), one cluster factory (``clusters``), one runner (``run``),
one output format (``manifest``: Zarr shards + manifest.json), one reader (``dataset``).
"""

from .registry import get_pipeline, pipeline_names, register_pipeline, register_step  # noqa: F401
from .run import preprocess  # noqa: F401
