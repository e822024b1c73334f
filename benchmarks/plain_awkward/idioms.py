"""The idioms of the plain-awkward analysis (``plain_analysis.py`` here), each
timed in isolation against the fastest equivalent a user could write, on real NanoEvents.

The input is the real ``nano_dy.root`` events replicated to ``--events`` entries (the 170
branches of the throughput benchmark, LZMA 9, NanoAOD-sized clusters; written to a
temporary folder, deleted at the end unless ``--keep``). Each chunk's NanoEvents are built
as pocket-coffea builds them (``pc_run.chunk_work.TreeLayout.events``: coffea's
``NanoEventsFactory`` in virtual mode, NanoAOD schema), with the branches the analysis
reads preloaded, as every chunk of a process after its first gets them.

For every idiom the two versions run on the same events, alternating which goes first,
``--rounds`` times; the script asserts that they give identical results (equal arrays,
equal histogram bin contents) and prints the median times, their ratio and the share of
the chunk's analysis time (the plain analysis' ``process`` on the same preloaded chunk).
The whole analysis is also run with every object idiom replaced (``FlatPlainProcessor``:
same config, cuts, categories, histograms, weights), asserted to give the same output bin
for bin, and timed in the same rounds. One extra row, the dimuon from numpy float64
formulas, is asserted equal within float32 rounding only (coffea's vector computes in float32).
Then the cost of NanoEvents reading branches lazily, one uproot call each, against the
same branches read in one ``TTree.arrays`` call and preloaded, and the cost of opening
and parsing a 1,499-branch NanoAOD tree (what pocket-coffea does once per file, not once
per chunk).

    .venv/bin/python benchmarks/plain_awkward/idioms.py [--events 100000] [--rounds 5] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import awkward as ak
import hist
import numpy as np
import uproot
from coffea.nanoevents import NanoAODSchema
from coffea.nanoevents.methods import candidate

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
NANO = REPO.parent / "shared" / "data" / "nanoaod"
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(HERE))

from pc_run import FlatObjects, near_any  # noqa: E402
from pc_run.chunk_work import TreeLayout  # noqa: E402
from pc_run.fast_paths import with_fast_paths  # noqa: E402
from plain_analysis import LEPTON_FIELDS  # noqa: E402

DATASET, SAMPLE = "DYJetsToLL_M-50_2018", "DYJetsToLL_M-50"


# ---------------------------------------------------------------- input and chunks

def build(folder: Path, events: int) -> tuple[Path, Path]:
    from throughput import build_file  # the replicated real events of the throughput benchmark

    target = folder / "nano_dy_idioms.root"
    if not target.exists():
        build_file(target, events)
    n = uproot.open(target)["Events"].num_entries
    fileset = folder / "fileset_idioms.json"
    meta = {"sample": SAMPLE, "year": "2018", "isMC": True, "xsec": 6077.22, "nevents": n, "file_nevents": [n]}
    fileset.write_text(json.dumps({DATASET: {"files": [str(target)], "metadata": meta}}))
    return target, fileset


def chunk_events(layout: TreeLayout, meta: dict, stop: int, preload=None, arrays=None, access_log=None,
                 fast_paths=True):
    """The NanoEvents of entries 0-``stop``, built as ``pc_run.chunk_work.process_chunk`` builds them
    (``fast_paths=False``: with coffea's behaviour as it is, as before ``pc_run.fast_paths``)."""
    item = SimpleNamespace(dataset=DATASET, filename=str(layout.tree.file.file_path), treename="Events",
                           entrystart=0, entrystop=stop, fileuuid=b"", usermeta=None)
    metadata = dict(meta, dataset=DATASET, filename=item.filename, treename="Events", entrystart=0, entrystop=stop)
    log = [] if access_log is None else access_log
    schema = with_fast_paths(NanoAODSchema) if fast_paths else NanoAODSchema
    return layout.events(item, schema, metadata, {}, preload, log, None, arrays)


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - start, result


# ---------------------------------------------------------------- helpers for the checks

def flat(array) -> np.ndarray:
    return ak.to_numpy(ak.flatten(array, axis=None))


def same_collection(a, b, fields) -> bool:
    if not np.array_equal(ak.to_numpy(ak.num(a, axis=1)), ak.to_numpy(ak.num(b, axis=1))):
        return False
    return all(np.array_equal(flat(a[f]), flat(b[f])) for f in fields)


def same_values(a, b) -> bool:
    """Equal per-event values; None (awkward) and NaN (numpy) both mean 'no value'."""
    a = np.asarray(ak.to_numpy(ak.fill_none(a, np.nan)) if isinstance(a, ak.Array) else a, dtype=np.float64)
    b = np.asarray(ak.to_numpy(ak.fill_none(b, np.nan)) if isinstance(b, ak.Array) else b, dtype=np.float64)
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


# ---------------------------------------------------------------- the idioms, two ways each

def selections_awkward(events, cuts):
    mu, el, jt = cuts["Muon"], cuts["Electron"], cuts["Jet"]
    muons = events.Muon[(events.Muon.pt > mu["pt"]) & (abs(events.Muon.eta) < mu["eta"]) & events.Muon.tightId
                        & (events.Muon.pfRelIso04_all < mu["iso"])]
    electrons = events.Electron[(events.Electron.pt > el["pt"]) & (abs(events.Electron.eta) < el["eta"])
                                & (events.Electron.cutBased >= el["id"])]
    jets = events.Jet[(events.Jet.pt > jt["pt"]) & (abs(events.Jet.eta) < jt["eta"]) & (events.Jet.jetId >= jt["jetId"])]
    return muons, electrons, jets


def selections_flat(events, cuts):
    mu, el, jt = cuts["Muon"], cuts["Electron"], cuts["Jet"]
    m, e, j = FlatObjects(events.Muon), FlatObjects(events.Electron), FlatObjects(events.Jet)
    muons = m.select((m["pt"] > mu["pt"]) & (np.abs(m["eta"]) < mu["eta"]) & m["tightId"] & (m["pfRelIso04_all"] < mu["iso"]))
    electrons = e.select((e["pt"] > el["pt"]) & (np.abs(e["eta"]) < el["eta"]) & (e["cutBased"] >= el["id"]))
    jets = j.select((j["pt"] > jt["pt"]) & (np.abs(j["eta"]) < jt["eta"]) & (j["jetId"] >= jt["jetId"]))
    return muons, electrons, jets


def leptons_awkward(muons, electrons):
    leptons = ak.zip({f: ak.concatenate([muons[f], electrons[f]], axis=1) for f in LEPTON_FIELDS},
                     with_name="PtEtaPhiMCandidate", behavior=candidate.behavior)
    return leptons[ak.argsort(leptons.pt, axis=1, ascending=False)]


def leptons_flat(muons, electrons):
    """As ``examples/dilepton``: concatenate the flat values, one stable lexsort (event, -pt)."""
    m, e = FlatObjects(muons), FlatObjects(electrons)
    event_of = np.concatenate([m.event_index, e.event_index])
    values = {f: np.concatenate([m[f], e[f]]) for f in LEPTON_FIELDS}
    order = np.lexsort((-values["pt"], event_of))
    leptons = ak.zip({f: v[order] for f, v in values.items()}, with_name="PtEtaPhiMCandidate", behavior=candidate.behavior)
    return ak.unflatten(leptons, m.counts + e.counts)


def cleaning_awkward(jets, leptons, dr):
    return jets[ak.all(jets.metric_table(leptons) > dr, axis=2)]


def cleaning_flat(jets, leptons, dr):
    j = FlatObjects(jets)
    return j.select(~near_any(j, FlatObjects(leptons), dr))


def btag_awkward(jets, wp):
    return jets[jets.btagDeepFlavB > wp]


def btag_flat(jets, wp):
    j = FlatObjects(jets)
    return j.select(j["btagDeepFlavB"] > wp)


def counts_awkward(collections):
    return [ak.num(c) for c in collections]


def counts_flat(collections):
    return [FlatObjects(c).counts for c in collections]


def dimuon_awkward(muons):
    muons = ak.pad_none(muons, 2)
    dimuon = muons[:, 0] + muons[:, 1]
    return ak.zip({"pt": dimuon.pt, "eta": dimuon.eta, "phi": dimuon.phi, "mass": dimuon.mass,
                   "charge": muons[:, 0].charge + muons[:, 1].charge, "deltaR": muons[:, 0].delta_r(muons[:, 1])})


def dimuon_flat(muons):
    """The two leading muons gathered through the offsets as flat (one per event) candidate
    records, summed by coffea's vector behaviour: the same arithmetic, no jagged padding."""
    m = FlatObjects(muons)
    counts = m.counts
    first = np.cumsum(counts) - counts
    two = counts >= 2
    i0, i1 = first[two], first[two] + 1
    a, b = (ak.zip({f: m[f][i] for f in ("pt", "eta", "phi", "mass", "charge")},
                   with_name="PtEtaPhiMCandidate", behavior=candidate.behavior) for i in (i0, i1))
    s = a + b
    out = {}
    for name, values in (("pt", s.pt), ("eta", s.eta), ("phi", s.phi), ("mass", s.mass),
                         ("charge", m["charge"][i0] + m["charge"][i1]), ("deltaR", a.delta_r(b))):
        full = np.full(len(counts), np.nan, dtype=np.float64)
        full[two] = ak.to_numpy(values)
        out[name] = full
    return out


def dimuon_numpy(muons):
    """The leading pair in plain numpy, float64 formulas (as ``examples/dilepton``): not bit-identical
    to coffea's float32 vector arithmetic, equal to its rounding."""
    m = FlatObjects(muons)
    counts = m.counts
    first = np.cumsum(counts) - counts
    two = counts >= 2
    i0, i1 = first[two], first[two] + 1
    pt, eta, phi, mass = (np.stack([m[f][i0], m[f][i1]]).astype(np.float64) for f in ("pt", "eta", "phi", "mass"))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    energy = np.sqrt(px**2 + py**2 + pz**2 + mass**2)
    sx, sy, sz, se = px.sum(0), py.sum(0), pz.sum(0), energy.sum(0)
    spt = np.hypot(sx, sy)
    dphi = (phi[0] - phi[1] + np.pi) % (2 * np.pi) - np.pi
    out = {}
    for name, values in (("pt", spt), ("eta", np.arcsinh(sz / spt)), ("phi", np.arctan2(sy, sx)),
                         ("mass", np.sqrt(np.maximum(se**2 - sx**2 - sy**2 - sz**2, 0.0))),
                         ("charge", m["charge"][i0] + m["charge"][i1]), ("deltaR", np.hypot(eta[0] - eta[1], dphi))):
        full = np.full(len(counts), np.nan, dtype=np.float64)
        full[two] = values
        out[name] = full
    return out


def close_values(a, b) -> bool:
    a = np.asarray(ak.to_numpy(ak.fill_none(a, np.nan)), dtype=np.float64)
    return a.shape == b.shape and np.allclose(a, b, rtol=1e-5, atol=1e-4, equal_nan=True)


def skim_awkward(events, minpt):
    return ak.sum(events.Muon.pt > minpt, axis=1) >= 2


def skim_flat(events, minpt):
    m = FlatObjects(events.Muon)
    return np.bincount(m.event_index[m["pt"] > minpt], minlength=len(m.counts)) >= 2


def categories_awkward(ll, n_mu, n_b):
    dimuon = ak.fill_none((n_mu >= 2) & (ll.charge == 0) & (ll.mass > 20.0), False)
    z = ak.fill_none(abs(ll.mass - 91.1876) < 15.0, False)
    return {"dimuon": dimuon, "Z": dimuon & z, "Z_2b": dimuon & z & (n_b >= 2) & (n_b <= 99),
            "Z_0b": dimuon & z & (n_b >= 0) & (n_b <= 0)}


def categories_flat(ll, n_mu, n_b):
    mass, charge = ll["mass"], ll["charge"]  # NaN without two muons: every comparison is False
    dimuon = (n_mu >= 2) & (charge == 0) & (mass > 20.0)
    z = np.abs(mass - 91.1876) < 15.0
    return {"dimuon": dimuon, "Z": dimuon & z, "Z_2b": dimuon & z & (n_b >= 2) & (n_b <= 99),
            "Z_0b": dimuon & z & (n_b >= 0) & (n_b <= 0)}


def weights_awkward(events, norm):
    return events.genWeight * norm


def weights_flat(events, norm):
    return ak.to_numpy(events.genWeight) * norm


def _jet_hist():
    return hist.Hist(hist.axis.StrCategory(["Z", "Z_2b"], name="cat"),
                     hist.axis.Regular(40, 0, 400, name="pt"), storage=hist.storage.Weight())


def hist_awkward(jets, weight, masks):
    """Jet pt per category, the way it is written with awkward: slice, broadcast the event weight, flatten."""
    h = _jet_hist()
    for cat in ("Z", "Z_2b"):
        selected = jets[masks[cat]]
        w = ak.broadcast_arrays(weight[masks[cat]], selected.pt)[0]
        h.fill(cat=cat, pt=ak.to_numpy(ak.flatten(selected.pt)), weight=ak.to_numpy(ak.flatten(w)))
    return h


def hist_flat(jets, weight, masks):
    """The same fills, with the flat values: one gather of pt, the event weight repeated per jet."""
    h = _jet_hist()
    j = FlatObjects(jets)
    pt, per_jet_weight = j["pt"], np.repeat(np.asarray(weight), j.counts)
    for cat in ("Z", "Z_2b"):
        keep = np.asarray(masks[cat])[j.event_index]
        h.fill(cat=cat, pt=pt[keep], weight=per_jet_weight[keep])
    return h


def ht_awkward(jets):
    return ak.sum(jets.pt, axis=1)


def ht_flat(jets):
    j = FlatObjects(jets)
    offsets = np.zeros(len(j.counts) + 1, dtype=np.int64)
    np.cumsum(j.counts, out=offsets[1:])
    # awkward sums float32 in float32, in order: the same with ufunc.reduceat (empty events: 0)
    sums = np.add.reduceat(np.append(j["pt"], np.float32(0)), offsets[:-1]) if len(j.counts) else np.zeros(0, np.float32)
    return np.where(j.counts > 0, sums, np.float32(0))


def dimuon_flat_record(muons):
    """``dimuon_flat`` as the record the plain workflow stores: float32 fields, None without two muons."""
    values = dimuon_flat(muons)
    two = ~np.isnan(values["mass"])
    dtypes = {"charge": np.int32}
    return ak.zip({f: ak.mask(np.where(two, v, 0).astype(dtypes.get(f, np.float32)), two) for f, v in values.items()})


def flat_processor_class():
    """The plain analysis with every object idiom of ``plain_analysis.py`` replaced by its fast
    equivalent above (same cuts, categories, histograms and weights of ``config.py``)."""
    from plain_workflow import PlainDimuonProcessor

    class FlatPlainProcessor(PlainDimuonProcessor):
        def apply_object_preselection(self, variation):
            events, cuts = self.events, self.params["object_preselection"]
            muons, electrons, jets = selections_flat(events, cuts)
            leptons = leptons_flat(muons, electrons)
            jets = cleaning_flat(jets, leptons, cuts["Jet"]["dr_lepton"])
            events["MuonGood"], events["ElectronGood"], events["LeptonGood"] = muons, electrons, leptons
            events["JetGood"], events["BJetGood"] = jets, btag_flat(jets, cuts["btag_wp"])

        def count_objects(self, variation):
            for name in ("MuonGood", "ElectronGood", "LeptonGood", "JetGood", "BJetGood"):
                self.events[f"n{name}"] = FlatObjects(self.events[name]).counts

        def define_common_variables_before_presel(self, variation):
            self.events["ll"] = dimuon_flat_record(self.events.MuonGood)

        def define_common_variables_after_presel(self, variation):
            self.events["JetGood_Ht"] = ht_flat(self.events.JetGood)

    return FlatPlainProcessor


def same_output(a, b, where="output") -> bool:
    """Equal processor outputs: histograms bin for bin (values and variances), every number equal."""
    if isinstance(a, hist.Hist):
        ok = np.array_equal(a.values(flow=True), b.values(flow=True)) and (
            a.variances() is None or np.array_equal(a.variances(flow=True), b.variances(flow=True)))
    elif isinstance(a, dict):
        ok = a.keys() == b.keys() and all(same_output(a[k], b[k], f"{where}[{k!r}]") for k in a)
    elif isinstance(a, np.ndarray):
        ok = np.array_equal(a, b)
    else:
        ok = a == b
    if not ok:
        print(f"  differs: {where}", flush=True)
    return bool(ok)


# ---------------------------------------------------------------- driver

def idiom_cases(events, params):
    """(name, what is compared, idiomatic thunk, fast thunk, equality check), all on one chunk."""
    cuts = params["object_preselection"]
    jt = cuts["Jet"]
    full = events
    events = events[ak.to_numpy(skim_flat(full, 10.0))]  # the analysis works on the skimmed events
    muons, electrons, jets = selections_awkward(events, cuts)
    leptons = leptons_awkward(muons, electrons)
    clean = cleaning_awkward(jets, leptons, jt["dr_lepton"])
    bjets = btag_awkward(clean, cuts["btag_wp"])
    ll = dimuon_awkward(muons)
    ll_flat = dimuon_flat(muons)
    n_mu, n_b = ak.to_numpy(ak.num(muons)), ak.to_numpy(ak.num(bjets))
    norm = 59832.0 * 6077.22 / 1234.5
    masks = categories_flat(ll_flat, n_mu, n_b)
    weight = weights_flat(events, norm)

    def check_selections(a, b):
        return all(same_collection(x, y, f) for x, y, f in zip(a, b, [("pt", "eta", "tightId"), ("pt", "cutBased"), ("pt", "jetId")]))

    return [
        ("skim: ak.sum(Muon.pt > 10, axis=1) >= 2", "bincount of event_index[pt > 10]",
         lambda: skim_awkward(full, 10.0), lambda: skim_flat(full, 10.0),
         lambda a, b: np.array_equal(ak.to_numpy(a), b)),
        ("object selections: Muon[mask], Electron[mask], Jet[mask] (11 comparisons)", "FlatObjects + select",
         lambda: selections_awkward(events, cuts), lambda: selections_flat(events, cuts), check_selections),
        ("leptons: ak.zip(ak.concatenate(mu, e)) + ak.argsort(pt)", "numpy concatenate + lexsort + unflatten",
         lambda: leptons_awkward(muons, electrons), lambda: leptons_flat(muons, electrons),
         lambda a, b: same_collection(a, b, LEPTON_FIELDS)),
        ("jet cleaning: ak.all(jets.metric_table(leptons) > 0.4, axis=2)", "near_any",
         lambda: cleaning_awkward(jets, leptons, jt["dr_lepton"]), lambda: cleaning_flat(jets, leptons, jt["dr_lepton"]),
         lambda a, b: same_collection(a, b, ("pt", "eta", "btagDeepFlavB"))),
        ("b-tag: jets[jets.btagDeepFlavB > wp]", "FlatObjects + select",
         lambda: btag_awkward(clean, cuts["btag_wp"]), lambda: btag_flat(clean, cuts["btag_wp"]),
         lambda a, b: same_collection(a, b, ("pt", "btagDeepFlavB"))),
        ("counts: ak.num of 5 collections", "FlatObjects(...).counts",
         lambda: counts_awkward([muons, electrons, leptons, clean, bjets]),
         lambda: counts_flat([muons, electrons, leptons, clean, bjets]),
         lambda a, b: all(np.array_equal(ak.to_numpy(x), y) for x, y in zip(a, b))),
        ("dimuon record: pad_none, mu0 + mu1, ak.zip(pt, eta, phi, mass, charge, deltaR)",
         "leading pair by offsets, coffea vector sum on flat records",
         lambda: dimuon_awkward(muons), lambda: dimuon_flat(muons),
         lambda a, b: all(same_values(a[f], b[f]) for f in ("pt", "eta", "phi", "mass", "charge", "deltaR"))),
        ("dimuon record (as above)", "leading pair by offsets, numpy float64 formulas (equal to float32 rounding, not bitwise)",
         lambda: dimuon_awkward(muons), lambda: dimuon_numpy(muons),
         lambda a, b: all(close_values(a[f], b[f]) for f in ("pt", "eta", "phi", "mass", "charge", "deltaR"))),
        ("category masks: ak.fill_none on the ll record, 4 categories", "numpy on NaN-filled values",
         lambda: categories_awkward(ll, n_mu, n_b), lambda: categories_flat(ll_flat, n_mu, n_b),
         lambda a, b: all(np.array_equal(ak.to_numpy(a[k]), b[k]) for k in a)),
        ("HT: ak.sum(jets.pt, axis=1)", "np.add.reduceat on the flat pt",
         lambda: ht_awkward(clean), lambda: ht_flat(clean),
         lambda a, b: np.array_equal(ak.to_numpy(a), b)),
        ("weights: events.genWeight * lumi * xs / sumw", "numpy",
         lambda: weights_awkward(events, norm), lambda: weights_flat(events, norm),
         lambda a, b: np.array_equal(ak.to_numpy(a), b)),
        ("hist fill, 2 categories: jets[mask], ak.broadcast_arrays(w), ak.flatten", "flat pt, np.repeat(w), event_index mask",
         lambda: hist_awkward(clean, weight, masks), lambda: hist_flat(clean, weight, masks),
         lambda a, b: np.array_equal(a.values(), b.values()) and np.array_equal(a.variances(), b.variances())),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="events of the chunk (and of the input)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", type=Path, default=None, help="keep (or reuse) the input in this folder")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="pc-idioms-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        run(work, args.events, args.rounds)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def run(work: Path, n_events: int, rounds: int) -> None:
    warnings.filterwarnings("ignore", message="Missing cross-reference")  # the schema on a reduced tree
    t0 = time.perf_counter()
    path, fileset = build(work, n_events)
    os.environ["POCKET_COFFEA_BENCH_FILESET"] = str(fileset)
    from pc_core.config_loading import load_configurator

    cfg = load_configurator(HERE / "config.py")
    meta = next(iter(cfg.fileset.values()))["metadata"]
    processor = cfg.workflow(cfg)
    params = cfg.parameters if isinstance(cfg.parameters, dict) else dict(cfg.parameters)
    # no array cache, as pocket-coffea opens its inputs: every read decompresses
    layout = TreeLayout.of(uproot.open(path, array_cache=None), "Events", {})
    stop = min(n_events, layout.tree.num_entries)
    print(f"input: {stop} events ({path.stat().st_size / 1e6:.0f} MB, {len(layout.tree.keys())} branches), "
          f"built in {time.perf_counter() - t0:.1f} s; {rounds} rounds, medians", flush=True)

    # the branches the analysis reads (the access log of a first, lazy chunk), then preloaded as pocket-coffea does
    accessed: list = []
    processor.process(chunk_events(layout, meta, stop, access_log=accessed))
    branches = frozenset(a.branch for a in accessed)
    wanted = lambda branch: branch.name in branches  # noqa: E731
    arrays = layout.read(wanted, 0, stop)
    print(f"the analysis reads {len(branches)} branches", flush=True)

    # ---- chunk-level: lazy vs preloaded, and the analysis alone
    chunk = {"lazy: NanoEvents reads each branch on first access": [],
             "preloaded: one TTree.arrays call, then the analysis": [],
             "analysis alone (branches already in memory)": [],
             "raw read: TTree.arrays of those branches": []}
    kinds = list(chunk)
    for r in range(rounds):
        for kind in kinds if r % 2 == 0 else reversed(kinds):
            if kind.startswith("lazy"):
                dt, _ = timed(lambda: processor.process(chunk_events(layout, meta, stop)))
            elif kind.startswith("preloaded"):
                dt, _ = timed(lambda: processor.process(chunk_events(layout, meta, stop, preload=wanted)))
            elif kind.startswith("analysis"):
                dt, _ = timed(lambda: processor.process(chunk_events(layout, meta, stop, preload=wanted, arrays=arrays)))
            else:
                dt, _ = timed(layout.read, wanted, 0, stop)
            chunk[kind].append(dt)
    med = {k: statistics.median(v) for k, v in chunk.items()}

    print("\n== one chunk of the plain analysis")
    for kind, value in med.items():
        print(f"  {kind:<55} {value * 1e3:8.1f} ms  ({stop / value / 1e3:6.0f}k events/s)")
    lazy_ratio = statistics.median(a / b for a, b in zip(chunk[kinds[0]], chunk[kinds[1]]))
    print(f"  lazy / preloaded (median of within-round ratios): {lazy_ratio:.2f}x")

    # opening and parsing a production-width tree: once per file in pocket-coffea, once per chunk in coffea's Runner
    wide = NANO / "nano_dy.root"
    opens = []
    for _ in range(rounds):
        start = time.perf_counter()
        with uproot.open(wide, array_cache=None) as f:
            TreeLayout.of(f, "Events", {})
        opens.append(time.perf_counter() - start)
    n_wide = len(uproot.open(wide)["Events"].keys())
    print(f"  open + parse + NanoEvents form of a {n_wide}-branch tree: {statistics.median(opens) * 1e3:.0f} ms "
          f"(pocket-coffea: once per file and process; coffea's Runner: every chunk)")

    # ---- idioms, each against its fast equivalent, on one preloaded chunk; and the whole
    # analysis both ways, in the same rounds (alternating the order every other round)
    events = chunk_events(layout, meta, stop, preload=wanted, arrays=arrays)
    cases = idiom_cases(events, params)
    for name, _, slow, fast, same in cases:
        assert same(slow(), fast()), f"{name}: the fast equivalent differs"
    flat_processor = flat_processor_class()(cfg)

    def process_with(which, fast_paths=True):
        return lambda: which.process(chunk_events(layout, meta, stop, preload=wanted, arrays=arrays,
                                                  fast_paths=fast_paths))

    whole = ("the whole plain analysis, process() on the chunk", "the same with every object idiom above replaced",
             process_with(processor), process_with(flat_processor), same_output)
    assert same_output(whole[2](), whole[3]()), "the analysis with the fast idioms gives another output"
    # what pc_run.fast_paths buys: the same code on coffea's behaviour as it is
    skim = ak.to_numpy(skim_flat(events, 10.0))
    coffea_events = chunk_events(layout, meta, stop, preload=wanted, arrays=arrays, fast_paths=False)
    cuts = params["object_preselection"]
    fast_path_rows = [
        ("the whole plain analysis", "with coffea's behaviour as it is (no fast paths)",
         process_with(processor), process_with(processor, fast_paths=False), same_output),
        ("object selections (as above)", "with coffea's behaviour as it is (no fast paths)",
         lambda: selections_awkward(events[skim], cuts), lambda: selections_awkward(coffea_events[skim], cuts),
         cases[1][4]),
    ]
    for name, _, ours, theirs, same in fast_path_rows:
        assert same(ours(), theirs()), f"{name}: the fast paths change the result"
    everything = [whole, *cases, *fast_path_rows]
    times = {name: {"idiomatic": [], "fast": []} for name, *_ in everything}
    for r in range(rounds):
        for name, _, slow, fast, _ in everything if r % 2 == 0 else reversed(everything):
            order = [("idiomatic", slow), ("fast", fast)]
            for kind, function in order if r % 2 == 0 else reversed(order):
                times[name][kind].append(timed(function)[0])
    analysis_time = statistics.median(times[whole[0]]["idiomatic"])
    skimmed = len(cases[1][2]()[0])
    print(f"\n== idioms on one {stop}-event chunk ({skimmed} events after the skim), the plain analysis "
          f"{analysis_time * 1e3:.0f} ms on it; every pair asserted identical "
          "(but the numpy dimuon: asserted equal within float32 rounding)")
    print("| idiom (plain awkward) | fast equivalent | idiomatic ms | fast ms | ratio | idiomatic share of the analysis |")
    print("|---|---|---|---|---|---|")
    total_i = total_f = 0.0
    for name, fast_name, *_ in everything[: -len(fast_path_rows)]:
        ti, tf = statistics.median(times[name]["idiomatic"]), statistics.median(times[name]["fast"])
        ratio = statistics.median(x / y for x, y in zip(times[name]["idiomatic"], times[name]["fast"]))
        framework = name.startswith(("weights", "hist fill"))  # pocket-coffea does these itself, from the config
        if name != whole[0] and not framework and not fast_name.startswith("leading pair by offsets, numpy"):
            total_i, total_f = total_i + ti, total_f + tf
        note = " (by hand only)" if framework else ""
        print(f"| {name}{note} | {fast_name} | {ti * 1e3:.1f} | {tf * 1e3:.1f} | {ratio:.1f}x | {ti / analysis_time:.0%} |")
    print(f"| sum of the idioms the plain analysis writes | | {total_i * 1e3:.1f} | {total_f * 1e3:.1f} | "
          f"{total_i / total_f:.1f}x | {total_i / analysis_time:.0%} |")
    print("\n== what the fast paths buy (pc_run.fast_paths, on by default): the same code, results asserted identical")
    print("| the plain code | compared with | ms with the fast paths | ms without | speed-up |")
    print("|---|---|---|---|---|")
    for name, other, *_ in fast_path_rows:
        ours, theirs = statistics.median(times[name]["idiomatic"]), statistics.median(times[name]["fast"])
        ratio = statistics.median(y / x for x, y in zip(times[name]["idiomatic"], times[name]["fast"]))
        print(f"| {name} | {other} | {ours * 1e3:.1f} | {theirs * 1e3:.1f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
