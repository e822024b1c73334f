#!/usr/bin/env bash
# The environment of the peer, PocketCoffea 0.9.13 (coffea 0.7, awkward 1), for
# ../harness.py --peer DIR/bin/python. Only what a local run needs: its grid and site extras
# (xrootd, keras, onnxruntime) are left out; versions pinned where newer ones break it.
set -euo pipefail
dir=${1:?usage: make_env.sh DIR}
python3 -m venv "$dir"
"$dir/bin/pip" install -q "coffea==0.7.29" "awkward>=1.10.3,<2" "vector<1.5.0" "numpy<2" "hist<2.9" \
    "boost-histogram<1.6" "pyarrow<16" "setuptools<71" "correctionlib<2.8.0" mplhep pyaml omegaconf rich click \
    cloudpickle requests psutil parsl law rucio-clients
"$dir/bin/pip" install -q --no-deps "pocket-coffea==0.9.13"
"$dir/bin/python" -c "import pocket_coffea; print('PocketCoffea', pocket_coffea.__version__, 'in $dir')"
