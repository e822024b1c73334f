"""`make-plots` (also `pocket-coffea make-plots`): data/MC plots and an HTML report."""
from __future__ import annotations

import click

from pc_core.cli_support import loglevel_option, run_cli, setup_logging

from .runner import MakePlotsRequest, make_plots
from .tasks import PlotOptions

FORMATS = ("png", "pdf", "svg")


def _split(values: tuple[str, ...]) -> tuple[str, ...]:
    """Options accept repeats and comma-separated lists."""
    return tuple(v.strip() for value in values for v in value.split(",") if v.strip())


@click.command("make-plots", context_settings={"help_option_names": ["--help"]})
@click.option("-inp", "--input-dir", type=click.Path(file_okay=False), default=None,
              help="Output folder of a run (output_all.coffea, or output_*.coffea accumulated)")
@click.option("-i", "--inputfile", "input_files", multiple=True,
              help=".coffea file or glob, repeatable; all are accumulated")
@click.option("-op", "--overwrite-parameters", "style_files", multiple=True, type=click.Path(dir_okay=False),
              help="Plotting-style YAML merged over the defaults, repeatable (later wins)")
@click.option("-o", "--outputdir", default=None, help="Plot folder [default: <input-dir>/plots]")
@click.option("-j", "--workers", default=1, show_default=True, type=int, help="Worker processes")
@click.option("-oc", "--only-cat", multiple=True, help="Category name or regex (full match), repeatable")
@click.option("-oy", "--only-year", multiple=True, help="Year (or year combination) name or regex, repeatable")
@click.option("-oh", "--only-hist", multiple=True, help="Plot histograms matching this regex, repeatable")
@click.option("-e", "--exclude-hist", multiple=True, help="Skip histograms matching this regex, repeatable")
@click.option("-os", "--only-syst", multiple=True, help="Use only these systematics in the band, repeatable")
@click.option("-ns", "--no-syst", is_flag=True, help="MC statistical uncertainty only (no systematic band)")
@click.option("--no-ratio", is_flag=True, help="No data/MC ratio panel")
@click.option("--log-x", is_flag=True, help="Logarithmic x axis")
@click.option("--log-y", is_flag=True, help="Logarithmic y axis (colour scale for 2D)")
@click.option("--density", is_flag=True, help="Normalise each plot to unit area")
@click.option("--format", "formats", multiple=True, default=("png",), show_default=True,
              help="png, pdf, svg; repeatable or comma separated")
@click.option("--no-cutflow", is_flag=True, help="Skip the cutflow plots and tables")
@click.option("--overwrite", "--over", "overwrite", is_flag=True, help="Replace plots in an existing plot folder")
@loglevel_option()
def make_plots_command(input_dir, input_files, style_files, outputdir, workers, only_cat, only_year, only_hist,
                       exclude_hist, only_syst, no_syst, no_ratio, log_x, log_y, density, formats, no_cutflow,
                       overwrite, loglevel):
    """Plot histograms produced by PocketCoffea processors (data/MC stacks, systematics, report)."""
    setup_logging(loglevel)
    formats = _split(formats)
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise click.BadParameter(f"{', '.join(bad) or '(none)'}; accepted: {', '.join(FORMATS)}",
                                 param_hint="--format")
    options = PlotOptions(log_x=log_x, log_y=log_y, density=density, ratio=not no_ratio, syst=not no_syst,
                          only_syst=_split(only_syst), formats=tuple(dict.fromkeys(formats)))
    request = MakePlotsRequest(
        input_dir=input_dir, input_files=tuple(input_files), style_files=tuple(style_files), outputdir=outputdir,
        workers=workers, only_cat=_split(only_cat), only_year=_split(only_year), only_hist=tuple(only_hist),
        exclude_hist=tuple(exclude_hist), options=options, overwrite=overwrite, cutflow=not no_cutflow,
    )
    result = make_plots(request)
    click.echo(f"{result.n_plots} plots in {result.outdir}")
    click.echo(f"Report: {result.index}")


def main() -> None:
    run_cli(make_plots_command, prog_name="make-plots")
