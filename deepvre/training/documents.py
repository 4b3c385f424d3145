"""The catalog document of a model: AI4OS v2 metadata with the ``deepvre`` section (one pure builder).

Used by the publishers of base models (``deepvre.science.base_models``) and of trained models
(``deepvre.training.lineage``); the marketplace checks the result (``deepvre.market.metadata``)::

    doc = model_document("cells-mobilenet", "1.0.0", "biology", "Cells", "Nuclei vs background.",
                         [96, 96, 3], "probabilities", labels=["background", "nucleus"],
                         base=("mobilenet-v2-imagenet", "1.0.0"), metrics={"accuracy": 0.97})
"""

import datetime
import os

METADATA_VERSION = "2.3.0"
SOURCE = "https://github.com/deepvre/deepvre"
CATEGORIES = ("AI4 trainable", "AI4 inference")


def model_document(name, version, use_case, title, summary, input_shape, output_kind, labels=None,
                   base=None, parameters=None, metrics=None, data=None, notebook=None,
                   visibility="private", tags=(), description="", categories=CATEGORIES,
                   input_extra=None, today=None):
    """The AI4OS v2 + deepvre metadata document of a model (a pure function).

    ``base``: ``(name, version)`` of the base model or None; ``metrics``: flattened to scalars;
    ``input_extra``: more keys of ``deepvre.input`` (e.g. ``preprocessing``); ``today``: a date
    for ``dates`` (default today). Tags are sorted, with the use case and ``transfer-learning``.
    """
    from .report import flatten, report_keys, to_python

    today = (today or datetime.date.today()).isoformat()
    section = {
        "name": name,
        "version": version,
        "use_case": use_case,
        "input": {"shape": list(input_shape), "dtype": "float32", "kind": "image", **(input_extra or {})},
        "output": {"kind": output_kind},
        "base_model": {"name": base[0], "version": base[1]} if base else None,
        # numbers and words; the comparison blocks stay in the run's metrics.json
        "metrics": {k: v for k, v in flatten(to_python({k: v for k, v in (metrics or {}).items() if k not in report_keys(metrics or {})})).items()
                    if v is None or isinstance(v, (int, float, str)) and not isinstance(v, bool)},
        "visibility": visibility,
    }
    if labels is not None:
        section["input"]["labels"] = list(labels)
        section["output"]["shape"] = [len(labels)]
    training = {}
    if notebook:
        training["notebook"] = os.path.basename(notebook)
    if parameters is not None:
        training["parameters"] = to_python(parameters)
    if training:
        section["training"] = training
    if data:
        section["data"] = dict(data)
    return {
        "metadata_version": METADATA_VERSION,
        "title": title,
        "summary": summary,
        "description": description or summary,
        "links": {"source_code": SOURCE},
        "dates": {"created": today, "updated": today},
        "libraries": ["Keras", "TensorFlow"],
        "tasks": ["Computer Vision", "Classification" if output_kind == "probabilities" else "Regression"],
        "categories": list(categories),
        "tags": sorted({use_case, "transfer-learning", *tags}),
        "deepvre": section,
    }
