"""PocketCoffea 0.9.13's ``pocket-coffea`` command, with one stand-in: CVMFS.

PocketCoffea resolves its default correction files under ``/cvmfs/cms-griddata.cern.ch``
when its default parameters load (on import of its CLI), which only a real site has. The
benchmark analysis uses none of those files, so the ``cvmfs`` resolver gives paths under a
folder that does not exist (PocketCoffea resolves all its parameters when it saves them;
opening any of those files would fail); everything else is PocketCoffea as installed.

    python run_peer.py run --cfg config.py -o OUT -e iterative -c 100000
"""
import sys

from omegaconf import OmegaConf
from pocket_coffea.parameters import defaults


def _no_cvmfs(group_tags=None):
    def resolver(period, group, file, tag=None):
        return f"/no-cvmfs-on-this-machine/{group}/{period}/{tag or 'latest'}/{file}"

    OmegaConf.register_new_resolver("cvmfs", resolver, replace=True)


defaults.setup_cvmfs_resolver = _no_cvmfs

from pocket_coffea.__main__ import cli  # noqa: E402

sys.exit(cli())
