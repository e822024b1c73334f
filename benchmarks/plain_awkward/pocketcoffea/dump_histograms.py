"""Dump every histogram of a ``.coffea`` output as plain numpy arrays, so that outputs made
by different versions of coffea/hist (pocket-coffea's and PocketCoffea 0.9's) can be compared
bin for bin. Runs under either interpreter.

    python dump_histograms.py OUTPUT.coffea DEST.npz
"""
import sys

import numpy as np
from coffea.util import load


def histograms(output: dict) -> dict:
    """{"variable/sample/dataset/category/variation/values|variances": array}, flow bins included,
    and {"sum_genweights/dataset": the sum of genWeight}."""
    arrays = {f"sum_genweights/{dataset}": np.float64(value) for dataset, value in output["sum_genweights"].items()}
    for variable, by_sample in output["variables"].items():
        for sample, by_dataset in by_sample.items():
            for dataset, histogram in by_dataset.items():
                for category in histogram.axes["cat"]:
                    for variation in histogram.axes["variation"]:
                        h = histogram[{"cat": category, "variation": variation}]
                        key = f"{variable}/{sample}/{dataset}/{category}/{variation}"
                        arrays[f"{key}/values"] = h.values(flow=True)
                        arrays[f"{key}/variances"] = h.variances(flow=True)
    return arrays


if __name__ == "__main__":
    np.savez(sys.argv[2], **histograms(load(sys.argv[1])))
