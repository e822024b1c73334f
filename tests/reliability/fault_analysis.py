"""The pc-run test analysis with faults that the tests switch on through environment variables.

Every fault is real: a worker process SIGKILLs itself (as the OOM killer would), the user's
code raises or opens a correction file that does not exist, a chunk takes time so that the
test can kill or interrupt the run from outside, a chunk fills the disk. Nothing is mocked.

``PC_FAULT_KILL_ONCE=<marker>``: the process running the chunk at entry ``PC_FAULT_AT`` of
  the DY file SIGKILLs itself, the first time only (the marker file remembers it).
``PC_FAULT_KILL_ALWAYS=1``: the same, every time.
``PC_FAULT_RAISE=<attempts file>``: that chunk appends a line to the file, then raises.
``PC_FAULT_CORRECTION=1``: every chunk opens ``corrections/missing_sf.json`` (missing).
``PC_FAULT_SLEEP=<seconds>``: every chunk sleeps that long.
``PC_FAULT_FILL=<path>``: the last DY chunk fills the file system of ``path``.
``PC_FAULT_HIST=1``: the configuration has a histogram of a field the muons do not have.
"""
from __future__ import annotations

from pathlib import Path

from analysis_testlib import CONFIGS, make_analysis

WORKFLOW = '''
import os, signal, time
from workflow_pcrun import MuonJetProcessor


class FaultProcessor(MuonJetProcessor):
    def process_extra_after_skim(self):
        super().process_extra_after_skim()
        meta = self.events.metadata
        here = meta["filename"].endswith("nano_dy.root") and meta["entrystart"] == int(os.environ.get("PC_FAULT_AT", "10"))
        if os.environ.get("PC_FAULT_SLEEP"):
            time.sleep(float(os.environ["PC_FAULT_SLEEP"]))
        if os.environ.get("PC_FAULT_CORRECTION"):
            with open("corrections/missing_sf.json") as stream:
                stream.read()
        if not here:
            return
        marker = os.environ.get("PC_FAULT_KILL_ONCE")
        if marker and not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        if os.environ.get("PC_FAULT_KILL_ALWAYS"):
            os.kill(os.getpid(), signal.SIGKILL)
        attempts = os.environ.get("PC_FAULT_RAISE")
        if attempts:
            with open(attempts, "a") as stream:
                stream.write("attempt\\n")
            raise ValueError("the analysis cannot handle this chunk")
        fill = os.environ.get("PC_FAULT_FILL")
        if fill:
            with open(os.path.join(fill, "filler"), "wb") as stream:
                try:
                    while True:
                        stream.write(b"x" * (1 << 20))
                        stream.flush()
                except OSError:
                    pass
'''


def make_fault_analysis(folder: Path, fileset: dict) -> Path:
    """The test analysis in ``folder`` with ``FaultProcessor`` as its workflow; returns the config path."""
    make_analysis(folder, fileset)
    (folder / "fault_workflow.py").write_text(WORKFLOW)
    text = (CONFIGS / "config_pcrun.py").read_text()
    text = text.replace("from workflow_pcrun import MuonJetProcessor",
                        "from fault_workflow import FaultProcessor as MuonJetProcessor")
    text = text.replace("cfg = Configurator(", (
        "import os\n"
        "if os.environ.get('PC_FAULT_HIST'):\n"
        "    variables['muon_ptt'] = HistConf([Axis(coll='MuonGood', field='ptt', label='x', bins=2, start=0, stop=4)])\n"
        "\ncfg = Configurator("), 1)
    faulty = folder / "config_faults.py"
    faulty.write_text(text)
    return faulty


__all__ = ["make_fault_analysis"]
