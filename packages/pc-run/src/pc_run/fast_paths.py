"""Fast paths for the awkward idioms analyses write on NanoEvents.

Each awkward operation costs ~1 ms per chunk whatever its size (its general broadcasting
and slicing re-derive every layout), so the ordinary lines of an analysis,
``events.Jet[(events.Jet.pt > 30) & (abs(events.Jet.eta) < 2.4)]``, cost more than the
physics. Here the common cases take direct numpy paths with exactly awkward's result:

- an operator or numpy ufunc on fields (``FastArray``): computed on the flat numbers of
  arrays with the same lists (also of skimmed events, selected or padded objects, with
  missing values), rebuilt with those lists, awkward's parameters, behaviour and attrs;
- a selection with a jagged boolean mask of the collection's own lists, or with jagged
  positions (``x[ak.argsort(x.pt)]``) (``select_by_jagged``): a lazy carry of the records;
- awkward's functions, through its ``__awkward_function__`` protocol: ``ak.fill_none``,
  ``ak.concatenate(axis=1)``, ``ak.argsort``, ``ak.cartesian`` (of two, nested: coffea's
  ``metric_table``), ``ak.all``/``ak.any`` of the innermost lists, and ``ak.with_field``
  (``events["name"] = ...``), each where its arguments are the plain cases above;
- vector: ``pt``, ``eta``, ``phi``, ``mass`` read from their fields where vector would
  return them unchanged; its formulas (``px``, ``energy``, ``delta_r``, sums) run once on
  the flat numbers instead of in an ``ak.transform``; the coordinates it finds among the
  fields are found once per array; its properties and methods return ``FastArray``s.

Anything else goes to awkward, coffea or vector unchanged, errors included; what an ``ak.*``
function returns keeps the fast paths (a ``FastArray``, or the fast copy of the behaviour it
was given). pocket-coffea builds each chunk's NanoEvents with ``with_fast_paths(schema)``,
the run's schema whose behaviour is a copy of its own with these paths mixed into the array
classes: nothing global is touched, coffea's behaviour dictionaries and classes stay as
they are.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass

import awkward as ak
import numpy as np
from awkward._attrs import attrs_of
from awkward._behavior import behavior_of
from awkward._namedaxis import NAMED_AXIS_KEY
from awkward._parameters import parameters_intersect

_LIST_TYPES = (ak.contents.ListOffsetArray, ak.contents.ListArray)


def _lists(layout):
    """(list node, content positions, offsets from 0, content) of a list layout, seen through
    a non-option index, or None for any other layout. The positions are a slice where the
    lists are contiguous (as read), else an index array (after a carry)."""
    if isinstance(layout, ak.contents.IndexedArray) and isinstance(layout.content, _LIST_TYPES):
        return _carried_lists(layout)
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


def _carried_lists(layout: ak.contents.IndexedArray):
    """``_lists`` of a lazy carry of lists (a collection of skimmed events). The positions
    depend only on the carry's index and the lists' bounds, which every field of a collection
    shares (``Muon.pt``, ``Muon.eta``...): worked out once per pair, and kept on the index."""
    lists = layout.content
    bounds = (lists.offsets,) if isinstance(lists, ak.contents.ListOffsetArray) else (lists.starts, lists.stops)
    memo, key = layout.index.__dict__.setdefault("_pc_fast_lists", {}), tuple(map(id, bounds))
    found = memo.get(key)
    if found is None or any(kept is not bound for kept, bound in zip(found[0], bounds)):
        # carries the starts and stops only, not the records
        _, positions, offsets, _ = _lists(layout.project())
        found = memo[key] = (bounds, positions, offsets)
    return lists, found[1], found[2], lists.content


def _carried(content, positions, picked: np.ndarray):
    """``content`` lazily carried to the items ``picked`` among ``positions`` (``_lists``'s)."""
    if isinstance(positions, slice):
        carry = picked + positions.start if positions.start else picked
    else:
        carry = positions[picked]
    return content._carry(ak.index.Index64(carry), allow_lazy=True)


def _running_count(flags: np.ndarray) -> np.ndarray:
    """0, then how many of ``flags`` are set up to each position. Counted in int32 where
    that cannot overflow: numpy's cumsum of booleans into int64 is ~10x slower."""
    total = np.empty(len(flags) + 1, dtype=np.int32 if len(flags) < 2**31 - 1 else np.int64)
    total[0] = 0
    np.cumsum(flags, out=total[1:])
    return total


def select_by_jagged(array: ak.Array, where) -> ak.Array | None:
    """``array[where]`` for a jagged ``where`` of plain booleans with ``array``'s own list
    lengths (a mask) or of plain integers in range (the positions in each list, as
    ``ak.argsort`` gives them); None where this fast path does not apply (the caller then
    slices with awkward, which also gives the errors)."""
    if not isinstance(where, ak.Array):
        return None
    items, chooser = _lists(array.layout), _lists(where.layout)
    if items is None or chooser is None:
        return None
    lists, positions, offsets, content = items
    _, chooser_positions, chooser_offsets, chooser_content = chooser
    if not (isinstance(chooser_content, ak.contents.NumpyArray) and len(chooser_content.inner_shape) == 0
            and chooser_content.dtype.kind in "biu" and len(chooser_offsets) == len(offsets)):
        return None
    chosen = np.asarray(chooser_content.data)[chooser_positions]
    if chosen.dtype == np.bool_:
        if not np.array_equal(offsets, chooser_offsets):
            return None
        picked = np.flatnonzero(chosen)
        new_offsets = _running_count(chosen)[offsets].astype(np.int64)
    else:
        chooser_counts = np.diff(chooser_offsets)
        if len(chosen) and (chosen.min() < 0 or np.any(chosen >= np.repeat(np.diff(offsets), chooser_counts))):
            return None  # negative or out of range: awkward's own rules and errors
        picked = np.repeat(offsets[:-1], chooser_counts) + chosen
        new_offsets = chooser_offsets
    # awkward's jagged slicing keeps no parameters of the lists
    selected = ak.contents.ListOffsetArray(ak.index.Index64(new_offsets), _carried(content, positions, picked))
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
    option: ak.contents.Content | None = None  # the option node over the leaf


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
    valid = option = None
    if layout.is_option:
        option = layout
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
    return _FlatNumbers(values, valid, layout, tuple(levels), option)


def _common_parameters(layouts) -> dict | None:
    """The parameters all ``layouts`` share, as awkward's broadcasting keeps them (with its
    own function: the order of the keys follows it too)."""
    return functools.reduce(parameters_intersect, [layout.parameters for layout in layouts])


def elementwise(function, inputs) -> ak.Array | None:
    """``function(*inputs)`` (a numpy ufunc, or a formula of them) computed on the flat numbers,
    for awkward arrays of plain numbers (flat, or jagged with the same lists; missing values stay
    missing) and Python scalars; None where this does not apply (or numpy refuses: awkward then
    gives its own answer or error)."""
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
        values = function(*[next(flat) if isinstance(x, ak.Array) else x for x in inputs])
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
    return _fast_result(layout, *inputs)  # the behaviour and attrs merged as awkward's ufuncs merge them


def _numbers_dtype(*dtypes) -> np.dtype | None:
    """The dtype awkward merges plain numbers (bool, int, float) into: numpy's promotion."""
    return np.result_type(*dtypes) if all(dtype.kind in "biuf" for dtype in dtypes) else None


def _nested(layout, part: _FlatNumbers):
    """``layout`` (flat) back in ``part``'s lists, with their parameters."""
    for node, offsets in reversed(part.levels):
        layout = ak.contents.ListOffsetArray(offsets, layout, parameters=node.parameters)
    return layout


def _fast_result(layout, *inputs) -> FastArray:
    result = ak.Array(layout, behavior=behavior_of(*inputs), attrs=attrs_of(*inputs))
    result.__class__ = FastArray
    return result


def fill_none(array, value, axis=-1, *, highlevel=True, behavior=None, attrs=None):
    """``ak.fill_none`` of plain numbers missing some (``?T``, ``var * ?T``) with a Python
    scalar; None where it does not apply."""
    if not (isinstance(array, ak.Array) and type(value) in _SCALARS and axis in (-1, None) and highlevel
            and behavior is None and attrs is None):
        return None
    part = _flat_numbers(array.layout)
    if part is None or part.valid is None or isinstance(part.option, ak.contents.UnmaskedArray):
        return None  # nothing to fill; awkward just drops an UnmaskedArray, without merging the value's type
    dtype = _numbers_dtype(part.values.dtype, np.asarray(value).dtype)
    if dtype is None:
        return None
    values = part.values.astype(dtype)  # a copy: the value goes into the missing places
    values[~part.valid] = value
    return _fast_result(_nested(ak.contents.NumpyArray(values), part), array)  # the leaf's parameters go, as in awkward


def concatenate(arrays, axis=0, *, mergebool=True, highlevel=True, behavior=None, attrs=None):
    """``ak.concatenate(..., axis=1)`` of lists of plain numbers, event by event; None where it
    does not apply."""
    if not (axis in (1, -1) and mergebool and highlevel and behavior is None and attrs is None
            and isinstance(arrays, (list, tuple)) and len(arrays) > 1 and all(isinstance(x, ak.Array) for x in arrays)):
        return None
    parts = [_flat_numbers(x.layout) for x in arrays]
    if any(part is None or part.valid is not None or len(part.levels) != 1 for part in parts):
        return None
    offsets = [np.asarray(part.levels[0][1].data) for part in parts]
    dtype = _numbers_dtype(*(part.values.dtype for part in parts))
    if dtype is None or len({len(o) for o in offsets}) != 1:
        return None
    counts = [np.diff(o) for o in offsets]
    merged = np.zeros(len(offsets[0]), dtype=np.int64)
    np.cumsum(functools.reduce(np.add, counts), out=merged[1:])
    values = np.empty(merged[-1], dtype=dtype)
    start = merged[:-1].copy()  # where each event's items of the next array go
    for part, own, count in zip(parts, offsets, counts):
        values[np.arange(len(part.values)) + np.repeat(start - own[:-1], count)] = part.values
        start += count
    leaf = ak.contents.NumpyArray(values, parameters=_common_parameters([part.leaf for part in parts]))
    return _fast_result(ak.contents.ListOffsetArray(ak.index.Index64(merged), leaf), *arrays)  # no list parameters


def argsort(array, axis=-1, ascending=True, stable=True, *, highlevel=True, behavior=None, attrs=None):
    """``ak.argsort`` of lists of plain numbers (stable, NaN first as in awkward); None where it
    does not apply."""
    if not (isinstance(array, ak.Array) and axis in (1, -1) and stable and highlevel and behavior is None
            and attrs is None):
        return None
    part = _flat_numbers(array.layout)
    if part is None or part.valid is not None or len(part.levels) != 1 or part.values.dtype.kind not in "biuf":
        return None
    values = part.values
    keys = [values]
    if values.dtype.kind == "f":
        missing = np.isnan(values)
        if missing.any():
            keys = [np.where(missing, 0, values), ~missing]  # NaNs first, in their order
    elif not ascending:  # negated below, in int64
        if values.dtype.itemsize == 8 and len(values) and (values.dtype.kind == "u" or values.min() == np.iinfo(np.int64).min):
            return None  # not negated exactly in int64
        keys = [values.astype(np.int64)]
    if not ascending:
        keys[0] = -keys[0]
    offsets = np.asarray(part.levels[0][1].data)
    counts = np.diff(offsets)
    order = np.lexsort((*keys, np.repeat(np.arange(len(counts)), counts)))  # stable
    local = order - np.repeat(offsets[:-1], counts)
    return _fast_result(_nested(ak.contents.NumpyArray(local), part), array)


def with_field(array, what, where=None, *, highlevel=True, behavior=None, attrs=None):
    """``ak.with_field`` as ``events["name"] = what`` calls it (``highlevel=False``), for a field
    of one value per record: the records' fields and ``what``, without awkward's broadcasting
    (which finds the same at its first step); None where it does not apply."""
    base = array.layout if isinstance(array, ak.Array) else array
    if not (isinstance(where, str) and not highlevel and isinstance(what, ak.Array)
            and isinstance(base, ak.contents.Content) and len(what) == base.length
            and not any(NAMED_AXIS_KEY in (x or {}) for x in (attrs, what.attrs))):
        return None
    if isinstance(base, ak.contents.IndexedArray) and isinstance(base.content, ak.contents.RecordArray):
        base = base._push_inside_record_or_project()  # as awkward's broadcasting does: a lazy carry per field
    if not isinstance(base, ak.contents.RecordArray) or base.is_tuple:
        return None
    fields = list(base.fields)
    contents = [base.content(field) for field in fields]
    if where in fields:
        contents[fields.index(where)] = what.layout
    else:
        fields.append(where)
        contents.append(what.layout)
    return ak.contents.RecordArray(contents, fields, length=base.length, parameters=base.parameters)


def cartesian(arrays, axis=1, *, nested=None, parameters=None, with_name=None, highlevel=True, behavior=None,
              attrs=None):
    """``ak.cartesian([a, b], axis=1, nested=True)`` of two jagged arrays (coffea's
    ``metric_table``): every pair of an event, by lazy carries of the two contents; None where
    it does not apply."""
    if not (isinstance(arrays, (list, tuple)) and len(arrays) == 2 and all(isinstance(x, ak.Array) for x in arrays)
            and axis == 1 and nested is True and parameters is None and with_name is None and highlevel
            and behavior is None and attrs is None):
        return None
    first, second = (_lists(x.layout) for x in arrays)
    if first is None or second is None or len(first[2]) != len(second[2]):
        return None
    (_, first_positions, first_offsets, first_content), (_, second_positions, second_offsets, second_content) = first, second
    first_counts, second_counts = np.diff(first_offsets), np.diff(second_offsets)
    pairs_per_item = np.repeat(second_counts, first_counts)  # each item of the first pairs with its event's second
    inner_offsets = np.zeros(len(pairs_per_item) + 1, dtype=np.int64)
    np.cumsum(pairs_per_item, out=inner_offsets[1:])
    first_picked = np.repeat(np.arange(len(pairs_per_item), dtype=np.int64), pairs_per_item)
    second_picked = (np.repeat(np.repeat(second_offsets[:-1], first_counts) - inner_offsets[:-1], pairs_per_item)
                     + np.arange(inner_offsets[-1], dtype=np.int64))
    pairs = ak.contents.RecordArray([_carried(first_content, first_positions, first_picked),
                                     _carried(second_content, second_positions, second_picked)], None,
                                    length=int(inner_offsets[-1]))
    layout = ak.contents.ListOffsetArray(ak.index.Index64(np.asarray(first_offsets, dtype=np.int64)),
                                         ak.contents.ListOffsetArray(ak.index.Index64(inner_offsets), pairs))
    return _fast_result(layout, *arrays)


def _every_or_some(every: bool, array, axis=None, *, keepdims=False, mask_identity=False, highlevel=True,
                   behavior=None, attrs=None):
    """``ak.all`` (``every``) or ``ak.any`` over the innermost lists of plain numbers; None where it
    does not apply."""
    if not (isinstance(array, ak.Array) and not keepdims and not mask_identity and highlevel and behavior is None
            and attrs is None):
        return None
    part = _flat_numbers(array.layout)
    if part is None or part.valid is not None or not part.levels or axis not in (-1, len(part.levels)):
        return None
    offsets = np.asarray(part.levels[-1][1].data)
    against = (part.values == 0) if every else (part.values != 0)  # the items that decide: a false one, a true one
    found = _running_count(against)
    result = (found[offsets[1:]] - found[offsets[:-1]]) > 0
    layout = ak.contents.NumpyArray(~result if every else result)
    for _, outer in reversed(part.levels[:-1]):
        layout = ak.contents.ListOffsetArray(outer, layout)  # awkward's reducers keep no parameters
    return _fast_result(layout, array)


def all_true(array, axis=None, **options):
    """``ak.all`` over the innermost lists of plain numbers; None where it does not apply."""
    return _every_or_some(True, array, axis, **options)


def any_true(array, axis=None, **options):
    """``ak.any`` over the innermost lists of plain numbers; None where it does not apply."""
    return _every_or_some(False, array, axis, **options)


# awkward's functions that have a fast path here (``FastPaths.__awkward_function__``)
_FAST_FUNCTIONS = {ak.fill_none: fill_none, ak.concatenate: concatenate, ak.argsort: argsort,
                   ak.with_field: with_field, ak.cartesian: cartesian,
                   ak.all: all_true, ak.any: any_true}


def _awkward_itself(function, args, kwargs):
    """What ``function`` (an ``ak.*`` function) gives without the ``__awkward_function__``
    protocol that called us: its implementation, past the dispatch (awkward's
    high-level functions first yield their array arguments, then return the result)."""
    steps = function.__wrapped__(*args, **kwargs)
    next(steps)
    try:
        next(steps)
    except StopIteration as done:
        return done.value
    raise RuntimeError(f"{function.__qualname__} did not end after its dispatch")


def _as_fast(array):
    """``array`` as a ``FastArray`` where awkward gave it no class of its own."""
    if type(array) is ak.Array:
        array.__class__ = FastArray  # as awkward itself sets an array's class from its behaviour
    return array


class FastPaths:
    """Mixed into the array classes of NanoEvents: ``array[jagged mask or positions]`` takes the
    fast selection, ``ak.*`` functions their fast paths, and fields without a behaviour of their
    own come as ``FastArray``."""

    def __awkward_function__(self, function, array_likes, args, kwargs):
        """awkward's protocol for ``ak.*`` functions called on these arrays: the fast path where
        there is one, else awkward's own function (its result a ``FastArray`` where it has no
        class of its own)."""
        fast = _FAST_FUNCTIONS.get(function)
        result = None
        if fast is not None:
            try:
                result = fast(*args, **kwargs)
            except Exception:  # noqa: BLE001 - arguments awkward would refuse: it gives its own error
                result = None
        return _with_fast_behavior(_awkward_itself(function, args, kwargs)) if result is None else result

    def __getitem__(self, where):
        if isinstance(where, str):
            return _as_fast(super().__getitem__(where))
        selected = select_by_jagged(self, where)
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


@functools.cache  # one wrapper per vector attribute, shared by every class that has it
def _vector_property(name: str, original: property, shortcut: bool) -> property:
    """``original`` (a property of scikit-hep vector) returning a ``FastArray``; a ``shortcut``
    coordinate is read from its field where vector would return that field unchanged."""
    def get(self):
        field = _stored_coordinates(tuple(self.fields)).get(name) if shortcut else None
        return self[field] if field is not None else _as_fast(original.__get__(self))

    return property(get, doc=original.__doc__)


@functools.cache  # one wrapper per vector attribute, shared by every class that has it
def _coordinates_property(name: str, original: property) -> property:
    """vector's ``azimuthal``, ``longitudinal`` or ``temporal`` (the coordinates it finds among
    the fields, ~0.4 ms each time): found once per array and layout, not for every property
    (``a + b`` of two candidates asks 12 times)."""
    key = f"_pc_fast_{name}"

    def get(self):
        cached = self.__dict__.get(key)
        if cached is not None and cached[0] is self._layout:
            return cached[1]
        value = original.__get__(self)
        self.__dict__[key] = (self._layout, value)  # not through ak.Array.__setattr__: not a field
        return value

    return property(get, doc=original.__doc__)


@functools.cache  # one wrapper per vector attribute, shared by every class that has it
def _vector_method(original):
    @functools.wraps(original)
    def method(self, *args, **kwargs):
        return _as_fast(original(self, *args, **kwargs))

    return method


@functools.cache  # one wrapper per vector attribute, shared by every class that has it
def _vector_formulas(original):
    """vector's ``_wrap_dispatched_function``: it runs each formula (``rho * cos(phi)``...) in one
    ``ak.transform`` over the operands' layouts (~0.7 ms a call); operands of plain numbers in
    the same lists take the formula on their flat numbers at once (``elementwise``)."""
    def wrap(self, formula):
        transformed = original(self, formula)
        if not getattr(formula, "__awkward_transform_allowed__", True):
            return transformed  # vector calls it as it is (a coordinate returned unchanged)

        def call(lib, *operands):
            result = elementwise(functools.partial(formula, lib), operands)
            return transformed(lib, *operands) if result is None else result

        return call

    return wrap


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
        if isinstance(original, property) and name in ("azimuthal", "longitudinal", "temporal"):
            wrapped[name] = _coordinates_property(name, original)
        elif isinstance(original, property):
            shortcut = name in shortcuts and isinstance(from_vector(shortcuts[name]), property)
            wrapped[name] = _vector_property(name, original, shortcut)
        elif inspect.isfunction(original):
            wrapped[name] = _vector_method(original)
    dispatcher = from_vector("_wrap_dispatched_function")
    if inspect.isfunction(dispatcher):
        wrapped["_wrap_dispatched_function"] = _vector_formulas(dispatcher)
    return wrapped


def _with_fast_behavior(result):
    """An array an ``ak.*`` function made of ours, with the fast paths: a ``FastArray`` where it
    has no class, or in the fast copy of the behaviour the call gave it (``ak.zip(...,
    behavior=candidate.behavior)``: the same classes, with the fast paths mixed in)."""
    if type(result) is ak.Array or not isinstance(result, ak.Array) or isinstance(result, FastPaths):
        return _as_fast(result)
    behavior = result.behavior
    if behavior is None:
        return result
    fast = _FAST_BEHAVIORS.get(id(behavior))
    if fast is None or fast[0] is not behavior or fast[1] != len(behavior):  # a new (or changed) dictionary
        if len(_FAST_BEHAVIORS) >= 8:
            del _FAST_BEHAVIORS[next(iter(_FAST_BEHAVIORS))]
        fast = _FAST_BEHAVIORS[id(behavior)] = (behavior, len(behavior), fast_behavior(behavior))
    return ak.Array(result.layout, behavior=fast[2], attrs=result.attrs)


# fast copies of the last behaviour dictionaries ``ak.*`` calls were given (``_with_fast_behavior``;
# mostly a module's constant, as ``candidate.behavior``): a cache of what is derived from them,
# holding each original so that its id stays its own
_FAST_BEHAVIORS: dict[int, tuple[dict, int, dict]] = {}


@functools.cache
def _fast_class(cls: type) -> type:
    """``cls`` (an array class of a behaviour) with the fast paths; one per class."""
    return type(cls.__name__, (FastPaths, cls), {"__module__": __name__, **_vector_attributes(cls)})


def fast_behavior(behavior: dict) -> dict:
    """A copy of ``behavior`` whose array classes take the fast paths."""
    fast = dict(behavior)
    for key, cls in behavior.items():
        if (isinstance(key, tuple) and len(key) == 2 and key[0] == "*" and isinstance(cls, type)
                and issubclass(cls, ak.Array) and not issubclass(cls, FastPaths)):
            fast[key] = _fast_class(cls)
    return fast


@functools.cache
def with_fast_paths(schema: type) -> type:
    """``schema`` with the fast paths in its behaviour (one class per schema, built once)."""
    behavior = fast_behavior(schema.behavior())
    return type(schema.__name__, (schema,), {"__module__": __name__, "behavior": classmethod(lambda cls: behavior)})
