"""``from pocket_coffea.executors.executors_base import ExecutorFactoryABC, IterativeExecutorFactory, ...``

The base class lives in pc-core and the local factories in pc-run; this module keeps the
import path of the PocketCoffea documentation working for custom executor modules.
"""
from pc_core.executors import ExecutorFactoryABC
from pc_run.executors import DaskExecutorFactory, FuturesExecutorFactory, IterativeExecutorFactory

__all__ = ["ExecutorFactoryABC", "IterativeExecutorFactory", "FuturesExecutorFactory", "DaskExecutorFactory"]
