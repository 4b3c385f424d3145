"""One builder of catalog documents: the base model's and a trained model's come from the same function."""

import datetime

from deepvre.market import metadata
from deepvre.science import base_models
from deepvre.training import documents, lineage

DAY = datetime.date(2026, 11, 1)


def test_base_model_document_is_valid_and_pinned():
    doc = base_models.mobilenet_document({"chelsea_top1": "Egyptian cat", "chelsea_top1_probability": 0.9}, today=DAY)
    assert metadata.errors(doc) == []
    assert doc["title"] == "MobileNetV2 (ImageNet-1k)" and doc["dates"] == {"created": "2026-11-01", "updated": "2026-11-01"}
    assert doc["categories"] == ["AI4 pre trained", "AI4 inference", "AI4 trainable"]
    assert doc["tags"] == ["base", "base-model", "imagenet", "mobilenet", "transfer-learning"]
    section = doc["deepvre"]
    assert (section["name"], section["version"], section["use_case"]) == ("mobilenet-v2-imagenet", "1.0.0", "base")
    assert section["base_model"] is None and section["visibility"] == "public"
    assert section["input"]["shape"] == [224, 224, 3] and section["input"]["preprocessing"]["scale"] == 1.0
    assert len(section["input"]["labels"]) == 1000 and section["output"] == {"kind": "probabilities", "shape": [1000]}
    assert section["metrics"] == {"chelsea_top1": "Egyptian cat", "chelsea_top1_probability": 0.9}


def test_trained_and_base_documents_have_the_same_frame():
    assert lineage.model_document is documents.model_document
    trained = documents.model_document("cells-tiny", "1.0.0", "biology", "Cells", "Tiny.", [16, 16, 3],
                                       "probabilities", ["a", "b"], base=("mobilenet-v2-imagenet", "1.0.0"),
                                       metrics={"transfer": {"accuracy": 0.5}}, today=DAY)
    base = base_models.mobilenet_document({}, today=DAY)
    assert metadata.errors(trained) == []
    assert set(trained) == set(base)
    for key in ("metadata_version", "links", "dates", "libraries", "tasks"):
        assert trained[key] == base[key], key
    assert trained["deepvre"]["base_model"] == {"name": "mobilenet-v2-imagenet", "version": "1.0.0"}
    assert trained["deepvre"]["metrics"] == {"transfer.accuracy": 0.5}
