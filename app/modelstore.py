"""Uploaded models on disk: content-addressed, bounded, least recently used evicted.

An entry is three files in the store's directory, named by its id (64 hex digits):
    <id>.model   the uploaded .safetensors or .npz bytes, as uploaded
    <id>.inputs  the uploaded .npy inputs, if any
    <id>.json    what the model is (cell, sizes, warnings): written last, so an entry exists
                 once this file does
The id is the SHA-256 of the model's bytes (of both files' digests when inputs came with it), so
replicas sharing the directory see the same models and two uploads of the same file write the
same bytes: each file is written to a temporary name and renamed into place (atomic on POSIX),
so a reader never sees half a file and the second writer's rename changes nothing.

Bounds: a file's size, the directory's total size and its number of entries. The entry used
longest ago (by the modification time of its ``.json``, refreshed on every use) is evicted first.

Settings (``app/settings.py``, environment variables read once):
    GFL_MODEL_DIR          the directory (default: <system temp>/gradient-flow-lab-models)
    GFL_MODEL_MAX_BYTES    largest model or inputs file (default 32 MiB)
    GFL_MODEL_STORE_BYTES  total size of the store (default 512 MiB)
    GFL_MODEL_STORE_COUNT  most entries kept (default 200)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gradient_flow_lab.app.settings import Settings, get_settings
from gradient_flow_lab.engine import io as model_io
from gradient_flow_lab.engine.io import LoadedModel, ModelFileError

DEFAULT_MAX_FILE_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_TOTAL_BYTES = 512 * 1024 * 1024
DEFAULT_MAX_COUNT = 200
MODEL_ID_PATTERN = r"^[0-9a-f]{64}$"
_MODEL_ID = re.compile(MODEL_ID_PATTERN)
SUFFIXES = (".json", ".model", ".inputs")


class ModelNotFound(LookupError):
    """No model with this id in the store (never uploaded, or evicted since)."""

    def __init__(self, model_id: str) -> None:
        super().__init__(f"model {model_id} is not on this server: it was never uploaded here "
                         f"or has been evicted to make room; upload the file again at /models")
        self.model_id = model_id


class FileTooLarge(ValueError):
    """An uploaded file over the store's size limit (HTTP 413)."""


@dataclass(frozen=True)
class StoredModel:
    """A stored model, loaded: its id, the engine's model and its inputs (T, B, D) if any."""

    id: str
    model: LoadedModel
    inputs: np.ndarray | None

    def fixed_fields(self) -> dict[str, object]:
        """The simulation fields this model decides, with their values."""
        fixed: dict[str, object] = {"cell": self.model.cell, "num_layers": self.model.num_layers,
                                    "hidden_size": self.model.hidden_size,
                                    "input_size": self.model.input_size}
        if self.inputs is not None:
            fixed["seq_len"], fixed["batch_size"] = self.inputs.shape[:2]
        return fixed

    def ignored_fields(self) -> list[str]:
        """Simulation fields that mean nothing with this model (its weights are given)."""
        ignored = ["weight_scale", "init", "forget_bias"]
        return ignored + (["input_scale"] if self.inputs is not None else [])

    def describe(self) -> dict:
        described = {"id": self.id, **self.model.describe()}
        described["inputs_shape"] = None if self.inputs is None else list(self.inputs.shape)
        described["fixed"] = self.fixed_fields()
        described["ignored"] = self.ignored_fields()
        return described


def model_id(model_bytes: bytes, inputs_bytes: bytes | None) -> str:
    digest = hashlib.sha256(model_bytes).hexdigest()
    if inputs_bytes is None:
        return digest
    return hashlib.sha256((digest + hashlib.sha256(inputs_bytes).hexdigest()).encode()).hexdigest()


class ModelStore:
    def __init__(self, directory: str | os.PathLike[str], *,
                 max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
                 max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
                 max_count: int = DEFAULT_MAX_COUNT, cache_size: int = 8) -> None:
        self.directory = Path(directory)
        self.max_file_bytes = max_file_bytes
        self.max_total_bytes = max_total_bytes
        self.max_count = max_count
        self._cache: OrderedDict[str, StoredModel] = OrderedDict()  # parsed models, in memory
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelStore:
        return cls(settings.model_dir, max_file_bytes=settings.model_max_bytes,
                   max_total_bytes=settings.model_store_bytes,
                   max_count=settings.model_store_count)

    def spec(self) -> dict:
        """What makes this store (its directory and bounds): an engine process given it reads
        the same store as the server (``use_store``)."""
        return {"directory": str(self.directory), "max_file_bytes": self.max_file_bytes,
                "max_total_bytes": self.max_total_bytes, "max_count": self.max_count}

    def _path(self, model_id: str, suffix: str) -> Path:
        if not _MODEL_ID.match(model_id):  # never a path built from anything else
            raise ModelNotFound(model_id[:80])
        return self.directory / f"{model_id}{suffix}"

    # ---- writing ------------------------------------------------------------------------------

    def add(self, model_bytes: bytes, inputs_bytes: bytes | None = None) -> StoredModel:
        """Check and store an upload; returns it loaded.

        Raises:
            FileTooLarge: a file over ``max_file_bytes`` (nothing stored).
            ModelFileError: the file is not a usable model or the inputs do not fit it
                (nothing stored).
        """
        for name, data in (("model", model_bytes), ("inputs", inputs_bytes)):
            if data is not None and len(data) > self.max_file_bytes:
                raise FileTooLarge(f"the {name} file has {len(data):,} bytes, over this "
                                   f"server's limit of {self.max_file_bytes:,}")
        model = model_io.load_bytes(model_bytes, max_bytes=self.max_file_bytes)
        inputs = None
        if inputs_bytes is not None:
            inputs = model_io.read_inputs(inputs_bytes, model.input_size,
                                          max_bytes=self.max_file_bytes)
        entry_id = model_id(model_bytes, inputs_bytes)
        stored = StoredModel(entry_id, model, inputs)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._write(entry_id, ".model", model_bytes)
        if inputs_bytes is not None:
            self._write(entry_id, ".inputs", inputs_bytes)
        self._write(entry_id, ".json", json.dumps(stored.describe(), default=int).encode())
        self._remember(stored)
        self._evict(keep=entry_id)
        return stored

    def _write(self, entry_id: str, suffix: str, data: bytes) -> None:
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=".upload-")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            os.replace(temporary, self._path(entry_id, suffix))
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def _entries(self) -> list[tuple[float, int, str]]:
        """(last use, bytes, id) of every complete entry."""
        entries = []
        for meta in self.directory.glob("*.json"):
            entry_id = meta.stem
            if not _MODEL_ID.match(entry_id):
                continue
            try:
                used = meta.stat().st_mtime
                size = sum(p.stat().st_size for p in
                           (self._path(entry_id, s) for s in SUFFIXES) if p.exists())
            except FileNotFoundError:  # evicted by another replica meanwhile
                continue
            entries.append((used, size, entry_id))
        return sorted(entries)

    def _evict(self, keep: str) -> None:
        entries = self._entries()
        total = sum(size for _, size, _ in entries)
        count = len(entries)
        for _, size, entry_id in entries:  # oldest first
            if total <= self.max_total_bytes and count <= self.max_count:
                break
            if entry_id == keep:
                continue
            self.remove(entry_id)
            total -= size
            count -= 1

    def remove(self, entry_id: str) -> None:
        for suffix in SUFFIXES:  # the .json first: the entry stops existing at once
            self._path(entry_id, suffix).unlink(missing_ok=True)
        with self._lock:
            self._cache.pop(entry_id, None)

    # ---- reading ------------------------------------------------------------------------------

    def get(self, entry_id: str) -> StoredModel:
        """The stored model, loaded (from memory when recently used); marks it used.

        Raises:
            ModelNotFound: no such entry (or a malformed id).
        """
        meta = self._path(entry_id, ".json")
        try:
            now = time.time()
            os.utime(meta, (now, now))  # least recently used: this one was used now
        except FileNotFoundError:
            with self._lock:
                self._cache.pop(entry_id, None)
            raise ModelNotFound(entry_id) from None
        with self._lock:
            if entry_id in self._cache:
                self._cache.move_to_end(entry_id)
                return self._cache[entry_id]
        try:
            model = model_io.load_bytes(self._path(entry_id, ".model").read_bytes(),
                                        max_bytes=self.max_file_bytes)
            inputs_path = self._path(entry_id, ".inputs")
            inputs = (model_io.read_inputs(inputs_path.read_bytes(), model.input_size,
                                           max_bytes=self.max_file_bytes)
                      if inputs_path.exists() else None)
        except (FileNotFoundError, ModelFileError):
            raise ModelNotFound(entry_id) from None
        stored = StoredModel(entry_id, model, inputs)
        self._remember(stored)
        return stored

    def _remember(self, stored: StoredModel) -> None:
        with self._lock:
            self._cache[stored.id] = stored
            self._cache.move_to_end(stored.id)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)


_store: ModelStore | None = None


def get_store() -> ModelStore:
    """The app's store (built from the environment on first use)."""
    global _store
    if _store is None:
        _store = ModelStore.from_settings(get_settings())
    return _store


def use_store(spec: dict) -> None:
    """In an engine process: the store the server uses (``ModelStore.spec``) becomes this
    process's (its parsed models stay cached while it does not change)."""
    if _store is None or _store.spec() != spec:
        set_store(ModelStore(**spec))


def set_store(store: ModelStore | None) -> None:
    """Replace the app's store (tests; None: build it from the environment again)."""
    global _store
    _store = store
