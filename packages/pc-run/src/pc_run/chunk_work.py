"""coffea's Runner, with the input file kept open from one chunk to the next and the
branches the analysis reads fetched in one go: ``process_chunk`` is what every executor
runs for one chunk, in whichever process gets it.

coffea's work function opens the input file, parses its TTree (every TBranch, in Python)
and closes it again for every chunk, then derives the NanoEvents form from every branch's
interpretation. That costs ~0.1 s for a 170-branch tree and far more for a production
NanoAOD with ~1,500 branches, every chunk. ``process_chunk`` keeps the last file a
process opened (``OpenInputFile``), with its trees and their forms (``TreeLayout``), and
reuses them while the next chunk comes from the same, unchanged file.

NanoEvents reads each branch lazily, one uproot call per branch when the analysis first
touches it. The process remembers which branches the analysis touched in its earlier chunks
and has the next chunks read those together, in one ``TTree.arrays`` call (coffea's
``preload``), as a plain uproot read would; a branch touched for the first time later is
still read lazily, so nothing is ever missing. A failure is raised as ``ChunkPhaseError``
naming the phase (open, build, process), so that the scheduler can tell a read failure of
the input file from an error of the analysis.
"""
from __future__ import annotations

import importlib
import itertools
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass

import uproot
from coffea import processor as coffea_processor
from coffea.nanoevents import NanoEventsFactory
from coffea.nanoevents.factory import _OnlySliceableAs
from coffea.nanoevents.mapping.uproot import TrivialUprootOpener, UprootSourceMapping

from pc_run.fast_paths import with_fast_paths
from pc_run.read_ahead import ReadAheadProcess, ReadShare


def _signature(filename: str, timeout, uproot_options: dict) -> tuple:
    """What must not change for an open file to be reused: the options, and a local file's stat."""
    try:
        stat = os.stat(filename)
        identity = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    except OSError:  # a URL (root://, https://): storage files are immutable once written
        identity = None
    return (filename, identity, timeout, repr(sorted(uproot_options.items())))


@dataclass(frozen=True)
class TreeLayout:
    """What NanoEvents needs of a TTree besides its data, the same for every chunk of it."""

    tree: object
    typenames: dict
    base_form_json: str  # coffea's base form; every chunk gets its own copy (the schema edits it)

    @classmethod
    def of(cls, file, treename: str, iteritems_options: dict) -> TreeLayout:
        tree = file[treename]
        base_form = UprootSourceMapping._extract_base_form(tree, iteritems_options=iteritems_options)
        return cls(tree, tree.typenames(), json.dumps(base_form))

    def entry_range(self, item) -> tuple[int, int]:
        return max(item.entrystart, 0), min(item.entrystop, self.tree.num_entries)

    def read(self, preload, start: int, stop: int) -> dict:
        """The ``preload`` branches of entries ``start``-``stop``, read and decompressed in one call."""
        return self.tree.arrays(filter_branch=preload, entry_start=start, entry_stop=stop, ak_add_doc=True, how=dict)

    def weights(self, branches: frozenset) -> dict[str, int]:
        """The compressed bytes of each of ``branches`` in this tree (0 for a branch it does not have)."""
        return {name: (self.tree[name].compressed_bytes if name in self.tree else 0) for name in branches}

    def events(self, item, schema, metadata: dict, uproot_options: dict, preload, access_log: list, buffer_cache,
               arrays: dict | None = None):
        """The chunk's NanoEvents (virtual), built as ``NanoEventsFactory.from_root`` builds them.

        ``arrays``: the ``preload`` branches of the chunk, already read (by the prefetch)."""
        tree = self.tree
        start, stop = self.entry_range(item)
        partition_key = (str(tree.file.uuid), tree.object_path, f"{start}-{stop}")
        preloaded = None
        if preload is not None:
            if arrays is None:
                arrays = self.read(preload, start, stop)
            preloaded = {name: _OnlySliceableAs(array, slice(start, stop)) for name, array in arrays.items()}
        mapping = UprootSourceMapping(
            TrivialUprootOpener({partition_key[0]: tree.file.file_path}, uproot_options),
            start,
            stop,
            cache={},
            access_log=access_log,
            file_handle=tree.file,
            use_ak_forth=True,
            virtual=True,
            preloaded_arrays=preloaded,
            buffer_cache=buffer_cache,
        )
        mapping.preload_column_source(partition_key[0], partition_key[1], tree)
        base_form = json.loads(self.base_form_json)
        base_form["typenames"] = self.typenames
        return NanoEventsFactory._from_mapping(mapping, partition_key, base_form, schema, metadata, mode="virtual").events()


class OpenInputFile:
    """The one input file this process (thread) has open, reused by the chunks that follow in it.

    One per process (``INPUT_FILE``), holding one handle per thread (a multi-threaded Dask
    worker runs several chunks at once): a worker's chunks arrive one at a time and mostly
    in file order, so one handle gives nearly every reuse there is while bounding what is
    held. A failing chunk drops the handle, so coffea's retry reopens the file from scratch.
    """

    def __init__(self) -> None:
        self._local = threading.local()
        # branches read by earlier chunks, per (processor class, tree): preloaded from then on
        self.branches_read: dict[tuple[str, str], set[str]] = {}

    def _read_ahead(self) -> ReadAheadProcess:
        reader = getattr(self._local, "reader", None)
        if reader is None:
            reader = self._local.reader = ReadAheadProcess()
        return reader

    def start_read_ahead(self, target: tuple, treename: str) -> None:
        """Start the read-ahead helper, unless ``run_command`` started it early (``adopt_read_ahead``),
        and while the first chunk runs have it open ``target``'s file (file, start, stop: the next
        chunk), parse its tree and read each branch the chunk touches (``learn``), with the open
        file's options."""
        _, timeout, uproot_options = self._local.open_args
        reader = self._read_ahead()
        reader.start()
        reader.prepare(target[0], timeout, uproot_options, treename, *target[1:])

    def adopt_read_ahead(self, reader: ReadAheadProcess) -> None:
        """Use ``reader`` (started early by the caller) as this thread's read-ahead helper."""
        current = getattr(self._local, "reader", None)
        if current is not None and current is not reader:
            current.close()
        self._local.reader = reader

    def learn(self, branches) -> None:
        """The first chunk touched ``branches``: the helper reads them for the next chunk now."""
        self._read_ahead().learn(branches)

    def _read_share(self) -> ReadShare:
        share = getattr(self._local, "share", None)
        if share is None:
            share = self._local.share = ReadShare()
        return share

    def prefetch(self, layout: TreeLayout, filename: str, treename: str, branches: frozenset, start: int,
                 stop: int, learnt: bool = False) -> None:
        """Have the read-ahead helper read its share (``ReadShare``) of ``branches`` of entries
        ``start``-``stop`` of ``treename`` in ``filename`` (what the next chunk will preload), with
        the options of the open file, while this chunk is analysed. ``layout``: the open file's
        tree, whose branch sizes stand for the next file's. ``learnt``: the helper read them while
        the first chunk learnt them (``learn``): it hands them all over."""
        _, timeout, uproot_options = self._local.open_args
        if learnt:
            helper, own, share = branches, frozenset(), None  # no share to rebalance from this one
        else:
            helper, own, share = self._read_share().split(layout.weights(branches))
        if self._read_ahead().submit(filename, timeout, uproot_options, treename, helper, start, stop):
            key = _signature(filename, timeout, uproot_options)
            self._local.prefetched = ((key, treename, start, stop, branches), own, share)

    def take_prefetched(self, layout: TreeLayout, treename: str, start: int, stop: int,
                        branches: frozenset) -> dict | None:
        """The arrays of ``branches`` for exactly this range of the open file: the helper's share as
        it read them ahead, the rest read here; None if nothing was read ahead for this range, or
        the helper failed (the chunk reads the branches itself and meets the error there)."""
        prefetched = getattr(self._local, "prefetched", None)
        self._local.prefetched = self._local.timing = None
        if prefetched is None or prefetched[0] != (self._local.key, treename, start, stop, branches):
            return None  # nothing asked, or another chunk came: the answer is dropped with the next request
        _, own, share = prefetched
        began = time.perf_counter()
        # this process's share first, while the helper still reads its own
        arrays = layout.read(lambda branch: branch.name in own, start, stop) if own else {}
        own_read = time.perf_counter() - began
        reader = self._read_ahead()
        ahead = reader.take()
        if ahead is None:
            return None
        arrays.update(ahead)
        if share is not None:
            self._local.timing = (time.perf_counter() - began - own_read, own_read, reader.last_seconds, share)
        return arrays

    def chunk_done(self, seconds: float) -> None:
        """A chunk that took prefetched arrays ended after ``seconds``: rebalance the read share."""
        timing = getattr(self._local, "timing", None)
        self._local.timing = None
        if timing is not None:
            waited, own_read, helper_seconds, share = timing
            self._read_share().update(helper_seconds, share, seconds - waited - own_read)

    def drop_prefetch(self) -> None:
        """Forget the prefetch (its answer, if one is coming, is waited for and dropped)."""
        self._local.prefetched = None
        reader = getattr(self._local, "reader", None)
        if reader is not None:
            reader.discard()

    def get(self, filename: str, timeout, uproot_options: dict):
        key = _signature(filename, timeout, uproot_options)
        file = getattr(self._local, "file", None)
        if key != getattr(self._local, "key", None) or file is None or file.closed:
            self._close()  # the read-ahead of this next file, if one was asked for, stays
            # no array cache unless asked for: chunks never read the same entries twice
            options = {"array_cache": None, **uproot_options}
            self._local.file = uproot.open({filename: None}, timeout=timeout, **options)
            self._local.key, self._local.open_args = key, (filename, timeout, uproot_options)
        return self._local.file

    def tree(self, treename: str, iteritems_options: dict) -> TreeLayout:
        """The layout of ``treename`` in the file ``get`` returned last, parsed once per file."""
        trees = self._local.trees  # emptied by _close(), which every (re)open goes through
        key = (treename, repr(sorted(iteritems_options.items())))
        if key not in trees:
            trees[key] = TreeLayout.of(self._local.file, treename, iteritems_options)
        return trees[key]

    def release(self) -> None:
        """Close the file and drop its read-ahead (a failed chunk: its retry starts afresh)."""
        self.drop_prefetch()
        self._close()

    def _close(self) -> None:
        file = getattr(self._local, "file", None)
        if file is not None:
            try:
                file.close()
            except Exception:  # noqa: BLE001 - a handle whose server died cannot always be closed
                pass
        self._local.key, self._local.file, self._local.trees = None, None, {}

    def forget(self) -> None:
        """Release this thread's file, its read-ahead helper, its read share and the branches learnt
        (the end of a run)."""
        self.release()
        reader = getattr(self._local, "reader", None)
        if reader is not None:
            reader.close()
        self._local.reader = self._local.share = None
        self.branches_read.clear()


# Per-process by nature (an open file cannot be shared between processes); run_fileset
# releases it at the end of every run, and worker processes release it when they exit.
INPUT_FILE = OpenInputFile()


def import_chunk_modules(schema) -> None:
    """Import what a process's first chunk would otherwise import lazily: the schema's
    behaviour modules and ``numpy.ma`` (awkward's ``from_numpy`` needs it). Done once in the
    main process, before forked workers would each spend the time on their first chunk."""
    with_fast_paths(schema).behavior()
    importlib.import_module("numpy.ma")


def order_for_workers(chunks: list, workers: int) -> list:
    """The chunks in an order that hands each of ``workers`` workers whole files.

    A pool gives the next chunk to whichever worker is free, in submission order. Files are
    dealt to ``workers`` lanes (file i to lane i % workers) and the lanes are interleaved,
    so with chunks of similar duration a worker's next chunk comes from the file it has
    open (``OpenInputFile``) instead of every worker opening every file. One worker: the
    chunks keep their order.
    """
    if workers <= 1:
        return list(chunks)
    by_file: dict[tuple[str, str], list] = {}
    for chunk in chunks:
        by_file.setdefault((chunk.dataset, chunk.filename), []).append(chunk)
    lanes: list[list] = [[] for _ in range(workers)]
    for index, file_chunks in enumerate(by_file.values()):
        lanes[index % workers].extend(file_chunks)
    ordered = []
    for round_of_chunks in itertools.zip_longest(*lanes):
        ordered.extend(chunk for chunk in round_of_chunks if chunk is not None)
    return ordered


# usermeta key of a chunk planned from the fileset's event counts, without opening its file:
# the count the fileset declares, checked against the file when the chunk reads it
DECLARED_ENTRIES = "pc_declared_entries"


class EntryCountMismatch(Exception):
    """The fileset declares a number of events (``nevents``, ``file_nevents``) that is not the file's."""


@dataclass(frozen=True)
class ReadChunkOutput:
    """The output of a chunk planned without opening its file, with the file's ROOT UUID as read
    (the ledger identifies files by it, as when preprocessing opened the file)."""

    output: object
    fileuuid: bytes


def _metadata(item) -> dict:
    metadata = {
        "dataset": item.dataset,
        "filename": item.filename,
        "treename": item.treename,
        "entrystart": item.entrystart,
        "entrystop": item.entrystop,
        "fileuuid": str(uuid.UUID(bytes=item.fileuuid)) if len(item.fileuuid) > 0 else "",
    }
    if item.usermeta is not None:
        metadata.update(item.usermeta)
        metadata.pop(DECLARED_ENTRIES, None)
    return metadata


class ChunkPhaseError(Exception):
    """An exception of one phase of a chunk: ``open`` (the input file), ``build`` (its tree and
    the NanoEvents) or ``process`` (the user's processor); ``original`` is what was raised."""

    def __init__(self, phase: str, original: BaseException):
        super().__init__(f"{phase}: {type(original).__name__}: {original}")
        self.phase = phase
        self.original = original


class _LearningLog(list):
    """coffea's access log of a first chunk: each branch it touches (logged just before it is
    read) goes to the read-ahead helper at once, which reads it for the next chunk meanwhile."""

    def __init__(self, learn) -> None:
        super().__init__()
        self._learn = learn

    def append(self, access) -> None:
        super().append(access)
        self._learn([access.branch])


def _read_ahead_target(layout: TreeLayout, item, start: int, stop: int, following) -> tuple | None:
    """(file, first entry, stop entry) of the chunk this process most likely runs next:
    ``following`` when the caller knows it (iterative runs its queue in order), else the next
    entries of the same file, as many (coffea cuts a file into equal chunks, the last one
    shorter; a futures worker mostly gets its file's next chunk, ``order_for_workers``)."""
    if following is not None:
        if following.treename != item.treename:
            return None
        return following.filename, following.entrystart, following.entrystop
    end = layout.tree.num_entries
    if stop >= end or stop <= start:
        return None
    return item.filename, stop, min(end, stop + (stop - start))


def process_chunk(item, processor_instance, schema, timeout=60, uproot_options=None, iteritems_options=None,
                  read_ahead_from: int | None = None, following=None):
    """Run ``processor_instance`` on one chunk (a coffea ``WorkItem``) in this process.

    The input file stays open for the next chunk of the same file; the branches learnt
    from earlier chunks are preloaded. A failure is raised as ``ChunkPhaseError`` naming
    the phase, after dropping the open file so that a retry starts afresh.

    ``read_ahead_from``: for chunks of at least this many entries (None: never), while the
    analysis runs, a helper process (``read_ahead``) reads and decompresses the learnt branches
    of the chunk this process runs next (``following``, a ``WorkItem``, when the caller knows it;
    else the next entries of the same file: ``_read_ahead_target``), which that chunk takes if it
    is that range, so reading chunk N+1 overlaps the analysis of chunk N on another core. The
    arrays are those the chunk would read itself: the outputs are identical with or without it.
    """
    began = time.perf_counter()
    uproot_options = dict(uproot_options or {})
    iteritems_options = dict(iteritems_options or {})
    try:
        INPUT_FILE.get(item.filename, timeout, uproot_options)
    except Exception as exc:
        INPUT_FILE.release()
        raise ChunkPhaseError("open", exc) from exc
    learnt = INPUT_FILE.branches_read.setdefault((type(processor_instance).__qualname__, item.treename), set())
    preload = item.preload
    known = None
    if preload is None and learnt:
        known = frozenset(learnt)
        preload = lambda branch: branch.name in known  # noqa: E731 - coffea's preload takes a predicate
    prefetching = False
    accessed: list = []  # coffea's access log: the branches the analysis touched
    phase = "build"
    try:
        layout = INPUT_FILE.tree(item.treename, iteritems_options)
        declared = (item.usermeta or {}).get(DECLARED_ENTRIES)
        if declared is not None and layout.tree.num_entries != declared:
            phase = "process"  # not a read failure: the fileset is wrong, retrying or skipping cannot fix it
            raise EntryCountMismatch(
                f"input file {item.filename} of dataset {item.dataset!r} has {layout.tree.num_entries} entries in its "
                f"{item.treename!r} tree, but the fileset declares {declared} (metadata 'file_nevents', or 'nevents' of a "
                "one-file dataset): correct or remove the count in the fileset"
            )
        start, stop = layout.entry_range(item)
        target = None
        if read_ahead_from is not None and stop - start >= read_ahead_from:
            target = _read_ahead_target(layout, item, start, stop, following)
        if target is not None and known is None:  # the first chunk: it learns the branches, the helper reads them ahead
            INPUT_FILE.start_read_ahead(target, item.treename)
            accessed = _LearningLog(INPUT_FILE.learn)
        arrays = INPUT_FILE.take_prefetched(layout, item.treename, start, stop, known) if known is not None else None
        events = layout.events(item, with_fast_paths(schema), _metadata(item), uproot_options, preload, accessed, None,
                               arrays)
        del arrays
        if target is not None and known is not None:
            INPUT_FILE.prefetch(layout, target[0], item.treename, known, *target[1:])
            prefetching = True
        phase = "process"
        if isinstance(processor_instance, coffea_processor.ProcessorABC):
            out = processor_instance.process(events)
        else:
            out = processor_instance(events)
    except Exception as exc:
        INPUT_FILE.release()
        raise ChunkPhaseError(phase, exc) from exc
    learnt.update(access.branch for access in accessed)
    if target is not None and not prefetching and item.preload is None and learnt:
        # the first chunk of a process: the helper read the branches as it touched them
        INPUT_FILE.prefetch(layout, target[0], item.treename, frozenset(learnt), *target[1:], learnt=True)
    INPUT_FILE.chunk_done(time.perf_counter() - began)
    if out is None:
        raise ChunkPhaseError("process", ValueError(
            "process() returned None; it must return the chunk's output (an accumulator)"))
    if not item.fileuuid:
        return ReadChunkOutput(out, bytes(layout.tree.file.fUUID))
    return out
