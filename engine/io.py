"""Reading a user's trained network: a PyTorch ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` state_dict
saved as ``.safetensors`` or ``.npz``, and an optional input sequence saved as ``.npy``.

Nothing here runs code from the file: safetensors is a JSON header plus raw buffers (read with the
``safetensors`` package's NumPy API, imported only when such a file is read), ``.npz`` and
``.npy`` are read with ``allow_pickle=False``. Every size is bounded before anything is
allocated: the safetensors header's length and offsets are checked against the bytes at hand, and
an ``.npz``'s members are checked, by the sizes its zip directory declares, against a limit on
the decompressed total (``zipfile`` never reads past a member's declared size).

What the engine cannot represent is refused with a ``ModelFileError`` whose message names the key
and what is unsupported: bidirectional layers (``*_reverse``), LSTM ``proj_size``
(``weight_hr_l*``), ``bias=False``, keys of more than one recurrent module or cell type, missing
layers, shapes that do not fit together. Non-finite weights are loaded and reported as warnings.

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
        a module prefix that was stripped, a float16 file).
    """

    cell: str
    num_layers: int
    input_size: int
    hidden_size: int
    output_size: int | None
    params: Params = field(repr=False)
    warnings: tuple[str, ...] = ()

    def describe(self) -> dict:
        return {"cell": self.cell, "num_layers": self.num_layers, "input_size": self.input_size,
                "hidden_size": self.hidden_size, "output_size": self.output_size,
                "warnings": list(self.warnings)}


# ---- reading arrays out of bytes --------------------------------------------------------------

def read_arrays(data: bytes, *, max_bytes: int = MAX_FILE_BYTES) -> dict[str, np.ndarray]:
    """The named arrays of a ``.safetensors`` or ``.npz`` file's bytes, told apart by content.

    Raises:
        ModelFileError: empty, over ``max_bytes``, neither format, a malformed or lying header,
            a pickle, an object array or a zip member over the limit.
    """
    if not data:
        raise ModelFileError("the file is empty")
    if len(data) > max_bytes:
        raise ModelFileError(f"the file has {len(data):,} bytes, over the limit of "
                             f"{max_bytes:,}")
    if data[:4] == b"PK\x03\x04" or data[:4] == b"PK\x05\x06":
        return _read_npz(data, max_bytes)
    if len(data) >= 9 and data[8:9] == b"{":
        return _read_safetensors(data)
    raise ModelFileError("the file is neither .safetensors (an 8-byte header length, then a "
                         "JSON header) nor .npz (a zip archive of .npy arrays)")


def _read_safetensors(data: bytes) -> dict[str, np.ndarray]:
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
    buffer_len = len(data) - 8 - header_len
    spans = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not (isinstance(entry, dict) and isinstance(entry.get("shape"), list)
                and isinstance(entry.get("data_offsets"), list)
                and len(entry["data_offsets"]) == 2
                and all(isinstance(v, int) and v >= 0 for v in entry["data_offsets"])
                and all(isinstance(v, int) and v >= 0 for v in entry["shape"])):
            raise ModelFileError(f"{name}: malformed safetensors entry (needs dtype, shape and "
                                 f"data_offsets)")
        dtype = entry.get("dtype")
        if dtype not in FLOAT_DTYPES:
            raise ModelFileError(f"{name}: dtype {dtype} is not supported; save float16, "
                                 f"float32 or float64 weights (e.g. model.float())")
        begin, end = entry["data_offsets"]
        expected = int(np.prod(entry["shape"], dtype=np.int64)) * np.dtype(
            FLOAT_DTYPES[dtype]).itemsize
        if end < begin or end > buffer_len or end - begin != expected:
            raise ModelFileError(f"{name}: data_offsets [{begin}, {end}] do not fit shape "
                                 f"{entry['shape']} of {dtype} in a {buffer_len:,}-byte buffer")
        spans.append((begin, end))
    spans.sort()
    if any(a_end > b_begin for (_, a_end), (b_begin, _) in zip(spans, spans[1:], strict=False)):
        raise ModelFileError("safetensors tensors overlap in the data buffer")
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        return load(data)
    except (SafetensorError, ValueError) as error:
        raise ModelFileError(f"safetensors could not read the file: {error}") from None


def _read_npz(data: bytes, max_bytes: int) -> dict[str, np.ndarray]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise ModelFileError(f"not a readable .npz (zip) file: {error}") from None
    with archive:
        members = archive.infolist()
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
                arrays[member.filename[:-4]] = _read_npy(raw, member.filename)
            except (zipfile.BadZipFile, OSError, EOFError, RuntimeError,
                    NotImplementedError) as error:
                raise ModelFileError(f"{member.filename}: cannot be read: {error}") from None
    return arrays


def _read_npy(raw: bytes, name: str) -> np.ndarray:
    if raw[:6] != b"\x93NUMPY":
        raise ModelFileError(f"{name}: not a .npy array")
    try:
        return np.load(io.BytesIO(raw), allow_pickle=False)
    except ValueError as error:
        if "pickle" in str(error).lower() or "object" in str(error).lower():
            raise ModelFileError(f"{name}: holds Python objects (a pickle), which are never "
                                 f"loaded; save plain float arrays") from None
        raise ModelFileError(f"{name}: not a readable .npy array: {error}") from None
    except (OSError, EOFError) as error:
        raise ModelFileError(f"{name}: not a readable .npy array: {error}") from None


def _to_float64(name: str, array: np.ndarray) -> FloatArray:
    if array.dtype.kind != "f" or array.dtype.itemsize not in (2, 4, 8):
        raise ModelFileError(f"{name}: dtype {array.dtype} is not supported; save float16, "
                             f"float32 or float64 weights")
    return np.ascontiguousarray(array, dtype=np.float64)


# ---- the state_dict ---------------------------------------------------------------------------

def parse_state_dict(arrays: dict[str, np.ndarray]) -> LoadedModel:
    """Detect the cell, layers and sizes from the keys and shapes, and check everything fits.

    Accepted keys: ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``
    (all with one optional module prefix such as ``lstm.``) and ``head.weight``, ``head.bias``.
    ``weight_hh_l{k}`` is (G*H, H) with G = 1 (rnn), 3 (gru) or 4 (lstm).

    Raises:
        ModelFileError: naming the key and what the engine cannot represent.
    """
    warnings: list[str] = []
    recurrent: dict[str, dict[str, np.ndarray]] = {}  # prefix -> {bare key: array}
    head: dict[str, np.ndarray] = {}
    for key, array in arrays.items():
        if key in HEAD_KEYS:
            head[key] = array
            continue
        prefix, _, bare = key.rpartition(".")
        prefix = prefix + "." if prefix else ""
        if bare.endswith("_reverse"):
            raise ModelFileError(f"{key}: bidirectional layers (bidirectional=True) are not "
                                 f"supported: the engine runs one direction")
        if bare.startswith("weight_hr_l"):
            raise ModelFileError(f"{key}: LSTM proj_size (a projected hidden state) is not "
                                 f"supported")
        if not _LAYER_KEY.match(bare):
            raise ModelFileError(
                f"{key}: not a key of an nn.RNN/nn.LSTM/nn.GRU state_dict (weight_ih_l0, ...) "
                f"nor of its read-out (head.weight, head.bias); remove it or rename the "
                f"read-out to head")
        recurrent.setdefault(prefix, {})[bare] = array
    if not recurrent:
        raise ModelFileError("no recurrent weights found: expected weight_ih_l0, weight_hh_l0, "
                             "bias_ih_l0, bias_hh_l0 (the keys of nn.RNN/nn.LSTM/nn.GRU)")
    if len(recurrent) > 1:
        names = ", ".join(repr(p or "(none)") for p in sorted(recurrent))
        raise ModelFileError(f"keys of more than one recurrent module (prefixes {names}); "
                             f"save one nn.RNN, nn.LSTM or nn.GRU")
    (prefix, layers_raw), = recurrent.items()
    if prefix:
        warnings.append(f"the module prefix {prefix!r} was stripped from the keys")
    params: Params = {bare: _to_float64(prefix + bare, a) for bare, a in layers_raw.items()}

    indices = sorted({int(_LAYER_KEY.match(k).group(2)) for k in params})  # type: ignore[union-attr]
    num_layers = indices[-1] + 1
    if num_layers > MAX_LAYERS:
        raise ModelFileError(f"{num_layers} layers, more than the {MAX_LAYERS} supported")
    for layer in range(num_layers):
        key = f"weight_hh_l{layer}"
        if key not in params:
            raise ModelFileError(f"{prefix}{key} is missing: layer {layer} has no recurrent "
                                 f"weights, but a layer above it does")
    w_hh = params["weight_hh_l0"]
    if w_hh.ndim != 2 or w_hh.shape[1] == 0 or w_hh.shape[0] % w_hh.shape[1]:
        raise ModelFileError(f"{prefix}weight_hh_l0 has shape {w_hh.shape}; expected "
                             f"(G*H, H) with G = 1, 3 or 4")
    hidden = w_hh.shape[1]
    gates = w_hh.shape[0] // hidden
    if gates not in CELL_BY_GATES:
        raise ModelFileError(f"{prefix}weight_hh_l0 has shape {w_hh.shape}: {gates} gate blocks, "
                             f"but rnn has 1, gru 3 and lstm 4")
    cell = CELL_BY_GATES[gates]
    if hidden > MAX_HIDDEN:
        raise ModelFileError(f"{prefix}weight_hh_l0: hidden size {hidden} is over the "
                             f"{MAX_HIDDEN} supported")
    w_ih = params.get("weight_ih_l0")
    if w_ih is None or w_ih.ndim != 2:
        raise ModelFileError(f"{prefix}weight_ih_l0 is missing or not a matrix")
    input_size = w_ih.shape[1]
    for layer in range(num_layers):
        shape_hh = params[f"weight_hh_l{layer}"].shape
        if (len(shape_hh) == 2 and shape_hh[1] == hidden and shape_hh[0] % hidden == 0
                and shape_hh[0] // hidden in CELL_BY_GATES and shape_hh[0] // hidden != gates):
            other = CELL_BY_GATES[shape_hh[0] // hidden]
            raise ModelFileError(
                f"{prefix}weight_hh_l{layer} has shape {shape_hh}, a {other} layer, but layer 0 "
                f"is {cell}: mixed cell types are not supported")
        fan_in = input_size if layer == 0 else hidden
        expected = {f"weight_ih_l{layer}": (gates * hidden, fan_in),
                    f"weight_hh_l{layer}": (gates * hidden, hidden),
                    f"bias_ih_l{layer}": (gates * hidden,),
                    f"bias_hh_l{layer}": (gates * hidden,)}
        for key, shape in expected.items():
            if key not in params:
                if key.startswith("bias"):
                    raise ModelFileError(f"{prefix}{key} is missing: bias=False is not "
                                         f"supported (save a model with biases, or zeros)")
                raise ModelFileError(f"{prefix}{key} is missing (layer {layer} of {cell})")
            if params[key].shape != shape:
                raise ModelFileError(
                    f"{prefix}{key} has shape {params[key].shape}, expected {shape} for a "
                    f"{cell} with hidden size {hidden} and input size {fan_in} (from "
                    f"{prefix}weight_hh_l0 and {prefix}weight_ih_l0)")
    output_size = None
    if head:
        if set(head) != set(HEAD_KEYS):
            missing = (set(HEAD_KEYS) - set(head)).pop()
            raise ModelFileError(f"{missing} is missing: the read-out needs head.weight and "
                                 f"head.bias")
        weight = _to_float64("head.weight", head["head.weight"])
        bias = _to_float64("head.bias", head["head.bias"])
        if weight.ndim != 2 or weight.shape[1] != hidden:
            raise ModelFileError(f"head.weight has shape {weight.shape}, expected (K, {hidden})")
        if bias.shape != (weight.shape[0],):
            raise ModelFileError(f"head.bias has shape {bias.shape}, expected "
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
                       tuple(warnings))


def load_bytes(data: bytes, *, max_bytes: int = MAX_FILE_BYTES) -> LoadedModel:
    """A model from the bytes of a ``.safetensors`` or ``.npz`` file (see ``parse_state_dict``)."""
    return parse_state_dict(read_arrays(data, max_bytes=max_bytes))


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
    array = _read_npy(data, "inputs")
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
           "load_state_dict", "parse_state_dict", "read_arrays", "read_inputs",
           "save_safetensors"]
