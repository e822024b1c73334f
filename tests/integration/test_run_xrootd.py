"""``pocket-coffea run`` over XRootD: a fileset built from the local Rucio, read from the XRootD sites.

The real NanoAOD files of the pc-run test analysis are uploaded to the sites and registered
in Rucio (names unique to this module); ``build-datasets`` turns a definition into a fileset
of ``root://`` URLs and the run over it must equal the same run over the local files. Then
a site dies (the throw-away ``T3_XX_FLAKY``): the run fails naming the URL as a dead server,
``--skip-bad-files`` skips and reports the files, and the replica tools move the fileset to
the live sites, where the run is complete again. A URL that does not exist on a live server
is a ``missing-file``.

Every run over XRootD is a fresh ``pocket-coffea run`` process, because the XRootD client
reads its timeouts (``XRD_CONNECTIONRETRY``, ``XRD_REQUESTTIMEOUT``) once, at start-up.
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
import uproot

from analysis_testlib import make_analysis
from outputs_compare import assert_outputs_equal
from pc_core.urls import normalise_url
from pc_core.fileset import load_fileset_json
from pc_core.output import load_output
from pc_core.read_errors import DEAD_SERVER, MISSING_FILE

pytestmark = pytest.mark.integration

TESTS = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CERN, KIT = "T2_CH_CERN", "T1_DE_KIT"
# fail fast on a dead server: one connection attempt, short request timeout
XRD_FAST = {"XRD_CONNECTIONRETRY": "1", "XRD_CONNECTIONWINDOW": "2", "XRD_REQUESTTIMEOUT": "5"}




@dataclass
class Sample:
    """One key of the dataset definition: the local files and the sites holding replicas."""

    key: str
    files: tuple[str, ...]
    sites: tuple[str, ...]
    metadata: dict


def _samples(flaky: str) -> list[Sample]:
    # the pc-run test analysis (tests/pc_run/configs) with its samples, years and cross-sections
    return [
        Sample("DYJetsToLL", ("nano_dy.root", "nano_dy_empty.root"), (CERN, flaky),
               {"year": "2018", "isMC": True, "xsec": 6077.22}),
        Sample("DATA_DoubleMuon", ("nano_dimuon.root",), (KIT,),  # never on the flaky site
               {"year": "2018", "isMC": False, "era": "A"}),
        Sample("TTTo2L2Nu", ("nano_tt_v12.root",), (KIT, flaky),
               {"year": "2022_postEE", "isMC": True, "xsec": 87.3}),
    ]


@dataclass
class RunCatalog:
    tag: str
    ports: dict[str, int]
    definition: dict
    local: dict[str, Path]  # LFN -> local file
    events: dict[str, int]  # local file name -> entries
    flaky: str


def _xrdcp(local: Path, url: str) -> None:
    subprocess.run(["xrdcp", "-f", "-s", "--path", str(local), url], check=True, timeout=60,
                   env=dict(os.environ, XRD_CONNECTIONRETRY="1", XRD_REQUESTTIMEOUT="20"))


@pytest.fixture(scope="module")
def run_catalog(rucio_settings, xrootd_sites, flaky_site, nanoaod_dir) -> RunCatalog:
    """Upload the analysis' files to their sites and register one container per sample in Rucio."""
    from pc_datasets.registration import FileSpec, ensure_rse, ensure_scope, register_container
    from pc_datasets.rucio_gateway import default_client_factory

    client = default_client_factory(rucio_settings)
    flaky = flaky_site[0]
    ports = {**xrootd_sites, flaky: flaky_site[1]}
    for site, port in ports.items():
        ensure_rse(client, site, "127.0.0.1", port)
    ensure_scope(client, "cms")
    tag = uuid.uuid4().hex[:8]
    definition: dict = {}
    local: dict[str, Path] = {}
    events: dict[str, int] = {}
    for sample in _samples(flaky):
        kind = "mc" if sample.metadata["isMC"] else "data"
        container = f"/{sample.key}_{tag}/RunIISummer20UL18-v1/NANOAOD{'SIM' if kind == 'mc' else ''}"
        specs = []
        for i, name in enumerate(sample.files):
            path = nanoaod_dir / name
            with uproot.open(path) as handle:
                events[name] = int(handle["Events"].num_entries)
            lfn = f"/store/{kind}/RunIISummer20UL18/{sample.key}_{tag}/NANOAOD/{i}_{name}"
            for site in sample.sites:
                _xrdcp(path, f"root://127.0.0.1:{ports[site]}/{lfn}")
            specs.append(FileSpec(lfn, path.stat().st_size, "%08x" % zlib.adler32(path.read_bytes()), events[name]))
            local[lfn] = path
        register_container(client, container, {f"{container}#b1": specs}, {s.lfn: sample.sites for s in specs})
        definition[sample.key] = {"sample": sample.key, "json_output": "fileset.json",
                                  "files": [{"das_names": [container], "metadata": dict(sample.metadata)}]}
    return RunCatalog(tag, ports, definition, local, events, flaky)


def _build_datasets(cat: RunCatalog, rucio_config: str, folder: Path, *site_options: str) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    definition = folder / "datasets_definition.json"
    definition.write_text(json.dumps(cat.definition))
    res = subprocess.run([str(BIN / "build-datasets"), "-cfg", str(definition), "-o", str(folder), *site_options],
                         capture_output=True, text=True, timeout=120, env=dict(os.environ, RUCIO_CONFIG=rucio_config))
    assert res.returncode == 0, res.stderr
    return load_fileset_json(folder / "fileset.json")


def _run(config: Path, outdir: Path, *extra: str) -> subprocess.CompletedProcess:
    """``pocket-coffea run`` (iterative) in a fresh process with fast-failing XRootD timeouts, and
    3 retries 0.2, 0.4 and 0.8 s apart (the defaults, 20 retries up to 30 s apart, give a dead
    server ~8 minutes to come back)."""
    options = outdir.parent / f"{outdir.name}-fast-retries.yaml"
    options.write_text("retries: 3\nretry-delay: 0.2\n")
    return subprocess.run(
        [str(BIN / "pocket-coffea"), "run", "--cfg", str(config), "-o", str(outdir), "-e", "iterative",
         "-ll", "WARNING", "-ro", str(options), *extra],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, **XRD_FAST),
    )


def _localised(cat: RunCatalog, fileset: dict) -> dict:
    """The same fileset with every ``root://host:port//store/...`` URL replaced by its local file."""
    out = copy.deepcopy(fileset)
    for entry in out.values():
        entry["files"] = [str(cat.local["/store/" + url.split("//store/", 1)[1]]) for url in entry["files"]]
    return out


@pytest.fixture(scope="module")
def local_reference(run_catalog, rucio_config, tmp_path_factory) -> tuple[dict, dict]:
    """(fileset over XRootD at CERN/KIT, output of the run on the same files read locally)."""
    cat = run_catalog
    base = tmp_path_factory.mktemp("xrd_run")
    fileset = _build_datasets(cat, rucio_config, base / "built", "-bs", cat.flaky, "-ps", CERN)
    config = make_analysis(base / "local", _localised(cat, fileset))
    res = _run(config, base / "local_out")
    assert res.returncode == 0, res.stderr
    return fileset, load_output(base / "local_out" / "output_all.coffea")


def _replace_files(obj, mapping: dict[str, str]):
    """A copy of nested dicts/lists with every string (key or value) in ``mapping`` replaced."""
    if isinstance(obj, dict):
        return {mapping.get(k, k) if isinstance(k, str) else k: _replace_files(v, mapping) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_replace_files(v, mapping) for v in obj]
    return mapping.get(obj, obj) if isinstance(obj, str) else obj


def _assert_same_output(remote: dict, local: dict, fileset: dict, local_fileset: dict) -> None:
    """Histograms, cutflow, sumw, sum_genweights: exactly equal; metadata: equal once URLs are local paths."""
    for key in ("variables", "cutflow", "sumw", "sumw2", "sum_genweights", "columns"):
        assert_outputs_equal(remote[key], local[key], rtol=0.0, path=key)
    urls = {url: path for name in fileset for url, path in zip(fileset[name]["files"], local_fileset[name]["files"])}
    # the processing ledgers spell the files normalised (same UUIDs: the same files)
    urls |= {normalise_url(url): normalise_url(path) for url, path in list(urls.items())}
    used = {f for files in remote["processing_metadata"]["files"].values() for f in files}
    assert used and used <= set(urls), used  # the remote run's bookkeeping names the root:// URLs
    assert_outputs_equal(_replace_files(remote, urls), local, rtol=0.0)


def test_run_over_built_fileset_equals_local_run(run_catalog, local_reference, tmp_path):
    cat = run_catalog
    fileset, local_output = local_reference
    dy, data, tt = "DYJetsToLL_2018", "DATA_DoubleMuon_2018_EraA", "TTTo2L2Nu_2022_postEE"
    assert sorted(fileset) == sorted([dy, data, tt])
    cern, kit = cat.ports[CERN], cat.ports[KIT]
    for name, port in ((dy, cern), (data, kit), (tt, kit)):  # CERN first; DATA and TT are only at KIT (and FLAKY)
        for url in fileset[name]["files"]:
            assert url.startswith(f"root://127.0.0.1:{port}//store/"), url
    assert fileset[dy]["metadata"]["file_nevents"] == [cat.events["nano_dy.root"], cat.events["nano_dy_empty.root"]]

    config = make_analysis(tmp_path / "analysis", fileset)
    res = _run(config, tmp_path / "out")
    assert res.returncode == 0, res.stderr
    remote = load_output(tmp_path / "out" / "output_all.coffea")
    # every event was read over XRootD: the counts of the files, as uproot reads them locally
    assert remote["cutflow"]["initial"] == {dy: 40 + 0, data: cat.events["nano_dimuon.root"],
                                             tt: cat.events["nano_tt_v12.root"]}
    assert remote["processing_metadata"]["skipped_files"] == []
    _assert_same_output(remote, local_output, fileset, _localised(cat, fileset))
    report = json.loads((tmp_path / "out" / "processing_report.json").read_text())
    assert report["skipped_files"] == [] and report["totals"]["events"] == 40 + 40 + 200


def _site_script(services: dict, script: str, *args: str) -> None:
    scripts = Path(services.get("scripts_dir", TESTS.parent / "services"))
    subprocess.run(["bash", str(scripts / script), *args], check=True, capture_output=True, timeout=120,
                   env=dict(os.environ, PC_SERVICES_DIR=services["services_dir"]))


def test_dead_site_named_skipped_then_replicas_moved(run_catalog, local_reference, rucio_config, gateway, services,
                                                     tmp_path):
    from pc_datasets import rewrite_fileset_away_from_sites

    cat = run_catalog
    _, local_output = local_reference
    dy, data, tt = "DYJetsToLL_2018", "DATA_DoubleMuon_2018_EraA", "TTTo2L2Nu_2022_postEE"
    fileset = _build_datasets(cat, rucio_config, tmp_path / "built", "-ps", cat.flaky)
    flaky_prefix = f"root://127.0.0.1:{cat.ports[cat.flaky]}//store/"
    on_flaky = {(name, url) for name, entry in fileset.items() for url in entry["files"] if url.startswith(flaky_prefix)}
    assert {name for name, _ in on_flaky} == {dy, tt} and len(on_flaky) == 3  # DATA has no replica there
    config = make_analysis(tmp_path / "analysis", fileset)

    _site_script(services, "stop_xrootd.sh", cat.flaky)
    try:
        # skip-bad-files off: the run stops at the first chunk of a dead file (counts declared: no file is
        # opened before), naming the URL, the kind of failure and what to do
        failed = _run(config, tmp_path / "fail", "--no-skip-bad-files")
        assert failed.returncode == 1, failed.stderr
        named = [url for _, url in on_flaky if url in failed.stderr]
        assert len(named) == 1, failed.stderr
        assert f"cannot be read ({DEAD_SERVER})" in failed.stderr and "rewrite_fileset_away_from_sites" in failed.stderr
        assert "Traceback" not in failed.stderr
        assert not (tmp_path / "fail" / "output_all.coffea").exists()

        # skip-bad-files on: the three files are skipped, named with their reason; DATA is processed
        skipped = _run(config, tmp_path / "skip", "--skip-bad-files")
        assert skipped.returncode == 0, skipped.stderr
        report = json.loads((tmp_path / "skip" / "processing_report.json").read_text())
        assert {(s["dataset"], s["file"]) for s in report["skipped_files"]} == on_flaky
        assert all(s["kind"] == DEAD_SERVER and s["reason"].startswith(f"{DEAD_SERVER}: ") for s in report["skipped_files"])
        assert report["datasets"][dy]["files_skipped"] == 2 and report["datasets"][tt]["files_skipped"] == 1
        partial = load_output(tmp_path / "skip" / "output_all.coffea")
        assert partial["cutflow"]["initial"] == {data: local_output["cutflow"]["initial"][data]} == {data: 40}
        assert partial["processing_metadata"]["skipped_files"] == report["skipped_files"]

        # the replica tools move the fileset to the live sites; the run is complete again
        moved = rewrite_fileset_away_from_sites(fileset, [cat.flaky], gateway).fileset
        assert fileset[dy]["files"][0].startswith(flaky_prefix)  # the input is not mutated
        ports = {name: {url.split("//store/")[0] for url in entry["files"]} for name, entry in moved.items()}
        assert ports == {dy: {f"root://127.0.0.1:{cat.ports[CERN]}"}, data: {f"root://127.0.0.1:{cat.ports[KIT]}"},
                         tt: {f"root://127.0.0.1:{cat.ports[KIT]}"}}
        config = make_analysis(tmp_path / "moved", moved)
        rerun = _run(config, tmp_path / "moved_out")
        assert rerun.returncode == 0, rerun.stderr
        output = load_output(tmp_path / "moved_out" / "output_all.coffea")
        assert output["cutflow"]["initial"] == {dy: 40, data: 40, tt: 200}
        _assert_same_output(output, local_output, moved, _localised(cat, moved))
    finally:
        _site_script(services, "start_xrootd.sh", f"{cat.flaky}:{cat.ports[cat.flaky]}")


def test_missing_file_on_live_server_named(run_catalog, local_reference, tmp_path):
    cat = run_catalog
    built, local_output = local_reference
    dy = "DYJetsToLL_2018"
    missing = f"root://127.0.0.1:{cat.ports[CERN]}//store/mc/RunIISummer20UL18/DYJetsToLL_{cat.tag}/NANOAOD/9_missing.root"
    fileset = {dy: copy.deepcopy(built[dy])}
    fileset[dy]["files"].append(missing)
    del fileset[dy]["metadata"]["file_nevents"]  # one count per file: there is none for a file that does not exist
    config = make_analysis(tmp_path / "analysis", fileset)

    failed = _run(config, tmp_path / "fail")  # skip-bad-files is off by default
    assert failed.returncode == 1, failed.stderr
    assert f"input file {missing} of dataset '{dy}' cannot be read ({MISSING_FILE})" in failed.stderr
    assert not (tmp_path / "fail" / "output_all.coffea").exists()

    skipped = _run(config, tmp_path / "skip", "--skip-bad-files")
    assert skipped.returncode == 0, skipped.stderr
    report = json.loads((tmp_path / "skip" / "processing_report.json").read_text())
    [entry] = report["skipped_files"]
    assert (entry["dataset"], entry["file"], entry["kind"]) == (dy, missing, MISSING_FILE)
    assert "[3011]" in entry["reason"]  # the server's own answer: no such file
    output = load_output(tmp_path / "skip" / "output_all.coffea")
    # the two readable files are processed in full, exactly as locally
    assert output["cutflow"]["initial"] == {dy: 40}
    assert output["sum_genweights"] == {dy: local_output["sum_genweights"][dy]}
    for category, by_dataset in local_output["sumw"].items():
        assert output["sumw"][category][dy] == by_dataset[dy]


DYING_WORKFLOW = '''"""The test workflow, but the first chunk read from {prefix} stops that site once it is processed."""
import subprocess
from pathlib import Path

from workflow_pcrun import MuonJetProcessor as _Base


class MuonJetProcessor(_Base):
    def process(self, events):
        out = super().process(events)
        marker = Path({marker!r})
        if events.metadata["filename"].startswith({prefix!r}) and not marker.exists():
            marker.write_text(events.metadata["filename"])
            subprocess.run(["bash", {script!r}, {site!r}], check=True, env={env!r}, timeout=60)
        return out
'''


def test_site_dying_during_the_run_is_classified(run_catalog, rucio_config, services, tmp_path):
    """A real server dies between two chunks: the lost chunks' files are reported as dead-server."""
    cat = run_catalog
    fileset = _build_datasets(cat, rucio_config, tmp_path / "built", "-ps", cat.flaky)
    prefix = f"root://127.0.0.1:{cat.ports[cat.flaky]}//store/"
    on_flaky = {(name, url) for name, entry in fileset.items() for url in entry["files"] if url.startswith(prefix)}
    config = make_analysis(tmp_path / "analysis", fileset)
    marker = tmp_path / "site_stopped"
    scripts = Path(services.get("scripts_dir", TESTS.parent / "services"))
    (config.parent / "workflow_dying.py").write_text(DYING_WORKFLOW.format(
        prefix=prefix, marker=str(marker), script=str(scripts / "stop_xrootd.sh"), site=cat.flaky,
        env={"PC_SERVICES_DIR": services["services_dir"], "PATH": os.environ["PATH"]}))
    source = config.read_text()
    assert "from workflow_pcrun import MuonJetProcessor" in source
    config.write_text(source.replace("from workflow_pcrun import", "from workflow_dying import"))
    try:
        # skip-bad-files off: the run fails naming a file of the dead site and the kind of failure
        failed = _run(config, tmp_path / "fail", "--no-skip-bad-files")
        assert failed.returncode == 1 and marker.exists(), failed.stderr
        first = marker.read_text()
        named = [url for _, url in on_flaky if f"input file {url} " in failed.stderr]
        assert len(named) == 1 and named[0] != first, failed.stderr
        assert f"cannot be read ({DEAD_SERVER}) at entries" in " ".join(failed.stderr.split())
        assert "Traceback" not in failed.stderr  # one clean message
        assert not (tmp_path / "fail" / "output_all.coffea").exists()

        # the site is back; it dies again after its first chunk, and skip-bad-files is on
        _site_script(services, "start_xrootd.sh", f"{cat.flaky}:{cat.ports[cat.flaky]}")
        marker.unlink()
        res = _run(config, tmp_path / "out", "--skip-bad-files")
        assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
        assert marker.exists()  # the site was stopped after its first chunk
        first = marker.read_text()
        report = json.loads((tmp_path / "out" / "processing_report.json").read_text())
        skipped = {(s["dataset"], s["file"]): s for s in report["skipped_files"]}
        assert set(skipped) == {(d, url) for d, url in on_flaky if url != first}
        for entry in skipped.values():  # opened in preprocessing, lost while processing: every entry accounted for
            assert entry["kind"] == DEAD_SERVER, entry
            assert entry["events"] == cat.events[entry["file"].rsplit("/", 1)[1].split("_", 1)[1]], entry
        output = load_output(tmp_path / "out" / "output_all.coffea")
        first_events = cat.events[first.rsplit("/", 1)[1].split("_", 1)[1]]  # LFN .../{i}_{local file name}
        assert sum(output["cutflow"]["initial"].values()) == cat.events["nano_dimuon.root"] + first_events
    finally:
        _site_script(services, "start_xrootd.sh", f"{cat.flaky}:{cat.ports[cat.flaky]}")
