import pytest

pytestmark = pytest.mark.integration


def test_catalog_is_in_rucio_with_events(rucio_catalog, gateway):
    files = sorted(gateway.list_files(rucio_catalog.das["dy"]), key=lambda f: f["name"])
    assert [f["name"] for f in files] == [f.lfn for f in rucio_catalog.containers["dy"]]
    assert [f["events"] for f in files] == [40, 40, None]
    reps = gateway.list_replicas([rucio_catalog.das["dy"]])
    assert sorted(reps[rucio_catalog.containers["dy"][0].lfn]["rses"]) == ["T1_DE_KIT", "T2_CH_CERN"]
