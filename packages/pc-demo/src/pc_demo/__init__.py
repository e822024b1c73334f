"""Synthetic NanoAOD for the demo analysis: Drell-Yan, ttbar dilepton and DoubleMuon "data".

The demo must run on a laptop without grid access, yet exercise everything a real analysis
does: NanoAOD branch names and types, jagged collections with ``n<Collection>`` counters,
negative generator weights, a ``Runs`` tree with the sums of weights, LZMA compression.
So this module simulates the physics with numpy (a Breit-Wigner Z peak, a ttbar cascade
t -> W b -> l nu b, detector resolution, trigger turn-ons) and writes the result with
uproot. Everything is drawn from one ``numpy.random.Generator`` per file, seeded from
``(seed, sample, file)``, so a seed always gives identical files.

The "data" is a fresh draw of the same two processes mixed by cross-section and kept only
when the double-muon trigger fired (as in the DoubleMuon primary dataset); its equivalent
integrated luminosity is ``candidates / (xsec_DY + xsec_ttbar)`` and is written to the
fileset metadata as ``lumi_pb``. See docs/demo-data.md.
"""
from __future__ import annotations

from .generate import default_workers, equivalent_luminosity_pb, generate_demo_data
from .samples import DATA, DY, FILESET_NAME, MANIFEST_NAME, SAMPLES, TTBAR, YEAR, DemoDataError, DemoDataParameters
from .writer import COMPRESSIONS, NanoLZMA, write_nanoaod

__all__ = [
    "COMPRESSIONS", "DATA", "DY", "FILESET_NAME", "MANIFEST_NAME", "SAMPLES", "TTBAR", "YEAR", "DemoDataError",
    "DemoDataParameters", "NanoLZMA", "default_workers", "equivalent_luminosity_pb", "generate_demo_data",
    "write_nanoaod",
]
