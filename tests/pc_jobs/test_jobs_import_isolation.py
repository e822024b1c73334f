"""pc-jobs installs alone on a submit node: none of its modules imports coffea, dask or pc-run."""
import subprocess
import sys

SCRIPT = r'''
import importlib, pkgutil, sys

BLOCKED = {"coffea", "dask", "distributed", "dask_jobqueue", "parsl", "pc_run"}

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"pc-jobs must not import {name}")

sys.meta_path.insert(0, Block())
import pc_jobs
names = [m.name for m in pkgutil.iter_modules(pc_jobs.__path__)]
for name in names:
    importlib.import_module(f"pc_jobs.{name}")
print(len(names))
'''


def test_every_pc_jobs_module_imports_without_coffea_dask_or_pc_run():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) >= 10  # the modules were really found and imported
