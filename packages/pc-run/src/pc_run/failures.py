"""Why a chunk failed: its input file could not be read, or the analysis is wrong.

The chunk scheduler catches the exception of each phase of a chunk and hands the original
exception (not coffea's wrapper) to ``classify_chunk_failure``:

- ``"open"``: ``uproot.open`` of the input file. Always a read failure;
- ``"build"``: reading the TTree and building NanoEvents;
- ``"process"``: the user's ``process(events)``, during which NanoEvents reads branches
  lazily, so read errors of the input file (a corrupt basket, a server dying) surface here
  too, mixed with the analysis' own bugs.

A ``"read"`` failure is retried, then skipped or fatal per ``--skip-bad-files``; its ``kind``
is a ``pc_core.read_errors`` kind (``corrupt-file``, ``dead-server``, ``dns``, ...; a read
failure none of them names is ``other-io``). An ``"analysis"`` failure (the user's code or
configuration) is never retried nor skipped: the run stops and shows it once.

In build/process, a failure is a read failure only when it arose from reading *this*
input file: uproot could not deserialise or decompress a basket, or the exception was
raised inside uproot's I/O (sources, decompression, deserialisation) or fsspec/XRootD
while reading it. A missing branch (``uproot.KeyInFileError``) is the analysis' (the file
lacks what the configuration reads: deterministic, retrying cannot help), and so is any
failure to read *another* file (``open("corrections/x.json")``, ``uproot.open("sf.root")``
inside ``process``): the file a failing uproot read concerns is taken from the exception
and from the locals of uproot's and fsspec's frames.

Everything is computed once, from the exception, into plain strings: a ``ChunkFailure``
pickles cheaply and crosses process boundaries (its exception does not need to).
"""
from __future__ import annotations

import importlib.util
import os
import re
import sysconfig
import traceback as _traceback
from dataclasses import asdict, dataclass, fields
from types import TracebackType
from urllib.parse import urlparse

from pc_core.read_errors import (
    CORRUPT_FILE,
    OTHER,
    OTHER_IO,
    classify_read_error,
    exception_chain,
    is_corrupt_exception,
    read_error_hint,
)

READ = "read"
ANALYSIS = "analysis"
CATEGORIES = (READ, ANALYSIS)
PHASES = ("open", "build", "process")

_MESSAGE_LIMIT = 400
# pyxrootd puts the repr of a bound method in its messages: "Failed to submit <bound method
# File.open of <XRootD.client.file.File object at 0x7f..>> request"; keep just "File.open"
_BOUND_METHOD = re.compile(r"<bound method (\S+) of <[^<>]*>>")
_AWKWARD_NOTE = re.compile(r"\n\s*This error occurred while (calling|attempting)", re.S)
_AZIMUTHAL = re.compile(r"(?P<name>\w+?)Array: missing azimuthal coordinates")
_REQUIRED_FIELD = re.compile(r"(?P<name>\w+?)Array requires the '(?P<field>\w+)' field")
_VECTOR_AZIMUTHAL = re.compile(r"does not have azimuthal coordinates \([^)]*\): (?P<fields>.*)$", re.S)
_NOT_COLLECTIONS = ("Candidate", "Vector", "Lorentz", "TwoVector", "ThreeVector")


@dataclass(frozen=True)
class ChunkFailure:
    """Why one chunk failed, as plain strings (picklable, JSON-able)."""

    category: str  # "read" (the input file could not be read) or "analysis" (the user's code or configuration)
    kind: str  # "read": a pc_core.read_errors kind; "analysis": the exception type name
    message: str  # one line: "KeyError: 'Muon_pt2'", "corrupt-file: zlib.error: ... (basket 0 of branch Muon_pt)"
    user_frame: str | None  # "path/to/module.py:123 in function": the deepest frame of the user's code, if any
    traceback: str  # the whole formatted traceback (for run.log)
    branch: str | None = None  # the branch whose basket could not be read (read failures), or the missing branch

    @property
    def is_read(self) -> bool:
        return self.category == READ

    @property
    def hint(self) -> str:
        """What the user can do about a read failure (empty for analysis failures)."""
        return read_error_hint(self.kind) if self.category == READ else ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ChunkFailure:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


# --- where frames come from -------------------------------------------------------------

def _package_dirs(*names: str) -> tuple[str, ...]:
    dirs = []
    for name in names:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        for location in (spec.submodule_search_locations or []) if spec else []:
            dirs.append(os.path.join(location, ""))
    return tuple(dirs)


_OUR_DIRS = _package_dirs("pc_run", "pc_core", "pc_jobs", "pc_datasets", "pc_plots", "pocket_coffea")
_STDLIB_DIRS = tuple(
    os.path.join(d, "") for d in {sysconfig.get_paths().get("stdlib"), os.path.dirname(os.__file__)} if d
)
_UPROOT_DIRS = _package_dirs("uproot")
_UPROOT_IO = tuple(
    os.path.join(d, sub)
    for d in _UPROOT_DIRS
    for sub in ("source" + os.sep, "compression.py", "deserialization.py", "reading.py", os.path.join("models", "TBasket.py"))
)
_IO_LIBRARY_DIRS = _package_dirs("fsspec", "fsspec_xrootd", "XRootD", "pyxrootd", "aiohttp")
_READ_DIRS = _UPROOT_IO + _IO_LIBRARY_DIRS  # where a failure to read a file is raised
_LOOK_FOR_FILES = _UPROOT_DIRS + _IO_LIBRARY_DIRS  # frames whose locals say which file is being read


def _is_library(path: str) -> bool:
    return "site-packages" in path or "dist-packages" in path


def _is_stdlib(path: str) -> bool:
    return path.startswith(_STDLIB_DIRS) and not _is_library(path)


def _is_user(path: str) -> bool:
    return not (path.startswith("<frozen") or _is_library(path) or _is_stdlib(path) or path.startswith(_OUR_DIRS))


def _frames(tb: TracebackType | None):
    """(frame, line number) from the outermost to the deepest."""
    while tb is not None:
        yield tb.tb_frame, tb.tb_lineno
        tb = tb.tb_next


def _raised_while_reading(exc: BaseException) -> bool:
    """The deepest frame outside the standard library (socket, http.client, ssl, ...) is uproot's I/O,
    fsspec or XRootD: the exception is a failure to read a file, not to compute."""
    for frame, _ in reversed(list(_frames(exc.__traceback__))):
        path = frame.f_code.co_filename
        if _is_stdlib(path):
            continue
        return path.startswith(_READ_DIRS)
    return False


def _user_frame(chain: list[BaseException]) -> str | None:
    """The deepest frame of the user's code, looked for from the root cause outwards."""
    for exc in reversed(chain):
        found = None
        for frame, line in _frames(exc.__traceback__):
            if _is_user(frame.f_code.co_filename):
                found = (frame.f_code.co_filename, line, frame.f_code.co_name)
        if found:
            path, line, function = found
            try:
                relative = os.path.relpath(path)
                path = path if relative.startswith("..") else relative
            except ValueError:  # another drive (Windows)
                pass
            return f"{path}:{line} in {function}"
    return None


# --- which file a failure concerns ------------------------------------------------------

def _file_key(path: str) -> str:
    """Comparable spelling of a file: a URL's path, or a local file's absolute path."""
    path = str(path)
    if path.startswith("file://"):
        path = path[len("file://"):]
    if "://" in path:
        path = urlparse(path).path
    else:
        path = os.path.abspath(path)
    return re.sub(r"/{2,}", "/", path)


def _same_file(a: str, b: str) -> bool:
    try:
        return _file_key(a) == _file_key(b)
    except (TypeError, ValueError):
        return False


def _path_of(value) -> str | None:
    """The file an uproot/fsspec object reads (a source, a chunk, a ReadOnlyFile, a TBranch...)."""
    for chain in (("file_path",), ("_file_path",), ("source", "file_path"), ("_source", "file_path"),
                  ("file", "file_path"), ("_file", "file_path")):
        current = value
        try:
            for attribute in chain:
                current = getattr(current, attribute, None)
                if current is None:
                    break
        except Exception:  # noqa: BLE001 - an object that cannot say which file it reads says nothing
            current = None
        if isinstance(current, (str, os.PathLike)):
            return os.fspath(current)
    return None


def _files_read(chain: list[BaseException]) -> list[str]:
    """Every file the failing reads concern: from the exceptions and the locals of uproot's/fsspec's frames."""
    files: list[str] = []
    for exc in chain:
        for attribute in ("file_path", "filename"):
            value = getattr(exc, attribute, None)
            if isinstance(value, (str, os.PathLike)):
                files.append(os.fspath(value))
        for frame, _ in _frames(exc.__traceback__):
            if not frame.f_code.co_filename.startswith(_LOOK_FOR_FILES):
                continue
            local = frame.f_locals
            code = frame.f_code
            # "path" is a file only in fsspec/XRootD and in uproot.open; elsewhere in uproot it can be an object path
            names = ("file_path", "path", "urlpath") if (
                code.co_filename.startswith(_IO_LIBRARY_DIRS) or (code.co_name == "open" and code.co_filename.endswith("reading.py"))
            ) else ("file_path",)
            for name in names:
                value = local.get(name)
                if isinstance(value, dict):  # uproot.open({path: object_path})
                    files.extend(str(k) for k in value)
                elif isinstance(value, (str, os.PathLike)) and os.fspath(value):
                    files.append(os.fspath(value))
            for name in ("self", "source", "chunk", "file", "branch"):
                if name in local:
                    path = _path_of(local[name])
                    if path:
                        files.append(path)
    return files


def _names_input(exc: BaseException, filename: str) -> bool:
    return bool(filename) and filename in str(exc)


# --- one-line messages --------------------------------------------------------------------

def _shorten(text: str, limit: int = _MESSAGE_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def type_name(exc: BaseException) -> str:
    """The exception's type name, with its module where the name alone says nothing (``zlib.error``)."""
    name = type(exc).__name__
    if name.lower() == "error":
        return f"{type(exc).__module__}.{name}"
    return name


def one_line(exc: BaseException) -> str:
    """``"<Type>: <the first paragraph of the message, on one line>"``."""
    name = type_name(exc)
    text = getattr(exc, "message", None) if name == "DeserializationError" else None
    if not isinstance(text, str) or not text.strip():
        try:
            text = str(exc)
        except Exception:  # noqa: BLE001 - a broken __str__ must not hide the failure
            text = ""
    text = _AWKWARD_NOTE.split(text)[0]
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    line = " ".join(paragraphs[0].split()) if paragraphs else ""
    if len(paragraphs) > 1 and len(line) < 40 and len(paragraphs[1]) < 300:  # "file not found" + '<path>'
        line += " " + " ".join(paragraphs[1].split())
    line = _BOUND_METHOD.sub(r"\1", line)
    return _shorten(f"{name}: {line}" if line else name)


def _basket_location(exc: BaseException) -> tuple[str | None, str]:
    """The branch (and basket) uproot was reading when ``exc`` was raised: ``(branch, " (basket 3 of branch X)")``."""
    branch, basket = None, None
    for frame, _ in _frames(exc.__traceback__):
        if not frame.f_code.co_filename.startswith(_UPROOT_DIRS):
            continue
        local = frame.f_locals
        candidate = local.get("branch")
        name = getattr(candidate, "name", None) if candidate is not None else None
        if isinstance(name, str):
            branch = name
            if isinstance(local.get("basket_num"), int):
                basket = local["basket_num"]
    context = getattr(exc, "context", None)
    if basket is None and isinstance(context, dict) and isinstance(context.get("basket_num"), int):
        basket = context["basket_num"]
    if branch is None:
        return None, ""
    return branch, f" (basket {basket} of branch {branch})" if basket is not None else f" (branch {branch})"


def read_location(exc: BaseException) -> str:
    """``" (basket 3 of branch Muon_pt)"`` when uproot was reading a basket as ``exc`` was raised, else ``""``."""
    return _basket_location(exc)[1]


def _key_in_file_message(exc: BaseException, filename: str) -> tuple[str, str | None]:
    key = getattr(exc, "key", None)
    file_path = getattr(exc, "file_path", None) or filename
    object_path = getattr(exc, "object_path", None)
    where = "the input file" if _same_file(file_path, filename) else "the file"
    if object_path:
        tree = re.sub(r";\d+$", "", str(object_path)).strip("/")
        return _shorten(f"KeyInFileError: no branch {key!r} in tree {tree!r} of {where} {file_path}"), key
    return _shorten(f"KeyInFileError: no key {key!r} in {where} {file_path}"), key


def _fields_of_failing_array(exc: BaseException, name: str) -> list[str] | None:
    """The fields of the ``<name>Array`` whose validation raised ``exc`` (a ``self`` of its frames)."""
    for frame, _ in reversed(list(_frames(exc.__traceback__))):
        candidate = frame.f_locals.get("self")
        if type(candidate).__name__ != f"{name}Array" or not any(
            c.__name__ == "Array" and c.__module__ == "awkward.highlevel" for c in type(candidate).__mro__
        ):
            continue
        try:
            return [str(f) for f in candidate.fields]
        except Exception:  # noqa: BLE001 - not an array after all
            continue
    return None


def _missing_branches(name: str, missing: list[str], present: list[str] | None) -> str:
    there = f"; fields there: {', '.join(present)}" if present is not None else ""
    if any(word in name for word in _NOT_COLLECTIONS):
        return f" ({name} has no {', '.join(missing)}{there})"
    return (f" (the {name} collection has no {', '.join(missing)}: the input file probably lacks the branch(es) "
            f"{', '.join(f'{name}_{f}' for f in missing)}{there})")


def _missing_fields(chain: list[BaseException]) -> str:
    """NanoEvents builds a collection whose behaviour needs a field its branches do not give
    ("MuonArray: missing azimuthal coordinates", "MuonArray requires the 'charge' field"):
    name the branches the input file probably lacks."""
    for exc in reversed(chain):  # the root cause raised it, its wrappers repeat it
        text = str(exc)
        match = _AZIMUTHAL.search(text)
        if match:
            present = _fields_of_failing_array(exc, match.group("name"))
            if present is None:
                continue
            missing = [f for f in ("pt", "phi") if f not in present]
            if not missing or {"x", "y"} <= set(present) or {"px", "py"} <= set(present):
                return f" (fields there: {', '.join(present)})"
            return _missing_branches(match.group("name"), missing, present)
        match = _REQUIRED_FIELD.search(text)
        if match:
            name = match.group("name")
            return _missing_branches(name, [match.group("field")], _fields_of_failing_array(exc, name))
        match = _VECTOR_AZIMUTHAL.search(text)
        if match:
            present = [f.strip() for f in match.group("fields").split(",") if f.strip()]
            if "phi" not in present and ("pt" in present or "rho" in present):
                return f" (no phi among the fields {', '.join(present)}: is a <collection>_phi branch missing " \
                       "from the input file?)"
    return ""


# --- the classification ---------------------------------------------------------------------

def _read_failure(exc: BaseException, decisive: BaseException, filename: str, phase: str,
                  chain: list[BaseException], formatted: str) -> ChunkFailure:
    kind = classify_read_error(exc)
    if kind == OTHER:
        kind = OTHER_IO
    branch, location = _basket_location(decisive)
    message = f"{kind}: {one_line(decisive)}{location}"
    if phase == "open" and kind == CORRUPT_FILE:
        from .file_check import truncation_reason  # file_check imports this module

        truncated = truncation_reason(filename)
        if truncated:
            message += f" ({truncated})"
    return ChunkFailure(READ, kind, _shorten(message, 2 * _MESSAGE_LIMIT), _user_frame(chain), formatted, branch)


def _is_key_in_file(exc: BaseException) -> bool:
    return type(exc).__name__ == "KeyInFileError" and type(exc).__module__.startswith("uproot")


def _is_io_like(exc: BaseException) -> bool:
    return isinstance(exc, (OSError, EOFError)) or (type(exc).__module__ or "").startswith("uproot")


def classify_chunk_failure(exc: BaseException, filename: str, phase: str) -> ChunkFailure:
    """Classify the exception of one phase (``"open"``, ``"build"``, ``"process"``) of a chunk of ``filename``."""
    if phase not in PHASES:
        raise ValueError(f"unknown chunk phase {phase!r}: expected one of {', '.join(PHASES)}")
    chain = exception_chain(exc)
    formatted = "".join(_traceback.format_exception(type(exc), exc, exc.__traceback__))
    if phase == "open":
        return _read_failure(exc, exc, filename, phase, chain, formatted)

    corrupt = [e for e in chain if is_corrupt_exception(e)]
    reading = [e for e in chain if _raised_while_reading(e)]
    missing_key = next((e for e in chain if _is_key_in_file(e)), None)
    if missing_key is not None and not corrupt:
        message, key = _key_in_file_message(missing_key, filename)
        return ChunkFailure(ANALYSIS, "KeyInFileError", message, _user_frame(chain), formatted, key)
    candidates = corrupt + [e for e in reading if e not in corrupt]
    files = _files_read(candidates or [e for e in chain if _is_io_like(e)])
    ours = any(_same_file(f, filename) for f in files) or any(_names_input(e, filename) for e in chain if _is_io_like(e))
    if candidates and (ours or not files):  # a failure to read, of the input file (or of no file named otherwise)
        return _read_failure(exc, candidates[0], filename, phase, chain, formatted)
    if ours:  # an I/O error naming the input file
        decisive = next(e for e in chain if _is_io_like(e))
        return _read_failure(exc, decisive, filename, phase, chain, formatted)
    line = one_line(exc)
    detail = _missing_fields(chain)
    if candidates and files:  # the analysis itself read another file, and that failed
        location = read_location(candidates[0])[2:-1]  # "basket 0 of branch X"
        if files[0] not in line:
            detail += f" ({location + ' in ' if location else ''}{files[0]}, not the input file)"
        elif location:
            detail += f" ({location})"
    return ChunkFailure(ANALYSIS, type_name(exc), _shorten(line + detail, 2 * _MESSAGE_LIMIT), _user_frame(chain),
                        formatted)
