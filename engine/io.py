"""Reading a user's trained network: a PyTorch ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` state_dict
saved as ``.safetensors`` or ``.npz``, and an optional input sequence saved as ``.npy``.

Nothing here runs code from the file: safetensors is a JSON header plus raw buffers (read with the
``safetensors`` package's NumPy API, imported only when such a file is read), ``.npz`` and
``.npy`` are read with ``allow_pickle=False``. Every size is bounded before anything is
allocated, from what the file's headers claim, checked against the limits and against the bytes
at hand: the safetensors header's length, each tensor's dtype, shape and offsets; an ``.npz``'s
number of members (at most ``MAX_ARRAYS``, counted from the zip's end-of-central-directory
record before the directory itself is parsed) and their declared sizes (``zipfile`` never reads
past a member's declared size); an ``.npy`` header's shape and dtype (``numpy.lib.format``'s
header readers) against the bytes that follow it. A file that lies gets a ``ModelFileError``
naming the array and the field, never a MemoryError.

What the engine cannot represent is refused with a ``ModelFileError`` whose message names the key
and what is unsupported: bidirectional layers (``*_reverse``), LSTM ``proj_size``
(``weight_hr_l*``), ``bias=False``, keys of more than one recurrent module or cell type, missing
layers, shapes that do not fit together. Non-finite weights are loaded and reported as warnings.

Files as people save them: one prefix common to every key (``module.`` of ``nn.DataParallel``,
``_orig_mod.`` of ``torch.compile``, a module name such as ``rnn.``) is removed from all of them,
the read-out's included, and said (``LoadedModel.prefix``). Tensors that
``safetensors.torch.save_model`` dropped as tied copies of another (its ``__metadata__`` maps
each dropped name to the name kept) are restored from the one kept.

Letters in shapes: T steps, B batch, D inputs, H hidden units, K outputs, L layers, G gates.
"""

from __future__ import annotations

import io
import json
import re
import struct
import zipfile
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np

from ._types import FloatArray, Params
from .params import CELLS, GATES

MAX_FILE_BYTES = 64 * 1024 * 1024  # default bound on a model file, and on its decompressed size
MAX_HEADER_BYTES = 1024 * 1024  # a safetensors header of a few dozen tensors is a few KB
MAX_HIDDEN = 1024  # the engine's spectra and Jacobians are O(H^3); beyond this they take minutes
MAX_LAYERS = 16
# Arrays in one file: the largest model the engine loads has 4 per layer and a head of 2 (66);
# twice that leaves room for a bidirectional one (130), refused for what it is.
MAX_ARRAYS = 2 * (4 * MAX_LAYERS + 2)
MAX_DIRECTORY_ENTRY_BYTES = 1024  # a zip directory entry: 46 bytes, a name and an extra field
FLOAT_DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64}
CELL_BY_GATES = {gates: cell for cell, gates in GATES.items()}
_LAYER_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)$")
HEAD_KEYS = ("head.weight", "head.bias")


class ModelFileError(ValueError):
    """A file that is not a model (or inputs) the engine can use; the message says why."""


@dataclass(frozen=True)
class LoadedModel:
    """A state_dict read and checked: float64 params in the engine's layout and what they are.

    params: keys as ``engine.init_params`` (a head only if the file had one).
    output_size: K of the file's head, None without one.
    warnings: sentences about what was loaded but deserves attention (non-finite weights,
        a prefix that was removed, tensors restored from their tied copies, a float16 file).
    prefix: what was removed from the front of every key ('module.' for nn.DataParallel,
        '_orig_mod.' for torch.compile, a module's name such as 'rnn.'); '' if nothing.
    module_prefix: the recurrent module's name its keys were read under after that ('rnn.'
        when the file also holds a head); '' if none.
    aliases: {key restored: the key it was copied from}, from a safetensors file's metadata.
    """

    cell: str
    num_layers: int
    input_size: int
    hidden_size: int
    output_size: int | None
    params: Params = field(repr=False)
    warnings: tuple[str, ...] = ()
    prefix: str = ""
    module_prefix: str = ""
    aliases: dict[str, str] = field(default_factory=dict)

    def describe(self) -> dict:
        return {"cell": self.cell, "num_layers": self.num_layers, "input_size": self.input_size,
                "hidden_size": self.hidden_size, "output_size": self.output_size,
                "warnings": list(self.warnings), "prefix": self.prefix,
                "module_prefix": self.module_prefix, "aliases": dict(self.aliases)}


# ---- reading arrays out of bytes --------------------------------------------------------------

def read_arrays(data: bytes, *, max_bytes: int = MAX_FILE_BYTES) -> dict[str, np.ndarray]:
    """The named arrays of a ``.safetensors`` or ``.npz`` file's bytes, told apart by content.

    Raises:
        ModelFileError: empty, over ``max_bytes``, neither format, a malformed or lying header,
            a pickle, an object array, more than ``MAX_ARRAYS`` arrays or a zip member over
            the limit.
    """
    return read_model_file(data, max_bytes=max_bytes)[0]


def read_model_file(data: bytes, *, max_bytes: int = MAX_FILE_BYTES
                    ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(arrays, metadata) of a ``.safetensors`` or ``.npz`` file: the metadata is the
    safetensors header's ``__metadata__`` (names to strings; empty for an ``.npz``).

    Raises:
        ModelFileError: see ``read_arrays``.
    """
    if not data:
        raise ModelFileError("the file is empty")
    if len(data) > max_bytes:
        raise ModelFileError(f"the file has {len(data):,} bytes, over the limit of "
                             f"{max_bytes:,}")
    if data[:4] == b"PK\x03\x04" or data[:4] == b"PK\x05\x06":
        return _read_npz(data, max_bytes), {}
    if len(data) >= 9 and data[8:9] == b"{":
        return _read_safetensors(data)
    raise ModelFileError("the file is neither .safetensors (an 8-byte header length, then a "
                         "JSON header) nor .npz (a zip archive of .npy arrays)")


def _is_size(value: object) -> bool:
    """A whole number >= 0 as JSON gives it (``True`` is an int to Python, not to a header)."""
    return type(value) is int and value >= 0


def _read_safetensors(data: bytes) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > MAX_HEADER_BYTES:
        raise ModelFileError(f"safetensors header claims {header_len:,} bytes, over the limit "
                             f"of {MAX_HEADER_BYTES:,}")
    if 8 + header_len > len(data):
        raise ModelFileError(f"safetensors header claims {header_len:,} bytes but the file has "
                             f"only {len(data) - 8:,} after the length")
    try:
        header = json.loads(data[8:8 + header_len])
    except (ValueError, RecursionError):
        raise ModelFileError("safetensors header is not valid JSON") from None
    if not isinstance(header, dict):
        raise ModelFileError("safetensors header is not a JSON object")
    metadata = header.get("__metadata__", {})
    if not (isinstance(metadata, dict)
            and all(isinstance(value, str) for value in metadata.values())):
        raise ModelFileError("the safetensors header's __metadata__ field must map names to "
                             "strings; it holds something else")
    tensors = len(header) - ("__metadata__" in header)
    if tensors > MAX_ARRAYS:
        raise ModelFileError(f"safetensors header lists {tensors:,} tensors, over the limit of "
                             f"{MAX_ARRAYS} (a model of at most {MAX_LAYERS} layers has at most "
                             f"{4 * MAX_LAYERS + 2})")
    buffer_len = len(data) - 8 - header_len
    spans = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = _check_tensor_entry(name, entry, buffer_len)
        spans.append((begin, end))
    spans.sort()
    if any(a_end > b_begin for (_, a_end), (b_begin, _) in zip(spans, spans[1:], strict=False)):
        raise ModelFileError("safetensors tensors overlap in the data buffer")
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        return load(data), metadata
    except (SafetensorError, ValueError) as error:
        raise ModelFileError(f"safetensors could not read the file: {error}") from None


def _check_tensor_entry(name: str, entry: object, buffer_len: int) -> tuple[int, int]:
    """The (begin, end) offsets of one safetensors header entry, once its dtype, shape and
    offsets are known to be well-formed and to fit the data buffer; else the error naming the
    tensor and the field."""
    if not isinstance(entry, dict):
        raise ModelFileError(f"{name}: malformed safetensors entry (needs dtype, shape and "
                             f"data_offsets): it is not a JSON object")
    for field_name in ("dtype", "shape", "data_offsets"):
        if field_name not in entry:
            raise ModelFileError(f"{name}: malformed safetensors entry (needs dtype, shape and "
                                 f"data_offsets): the {field_name} field is missing")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str):
        raise ModelFileError(f"{name}: the dtype field is {_shown(dtype)}, not a dtype name "
                             f"such as \"F32\"")
    if dtype not in FLOAT_DTYPES:
        raise ModelFileError(f"{name}: dtype {_shown(dtype)[1:-1]} is not supported; save "
                             f"float16, float32 or float64 weights (e.g. model.float())")
    if not isinstance(shape, list) or not all(_is_size(size) for size in shape):
        raise ModelFileError(f"{name}: the shape field is {_shown(shape)}; it must be a list "
                             f"of whole numbers >= 0")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(_is_size(offset) for offset in offsets)):
        raise ModelFileError(f"{name}: the data_offsets field is {_shown(offsets)}; it must be "
                             f"two byte offsets [begin, end] into the data buffer")
    begin, end = offsets
    if end < begin or end > buffer_len:
        raise ModelFileError(f"{name}: the data_offsets field [{begin}, {end}] runs outside the "
                             f"file's {buffer_len:,}-byte data buffer")
    count = 1
    for size in shape:  # Python integers: a lying shape cannot overflow
        count *= size
    expected = count * np.dtype(FLOAT_DTYPES[dtype]).itemsize
    if end - begin != expected:
        raise ModelFileError(f"{name}: the data_offsets field [{begin}, {end}] holds "
                             f"{end - begin:,} bytes but its shape field {_shown(shape)} of "
                             f"{dtype} needs {expected:,}")
    return begin, end


def _shown(value: object, limit: int = 60) -> str:
    """A header value as JSON, shortened: what the file said, for the message."""
    text = json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _zip_directory(data: bytes) -> tuple[int, int]:
    """(entries, bytes) of a zip's central directory, as its end records state them: read from
    the last bytes of the file, before anything parses the directory itself."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 0xFFFF))
    if end < 0 or end + 22 > len(data):
        raise ModelFileError("not a readable .npz (zip) file: its end of central directory "
                             "record is missing")
    _, _, _, _, entries, size, _, _ = struct.unpack("<4s4H2LH", data[end:end + 22])
    locator = end - 20
    if locator >= 0 and data[locator:locator + 4] == b"PK\x06\x07":  # a zip64 archive
        (record,) = struct.unpack("<Q", data[locator + 8:locator + 16])
        if record + 56 > len(data) or data[record:record + 4] != b"PK\x06\x06":
            raise ModelFileError("not a readable .npz (zip) file: its zip64 end of central "
                                 "directory record is missing")
        entries, size = struct.unpack("<QQ", data[record + 32:record + 48])
    return entries, size


def _read_npz(data: bytes, max_bytes: int) -> dict[str, np.ndarray]:
    # The member count first, from the end records: a directory of 600,000 entries costs
    # seconds of CPU to parse (zipfile builds an object for each).
    entries, directory_bytes = _zip_directory(data)
    if entries > MAX_ARRAYS:
        raise ModelFileError(f"the .npz (zip) file lists {entries:,} members, over the limit of "
                             f"{MAX_ARRAYS} arrays (a model of at most {MAX_LAYERS} layers has "
                             f"at most {4 * MAX_LAYERS + 2})")
    if directory_bytes > MAX_ARRAYS * MAX_DIRECTORY_ENTRY_BYTES:
        raise ModelFileError(f"the .npz (zip) file's central directory takes "
                             f"{directory_bytes:,} bytes, more than {MAX_ARRAYS} members need "
                             f"({MAX_ARRAYS * MAX_DIRECTORY_ENTRY_BYTES:,} at most): it lists "
                             f"too many members")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError, struct.error, EOFError,
            NotImplementedError) as error:
        raise ModelFileError(f"not a readable .npz (zip) file: {error}") from None
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ARRAYS:  # the end record understated them
            raise ModelFileError(f"the .npz (zip) file lists more than {MAX_ARRAYS} members, "
                                 f"over the limit of {MAX_ARRAYS} arrays")
        total = 0
        for member in members:
            # The directory's sizes bound the reading: zipfile stops at file_size bytes.
            if member.file_size > max_bytes:
                raise ModelFileError(f"{member.filename}: decompresses to {member.file_size:,} "
                                     f"bytes, over the limit of {max_bytes:,}")
            total += member.file_size
            if total > max_bytes:
                raise ModelFileError(f"the .npz decompresses to more than {max_bytes:,} bytes")
            if not member.filename.endswith(".npy"):
                raise ModelFileError(f"{member.filename}: an .npz holds only .npy arrays")
        arrays = {}
        for member in members:
            try:
                with archive.open(member) as handle:
                    raw = handle.read(member.file_size + 1)
                if len(raw) > member.file_size:
                    raise ModelFileError(f"{member.filename}: larger than its declared size")
                arrays[member.filename[:-4]] = _read_npy(raw, member.filename, max_bytes)
            except (zipfile.BadZipFile, OSError, EOFError, RuntimeError,
                    NotImplementedError, ValueError, struct.error) as error:
                if isinstance(error, ModelFileError):
                    raise
                raise ModelFileError(f"{member.filename}: cannot be read: {error}") from None
    return arrays


def _npy_header(raw: bytes, name: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran_order, dtype, offset of the data) from a .npy file's header, read with
    NumPy's own header readers and nothing after it."""
    if raw[:6] != b"\x93NUMPY":
        raise ModelFileError(f"{name}: not a .npy array")
    handle = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise ModelFileError(f"{name}: .npy format version {version[0]}.{version[1]} is "
                                 f"not read here (np.save writes 1.0)")
    except ModelFileError:
        raise
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError,
            OverflowError, EOFError) as error:
        reason = str(error).split("\n")[0][:200]
        raise ModelFileError(f"{name}: not a readable .npy header: {reason}") from None
    return shape, fortran, dtype, handle.tell()


def _read_npy(raw: bytes, name: str, max_bytes: int = MAX_FILE_BYTES) -> np.ndarray:
    """The array of a .npy file, after its header's shape and dtype were checked against the
    limit and against the bytes after the header: nothing of a size the header merely claims
    is allocated."""
    shape, fortran, dtype, offset = _npy_header(raw, name)
    if dtype.hasobject:
        raise ModelFileError(f"{name}: holds Python objects (a pickle), which are never "
                             f"loaded; save plain float arrays")
    if dtype.kind != "f" or dtype.itemsize not in (2, 4, 8):
        raise ModelFileError(f"{name}: dtype {dtype} is not supported; save float16, "
                             f"float32 or float64 arrays")
    if any(type(size) is not int or size < 0 for size in shape):
        raise ModelFileError(f"{name}: the header's shape {shape} holds something other than "
                             f"sizes >= 0")
    count = 1
    for size in shape:  # Python integers: a lying shape cannot overflow
        count *= size
    claimed = count * dtype.itemsize
    shown = "(" + ", ".join(f"{size:,}" for size in shape) + ")"
    if claimed > max_bytes:
        raise ModelFileError(f"{name}: the header claims shape {shown} of {dtype}, "
                             f"{claimed:,} bytes, over the limit of {max_bytes:,}")
    if claimed > len(raw) - offset:
        raise ModelFileError(f"{name}: the header claims shape {shown} of {dtype}, "
                             f"{claimed:,} bytes, but the file holds only "
                             f"{len(raw) - offset:,} after its header")
    if any(size > max_bytes for size in shape):  # even with another size 0: no such array
        raise ModelFileError(f"{name}: the header claims shape {shown}, a size over the "
                             f"limit of {max_bytes:,}")
    flat = np.frombuffer(raw, dtype=dtype, count=count, offset=offset) if count else (
        np.empty(0, dtype=dtype))
    try:
        return flat.reshape(shape, order="F" if fortran else "C").copy()
    except ValueError as error:  # more dimensions than NumPy's 64, say
        raise ModelFileError(f"{name}: the header's shape {shown} is not an array NumPy can "
                             f"make: {error}") from None


def _to_float64(name: str, array: np.ndarray) -> FloatArray:
    if array.dtype.kind != "f" or array.dtype.itemsize not in (2, 4, 8):
        raise ModelFileError(f"{name}: dtype {array.dtype} is not supported; save float16, "
                             f"float32 or float64 weights")
    return np.ascontiguousarray(array, dtype=np.float64)


# ---- the state_dict ---------------------------------------------------------------------------

def parse_state_dict(arrays: dict[str, np.ndarray],
                     metadata: dict[str, str] | None = None) -> LoadedModel:
    """Detect the cell, layers and sizes from the keys and shapes, and check everything fits.

    Accepted keys: ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``
    (with one optional module prefix such as ``lstm.``) and ``head.weight``, ``head.bias``,
    all of them after one prefix common to every key (``module.``, ``_orig_mod.``, ...), which
    is removed. ``weight_hh_l{k}`` is (G*H, H) with G = 1 (rnn), 3 (gru) or 4 (lstm).
    ``metadata`` (a safetensors file's ``__metadata__``) may name tensors that
    ``safetensors.torch.save_model`` dropped as tied copies: each maps to the name it kept,
    and is restored from it.

    Raises:
        ModelFileError: naming the key and what the engine cannot represent.
    """
    warnings: list[str] = []
    arrays, restored, unresolved = _restore_aliases(arrays, metadata or {})
    for key, kept in restored.items():
        warnings.append(f"{key} was restored from {kept}: the file's metadata lists it as a "
                        f"tied copy of {kept} (safetensors save_model drops those)")
    outer = _common_prefix(list(arrays))
    if outer:
        warnings.append(f"the prefix {outer!r} that every key began with"
                        f"{_wrapper_origin(outer)} was removed")
        arrays = {key[len(outer):]: value for key, value in arrays.items()}

    def named(key: str) -> str:
        """A key as the file names it, and where it came from if it was restored."""
        full = outer + key
        if full in restored:
            return f"{full} (restored from {restored[full]}, per the file's metadata)"
        return full

    def missing(key: str) -> str:
        """Why a key is missing, if the metadata says: an alias of a tensor not in the file."""
        full = outer + key
        if full in unresolved:
            return (f"{full} is missing (the file's metadata lists it as an alias of "
                    f"{unresolved[full]}, which the file does not hold either)")
        return f"{full} is missing"

    recurrent: dict[str, dict[str, np.ndarray]] = {}  # prefix -> {bare key: array}
    head: dict[str, np.ndarray] = {}
    for key, array in arrays.items():
        if key in HEAD_KEYS:
            head[key] = array
            continue
        prefix, _, bare = key.rpartition(".")
        prefix = prefix + "." if prefix else ""
        if bare.endswith("_reverse"):
            raise ModelFileError(f"{outer}{key}: bidirectional layers (bidirectional=True) are "
                                 f"not supported: the engine runs one direction")
        if bare.startswith("weight_hr_l"):
            raise ModelFileError(f"{outer}{key}: LSTM proj_size (a projected hidden state) is "
                                 f"not supported")
        if not _LAYER_KEY.match(bare):
            raise ModelFileError(
                f"{outer}{key}: not a key of an nn.RNN/nn.LSTM/nn.GRU state_dict "
                f"(weight_ih_l0, ...) nor of its read-out (head.weight, head.bias); remove it "
                f"or rename the read-out to head")
        recurrent.setdefault(prefix, {})[bare] = array
    if not recurrent:
        raise ModelFileError("no recurrent weights found: expected weight_ih_l0, weight_hh_l0, "
                             "bias_ih_l0, bias_hh_l0 (the keys of nn.RNN/nn.LSTM/nn.GRU)")
    if len(recurrent) > 1:
        names = ", ".join(repr(outer + p if p else "(none)") for p in sorted(recurrent))
        raise ModelFileError(f"keys of more than one recurrent module (prefixes {names}); "
                             f"save one nn.RNN, nn.LSTM or nn.GRU")
    # The recurrent module's own name next to a head (rnn.weight_ih_l0, head.weight) is the
    # layout the upload page asks for: said in module_prefix, not warned about.
    (inner, layers_raw), = recurrent.items()
    prefix = inner  # in the messages below, named(prefix + key) is the key as in the file
    params: Params = {bare: _to_float64(outer + prefix + bare, a)
                      for bare, a in layers_raw.items()}

    indices = sorted({int(_LAYER_KEY.match(k).group(2)) for k in params})  # type: ignore[union-attr]
    num_layers = indices[-1] + 1
    if num_layers > MAX_LAYERS:
        raise ModelFileError(f"{num_layers} layers, more than the {MAX_LAYERS} supported")
    for layer in range(num_layers):
        key = f"weight_hh_l{layer}"
        if key not in params:
            raise ModelFileError(f"{missing(prefix + key)}: layer {layer} has no recurrent "
                                 f"weights, but a layer above it does")
    w_hh = params["weight_hh_l0"]
    if w_hh.ndim != 2 or w_hh.shape[1] == 0 or w_hh.shape[0] % w_hh.shape[1]:
        raise ModelFileError(f"{named(prefix + 'weight_hh_l0')} has shape {w_hh.shape}; "
                             f"expected (G*H, H) with G = 1, 3 or 4")
    hidden = w_hh.shape[1]
    gates = w_hh.shape[0] // hidden
    if gates not in CELL_BY_GATES:
        raise ModelFileError(f"{named(prefix + 'weight_hh_l0')} has shape {w_hh.shape}: "
                             f"{gates} gate blocks, but rnn has 1, gru 3 and lstm 4")
    cell = CELL_BY_GATES[gates]
    if hidden > MAX_HIDDEN:
        raise ModelFileError(f"{named(prefix + 'weight_hh_l0')}: hidden size {hidden} is over "
                             f"the {MAX_HIDDEN} supported")
    w_ih = params.get("weight_ih_l0")
    if w_ih is None:
        raise ModelFileError(f"{missing(prefix + 'weight_ih_l0')} (layer 0 of {cell})")
    if w_ih.ndim != 2:
        raise ModelFileError(f"{named(prefix + 'weight_ih_l0')} is not a matrix: it has shape "
                             f"{w_ih.shape}")
    input_size = w_ih.shape[1]
    for layer in range(num_layers):
        shape_hh = params[f"weight_hh_l{layer}"].shape
        if (len(shape_hh) == 2 and shape_hh[1] == hidden and shape_hh[0] % hidden == 0
                and shape_hh[0] // hidden in CELL_BY_GATES and shape_hh[0] // hidden != gates):
            other = CELL_BY_GATES[shape_hh[0] // hidden]
            raise ModelFileError(
                f"{named(prefix + f'weight_hh_l{layer}')} has shape {shape_hh}, a {other} "
                f"layer, but layer 0 is {cell}: mixed cell types are not supported")
        fan_in = input_size if layer == 0 else hidden
        expected = {f"weight_ih_l{layer}": (gates * hidden, fan_in),
                    f"weight_hh_l{layer}": (gates * hidden, hidden),
                    f"bias_ih_l{layer}": (gates * hidden,),
                    f"bias_hh_l{layer}": (gates * hidden,)}
        for key, shape in expected.items():
            if key not in params:
                if key.startswith("bias") and outer + prefix + key not in unresolved:
                    raise ModelFileError(f"{missing(prefix + key)}: bias=False is not "
                                         f"supported (save a model with biases, or zeros)")
                raise ModelFileError(f"{missing(prefix + key)} (layer {layer} of {cell})")
            if params[key].shape != shape:
                raise ModelFileError(
                    f"{named(prefix + key)} has shape {params[key].shape}, expected {shape} "
                    f"for a {cell} with hidden size {hidden} and input size {fan_in} (from "
                    f"{outer}{prefix}weight_hh_l0 and {outer}{prefix}weight_ih_l0)")
    output_size = None
    if head:
        if set(head) != set(HEAD_KEYS):
            absent = (set(HEAD_KEYS) - set(head)).pop()
            raise ModelFileError(f"{missing(absent)}: the read-out needs head.weight and "
                                 f"head.bias")
        weight = _to_float64(outer + "head.weight", head["head.weight"])
        bias = _to_float64(outer + "head.bias", head["head.bias"])
        if weight.ndim != 2 or weight.shape[1] != hidden:
            raise ModelFileError(f"{named('head.weight')} has shape {weight.shape}, expected "
                                 f"(K, {hidden})")
        if bias.shape != (weight.shape[0],):
            raise ModelFileError(f"{named('head.bias')} has shape {bias.shape}, expected "
                                 f"({weight.shape[0]},)")
        params["head.weight"], params["head.bias"] = weight, bias
        output_size = weight.shape[0]
    if any(a.dtype == np.float16 for a in arrays.values()):
        warnings.append("float16 weights were converted to float64")
    for key, value in params.items():
        bad = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
        if bad:
            nans = int(np.count_nonzero(np.isnan(value)))
            warnings.append(f"{key} has {bad} non-finite entries ({nans} NaN, {bad - nans} "
                            f"infinite): every number computed from them will be too")
    return LoadedModel(cell, num_layers, input_size, hidden, output_size, params,
                       tuple(warnings), prefix=outer, module_prefix=inner,
                       aliases=dict(restored))


# Keys a state_dict of a recurrent module and its read-out can hold (after any prefix): the
# names a safetensors metadata entry must have to be taken for a dropped tied tensor.
_STATE_KEY = re.compile(r"(^|\.)((weight|bias)_(ih|hh|hr)_l\d+(_reverse)?|head\.(weight|bias))$")
WRAPPERS = {"module": "nn.DataParallel or DistributedDataParallel",
            "_orig_mod": "torch.compile"}


def _restore_aliases(arrays: dict[str, np.ndarray], metadata: dict[str, str]
                     ) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, str]]:
    """(arrays with dropped tied tensors restored, {restored key: the key it came from},
    {key the metadata names as an alias of a tensor the file lacks: that tensor}).

    ``safetensors.torch.save_model`` saves one tensor of each group that shares memory and
    writes ``{dropped name: kept name}`` into ``__metadata__`` for the others."""
    restored: dict[str, str] = {}
    unresolved: dict[str, str] = {}
    arrays = dict(arrays)
    for key, kept in metadata.items():
        if key in arrays or not isinstance(key, str) or not _STATE_KEY.search(key):
            continue
        if kept in arrays:
            arrays[key] = arrays[kept].copy()
            restored[key] = kept
        else:
            unresolved[key] = kept
    return arrays, restored, unresolved


def _common_prefix(keys: list[str]) -> str:
    """The dotted prefix every key begins with (``module.``, ``_orig_mod.``, ``model.rnn.``),
    each key keeping its last part and a read-out keeping its ``head.``; '' if none."""
    if not keys:
        return ""
    parts = [key.split(".") for key in keys]
    common: list[str] = []
    for level in zip(*parts, strict=False):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    common = common[:min(len(p) for p in parts) - 1]
    if "head" in common:
        common = common[:common.index("head")]
    return "".join(part + "." for part in common)


def _wrapper_origin(prefix: str) -> str:
    """' (added by torch.compile)' for the wrappers known by name; '' for a module's name."""
    known = [WRAPPERS[part] for part in prefix.split(".") if part in WRAPPERS]
    return f" (added by {' and '.join(known)})" if known else ""


def load_bytes(data: bytes, *, max_bytes: int = MAX_FILE_BYTES) -> LoadedModel:
    """A model from the bytes of a ``.safetensors`` or ``.npz`` file (see ``parse_state_dict``)."""
    arrays, metadata = read_model_file(data, max_bytes=max_bytes)
    return parse_state_dict(arrays, metadata)


def load_model(path: str | PathLike[str], *, max_bytes: int = MAX_FILE_BYTES) -> LoadedModel:
    """A model from a ``.safetensors`` or ``.npz`` file on disk, with its description.

    Raises:
        ModelFileError: see ``read_arrays`` and ``parse_state_dict``.
        OSError: the file cannot be read.
    """
    path = Path(path)
    if path.stat().st_size > max_bytes:
        raise ModelFileError(f"{path.name} has {path.stat().st_size:,} bytes, over the limit "
                             f"of {max_bytes:,}")
    return load_bytes(path.read_bytes(), max_bytes=max_bytes)


def load_state_dict(path: str | PathLike[str]) -> Params:
    """The engine's parameter dict (float64, PyTorch keys) of a saved state_dict, in one call::

        params = engine.load_state_dict("my_lstm.safetensors")
    """
    return load_model(path).params


# ---- inputs -----------------------------------------------------------------------------------

def read_inputs(data: bytes, input_size: int | None = None, *,
                max_bytes: int = MAX_FILE_BYTES) -> FloatArray:
    """An input sequence from ``.npy`` bytes, as (T, B, D) float64 ((T, D) becomes B = 1).

    Raises:
        ModelFileError: empty, over the limit, not .npy, a pickle, not 2-D or 3-D, not float,
            or D different from ``input_size``.
    """
    if not data:
        raise ModelFileError("the inputs file is empty")
    if len(data) > max_bytes:
        raise ModelFileError(f"the inputs file has {len(data):,} bytes, over the limit of "
                             f"{max_bytes:,}")
    array = _read_npy(data, "inputs", max_bytes)
    if array.ndim == 2:
        array = array[:, None, :]
    if array.ndim != 3 or 0 in array.shape:
        raise ModelFileError(f"inputs have shape {array.shape}; expected (T, D) or (T, B, D)")
    values = _to_float64("inputs", array)
    if input_size is not None and values.shape[2] != input_size:
        raise ModelFileError(f"inputs have D = {values.shape[2]} features per step but the "
                             f"model's weight_ih_l0 expects input_size = {input_size}")
    if not np.isfinite(values).all():
        raise ModelFileError("inputs hold NaN or infinite values")
    return values


def load_inputs(path: str | PathLike[str], input_size: int | None = None) -> FloatArray:
    """(T, B, D) float64 inputs from a ``.npy`` file (see ``read_inputs``)."""
    return read_inputs(Path(path).read_bytes(), input_size)


def save_safetensors(params: Params) -> bytes:
    """The params as ``.safetensors`` bytes, float64 (exact; ``torch``'s ``load_state_dict``
    casts them to the module's dtype). No torch needed."""
    from safetensors.numpy import save

    return save({key: np.ascontiguousarray(value, dtype=np.float64)
                 for key, value in params.items()})


__all__ = ["CELLS", "LoadedModel", "ModelFileError", "load_bytes", "load_inputs", "load_model",
           "load_state_dict", "parse_state_dict", "read_arrays", "read_inputs", "read_model_file",
           "save_safetensors"]
