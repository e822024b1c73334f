"""build-datasets against the real Rucio server and XRootD sites (see conftest.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import uproot

from pc_core.fileset import load_fileset_json
from pc_datasets.build import BuildOptions, build_datasets
from pc_datasets.definition import parse_definition
from pc_datasets.errors import RucioLookupError, SiteSelectionError
from pc_datasets.site_map import SiteMap, SiteRule
from pc_datasets.sites import SiteSelection

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent / "build-datasets"
CERN, KIT = "T2_CH_CERN", "T1_DE_KIT"


def definition(cat, *shorts: str) -> dict:
    out = {}
    for short in shorts:
        if short == "data":
            meta = {"year": "2022", "isMC": False, "era": "C"}
        else:
            meta = {"year": "2022", "isMC": True, "xsec": 1.5, "part": "nlo"} if short == "dy" else \
                   {"year": "2018" if short == "tt" else "2022", "isMC": True, "xsec": 88.3}
        out[short.upper()] = {"sample": short.upper(), "json_output": f"datasets/{short}.json",
                              "files": [{"das_names": [cat.das[short]], "metadata": meta}]}
    return out


def build(cat, gateway, *shorts, **options):
    return build_datasets(parse_definition(definition(cat, *shorts), "def.json"), gateway,
                          BuildOptions(show_progress=False, **options))


def test_default_choice_sizes_and_event_counts(rucio_catalog, gateway):
    cat = rucio_catalog
    [dy] = build(cat, gateway, "dy")
    files = cat.containers["dy"]
    assert dy.name == "DY_nlo_2022"
    # priority mode without a priority list: first acceptable site alphabetically (T1_DE_KIT < T2_CH_CERN)
    assert dy.files == [files[0].pfn(KIT, cat.ports), files[1].pfn(KIT, cat.ports), files[2].pfn(CERN, cat.ports)]
    meta = dy.metadata()
    # f2 has no event count in Rucio: it was read with uproot over XRootD
    assert meta["file_nevents"] == [f.events for f in files] == [40, 40, 200]
    assert meta["nevents"] == 280 and meta["size"] == sum(f.local.stat().st_size for f in files)
    assert meta["das_names"] == [cat.das["dy"]] and meta["xsec"] == 1.5
    # the PFNs are real: uproot reads the same entries as the local copies
    for url, f in zip(dy.files, files):
        with uproot.open(url, timeout=20) as remote, uproot.open(f.local) as local:
            assert remote["Events/run"].array(library="np").tolist() == local["Events/run"].array(library="np").tolist()


def test_site_options(rucio_catalog, gateway):
    cat = rucio_catalog
    files = cat.containers["dy"]
    [dy] = build(cat, gateway, "dy", selection=SiteSelection(prioritylist=(CERN,)))
    assert dy.files == [f.pfn(CERN, cat.ports) for f in files] and dy.sites == [CERN] * 3
    [dy] = build(cat, gateway, "dy", selection=SiteSelection(sort="tier"))
    assert dy.sites == [KIT, KIT, CERN]
    [dy] = build(cat, gateway, "dy", selection=SiteSelection(regex="_CH_"))
    assert dy.sites == [CERN] * 3
    [dy] = build(cat, gateway, "dy", selection=SiteSelection(sort="random", seed=3))
    assert set(dy.sites[:2]) <= {CERN, KIT} and dy.sites[2] == CERN
    [tt] = build(cat, gateway, "tt", selection=SiteSelection(allowlist=(KIT,)))
    assert tt.files == [cat.containers["tt"][0].pfn(KIT, cat.ports)] and tt.metadata()["year"] == "2018"

    # a file with no acceptable replica: an error naming the sites that hold the dataset...
    with pytest.raises(SiteSelectionError, match=r"DY_nlo_2022 .*1 of 3 files have no replica.*Sites holding its files: T1_DE_KIT, T2_CH_CERN"):
        build(cat, gateway, "dy", selection=SiteSelection(blocklist=(CERN,)))
    with pytest.raises(SiteSelectionError, match=r"TT_2018 .*Sites holding its files: T1_DE_KIT"):
        build(cat, gateway, "tt", selection=SiteSelection(allowlist=(CERN,)))
    # ... or, with include_redirector, the global redirector for that file only
    [dy] = build(cat, gateway, "dy", selection=SiteSelection(blocklist=(CERN,)), include_redirector=True)
    assert dy.files == [files[0].pfn(KIT, cat.ports), files[1].pfn(KIT, cat.ports),
                        "root://xrootd-cms.infn.it/" + files[2].lfn]
    assert dy.metadata()["file_nevents"] == [40, 40, 200]


def test_site_map_overrides_rucio_pfn(rucio_catalog, gateway):
    cat = rucio_catalog
    smap = SiteMap({CERN: SiteRule(prefix="root://localhost:1094//")}, "test")
    [data] = build(cat, gateway, "data", site_map=smap)
    assert data.name == "DATA_2022_EraC"
    assert data.files == ["root://localhost:1094/" + cat.containers["data"][0].lfn]
    with uproot.open(data.files[0], timeout=20) as handle:
        assert handle["Events"].num_entries == 40


def test_unknown_sites_and_das_names(rucio_catalog, gateway):
    cat = rucio_catalog
    with pytest.raises(SiteSelectionError, match=r"--allowlist-sites: unknown site\(s\) T2_XX_NOWHERE; sites known to Rucio .*T1_DE_KIT"):
        build(cat, gateway, "dy", selection=SiteSelection(allowlist=("T2_XX_NOWHERE",)))
    bad = parse_definition({"X": {"sample": "X", "json_output": "x.json", "files": [
        {"das_names": [f"/NoSuch_{cat.tag}/X/NANOAODSIM"], "metadata": {"year": "2022", "isMC": True, "xsec": 1}}]}}, "d")
    with pytest.raises(RucioLookupError, match=rf"does not know the DID cms:/NoSuch_{cat.tag}/X/NANOAODSIM"):
        build_datasets(bad, gateway, BuildOptions(show_progress=False))


def _cli(args, rucio_config, cwd):
    env = dict(os.environ, RUCIO_CONFIG=rucio_config)
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_cli_end_to_end(rucio_catalog, rucio_config, tmp_path):
    cat = rucio_catalog
    defn = tmp_path / "def" / "datasets_definition.json"
    defn.parent.mkdir()
    defn.write_text(json.dumps(definition(cat, "dy", "tt", "data")))
    out = tmp_path / "out"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    res = _cli(["-cfg", str(defn), "-o", str(out), "--keys", "DY,TT", "-ps", CERN, "--split-by-year",
                "-lp", "/eos/cms", "--parallelism", "2"], rucio_config, cwd)
    assert res.returncode == 0, res.stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.json")) == [
        "datasets/dy_2022.json", "datasets/dy_2022_local.json", "datasets/dy_2022_redirector.json",
        "datasets/tt_2018.json", "datasets/tt_2018_local.json", "datasets/tt_2018_redirector.json"]
    assert list(cwd.iterdir()) == []
    dy = load_fileset_json(out / "datasets/dy_2022.json")["DY_nlo_2022"]
    assert dy["files"] == [f.pfn(CERN, cat.ports) for f in cat.containers["dy"]]
    assert dy["metadata"]["nevents"] == 280 and dy["metadata"]["file_nevents"] == [40, 40, 200]
    tt = load_fileset_json(out / "datasets/tt_2018.json")["TT_2018"]
    assert tt["files"] == [cat.containers["tt"][0].pfn(KIT, cat.ports)]  # only KIT holds it
    assert load_fileset_json(out / "datasets/dy_2022_local.json")["DY_nlo_2022"]["files"][0] == \
        "/eos/cms" + cat.containers["dy"][0].lfn
    assert load_fileset_json(out / "datasets/dy_2022_redirector.json")["DY_nlo_2022"]["files"][2] == \
        "root://xrootd-cms.infn.it/" + cat.containers["dy"][2].lfn

    # default output folder: beside the definition; extending, duplicate and --overwrite
    res = _cli(["-cfg", str(defn), "--keys", "DATA"], rucio_config, cwd)
    assert res.returncode == 0, res.stderr
    assert sorted(load_fileset_json(defn.parent / "datasets/data.json")) == ["DATA_2022_EraC"]
    res = _cli(["-cfg", str(defn), "--keys", "DATA"], rucio_config, cwd)
    assert res.returncode == 1 and "already has dataset(s) DATA_2022_EraC" in res.stderr
    res = _cli(["-cfg", str(defn), "--keys", "DATA", "--overwrite", "-bs", KIT], rucio_config, cwd)
    assert res.returncode == 0, res.stderr
    assert list(cwd.iterdir()) == []

    # bad site name and an unknown DAS name: one clear line, exit 1
    res = _cli(["-cfg", str(defn), "--keys", "TT", "-as", "T2_XX_NOWHERE", "-o", str(tmp_path / "o2")], rucio_config, cwd)
    assert res.returncode == 1 and "unknown site(s) T2_XX_NOWHERE" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "o2").exists()
