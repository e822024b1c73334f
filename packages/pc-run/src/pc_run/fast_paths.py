"""Fast paths for the awkward idioms analyses write on NanoEvents.

Each awkward operation costs ~1 ms per chunk whatever its size (its general broadcasting
and slicing re-derive every layout), so the ordinary lines of an analysis,
``events.Jet[(events.Jet.pt > 30) & (abs(events.Jet.eta) < 2.4)]``, cost more than the
physics. Here the common cases take direct numpy paths with exactly awkward's result:

- an operator or numpy ufunc on fields (``FastArray``): computed on the flat numbers of
  arrays with the same lists (also of skimmed events, selected or padded objects, with
  missing values), rebuilt with those lists, awkward's parameters, behaviour and attrs;
- a selection with a jagged boolean mask of the collection's own lists
  (``select_by_jagged_mask``): one ``flatnonzero`` and a lazy carry of the records;
- vector's ``pt``, ``eta``, ``phi``, ``mass``: read from their fields where vector would
  return them unchanged; vector's other properties and methods return ``FastArray``s.

Anything else goes to awkward, coffea or vector unchanged, errors included.
pocket-coffea builds each chunk's NanoEvents with ``with_fast_paths(schema)``, the run's
schema whose behaviour is a copy of its own with these paths mixed into the array classes:
nothing global is touched, coffea's behaviour dictionaries and classes stay as they are.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass

import awkward as ak
import numpy as np
from awkward._attrs import attrs_of
from awkward._behavior import behavior_of
from awkward._parameters import parameters_intersect

_LIST_TYPES = (ak.contents.ListOffsetArray, ak.contents.ListArray)


def _lists(layout):
    """(list node, content positions, offsets from 0, content) of a list layout, seen through
    a non-option index, or None for any other layout. The positions are a slice where the
    lists are contiguous (as read), else an index array (after a carry)."""
    if isinstance(layout, ak.contents.IndexedArray) and isinstance(layout.content, _LIST_TYPES):
        layout = layout.project()  # carries the starts and stops only, not the records
    if isinstance(layout, ak.contents.ListOffsetArray):
        offsets = np.asarray(layout.offsets.data, dtype=np.int64)
        first = int(offsets[0])
        return layout, slice(first, int(offsets[-1])), (offsets - first if first else offsets), layout.content
    if isinstance(layout, ak.contents.ListArray):
        starts = np.asarray(layout.starts.data, dtype=np.int64)
        counts = np.asarray(layout.stops.data, dtype=np.int64) - starts
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        positions = np.arange(offsets[-1], dtype=np.int64) + np.repeat(starts - offsets[:-1], counts)
        return layout, positions, offsets, layout.content
    return None


def _running_count(flags: np.ndarray) -> np.ndarray:
    """0, then how many of ``flags`` are set up to each position. Counted in int32 where
    that cannot overflow: numpy's cumsum of booleans into int64 is ~10x slower."""
    total = np.empty(len(flags) + 1, dtype=np.int32 if len(flags) < 2**31 - 1 else np.int64)
    total[0] = 0
    np.cumsum(flags, out=total[1:])
    return total


def select_by_jagged_mask(array: ak.Array, where) -> ak.Array | None:
    """``array[where]`` for a jagged boolean ``where`` with ``array``'s own list lengths, or
    None where this fast path does not apply (the caller then slices with awkward)."""
    if not isinstance(where, ak.Array):
        return None
    items, mask = _lists(array.layout), _lists(where.layout)
    if items is None or mask is None:
        return None
    lists, positions, offsets, content = items
    _, mask_positions, mask_offsets, mask_content = mask
    if not (isinstance(mask_content, ak.contents.NumpyArray) and mask_content.dtype == np.bool_
            and len(mask_content.inner_shape) == 0 and np.array_equal(offsets, mask_offsets)):
        return None
    flags = np.asarray(mask_content.data)[mask_positions]
    chosen = np.flatnonzero(flags)
    if isinstance(positions, slice):
        carry = chosen + positions.start if positions.start else chosen
    else:
        carry = positions[chosen]
    selected = ak.contents.ListOffsetArray(
        ak.index.Index64(_running_count(flags)[offsets].astype(np.int64)),
        content._carry(ak.index.Index64(carry), allow_lazy=True),
        parameters=lists.parameters,
    )
    return _as_fast(ak.Array(selected, behavior=array.behavior, attrs=array.attrs))


_SCALARS = (bool, int, float)


def _plain_index(layout):
    """The index of a non-option ``IndexedArray`` without parameters (a lazy carry), else None."""
    if isinstance(layout, ak.contents.IndexedArray) and not layout.parameters:
        return np.asarray(layout.index.data, dtype=np.int64)
    return None


@dataclass(frozen=True)
class _FlatNumbers:
    """An array of plain numbers in lists (or none), optionally missing some, flattened."""

    values: np.ndarray  # one per innermost item; any value where missing
    valid: np.ndarray | None  # per item, not missing; None where the type has no option
    leaf: ak.contents.NumpyArray  # for its parameters
    levels: tuple  # (list node, offsets from 0), outermost first: the lists over ``values``


def _flat_numbers(layout) -> _FlatNumbers | None:
    """``layout`` flattened, where it is plain numbers (``N * T``, ``N * ?T``, ``N * var * T``,
    ``N * var * ?T``, ``N * var * var * T``...) under lazy carries (the fields of skimmed events,
    of selected or padded objects); else None."""
    levels = []
    while (isinstance(layout, ak.contents.ListOffsetArray) and isinstance(layout.content, _LIST_TYPES)
           and layout.offsets[0] == 0 and layout.offsets[-1] == layout.content.length):  # lists of lists, as made
        if layout.parameters.keys() & {"__array__", "__list__"}:
            return None
        levels.append((layout, layout.offsets))
        layout = layout.content
    lists = _lists(layout)
    if lists is not None:
        node, positions, offsets, layout = lists
        if node.parameters.keys() & {"__array__", "__list__"}:
            return None
        levels.append((node, ak.index.Index64(offsets)))
    elif levels:
        return None
    else:  # numbers, one per event
        positions = _plain_index(layout)
        if positions is None:
            positions = slice(0, layout.length)
        else:
            layout = layout.content
    inner = _plain_index(layout)
    if inner is not None:
        positions, layout = inner[positions], layout.content
    valid = None
    if layout.is_option:
        if layout.parameters:
            return None
        if isinstance(layout, ak.contents.IndexedOptionArray):
            index = np.asarray(layout.index.data, dtype=np.int64)[positions]
            valid = index >= 0
            positions = np.where(valid, index, 0)
        elif isinstance(layout, ak.contents.ByteMaskedArray):
            valid = np.asarray(layout.mask.data).view(np.bool_)[positions] == layout.valid_when
        elif isinstance(layout, ak.contents.UnmaskedArray):
            count = len(range(layout.length)[positions]) if isinstance(positions, slice) else len(positions)
            valid = np.ones(count, dtype=np.bool_)
        else:
            return None
        layout = layout.content
    if (not isinstance(layout, ak.contents.NumpyArray) or len(layout.inner_shape)
            or "__array__" in layout.parameters):
        return None
    data = np.asarray(layout.data)
    if isinstance(positions, slice) or len(data):
        values = data[positions]
    else:  # every value missing
        values = np.zeros(len(positions), dtype=data.dtype)
    return _FlatNumbers(values, valid, layout, tuple(levels))


def _common_parameters(layouts) -> dict | None:
    """The parameters all ``layouts`` share, as awkward's broadcasting keeps them (with its
    own function: the order of the keys follows it too)."""
    return functools.reduce(parameters_intersect, [layout.parameters for layout in layouts])


def elementwise(ufunc, inputs) -> ak.Array | None:
    """``ufunc(*inputs)`` computed on the flat numbers, for awkward arrays of plain numbers
    (flat, or jagged with the same lists; missing values stay missing) and Python scalars;
    None where this does not apply (or numpy refuses: awkward then gives its own answer or error)."""
    arrays = [x for x in inputs if isinstance(x, ak.Array)]
    if not arrays or not all(isinstance(x, ak.Array) or type(x) in _SCALARS for x in inputs):
        return None
    parts = [_flat_numbers(x.layout) for x in arrays]
    if any(part is None for part in parts):
        return None
    head = parts[0]
    for part in parts[1:]:
        if len(part.levels) != len(head.levels) or len(part.values) != len(head.values):
            return None
        for (_, offsets), (_, head_offsets) in zip(part.levels, head.levels):
            if not (offsets is head_offsets or np.array_equal(np.asarray(offsets.data), np.asarray(head_offsets.data))):
                return None
    valids = [part.valid for part in parts if part.valid is not None]
    chosen = None
    if valids:
        chosen = np.flatnonzero(np.logical_and.reduce(valids) if len(valids) > 1 else valids[0])
    flat = iter([part.values if chosen is None else part.values[chosen] for part in parts])
    try:
        values = ufunc(*[next(flat) if isinstance(x, ak.Array) else x for x in inputs])
    except Exception:
        return None
    if not isinstance(values, np.ndarray) or values.ndim != 1:
        return None
    layout = ak.contents.NumpyArray(values, parameters=_common_parameters([part.leaf for part in parts]))
    if chosen is not None:
        index = np.full(len(head.values), -1, dtype=np.int64)
        index[chosen] = np.arange(len(chosen), dtype=np.int64)
        layout = ak.contents.IndexedOptionArray(ak.index.Index64(index), layout)
    for depth in reversed(range(len(head.levels))):
        layout = ak.contents.ListOffsetArray(head.levels[depth][1], layout,
                                             parameters=_common_parameters([part.levels[depth][0] for part in parts]))
    result = ak.Array(layout, behavior=behavior_of(*inputs), attrs=attrs_of(*inputs))  # as awkward's ufuncs merge them
    result.__class__ = FastArray
    return result


def _as_fast(array):
    """``array`` as a ``FastArray`` where awkward gave it no class of its own."""
    if type(array) is ak.Array:
        array.__class__ = FastArray  # as awkward itself sets an array's class from its behaviour
    return array


class FastPaths:
    """Mixed into the array classes of NanoEvents: ``array[jagged mask]`` takes the fast
    selection, and fields without a behaviour of their own come as ``FastArray``."""

    def __getitem__(self, where):
        if isinstance(where, str):
            return _as_fast(super().__getitem__(where))
        selected = select_by_jagged_mask(self, where)
        return super().__getitem__(where) if selected is None else selected


class FastArray(FastPaths, ak.Array):
    """A field of NanoEvents (``events.Jet.pt``, ``events.genWeight``, a record the analysis
    stored): numpy ufuncs and the operators on it (``> 30``, ``&``, ``abs``) run on the flat
    numbers, as awkward would, without awkward's general broadcasting (~1 ms per operation on
    a 100,000-event chunk)."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method == "__call__" and not kwargs and ufunc.nout == 1:
            result = elementwise(ufunc, inputs)
            if result is not None:
                return result
        return super().__array_ufunc__(ufunc, method, *inputs, **kwargs)


@functools.lru_cache(maxsize=1024)
def _stored_coordinates(fields: tuple) -> dict:
    """The vector coordinates (``pt``, ``phi``, ``eta``, ``mass``) that scikit-hep vector
    returns unchanged from a field of records with these ``fields``, by vector's own choice of
    coordinates (``AzimuthalAwkward.from_momentum_fields`` and its longitudinal and temporal
    twins): property -> field."""
    names = set(fields)
    if any(pair <= names for pair in ({"x", "y"}, {"x", "py"}, {"px", "y"}, {"px", "py"})):
        return {}
    azimuthal = "rho" if {"rho", "phi"} <= names else "pt" if {"pt", "phi"} <= names else None
    if azimuthal is None:
        return {}
    stored = {"pt": azimuthal, "phi": "phi"}
    if names & {"z", "pz", "theta"}:
        longitudinal = True
    elif "eta" in names:
        stored["eta"] = longitudinal = "eta"
    else:
        longitudinal = False
    if longitudinal and not names & {"t", "E", "e", "energy"}:
        mass = next((name for name in ("tau", "M", "m", "mass") if name in names), None)
        if mass is not None:
            stored["mass"] = mass
    return stored


def _vector_property(name: str, original: property, shortcut: bool) -> property:
    """``original`` (a property of scikit-hep vector) returning a ``FastArray``; a ``shortcut``
    coordinate is read from its field where vector would return that field unchanged."""
    def get(self):
        field = _stored_coordinates(tuple(self.fields)).get(name) if shortcut else None
        return self[field] if field is not None else _as_fast(original.__get__(self))

    return property(get, doc=original.__doc__)


def _vector_method(original):
    @functools.wraps(original)
    def method(self, *args, **kwargs):
        return _as_fast(original(self, *args, **kwargs))

    return method


def _vector_attributes(cls: type) -> dict:
    """``cls``'s properties and methods that come from scikit-hep vector (not overridden),
    returning ``FastArray``s."""
    def from_vector(name):
        owner = next((k for k in cls.__mro__ if name in k.__dict__), None)
        defined = owner.__dict__[name] if owner is not None else None
        return defined if owner is not None and owner.__module__.startswith("vector.") else None

    shortcuts = {"pt": "rho", "eta": "eta", "phi": "phi", "mass": "tau"}  # property: what vector computes it from
    wrapped = {}
    for name in dir(cls):
        original = None if name.startswith("_") else from_vector(name)
        if isinstance(original, property):
            shortcut = name in shortcuts and isinstance(from_vector(shortcuts[name]), property)
            wrapped[name] = _vector_property(name, original, shortcut)
        elif inspect.isfunction(original):
            wrapped[name] = _vector_method(original)
    return wrapped


def fast_behavior(behavior: dict) -> dict:
    """A copy of ``behavior`` whose array classes take the fast paths."""
    fast = dict(behavior)
    for key, cls in behavior.items():
        if (isinstance(key, tuple) and len(key) == 2 and key[0] == "*" and isinstance(cls, type)
                and issubclass(cls, ak.Array) and not issubclass(cls, FastPaths)):
            fast[key] = type(cls.__name__, (FastPaths, cls), {"__module__": __name__, **_vector_attributes(cls)})
    return fast


@functools.cache
def with_fast_paths(schema: type) -> type:
    """``schema`` with the fast paths in its behaviour (one class per schema, built once)."""
    behavior = fast_behavior(schema.behavior())
    return type(schema.__name__, (schema,), {"__module__": __name__, "behavior": classmethod(lambda cls: behavior)})
