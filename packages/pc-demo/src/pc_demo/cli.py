"""``pocket-coffea generate-demo-data``."""
from __future__ import annotations

import click
from rich.console import Console

from pc_core.cli_support import loglevel_option, setup_logging

from .generate import generate_demo_data
from .writer import COMPRESSIONS

@click.command("generate-demo-data")
@click.option("-o", "--outdir", required=True, type=click.Path(file_okay=False), help="Folder for the files and fileset_demo.json.")
@click.option("--seed", default=42, show_default=True, type=click.IntRange(min=0), help="Random seed; same seed, same files.")
@click.option("-n", "--events-per-file", default=20_000, show_default=True, type=click.IntRange(min=1),
              help="Events per MC file; candidate collisions per data file before the trigger.")
@click.option("-f", "--files-per-sample", default=3, show_default=True, type=click.IntRange(min=1), help="Files per MC sample.")
@click.option("--data-files", default=2, show_default=True, type=click.IntRange(min=1), help="Files of the data sample.")
@click.option("--compression", default="lzma", show_default=True, type=click.Choice(list(COMPRESSIONS), case_sensitive=False),
              help="ROOT compression: lzma like production NanoAOD, zstd for speed.")
@click.option("--compression-level", default=None, type=click.IntRange(1, 9),
              help="Compression level [default: 9 for lzma, 5 for zstd, 4 for zlib/lz4].")
@click.option("-j", "--workers", default=None, type=click.IntRange(min=1),
              help="Processes writing files in parallel [default: usable cores, at most 4].")
@click.option("--overwrite", is_flag=True, help="Regenerate even if the folder holds demo data (replacing it).")
@loglevel_option()
def generate_demo_data_command(
    outdir: str, seed: int, events_per_file: int, files_per_sample: int, data_files: int,
    compression: str, compression_level: int | None, workers: int | None, overwrite: bool, loglevel: str,
) -> None:
    """Generate synthetic NanoAOD (DY, ttbar, DoubleMuon data) and the fileset JSON for the demo analysis."""

    setup_logging(loglevel)
    fileset = generate_demo_data(
        outdir, seed=seed, events_per_file=events_per_file, files_per_sample=files_per_sample,
        data_files=data_files, compression=compression, compression_level=compression_level,
        overwrite=overwrite, workers=workers,
    )
    Console().print(f"Demo fileset: [bold]{fileset}[/bold]")
