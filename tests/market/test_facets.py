"""The catalog's facets: the values a search can be filtered by, counted over what the caller may
see (a private model's tags and owner never show to others)."""

from deepvre.market.catalog import Caller


def test_facets_count_only_what_the_caller_sees(publish, catalog):
    publish("alice", tags=["colours", "test"], tasks=["Computer Vision"])
    publish("alice", name="alice-secret", visibility="private", tags=["secret-project"])
    publish("alice", name="alice-lab", visibility="group", groups=["lab"], tags=["colours", "lab-only"])
    publish("dave", name="old-model", tags=["colours"])
    catalog.deprecate(Caller("dave"), "old-model")

    bob = catalog.facets(Caller("bob"))
    assert bob["tags"] == {"colours": 1, "test": 1}
    assert bob["owner"] == {"alice": 1} and bob["visibility"] == {"public": 1}
    assert bob["tasks"] == {"Computer Vision": 1} and bob["use_case"] == {"base": 1}

    carol = catalog.facets(Caller("carol", ("lab",)))  # in the group: its model counts
    assert carol["tags"] == {"colours": 2, "lab-only": 1, "test": 1}  # most frequent first
    assert list(carol["tags"]) == ["colours", "lab-only", "test"]

    alice = catalog.facets(Caller("alice"))  # her own private model too
    assert alice["tags"]["secret-project"] == 1 and alice["visibility"] == {"public": 1, "private": 1, "group": 1}
    # every facet a search filters by is there, empty or not
    assert set(bob) == {"use_case", "tasks", "libraries", "categories", "tags", "owner", "visibility"}
