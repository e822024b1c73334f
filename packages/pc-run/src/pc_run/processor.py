"""The pocket-coffea processor: a coffea ``ProcessorABC`` that users subclass.

Per chunk, in this order: read the dataset metadata; count the initial events and (MC) sum
``genWeight`` and its sign; apply the skim; optionally export the skimmed events; call the
user's object hooks; apply the preselection; build the category (and subsample) masks;
compute the weights; fill the cutflow, ``sumw``/``sumw2``, every histogram and the columns.
The output layout is docs/output-format.md.

Subclass it and override the hooks (PocketCoffea names)::

    class MyProcessor(BaseProcessorABC):
        def apply_object_preselection(self, variation):
            self.events["MuonGood"] = self.events.Muon[self.events.Muon.pt > 20]

        def count_objects(self, variation):
            self.events["nMuonGood"] = ak.num(self.events.MuonGood)

The hooks work on ``self.events`` (the current chunk). ``process`` runs on a shallow copy of
the processor, so nothing of one chunk leaks into the next, and the configuration is only
read, never changed.
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

import awkward as ak
import numpy as np
from coffea import processor

from pc_core.errors import ConfigError

from .histograms import NOMINAL, FieldCache, HistEntries, Selection, book_histogram, fill_histogram
from .skimmed_files import export_skimmed_chunk
from .weights_store import WeightsStore

log = logging.getLogger(__name__)

# processing_metadata entries filled per chunk (they add up); the run-level ones are set in postprocess
CHUNK_COLUMNS_KEY = "columns"


def _to_mask(mask, size: int, what: str) -> np.ndarray:
    """A cut result as a numpy boolean array (None counts as failing)."""
    if isinstance(mask, ak.Array):
        mask = ak.to_numpy(ak.fill_none(mask, False) if mask.layout.is_option else mask)
    array = np.asarray(mask)
    if array.shape != (size,):
        raise ConfigError(f"{what} returned an array of shape {array.shape}; expected one boolean per event ({size})")
    return array.astype(bool, copy=False)


def _chunk_key(filename: str, start: int, stop: int) -> str:
    # zero-padded so that sorting the keys gives file order, then entry order
    return f"{filename}#{start:015d}-{stop:015d}"


class BaseProcessorABC(processor.ProcessorABC):
    """Base processor of every pocket-coffea analysis; ``cfg`` is a loaded ``Configurator``."""

    def __init__(self, cfg):
        if not getattr(cfg, "loaded", True):
            cfg.load()
        self.cfg = cfg
        self.params = cfg.parameters
        self.workflow_options = dict(getattr(cfg, "workflow_options", None) or {})
        self.save_skimmed_files = getattr(cfg, "save_skimmed_files", None)
        self._categories = dict(cfg.categories)
        self._variables = dict(cfg.variables)

    # ------------------------------------------------------------------ user hooks

    def process_extra_after_skim(self) -> None:
        """Called on the skimmed events, before the object definitions."""

    def apply_object_preselection(self, variation: str) -> None:
        """Define the analysis objects (e.g. ``self.events["MuonGood"] = ...``)."""

    def count_objects(self, variation: str) -> None:
        """Define the object counts (e.g. ``self.events["nMuonGood"] = ak.num(...)``)."""

    def define_common_variables_before_presel(self, variation: str) -> None:
        """Event variables needed by the preselection."""

    def process_extra_before_presel(self, variation: str) -> None:
        """Anything else to do before the preselection."""

    def define_common_variables_after_presel(self, variation: str) -> None:
        """Event variables needed by categories, weights, histograms and columns."""

    def process_extra_after_presel(self, variation: str) -> None:
        """Anything else to do after the preselection, before categories and weights."""

    # ------------------------------------------------------------------ chunk processing

    def process(self, events):
        worker = copy.copy(self)
        return worker._process_chunk(events)

    def load_metadata(self) -> None:
        meta = dict(self.events.metadata)
        self.events_metadata = meta
        self._dataset = meta["dataset"]
        self._filename = meta.get("filename", "")
        self._entrystart = int(meta.get("entrystart", 0) or 0)
        self._entrystop = int(meta.get("entrystop", 0) or 0)
        fileset_entry = self.cfg.fileset.get(self._dataset)
        dataset_meta = dict(fileset_entry["metadata"]) if fileset_entry is not None else {}
        # the chunk metadata (from the fileset) wins; the configurator's copy fills gaps
        for key, value in meta.items():
            if key not in ("filename", "treename", "entrystart", "entrystop", "fileuuid"):
                dataset_meta[key] = value
        self.metadata = dataset_meta
        try:
            self._sample = dataset_meta["sample"]
            self._year = str(dataset_meta["year"])
        except KeyError as exc:
            raise ConfigError(f"dataset {self._dataset!r}: metadata lacks {exc.args[0]!r}") from None
        is_mc = dataset_meta.get("isMC", False)
        self._isMC = is_mc.strip().lower() == "true" if isinstance(is_mc, str) else bool(is_mc)
        self._xsec = float(dataset_meta["xsec"]) if dataset_meta.get("xsec") is not None else None
        self._samples_out = list(self.cfg.samples_for_output(self._sample))
        self._subsamples = dict(self.cfg.subsamples.get(self._sample, {}))

    def _cut_context(self) -> dict[str, Any]:
        return dict(year=self._year, sample=self._sample, dataset=self._dataset, isMC=self._isMC, metadata=self.metadata)

    def _and_of_cuts(self, cuts, events, stage: str, cache: dict[int, np.ndarray]) -> np.ndarray:
        """AND of the cuts' masks; each Cut is evaluated once per events array (``cache``)."""
        size = len(events)
        mask = np.ones(size, dtype=bool)
        if size == 0:
            return mask
        context = self._cut_context()
        for cut in cuts:
            key = id(cut)
            if key not in cache:
                cache[key] = _to_mask(cut.get_mask(events, **context), size, f"{stage} cut {cut.name!r}")
            mask = mask & cache[key]
        return mask

    def _empty_output(self) -> dict[str, Any]:
        dataset = self._dataset
        output: dict[str, Any] = {
            "sum_genweights": {},
            "sum_signOf_genweights": {},
            "cutflow": {"initial": {dataset: 0}, "skim": {dataset: 0}, "presel": {dataset: 0}},
            "sumw": {},
            "sumw2": {},
            "variables": {},
            "columns": {},
            "processing_metadata": {
                "events": {dataset: 0},
                "chunks": {dataset: 1},
                "files": {dataset: {self._filename: 0}},
            },
        }
        if self._isMC:
            output["sum_genweights"][dataset] = 0.0
            output["sum_signOf_genweights"][dataset] = 0.0
        for category in self._categories:
            output["cutflow"][category] = {dataset: {s: 0 for s in self._samples_out}}
            output["sumw"][category] = {dataset: {s: 0.0 for s in self._samples_out}}
            output["sumw2"][category] = {dataset: {s: 0.0 for s in self._samples_out}}
        return output

    def _variations_config(self) -> dict[str, list[str]]:
        config = self.cfg.variations_config.get(self._sample, {}) or {}
        return {cat: list(names) for cat, names in (config.get("weights") or {}).items()}

    def _book_histograms(self, output: dict[str, Any], variations: list[str]) -> None:
        for name, conf in self._variables.items():
            categories = [c for c in self._categories if conf.fills_category(c)]
            hist_variations = variations if (conf.variations and not conf.no_weights) else [NOMINAL]
            for sample in self._samples_out:
                if not (conf.fills_sample(sample) or conf.fills_sample(self._sample)) or not categories:
                    continue
                output["variables"].setdefault(name, {}).setdefault(sample, {})[self._dataset] = book_histogram(
                    conf, categories, hist_variations
                )

    def _process_chunk(self, events):
        self.events = events
        self.load_metadata()
        output = self._empty_output()
        self.output = output
        dataset = self._dataset
        n_initial = len(events)
        output["cutflow"]["initial"][dataset] = n_initial
        output["processing_metadata"]["events"][dataset] = n_initial
        output["processing_metadata"]["files"][dataset][self._filename] = n_initial
        if self._isMC and n_initial > 0:
            genweight = ak.to_numpy(events["genWeight"]).astype(np.float64)
            output["sum_genweights"][dataset] = float(genweight.sum())
            output["sum_signOf_genweights"][dataset] = float(np.sign(genweight).sum())

        # --- skim
        skim_mask = self._and_of_cuts(self.cfg.skim, events, "skim", {})
        # a skim every event passes keeps the events as they are: no index layer for every later access
        self.events = events[skim_mask] if n_initial and not skim_mask.all() else events
        output["cutflow"]["skim"][dataset] = int(len(self.events))
        if self.save_skimmed_files:
            export_skimmed_chunk(self, skim_mask, output)

        variations_config = self._variations_config()
        weights_config = self.cfg.weights_config.get(self._sample, {"inclusive": [], "bycategory": {}})
        variations = [NOMINAL]
        if self._isMC:
            names = []
            for cat_names in variations_config.values():
                names += cat_names
            for name in dict.fromkeys(names):
                variations += [f"{name}Up", f"{name}Down"]
        self._variations = variations
        self._book_histograms(output, variations)
        if len(self.events) == 0:
            return output

        self.process_extra_after_skim()
        variation = NOMINAL
        self.apply_object_preselection(variation)
        self.count_objects(variation)
        self.define_common_variables_before_presel(variation)
        self.process_extra_before_presel(variation)

        # --- preselection
        presel_mask = self._and_of_cuts(self.cfg.preselections, self.events, "preselection", {})
        self.events = self.events[presel_mask]
        output["cutflow"]["presel"][dataset] = int(len(self.events))
        if len(self.events) == 0:
            return output
        self.define_common_variables_after_presel(variation)
        self.process_extra_after_presel(variation)

        # --- categories and subsamples (each Cut evaluated once)
        cache: dict[int, np.ndarray] = {}
        self._category_masks = {
            cat: self._and_of_cuts(cuts, self.events, f"category {cat!r}", cache) for cat, cuts in self._categories.items()
        }
        if self._subsamples:
            self._sample_masks = {
                f"{self._sample}__{sub}": self._and_of_cuts(cuts, self.events, f"subsample {sub!r}", cache)
                for sub, cuts in self._subsamples.items()
            }
        else:
            self._sample_masks = {self._sample: np.ones(len(self.events), dtype=bool)}

        # --- weights
        self.weights = WeightsStore(
            self.events,
            sample=self._sample,
            is_mc=self._isMC,
            weights_config=weights_config,
            variations_config=variations_config,
            weights_classes=self.cfg.weights_classes,
            params=self.params,
            metadata=self.metadata,
        )
        self._selections: dict[tuple[str, str], Selection] = {}
        self._fill_counts(output)
        self._fill_histograms(output)
        self._fill_columns(output)
        return output

    def _selection(self, sample: str, category: str) -> Selection:
        """The events of ``category`` and ``sample`` with their weights: built once per chunk for
        the counts, every histogram and the columns."""
        key = (sample, category)
        if key not in self._selections:
            self._selections[key] = Selection(
                self._category_masks[category] & self._sample_masks[sample],
                self.weights.by_variation(category, self._variations),
            )
        return self._selections[key]

    def _fill_counts(self, output: dict[str, Any]) -> None:
        dataset = self._dataset
        for category in self._category_masks:
            for sample in self._sample_masks:
                selection = self._selection(sample, category)
                weight, weight_squared = selection.weights_at(NOMINAL)
                output["cutflow"][category][dataset][sample] = len(selection.events)
                output["sumw"][category][dataset][sample] = float(weight.sum())
                output["sumw2"][category][dataset][sample] = float(weight_squared.sum())

    def _fill_histograms(self, output: dict[str, Any]) -> None:
        dataset = self._dataset
        fields = FieldCache()  # each event field and collection read once for all histograms
        for name, conf in self._variables.items():
            by_sample = output["variables"].get(name)
            if not by_sample:
                continue
            histograms = [by_dataset[dataset] for by_dataset in by_sample.values()]
            # every sample's histogram of one spec has the same axes: bin the entries once
            entries = HistEntries.extract(self.events, conf, name, list(histograms[0].axes)[2:], fields)
            for sample, histogram in zip(by_sample, histograms):
                fill_histogram(
                    histogram,
                    entries,
                    ((category, self._selection(sample, category)) for category in histogram.axes["cat"]),
                    weighted=not conf.no_weights,
                )

    def _fill_columns(self, output: dict[str, Any]) -> None:
        columns_config = (getattr(self.cfg, "columns", None) or {}).get(self._sample) or {}
        if not columns_config:
            return
        key = _chunk_key(self._filename, self._entrystart, self._entrystop)
        chunk: dict[str, Any] = {}
        for category, colouts in columns_config.items():
            if category not in self._category_masks or not colouts:
                continue
            for sample in self._sample_masks:
                selected = self.events[self._selection(sample, category).mask]
                arrays: dict[str, np.ndarray] = {}
                for colout in colouts:
                    arrays.update(_column_arrays(selected, colout))
                chunk.setdefault(sample, {}).setdefault(self._dataset, {})[category] = arrays
        output["columns"] = {key: chunk}

    # ------------------------------------------------------------------ after accumulation

    def postprocess(self, accumulator):
        """Turn the accumulated chunks into the output format and add the run-level metadata."""
        if not isinstance(accumulator, Mapping):
            return accumulator
        return finalise_output(accumulator, self.cfg)


def _column_arrays(events, colout) -> dict[str, np.ndarray]:
    """The arrays of one ``ColOut`` for the selected events."""
    result: dict[str, np.ndarray] = {}
    size_written = False
    for column in colout.columns:
        name = colout.key(column)
        try:
            array = events[column] if colout.collection == "events" else events[colout.collection][column]
        except (LookupError, AttributeError, ValueError):
            raise ConfigError(
                f"column output {colout.collection}.{column}: the events have no such field"
            ) from None
        if array.ndim == 1:
            result[name] = ak.to_numpy(array)
            continue
        if colout.pos_start is not None or colout.pos_end is not None:
            array = array[:, colout.pos_start : colout.pos_end]
        if colout.flatten:
            if colout.store_size and not size_written:
                result[f"{colout.collection}_N"] = ak.to_numpy(ak.num(array, axis=1))
                size_written = True
            result[name] = ak.to_numpy(ak.flatten(array, axis=1))
        else:
            if colout.pos_end is None:
                raise ConfigError(
                    f"column output {colout.collection}.{column}: flatten=False needs pos_end (a fixed number of "
                    "objects per event, padded with NaN) to be stored as a numpy array"
                )
            width = colout.pos_end - (colout.pos_start or 0)
            padded = ak.fill_none(ak.pad_none(array, width, axis=1, clip=True), np.nan)
            result[name] = ak.to_numpy(padded).astype(np.float64)
    return result


def finalise_output(accumulator: Mapping[str, Any], cfg) -> dict[str, Any]:
    """The accumulated per-chunk outputs in the documented layout, plus run-level metadata.

    Columns are concatenated in file and entry order, whatever order the executor returned
    the chunks in, so every executor gives identical outputs.
    """
    from pc_core.fileset import datasets_by_year_and_sample

    output = dict(accumulator)
    chunks = output.get("columns", {}) or {}
    columns: dict[str, Any] = {}
    for key in sorted(chunks):
        for sample, by_dataset in chunks[key].items():
            for dataset, by_cat in by_dataset.items():
                for category, arrays in by_cat.items():
                    target = columns.setdefault(sample, {}).setdefault(dataset, {}).setdefault(category, {})
                    for name, array in arrays.items():
                        target.setdefault(name, []).append(array)
    for by_dataset in columns.values():
        for by_cat in by_dataset.values():
            for arrays in by_cat.values():
                for name, parts in arrays.items():
                    arrays[name] = np.concatenate(parts)
    output["columns"] = columns

    processing = dict(output.get("processing_metadata", {}))
    processed = [d for d in cfg.fileset if d in processing.get("events", {})]
    fileset = {d: cfg.fileset[d] for d in processed}
    datasets_metadata = datasets_by_year_and_sample(fileset)
    for dataset in processed:
        meta = cfg.fileset[dataset]["metadata"]
        samples = datasets_metadata["by_datataking_period"][str(meta["year"])]
        for sample in cfg.samples_for_output(meta["sample"]):
            names = samples.setdefault(sample, [])
            if dataset not in names:
                names.append(dataset)
    output["datasets_metadata"] = datasets_metadata

    weights_applied = {}
    for dataset in processed:
        meta = cfg.fileset[dataset]["metadata"]
        names = cfg.weights_config.get(meta["sample"], {}).get("inclusive", [])
        is_mc = meta.get("isMC", False)
        is_mc = is_mc.strip().lower() == "true" if isinstance(is_mc, str) else bool(is_mc)
        weights_applied[dataset] = [
            n for n in dict.fromkeys(names) if is_mc or not cfg.weights_classes[n].isMC_only
        ]
    years = sorted({str(cfg.fileset[d]["metadata"]["year"]) for d in processed})
    lumi_all = cfg.lumi_pb_by_year()
    processing["lumi_pb"] = {y: float(lumi_all[y]) for y in years if y in lumi_all}
    processing["weights_applied"] = weights_applied
    processing["normalised"] = False
    processing.setdefault("skipped_files", [])
    output["processing_metadata"] = processing
    for key in ("sum_genweights", "sum_signOf_genweights", "cutflow", "sumw", "sumw2", "variables"):
        output.setdefault(key, {})
    return output
