"""``build-datasets``: a dataset-definition JSON -> fileset JSONs, asking Rucio where files are."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from pc_core.cli_support import loglevel_option, run_cli, setup_logging

from .build import BuildOptions, build_datasets
from .cache import DEFAULT_EXPIRY_SECONDS
from .definition import load_definition, select_keys
from .outputs import OutputOptions, plan_outputs, write_outputs
from .rucio_gateway import DEFAULT_SCOPE, DEFAULT_TIMEOUT, RucioGateway, RucioSettings
from .site_map import load_site_map
from .sites import SORT_MODES, SiteSelection, parse_site_list
from .urls import GLOBAL_REDIRECTOR

log = logging.getLogger(__name__)


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1000
    return f"{size:.1f} PB"


@click.command("build-datasets", help="Build dataset fileset in json format")
@click.option("-cfg", "--dataset-definition", "definition", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Dataset-definition JSON {key: {sample, json_output, files: [{das_names, metadata}]}}")
@click.option("-o", "--outputdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder the relative json_output paths are resolved in (default: the definition's folder)")
@click.option("-k", "--keys", multiple=True, help="Only these keys of the definition (comma separated or repeated)")
@click.option("--overwrite", is_flag=True, help="Replace existing output JSONs instead of extending them")
@click.option("-y", "--split-by-year", is_flag=True, help="One output JSON per year: <json_output>_<year>.json")
@click.option("-p", "--parallelism", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Concurrent Rucio queries / uproot file openings")
@click.option("-as", "--allowlist-sites", multiple=True, help="Use only replicas at these sites")
@click.option("-bs", "--blocklist-sites", multiple=True, help="Never use replicas at these sites")
@click.option("-ps", "--prioritylist-sites", multiple=True, help="Prefer these sites, in this order")
@click.option("-rs", "--regex-sites", default=None, help="Use only sites whose name matches this regex, e.g. 'T[12]_(CH|DE)_.*'")
@click.option("--sort", "sort_mode", type=click.Choice(SORT_MODES), default="priority", show_default=True,
              help="Order of the acceptable sites after the priority list")
@click.option("--seed", type=int, default=None, help="Seed of --sort random (same seed, same choice)")
@click.option("-ir", "--include-redirector", is_flag=True,
              help="Files with no acceptable replica go through the global redirector instead of failing")
@click.option("--redirector", default=GLOBAL_REDIRECTOR, show_default=True, help="Global XRootD redirector")
@click.option("-lp", "--local-prefix", default=None, help="Also write a _local variant: this prefix + LFN (e.g. /eos/cms)")
@click.option("--site-map", default=None, help="Site map (CMS storage.json style or YAML {site: prefix}), path or http(s) URL")
@click.option("--site-map-expiry", type=float, default=DEFAULT_EXPIRY_SECONDS / 3600, show_default=True,
              help="Hours a cached site map stays valid")
@click.option("--rucio-config", type=click.Path(dir_okay=False), default=None,
              help="rucio.cfg to use (default: $RUCIO_CONFIG, else the rucio-clients defaults)")
@click.option("--scope", default=DEFAULT_SCOPE, show_default=True, help="Rucio scope of bare DAS names")
@click.option("--timeout", type=float, default=DEFAULT_TIMEOUT, show_default=True, help="Seconds per Rucio request")
@loglevel_option()
def build_datasets_command(definition: Path, outputdir: Path | None, keys: tuple[str, ...], overwrite: bool,
                           split_by_year: bool, parallelism: int, allowlist_sites: tuple[str, ...],
                           blocklist_sites: tuple[str, ...], prioritylist_sites: tuple[str, ...],
                           regex_sites: str | None, sort_mode: str, seed: int | None, include_redirector: bool,
                           redirector: str, local_prefix: str | None, site_map: str | None, site_map_expiry: float,
                           rucio_config: str | None, scope: str, timeout: float, loglevel: str) -> None:
    setup_logging(loglevel)
    t0 = time.perf_counter()
    requests = select_keys(load_definition(definition), parse_site_list(keys), str(definition))
    selection = SiteSelection(
        allowlist=parse_site_list(allowlist_sites),
        blocklist=parse_site_list(blocklist_sites),
        prioritylist=parse_site_list(prioritylist_sites),
        regex=regex_sites,
        sort=sort_mode,
        seed=seed,
    )
    smap = load_site_map(site_map, max_age=site_map_expiry * 3600) if site_map else None
    gateway = RucioGateway(RucioSettings.from_config(rucio_config, timeout=timeout), scope=scope)
    show = logging.getLogger().getEffectiveLevel() <= logging.INFO
    built = build_datasets(
        requests,
        gateway,
        BuildOptions(selection=selection, include_redirector=include_redirector, redirector=redirector,
                     site_map=smap, parallelism=parallelism, show_progress=show),
    )
    out_options = OutputOptions(
        outputdir=(outputdir or definition.resolve().parent),
        overwrite=overwrite,
        split_by_year=split_by_year,
        local_prefix=local_prefix,
        redirector=redirector,
    )
    written = write_outputs(plan_outputs(built, out_options))

    table = Table(title="build-datasets")
    for column in ("dataset", "files", "nevents", "size", "sites"):
        table.add_column(column, justify="right" if column in ("files", "nevents", "size") else "left")
    for d in built:
        used = sorted({s or "redirector" for s in d.sites})
        table.add_row(d.name, str(len(d.files)), str(sum(d.file_nevents)), _human_bytes(sum(d.file_bytes)), ", ".join(used))
    console = Console(stderr=True)
    console.print(table)
    for path in written:
        console.print(f"wrote {path}")
    log.info("%d datasets in %.1f s with %d Rucio calls", len(built), time.perf_counter() - t0, gateway.calls)


def main() -> None:
    """Console script ``build-datasets``."""
    run_cli(build_datasets_command, prog_name="build-datasets")
