"""The ``Configurator``: the whole analysis definition, validated once by ``load()``.

The constructor only records what the user passed (nothing is checked or copied yet, so a
config file stays cheap to import). ``load()`` validates every argument, reads and filters
the dataset JSONs, expands the categories and resolves weights, variations and columns per
sample. It never mutates the user's objects: containers are rebuilt, ``Cut``/``HistConf``/
``ColOut`` objects (immutable) are shared.
"""
from __future__ import annotations

import contextvars
import copy
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config_resolution import (
    check_keys,
    check_columns,
    check_cut_list,
    parse_spec,
    register_weight_classes,
    resolve_columns,
    resolve_variations,
    resolve_weights,
    weight_names,
)
from .config_summary import configurator_summary, save_configurator
from .cuts import Cut
from .errors import ConfigError, DatasetError
from .fileset import FilesetFilter, check_unique_files, filter_fileset, load_fileset_jsons, normalise_dataset
from .histograms import HistConf
from .parameters import default_parameters, lumi_pb, merge_parameters
from .selections import CartesianSelection, MultiCut, StandardSelection, check_category_names
from .weights import BUILTIN_WEIGHTS

log = logging.getLogger(__name__)

CONFIG_DIR: contextvars.ContextVar[Path | None] = contextvars.ContextVar("pc_core_config_dir", default=None)
"""The folder of the config file being executed (``config_loading``); Configurators built
meanwhile use it as their base_dir."""

DATASETS_KEYS = ("jsons", "filter", "subsamples")
VARIATIONS_KEYS = ("weights",)
SUBSAMPLE_SEPARATOR = "__"

# attributes that exist only after load(); reading them earlier raises NotLoadedError
LOADED_ATTRIBUTES = frozenset(
    {
        "workflow", "workflow_options", "parameters", "fileset", "samples", "years", "datasets_names",
        "subsamples", "skim", "preselections", "categories", "weights_classes", "weights_config",
        "variations_config", "variables", "columns", "save_skimmed_files", "datasets_jsons",
        "datasets_filter", "samples_is_mc",
    }
)


class NotLoadedError(ConfigError, AttributeError):
    """A loaded-only attribute was read before ``Configurator.load()``."""


@dataclass(frozen=True, eq=False)
class ConfiguratorInputs:
    """The constructor arguments exactly as the user passed them (references, never mutated)."""

    workflow: Any
    parameters: Any
    datasets: Any
    skim: Any
    preselections: Any
    categories: Any
    weights: Any
    variations: Any
    variables: Any
    columns: Any = None
    weights_classes: Any = None
    workflow_options: Any = None
    save_skimmed_files: Any = None


def _copy_containers(value: Any) -> Any:
    """Rebuild dicts/lists/tuples recursively; keep every other object (cuts, functions) as is."""
    if isinstance(value, Mapping):
        return {k: _copy_containers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_containers(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_copy_containers(v) for v in value)
    if isinstance(value, set):
        return {_copy_containers(v) for v in value}
    return value


def _check_category_name(name: Any, where: str) -> None:
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: category name {name!r} must be a non-empty string")


def _cut_mapping(mapping: Any, where: str) -> dict[str, tuple[Cut, ...]]:
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{where} must be a dict {{name: [Cut, ...]}}, got {type(mapping).__name__}")
    result = {}
    for name, cuts in mapping.items():
        _check_category_name(name, where)
        result[name] = check_cut_list(cuts, f"{where}[{name!r}]")
    return result


def expand_categories_checked(categories: Any, where: str = "categories") -> dict[str, tuple[Cut, ...]]:
    """``{name: (Cut, ...)}`` from a dict or a selection, every entry checked to be a Cut."""
    if isinstance(categories, StandardSelection):
        result = _cut_mapping(categories.categories, f"{where} (StandardSelection)")
    elif isinstance(categories, CartesianSelection):
        result = _cut_mapping(categories.common_cats, f"{where} (CartesianSelection common_cats)")
        multicuts = categories.multicuts
        if isinstance(multicuts, (str, bytes)) or not isinstance(multicuts, Sequence) or not multicuts:
            raise ConfigError(f"{where} (CartesianSelection): multicuts must be a non-empty list of MultiCut")
        for i, multicut in enumerate(multicuts):
            if not isinstance(multicut, MultiCut):
                raise ConfigError(
                    f"{where} (CartesianSelection) multicuts[{i}] is {type(multicut).__name__}, not a MultiCut"
                )
            check_cut_list(list(multicut.cuts), f"{where} (CartesianSelection) MultiCut {multicut.name!r} cuts")
            if not multicut.cuts:
                raise ConfigError(f"{where} (CartesianSelection) MultiCut {multicut.name!r} has no cuts")
        expanded = categories.expand()
        expected = len(result) + math.prod(len(mc.cuts) for mc in multicuts)
        if len(expanded) != expected:
            names = [name for name in expanded]
            raise ConfigError(
                f"{where} (CartesianSelection): category names collide ({expected} categories expected, "
                f"{len(expanded)} distinct names: {names}); use distinct cuts_names"
            )
        result = expanded
    elif isinstance(categories, Mapping):
        result = _cut_mapping(categories, where)
    else:
        raise ConfigError(
            f"{where} must be a dict {{name: [Cut, ...]}}, a StandardSelection or a CartesianSelection, "
            f"got {type(categories).__name__}"
        )
    if not result:
        raise ConfigError(f"{where} is empty; define at least one category, e.g. {{\"baseline\": [passthrough]}}")
    return result


class Configurator:
    """The analysis definition: workflow, parameters, datasets, cuts, categories, weights,
    variations, histograms and columns (see docs/configuration.md)."""

    def __init__(
        self,
        workflow: type,
        parameters: Mapping[str, Any] | None,
        datasets: Mapping[str, Any],
        skim: Sequence[Cut],
        preselections: Sequence[Cut],
        categories: Any,
        weights: Mapping[str, Any] | None,
        variations: Mapping[str, Any] | None,
        variables: Mapping[str, HistConf],
        columns: Mapping[str, Any] | None = None,
        weights_classes: Sequence[type] | None = None,
        workflow_options: Mapping[str, Any] | None = None,
        save_skimmed_files: str | os.PathLike | None = None,
        *,
        base_dir: str | os.PathLike | None = None,
    ) -> None:
        self._inputs = ConfiguratorInputs(
            workflow=workflow,
            parameters=parameters,
            datasets=datasets,
            skim=skim,
            preselections=preselections,
            categories=categories,
            weights=weights,
            variations=variations,
            variables=variables,
            columns=columns,
            weights_classes=weights_classes,
            workflow_options=workflow_options,
            save_skimmed_files=save_skimmed_files,
        )
        # relative dataset JSON paths resolve against: base_dir, else the folder of the config
        # file being loaded by load_configurator, else the current directory (at construction)
        if base_dir is None:
            base_dir = CONFIG_DIR.get() or Path.cwd()
        self.base_dir: Path = Path(base_dir).expanduser().absolute()
        self.loaded: bool = False

    def __getattr__(self, name: str) -> Any:
        if name in LOADED_ATTRIBUTES:
            raise NotLoadedError(f"Configurator.{name} is available only after cfg.load()")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self) -> str:
        if not self.loaded:
            return f"<Configurator (not loaded) workflow={getattr(self._inputs.workflow, '__name__', '?')}>"
        return (
            f"<Configurator workflow={self.workflow.__name__} datasets={len(self.fileset)} "
            f"samples={self.samples} categories={len(self.categories)} variables={len(self.variables)}>"
        )

    # ------------------------------------------------------------------ loading

    def load(self) -> Configurator:
        """Validate everything and read the fileset; idempotent. Returns ``self``."""
        if self.loaded:
            return self
        inputs = self._inputs
        state: dict[str, Any] = {}

        workflow = inputs.workflow
        if not isinstance(workflow, type):
            raise ConfigError(
                f"workflow must be a processor class (a subclass of pc_run.processor.BaseProcessorABC), "
                f"got {type(workflow).__name__} {workflow!r}"
            )
        state["workflow"] = workflow

        if inputs.parameters is not None and not isinstance(inputs.parameters, Mapping):
            raise ConfigError(f"parameters must be a dict, got {type(inputs.parameters).__name__}")
        state["parameters"] = merge_parameters(default_parameters(), inputs.parameters or {})

        options = inputs.workflow_options
        if options is not None and not isinstance(options, Mapping):
            raise ConfigError(f"workflow_options must be a dict, got {type(options).__name__}")
        state["workflow_options"] = _copy_containers(dict(options or {}))

        state["skim"] = check_cut_list(inputs.skim, "skim")
        state["preselections"] = check_cut_list(inputs.preselections, "preselections")
        categories = expand_categories_checked(inputs.categories)
        check_category_names(categories)
        state["categories"] = categories
        category_names = list(categories)

        state["variables"] = self._check_variables(inputs.variables, category_names)

        registry = register_weight_classes(inputs.weights_classes, BUILTIN_WEIGHTS)

        skimmed = inputs.save_skimmed_files
        if skimmed is not None and not isinstance(skimmed, (str, os.PathLike)):
            raise ConfigError(f"save_skimmed_files must be a folder path/URL or None, got {skimmed!r}")
        state["save_skimmed_files"] = None if skimmed is None else os.fspath(skimmed)

        full_fileset, jsons, dataset_filter, subsample_spec = self._read_datasets(inputs.datasets)
        known_samples = list(dict.fromkeys(entry["metadata"]["sample"] for entry in full_fileset.values()))
        subsample_spec = self._check_subsamples(subsample_spec, known_samples)
        fileset = dataset_filter.apply(full_fileset, source=f"The fileset of {', '.join(map(str, jsons))}")

        weight_entries = weight_names(
            parse_spec(inputs.weights, "weights", "weight names", category_names, known_samples), registry, "weights"
        )
        variations = inputs.variations
        if variations is not None and not isinstance(variations, Mapping):
            raise ConfigError(f'variations must be a dict {{"weights": {{...}}}}, got {type(variations).__name__}')
        variations = variations or {}
        check_keys(variations, VARIATIONS_KEYS, "variations")
        variation_entries = weight_names(
            parse_spec(variations.get("weights"), 'variations["weights"]', "weight names", category_names, known_samples),
            registry,
            "variations",
        )
        column_entries = parse_spec(inputs.columns, "columns", "ColOut objects", category_names, known_samples)
        check_columns(column_entries)

        state.update(
            weights_classes=registry,
            datasets_jsons=jsons,
            datasets_filter={k: list(v) for k, v in vars(dataset_filter).items() if v is not None},
            _known_samples=known_samples,
            _subsample_spec=subsample_spec,
            _weight_entries=weight_entries,
            _variation_entries=variation_entries,
            _column_entries=column_entries,
        )
        state.update(self._derive(fileset, state))
        self.__dict__.update(state)
        self.loaded = True
        return self

    def _check_variables(self, variables: Any, categories: list[str]) -> dict[str, HistConf]:
        if not isinstance(variables, Mapping):
            raise ConfigError(f"variables must be a dict {{name: HistConf([...])}}, got {type(variables).__name__}")
        result = {}
        for name, conf in variables.items():
            if not isinstance(name, str) or not name:
                raise ConfigError(f"variables: histogram name {name!r} must be a non-empty string")
            if not isinstance(conf, HistConf):
                raise ConfigError(
                    f"variables[{name!r}] is {type(conf).__name__} {conf!r}, not a HistConf; "
                    "write HistConf([Axis(field=..., label=..., bins=..., start=..., stop=...)])"
                )
            for attribute in ("only_categories", "exclude_categories"):
                listed = getattr(conf, attribute)
                if listed is None:
                    continue
                if isinstance(listed, str):
                    raise ConfigError(f"variables[{name!r}].{attribute} must be a list of category names, got {listed!r}")
                unknown = [c for c in listed if c not in categories]
                if unknown:
                    raise ConfigError(
                        f"variables[{name!r}].{attribute}: categories {unknown} do not exist; "
                        f"defined categories: {', '.join(categories)}"
                    )
            result[name] = conf
        return result

    def _read_datasets(self, datasets: Any):
        if not isinstance(datasets, Mapping):
            raise ConfigError(
                'datasets must be a dict {"jsons": [...], "filter": {...}, "subsamples": {...}}, '
                f"got {type(datasets).__name__}"
            )
        check_keys(datasets, DATASETS_KEYS, "datasets")
        if "jsons" not in datasets:
            raise ConfigError('datasets has no "jsons": give the list of dataset JSON files')
        jsons = datasets["jsons"]
        if isinstance(jsons, (str, os.PathLike)):
            jsons = [jsons]
        if not isinstance(jsons, (list, tuple)) or not jsons:
            raise ConfigError(f'datasets["jsons"] must be a non-empty list of JSON file paths, got {jsons!r}')
        paths = []
        for i, item in enumerate(jsons):
            if not isinstance(item, (str, os.PathLike)):
                raise ConfigError(f'datasets["jsons"][{i}] is {item!r}, not a file path')
            path = Path(item).expanduser()
            paths.append(path if path.is_absolute() else self.base_dir / path)
        fileset = load_fileset_jsons(paths)
        if not fileset:
            raise DatasetError(f"The dataset JSONs {', '.join(map(str, paths))} hold no datasets")
        dataset_filter = FilesetFilter.from_mapping(datasets.get("filter"), source='datasets["filter"]')
        return fileset, paths, dataset_filter, datasets.get("subsamples")

    @staticmethod
    def _check_subsamples(spec: Any, known_samples: list[str]) -> dict[str, dict[str, tuple[Cut, ...]]]:
        where = 'datasets["subsamples"]'
        if spec is None:
            return {}
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where} must be a dict {{sample: {{subsample: [Cut, ...]}}}}, got {type(spec).__name__}")
        result = {}
        for sample, subsamples in spec.items():
            if sample not in known_samples:
                raise ConfigError(
                    f"{where}: sample {sample!r} does not exist in the fileset; "
                    f"samples in the dataset JSONs: {', '.join(sorted(known_samples))}"
                )
            sample_where = f"{where}[{sample!r}]"
            if isinstance(subsamples, (StandardSelection, CartesianSelection)):
                expanded = expand_categories_checked(subsamples, sample_where)
            else:
                expanded = _cut_mapping(subsamples, sample_where)
            if not expanded:
                raise ConfigError(f"{sample_where} defines no subsample")
            result[sample] = expanded
        return result

    def _derive(self, fileset: dict[str, Any], state: Mapping[str, Any]) -> dict[str, Any]:
        """Everything that depends on the fileset: samples, years and per-sample configs.

        Every fileset a run processes passes here (``load``, ``with_fileset``, ``filter``), so
        this is where a file listed twice is refused."""
        check_unique_files(fileset)
        samples_is_mc: dict[str, bool] = {}
        first_dataset: dict[str, str] = {}
        for dataset, entry in fileset.items():
            meta = entry["metadata"]
            sample, is_mc = meta["sample"], bool(meta["isMC"])
            if sample in samples_is_mc and samples_is_mc[sample] != is_mc:
                raise DatasetError(
                    f"Sample {sample!r} mixes data and MC: dataset {first_dataset[sample]!r} has "
                    f"isMC={samples_is_mc[sample]} but {dataset!r} has isMC={is_mc}; "
                    "give data and MC different sample names"
                )
            samples_is_mc.setdefault(sample, is_mc)
            first_dataset.setdefault(sample, dataset)
        samples = list(samples_is_mc)
        categories = list(state["categories"])
        registry = state["weights_classes"]
        weights_config = resolve_weights(state["_weight_entries"], samples_is_mc, categories, registry)
        variations_config = resolve_variations(
            state["_variation_entries"], samples_is_mc, categories, registry, weights_config
        )
        # the lumi weight needs the luminosity of every year it is applied in
        for dataset, entry in fileset.items():
            meta = entry["metadata"]
            applied = weights_config[meta["sample"]]
            uses_lumi = "lumi" in applied["inclusive"] or any("lumi" in n for n in applied["bycategory"].values())
            if uses_lumi:
                try:
                    lumi_pb(state["parameters"], meta["year"])
                except ConfigError as exc:
                    raise ConfigError(f"weight 'lumi' is applied to dataset {dataset!r}: {exc}") from None
        return {
            "fileset": fileset,
            "samples": samples,
            "samples_is_mc": samples_is_mc,
            "years": sorted({str(entry["metadata"]["year"]) for entry in fileset.values()}),
            "datasets_names": list(fileset),
            "subsamples": {s: subs for s, subs in state["_subsample_spec"].items() if s in samples_is_mc},
            "weights_config": weights_config,
            "variations_config": variations_config,
            "columns": resolve_columns(state["_column_entries"], samples, categories),
        }

    # ------------------------------------------------------------------ queries

    def _require_loaded(self, what: str) -> None:
        if not self.loaded:
            raise NotLoadedError(f"Configurator.{what}() needs a loaded configurator: call cfg.load() first")

    def samples_for_output(self, sample: str) -> list[str]:
        """The sample names in the output for ``sample``: ``sample__subsample`` when it has subsamples."""
        self._require_loaded("samples_for_output")
        if sample not in self.samples_is_mc:
            raise ConfigError(f"sample {sample!r} is not in the fileset; samples: {', '.join(self.samples)}")
        subsamples = self.subsamples.get(sample)
        if not subsamples:
            return [sample]
        return [f"{sample}{SUBSAMPLE_SEPARATOR}{name}" for name in subsamples]

    def is_mc(self, sample: str) -> bool:
        self._require_loaded("is_mc")
        return self.samples_is_mc[sample]

    def lumi_pb_by_year(self) -> dict[str, float]:
        """Integrated luminosity (pb^-1) of every year in the fileset that parameters know."""
        self._require_loaded("lumi_pb_by_year")
        result = {}
        for year in self.years:
            try:
                result[year] = lumi_pb(self.parameters, year)
            except ConfigError as exc:
                log.warning("%s", exc)
        return result

    # ------------------------------------------------------------------ derived configurators

    def with_fileset(self, fileset: Mapping[str, Any]) -> Configurator:
        """A loaded copy working on ``fileset`` (e.g. filtered or limited); ``self`` is untouched."""
        self._require_loaded("with_fileset")
        if not isinstance(fileset, Mapping) or not fileset:
            raise DatasetError("with_fileset() needs a non-empty fileset {dataset: {files, metadata}}")
        normalised = {name: normalise_dataset(name, entry, "with_fileset()") for name, entry in fileset.items()}
        new = copy.copy(self)
        new.__dict__.update(
            parameters=copy.deepcopy(self.parameters),
            workflow_options=copy.deepcopy(self.workflow_options),
            categories=dict(self.categories),
            variables=dict(self.variables),
            weights_classes=dict(self.weights_classes),
        )
        new.__dict__.update(self._derive(normalised, new.__dict__))
        return new

    def filter(
        self,
        years: str | Sequence[str] | None = None,
        samples: str | Sequence[str] | None = None,
        datasets: str | Sequence[str] | None = None,
    ) -> Configurator:
        """A loaded copy keeping only the matching datasets (comma-separated strings accepted)."""
        self._require_loaded("filter")
        filtered = filter_fileset(
            self.fileset, samples=samples, years=years, datasets=datasets, source="The configured fileset"
        )
        return self.with_fileset(filtered)

    # ------------------------------------------------------------------ saving

    def save_config(self, outputdir: str | os.PathLike) -> dict[str, Path]:
        """Write ``config.json`` (readable summary), ``configurator.pkl`` and
        ``parameters_dump.yaml`` into ``outputdir``, atomically; returns their paths."""
        self._require_loaded("save_config")
        return save_configurator(self, outputdir)

    def summary(self) -> dict[str, Any]:
        """The ``config.json`` content as a dict."""
        self._require_loaded("summary")
        return configurator_summary(self)


__all__ = ["CONFIG_DIR", "Configurator", "ConfiguratorInputs", "NotLoadedError", "expand_categories_checked"]
