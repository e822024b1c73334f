"""The README's main command: generate demo NanoAOD if absent, run the demo analysis, plot it.

    python3 dev.py demo [--outputdir DIR] [--datadir DIR] [--executor futures] [--scaleout 2]

Each step is the real CLI a user would type; the commands are printed before they run.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "examples" / "dilepton" / "config.py"


def step(title: str, command: list[str], env: dict[str, str]) -> None:
    print(f"\n==> {title}\n$ {shlex.join(command)}", flush=True)
    result = subprocess.run(command, env=env)
    if result.returncode != 0:
        print(f"\nDemo step failed ({title}), exit code {result.returncode}.", file=sys.stderr)
        sys.exit(result.returncode)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datadir", default=str(REPO / "demo-data"), help="where the synthetic NanoAOD goes")
    parser.add_argument("--outputdir", default=str(REPO / "demo-output"), help="where the run output and plots go")
    parser.add_argument("--executor", default="futures")
    parser.add_argument("--scaleout", default="2")
    args = parser.parse_args()

    datadir, outputdir = Path(args.datadir).resolve(), Path(args.outputdir).resolve()
    fileset = datadir / "fileset_demo.json"
    env = dict(os.environ, POCKET_COFFEA_DEMO_FILESET=str(fileset))

    step("Generate synthetic NanoAOD (skipped when already there)", ["pocket-coffea", "generate-demo-data", "-o", str(datadir)], env)
    step(
        "Run the demo analysis",
        ["pocket-coffea", "run", "--cfg", str(CONFIG), "-o", str(outputdir), "-e", args.executor, "-s", args.scaleout,
         "--overwrite"],  # the demo always processes afresh (a plain rerun would resume or say "Nothing to do")
        env,
    )
    plots = outputdir / "plots"
    step("Make the data/MC plots", ["pocket-coffea", "make-plots", "-inp", str(outputdir), "-o", str(plots), "--overwrite", "-j", args.scaleout], env)

    print("\nDemo finished.")
    print(f"  output:  {outputdir / 'output_all.coffea'}")
    print(f"  report:  {outputdir / 'processing_report.json'}")
    print(f"  plots:   {plots / 'index.html'}")


if __name__ == "__main__":
    main()
