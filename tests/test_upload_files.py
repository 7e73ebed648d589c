"""Model and inputs files as they come (issue 22): files whose headers lie about their sizes,
malformed safetensors headers and zips of very many members are refused with a 422 naming the
array and the field, before anything of the claimed size is allocated; files saved from
nn.DataParallel, torch.compile and safetensors' save_model (tied tensors) load. Also: the 413's
words, Allow on OPTIONS and 405, and the statuses in the OpenAPI document."""

from __future__ import annotations

import io
import json
import struct
import time
import warnings
import zipfile

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradient_flow_lab.app import modelstore
from gradient_flow_lab.app.main import app
from gradient_flow_lab.engine import io as model_io
from tests.helpers import small_model_store

torch = pytest.importorskip("torch")
nn = torch.nn
LIMIT = 2_000_000


@pytest.fixture
def store(tmp_path):
    with small_model_store(tmp_path / "models", max_file_bytes=LIMIT) as store:
        yield store


@pytest.fixture
def api(store):
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def upload(api, model_bytes, inputs_bytes=None):
    files = {"file": ("model.safetensors", model_bytes)}
    if inputs_bytes is not None:
        files["inputs"] = ("inputs.npy", inputs_bytes)
    return api.post("/api/models", files=files)


def stored(store):
    return sorted(p.name for p in store.directory.glob("*")) if store.directory.exists() else []


def small_model() -> dict[str, np.ndarray]:
    """An nn.LSTM(3, 5) state_dict's keys and shapes (random weights; no torch needed)."""
    rng = np.random.default_rng(0)
    return {"weight_ih_l0": rng.standard_normal((20, 3)).astype(np.float32),
            "weight_hh_l0": rng.standard_normal((20, 5)).astype(np.float32),
            "bias_ih_l0": np.zeros(20, np.float32), "bias_hh_l0": np.zeros(20, np.float32)}


def safetensors_bytes(arrays: dict[str, np.ndarray], metadata: dict | None = None) -> bytes:
    from safetensors.numpy import save

    return save(arrays, metadata=metadata)


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


# ---- files whose headers lie ------------------------------------------------------------------

def lying_npy(shape, descr="<f8", data: int = 48, version=(1, 0)) -> bytes:
    """A .npy whose header claims ``shape`` and which holds ``data`` bytes after it."""
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}"
    if version == (1, 0):
        raw = (header.ljust(128 - 10 - 1) + "\n").encode()
        start = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(raw))
    else:
        raw = (header.ljust(128 - 12 - 1) + "\n").encode()
        start = b"\x93NUMPY\x02\x00" + struct.pack("<I", len(raw))
    return start + raw + b"\0" * data


LYING_INPUTS = {
    "shape (10^12, 1, 3)": (lying_npy((10**12, 1, 3)),
                            "inputs: the header claims shape (1,000,000,000,000, 1, 3)"),
    "shape (2^30, 1, 3)": (lying_npy((2**30, 1, 3)),
                           "inputs: the header claims shape (1,073,741,824, 1, 3)"),
    "shape (2^30, 1, 3), format 2.0": (lying_npy((2**30, 1, 3), version=(2, 0)),
                                       "over the limit of 2,000,000"),
    "under the limit, over the file": (lying_npy((1000, 1, 3)),
                                       "24,000 bytes, but the file holds only 48 after"),
    "a negative size": (lying_npy((-1, 1, 3)), "holds something other than sizes >= 0"),
    "an object array": (lying_npy((2, 3), descr="|O"), "pickle"),
    "integers": (lying_npy((2, 3), descr="<i8"), "dtype int64 is not supported"),
    "a header that is not a dict": (b"\x93NUMPY\x01\x00\x08\x00[1, 2]\n\n" + b"\0" * 8,
                                    "not a readable .npy header"),
    "a header cut short": (b"\x93NUMPY\x01\x00\xff\x00{'descr'", "not a readable .npy header"),
    "format 3.0": (b"\x93NUMPY\x03\x00" + b"\0" * 40, "format version 3.0"),
}


@pytest.mark.parametrize("name", list(LYING_INPUTS))
def test_inputs_whose_header_lies_are_a_422_naming_the_claim(api, store, name):
    data, words = LYING_INPUTS[name]
    response = upload(api, safetensors_bytes(small_model()), data)
    assert response.status_code == 422, response.text
    assert words in response.json()["detail"]
    assert stored(store) == []


def test_a_lying_npy_inside_an_npz_is_named_by_its_member(api, store):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for key, value in small_model().items():
            archive.writestr(f"{key}.npy", npy_bytes(value))
        archive.writestr("head.weight.npy", lying_npy((2**30, 1, 3)))
    response = upload(api, buffer.getvalue())
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("head.weight.npy: the header claims shape")
    assert stored(store) == []


def test_honest_inputs_still_load_in_every_layout():
    rng = np.random.default_rng(1)
    values = rng.standard_normal((7, 2, 3))
    for array in (values, values.astype(np.float16), np.asfortranarray(values),
                  values.astype(">f4"), values[:, 0, :]):
        loaded = model_io.read_inputs(npy_bytes(array), 3)
        expected = array if array.ndim == 3 else array[:, None, :]
        assert loaded.dtype == np.float64 and loaded.flags.writeable
        np.testing.assert_array_equal(loaded, np.asarray(expected, dtype=np.float64))


def safetensors_header(entry: dict, *, metadata=None, data: int = 64) -> bytes:
    header = {"weight_hh_l0": entry}
    if metadata is not None:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + b"\0" * data


GOOD_ENTRY = {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]}
LYING_SAFETENSORS = {
    "dtype []": ({**GOOD_ENTRY, "dtype": []}, "weight_hh_l0: the dtype field is []"),
    "dtype {}": ({**GOOD_ENTRY, "dtype": {}}, "weight_hh_l0: the dtype field is {}"),
    "dtype I64": ({**GOOD_ENTRY, "dtype": "I64"}, "weight_hh_l0: dtype I64 is not supported"),
    "shape holding 2^64": ({**GOOD_ENTRY, "shape": [2**64, 1]},
                           "weight_hh_l0: the data_offsets field [0, 64] holds 64 bytes but its "
                           "shape field [18446744073709551616, 1] of F32 needs"),
    "shape holding 2^64 twice": ({**GOOD_ENTRY, "shape": [2**64, 2**64]}, "shape field"),
    "a negative size": ({**GOOD_ENTRY, "shape": [-4, -4]},
                        "weight_hh_l0: the shape field is [-4, -4]; it must be a list of whole"),
    "a fractional size": ({**GOOD_ENTRY, "shape": [4.0, 4]}, "the shape field is [4.0, 4]"),
    "a size that is true": ({**GOOD_ENTRY, "shape": [True, 16]},
                            "the shape field is [true, 16]"),
    "a size that is text": ({**GOOD_ENTRY, "shape": ["4", 4]}, "the shape field is [\"4\", 4]"),
    "shape not a list": ({**GOOD_ENTRY, "shape": 16}, "the shape field is 16"),
    "offsets beyond the file": ({**GOOD_ENTRY, "data_offsets": [0, 2**70]},
                                "weight_hh_l0: the data_offsets field [0, "
                                "1180591620717411303424] runs outside the file's 64-byte"),
    "offsets backwards": ({**GOOD_ENTRY, "data_offsets": [64, 0]}, "runs outside"),
    "offsets of three": ({**GOOD_ENTRY, "data_offsets": [0, 32, 64]},
                         "the data_offsets field is [0, 32, 64]; it must be two byte offsets"),
    "offsets negative": ({**GOOD_ENTRY, "data_offsets": [-64, 0]}, "data_offsets field is [-64"),
    "no dtype": ({"shape": [4, 4], "data_offsets": [0, 64]}, "the dtype field is missing"),
    "an entry that is a list": ([1, 2], "weight_hh_l0: malformed safetensors entry"),
}


@pytest.mark.parametrize("name", list(LYING_SAFETENSORS))
def test_a_malformed_safetensors_entry_is_a_422_naming_tensor_and_field(api, store, name):
    entry, words = LYING_SAFETENSORS[name]
    response = upload(api, safetensors_header(entry))
    assert response.status_code == 422, response.text
    assert words in response.json()["detail"]
    assert stored(store) == []


def test_safetensors_metadata_that_is_not_text_and_too_many_tensors_are_refused(api, store):
    response = upload(api, safetensors_header(GOOD_ENTRY, metadata={"format": 1}))
    assert response.status_code == 422
    assert "__metadata__ field must map names to strings" in response.json()["detail"]
    many = safetensors_bytes({f"x{i}": np.zeros(1, np.float32)
                              for i in range(model_io.MAX_ARRAYS + 1)})
    response = upload(api, many)
    assert response.status_code == 422
    assert f"lists {model_io.MAX_ARRAYS + 1} tensors, over the limit of " \
           f"{model_io.MAX_ARRAYS}" in response.json()["detail"]
    assert stored(store) == []


# ---- zips of many members ---------------------------------------------------------------------

def many_member_zip(members: int, *, honest: bool = True) -> bytes:
    """A zip whose central directory lists ``members`` entries, all of one empty member (a few
    dozen bytes each: 600,000 take 29 MiB). Honest: the end records (zip64 beyond 65,534) say
    how many; not honest: they say 1 while the directory holds them all."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.npy", b"")
    data = buffer.getvalue()
    end = data.rfind(b"PK\x05\x06")
    _, _, _, _, _, size, offset, _ = struct.unpack("<4s4H2LH", data[end:end + 22])
    directory = data[offset:offset + size] * members
    out = data[:offset] + directory
    shown = min(members, 0xFFFF) if honest else 1
    if honest and members >= 0xFFFF:
        record = len(out)
        out += struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, members, members,
                           len(directory), offset)
        out += struct.pack("<4sLQL", b"PK\x06\x07", 0, record, 1)
    return out + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, shown, shown, len(directory),
                             offset, 0)


@pytest.mark.parametrize("members,honest,words", [
    (600_000, True, "lists 600,000 members, over the limit of"),
    (600_000, False, "central directory takes"),
    (model_io.MAX_ARRAYS + 1, True, f"lists {model_io.MAX_ARRAYS + 1} members"),
    (5_000, False, "central directory takes"),
])
def test_a_zip_of_many_members_is_refused_from_its_end_records_alone(monkeypatch, members,
                                                                      honest, words):
    data = many_member_zip(members, honest=honest)
    opened = []
    monkeypatch.setattr(zipfile, "ZipFile", lambda *a, **k: opened.append(a))
    started = time.process_time()
    with pytest.raises(model_io.ModelFileError, match=words):
        model_io.load_bytes(data, max_bytes=32 * 2**20)
    cpu = time.process_time() - started
    assert opened == [], "the zip's directory was parsed before the member count was checked"
    print(f"{members:,} members ({len(data) / 2**20:.1f} MiB): refused after {cpu:.4f} s CPU")


def test_a_zip_whose_end_record_understates_a_small_directory_is_counted_by_zipfile():
    data = many_member_zip(model_io.MAX_ARRAYS + 5, honest=False)  # fits the byte bound
    with pytest.raises(model_io.ModelFileError, match="more than 132 members"):
        model_io.load_bytes(data)


def test_a_real_model_in_an_npz_still_loads(api):
    response = upload(api, npz_bytes(small_model()))
    assert response.status_code == 201, response.text
    assert response.json()["cell"] == "lstm" and response.json()["prefix"] == ""


# ---- files as people save them ----------------------------------------------------------------


class Net(nn.Module):
    """A recurrent module and a read-out named head, as in the upload page's example."""

    def __init__(self, tie: bool = False, cell=None) -> None:
        super().__init__()
        self.rnn = (cell or nn.LSTM)(3, 6, num_layers=2)
        self.head = nn.Linear(6, 4)
        if tie:  # layer 1 reads its input through the same matrix it recurs with
            self.rnn.weight_ih_l1 = self.rnn.weight_hh_l1

    def forward(self, x):
        return self.head(self.rnn(x)[0])


def torch_file(module, fmt: str) -> bytes:
    state = {key: value.detach().contiguous().numpy() for key, value in
             module.state_dict().items()}
    return safetensors_bytes(state) if fmt == "safetensors" else npz_bytes(state)


def assert_same_weights(model: model_io.LoadedModel, net: Net) -> None:
    expected = dict(net.rnn.state_dict())
    expected |= {f"head.{key}": value for key, value in net.head.state_dict().items()}
    assert sorted(model.params) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(model.params[key], value.detach().double().numpy())


@pytest.fixture(scope="module")
def compiled():
    torch.manual_seed(2)
    net = Net(cell=nn.GRU)
    with warnings.catch_warnings():  # torch's own imports warn about torch.jit
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.compile(net), net  # no forward: its keys need no compiling


@pytest.mark.parametrize("fmt", ["safetensors", "npz"])
def test_a_model_saved_from_data_parallel_loads_with_its_head(api, fmt):
    torch.manual_seed(1)
    net = Net()
    wrapped = nn.DataParallel(net)
    assert all(key.startswith("module.") for key in wrapped.state_dict())
    response = upload(api, torch_file(wrapped, fmt))
    assert response.status_code == 201, response.text
    described = response.json()
    assert described["prefix"] == "module." and described["module_prefix"] == "rnn."
    assert described["output_size"] == 4, "the read-out (module.head.*) was not read"
    assert any("'module.'" in w and "nn.DataParallel" in w for w in described["warnings"])
    assert_same_weights(modelstore.get_store().get(described["id"]).model, net)
    report = api.get(f"/api/models/{described['id']}/report")
    assert report.status_code == 200 and report.json()["model"]["prefix"] == "module."
    page = api.get(f"/models/{described['id']}")
    assert "the prefix &#39;module.&#39; that every key began with" in page.text


def test_a_torch_compiled_model_loads_without_its_orig_mod_prefix(api, compiled):
    module, net = compiled
    assert all(key.startswith("_orig_mod.") for key in module.state_dict())
    response = upload(api, torch_file(module, "safetensors"))
    assert response.status_code == 201, response.text
    described = response.json()
    assert (described["cell"], described["prefix"], described["output_size"]) == (
        "gru", "_orig_mod.", 4)
    assert any("torch.compile" in w for w in described["warnings"])
    assert_same_weights(modelstore.get_store().get(described["id"]).model, net)


def test_a_bare_module_wrapped_twice_and_a_module_name_are_removed_from_every_key():
    torch.manual_seed(3)
    lstm = nn.LSTM(3, 6)
    state = {f"module._orig_mod.{k}": v.detach().numpy() for k, v in lstm.state_dict().items()}
    model = model_io.load_bytes(safetensors_bytes(state))
    assert model.prefix == "module._orig_mod." and model.module_prefix == ""
    assert "nn.DataParallel or DistributedDataParallel and torch.compile" in model.warnings[0]
    named = {f"encoder.{k}": v.detach().numpy() for k, v in lstm.state_dict().items()}
    assert model_io.load_bytes(npz_bytes(named)).prefix == "encoder."
    # a prefix that is not on every key is not removed, and the message names the key as saved
    odd = {**state, "extra.weight": np.zeros((2, 2), np.float32)}
    with pytest.raises(model_io.ModelFileError, match=r"^extra\.weight: not a key"):
        model_io.load_bytes(safetensors_bytes(odd))


def test_tied_tensors_dropped_by_save_model_are_restored_from_the_metadata(api, tmp_path):
    from safetensors.torch import save_model

    torch.manual_seed(4)
    net = Net(tie=True)
    path = tmp_path / "tied.safetensors"
    save_model(net, str(path))
    response = upload(api, path.read_bytes())
    assert response.status_code == 201, response.text
    described = response.json()
    assert described["aliases"] == {"rnn.weight_ih_l1": "rnn.weight_hh_l1"}
    assert any("rnn.weight_ih_l1 was restored from rnn.weight_hh_l1" in w
               for w in described["warnings"])
    assert_same_weights(modelstore.get_store().get(described["id"]).model, net)

    wrapped = tmp_path / "tied-parallel.safetensors"
    save_model(nn.DataParallel(net), str(wrapped))
    model = model_io.load_model(wrapped)
    assert model.prefix == "module."
    assert model.aliases == {"module.rnn.weight_ih_l1": "module.rnn.weight_hh_l1"}


def test_an_alias_of_a_tensor_the_file_lacks_is_refused_saying_so(api, store):
    torch.manual_seed(5)
    state = {k: v.detach().contiguous().numpy() for k, v in Net().state_dict().items()}
    del state["rnn.weight_ih_l1"], state["rnn.weight_hh_l1"]
    data = safetensors_bytes(state, metadata={"rnn.weight_ih_l1": "rnn.weight_hh_l1",
                                              "rnn.weight_hh_l1": "rnn.gone"})
    response = upload(api, data)
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "rnn.weight_hh_l1 is missing (the file's metadata lists it as an alias of rnn.gone, "
        "which the file does not hold either): layer 1 has no recurrent weights, but a layer "
        "above it does")
    assert stored(store) == []


def test_an_alias_whose_shape_does_not_fit_names_where_it_came_from():
    torch.manual_seed(6)
    state = {k: v.detach().contiguous().numpy() for k, v in Net().state_dict().items()}
    del state["rnn.bias_ih_l0"]
    data = safetensors_bytes(state, metadata={"rnn.bias_ih_l0": "rnn.weight_hh_l0"})
    with pytest.raises(model_io.ModelFileError,
                       match=r"rnn\.bias_ih_l0 \(restored from rnn\.weight_hh_l0, per the "
                             r"file's metadata\) has shape \(24, 6\)"):
        model_io.load_bytes(data)


# ---- the edges: 413 words, Allow, the OpenAPI document ------------------------------------------

def test_the_413_names_which_file_is_over_the_limit(api, store):
    model = api.post("/api/models", files={"file": ("m.npz", b"\0" * (LIMIT + 1))})
    assert model.status_code == 413
    assert model.json()["detail"] == (f"the model file is over this server's limit of "
                                      f"{LIMIT:,} bytes")
    inputs = upload(api, safetensors_bytes(small_model()), b"\0" * (LIMIT + 1))
    assert inputs.status_code == 413
    assert inputs.json()["detail"].startswith("the inputs file is over this server's limit")
    assert stored(store) == []


def test_options_and_405_name_every_method_the_path_answers(api):
    options = api.options("/api/simulate")
    assert options.status_code == 204
    assert options.headers["allow"] == "GET, HEAD, POST, OPTIONS"
    assert api.get("/api/simulate", params={"seq_len": 5}).status_code == 200
    refused = api.put("/api/simulate")
    assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD, POST, OPTIONS"
    assert api.options("/api/models").headers["allow"] == "POST, OPTIONS"
    assert api.options("/healthz").headers["allow"] == "GET, HEAD, OPTIONS"
    assert api.options("/no/such/path").status_code == 404


def test_the_openapi_document_lists_the_statuses_sent_outside_the_routes(api):
    paths = api.get("/openapi.json").json()["paths"]
    upload_responses = paths["/api/models"]["post"]["responses"]
    assert {"201", "400", "413", "414", "422"} <= set(upload_responses)
    for method in ("get", "post"):
        assert {"404", "414"} <= set(paths["/api/simulate"][method]["responses"]), method
    assert "413" in paths["/api/simulate"]["post"]["responses"]
    assert "404" in paths["/api/models/{model_id}"]["get"]["responses"]
    assert all("414" in op["responses"] for ops in paths.values() for op in ops.values())
    # and they are what is sent: a malformed multipart body is a 400 with a JSON detail
    malformed = api.post("/api/models", content=b"--x\r\nno headers",
                         headers={"content-type": "multipart/form-data; boundary=x"})
    assert malformed.status_code in (400, 422) and malformed.json()["detail"]
    assert api.get("/api/simulate?" + "a" * 3000).status_code == 414
    assert api.get("/api/simulate", params={"model": "0" * 64}).status_code == 404


# ---- fuzzing the parsers ----------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
    | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                 max_size=3),
    max_leaves=8)
FIELD = st.one_of(JSON_VALUES, st.sampled_from(["F16", "F32", "F64", "I32", "BOOL"]),
                  st.lists(st.integers(min_value=-2, max_value=2**65), max_size=4))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dtype=FIELD, shape=FIELD, offsets=FIELD, metadata=JSON_VALUES,
       data=st.integers(min_value=0, max_value=128))
def test_fuzzed_safetensors_headers_load_or_raise_model_file_error(dtype, shape, offsets,
                                                                  metadata, data):
    entry = {"dtype": dtype, "shape": shape, "data_offsets": offsets}
    try:
        model_io.load_bytes(safetensors_header(entry, metadata=metadata, data=data))
    except model_io.ModelFileError:
        pass


@settings(max_examples=300, deadline=None)
@given(shape=st.one_of(JSON_VALUES, st.lists(st.integers(min_value=-2, max_value=2**65),
                                             max_size=4).map(tuple)),
       descr=st.sampled_from(["<f8", "<f4", "<f2", ">f8", "|O", "<i4", "|b1", "<c16", "x"]),
       data=st.integers(min_value=0, max_value=256), cut=st.integers(min_value=0, max_value=200))
def test_fuzzed_npy_headers_read_or_raise_model_file_error(shape, descr, data, cut):
    raw = lying_npy(shape, descr=descr, data=data)
    for candidate in (raw, raw[:cut]):
        try:
            model_io.read_inputs(candidate, max_bytes=LIMIT)
        except model_io.ModelFileError:
            pass


@settings(max_examples=150, deadline=None)
@given(flips=st.lists(st.tuples(st.integers(min_value=0, max_value=10_000),
                                st.integers(min_value=0, max_value=255)), max_size=6),
       cut=st.integers(min_value=0, max_value=10_000))
def test_fuzzed_npz_bytes_load_or_raise_model_file_error(flips, cut):
    data = bytearray(npz_bytes(small_model()))
    for position, value in flips:
        data[position % len(data)] = value
    for candidate in (bytes(data), bytes(data[:cut])):
        try:
            model_io.load_bytes(candidate)
        except model_io.ModelFileError:
            pass
