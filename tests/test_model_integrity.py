"""The bundled model's weights are checked once against the upstream sha256 and refused when they differ."""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace

import pytest

import azchat.index.models as models
from azchat.index.embedding import SentenceTransformerEmbedder
from azchat.errors import ModelError
from azchat.index.models import BUNDLED_SHA256, ensure_bundled_weights, resolve_model

from conftest import bundled_model_dir


@pytest.fixture
def bundled():
    """The bundled model's folder: skipped when it is not installed, a failure in CI (conftest)."""
    return bundled_model_dir()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AZCHAT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "verified-weights.json"


def _count_hashes(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = models.file_sha256

    def counting(path):
        calls.append(str(path))
        return real(path)
    monkeypatch.setattr(models, "file_sha256", counting)
    return calls


def test_bundled_weights_are_hashed_once_then_remembered(bundled, cache, monkeypatch):
    calls = _count_hashes(monkeypatch)
    info = resolve_model("all-MiniLM-L6-v2")
    assert info.bundled and len(calls) == 1
    remembered = json.loads(cache.read_text())
    assert [v["sha256"] for v in remembered.values()] == [BUNDLED_SHA256]
    resolve_model("all-MiniLM-L6-v2")
    ensure_bundled_weights(info)
    assert len(calls) == 1                       # checked once, not on every start


@pytest.fixture
def tampered(tmp_path, bundled):
    copy = tmp_path / "model"
    shutil.copytree(bundled, copy)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01                  # one bit of one weight
    weights.write_bytes(bytes(data))
    return replace(resolve_model(str(bundled)), path=copy, bundled=True)


def test_tampered_weights_are_refused_clearly(tampered, cache):
    with pytest.raises(ModelError, match="do not match the upstream all-MiniLM-L6-v2 checksum"):
        ensure_bundled_weights(tampered)
    assert not cache.exists()                    # a failure is never remembered
    with pytest.raises(ModelError, match="checksum"):
        SentenceTransformerEmbedder(tampered).embed(["hello"])


def test_weights_changed_after_the_check_are_checked_again(bundled, tmp_path, cache, monkeypatch):
    copy = tmp_path / "model"
    shutil.copytree(bundled, copy)
    info = replace(resolve_model(str(bundled)), path=copy, bundled=True)
    ensure_bundled_weights(info)
    weights = copy / "model.safetensors"
    st = weights.stat()
    data = bytearray(weights.read_bytes())
    data[100] ^= 0x01
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))   # same size and mtime as the verified file
    with pytest.raises(ModelError, match="checksum"):
        ensure_bundled_weights(info)


def test_missing_weights_are_a_model_error(bundled, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(bundled, copy)
    (copy / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="reinstall"):
        ensure_bundled_weights(replace(resolve_model(str(bundled)), path=copy, bundled=True))


def test_a_model_folder_given_by_path_is_not_held_to_the_bundled_checksum(bundled, tmp_path, cache):
    info = resolve_model(str(bundled))
    assert info.bundled is False and not cache.exists()


def _model_folder(root, weights: dict[str, bytes], modules=None):
    """A model folder with a config and the given weight files (never loaded: the check comes first)."""
    root.mkdir(parents=True)
    (root / "config.json").write_text('{"hidden_size": 8}')
    if modules is not None:
        (root / "modules.json").write_text(json.dumps(modules))
    for rel, data in weights.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_a_user_model_with_pickle_weights_is_refused(tmp_path):
    from azchat.index.embedding import load_embedder

    only_bin = _model_folder(tmp_path / "bin", {"pytorch_model.bin": b"\x80\x04pickle"})
    with pytest.raises(ModelError, match=r"only pickle weights \(pytorch_model\.bin\).*safetensors only"):
        resolve_model(str(only_bin))
    with pytest.raises(ModelError, match="pickle"):
        load_embedder(str(only_bin))
    dense = _model_folder(tmp_path / "dense", {"model.safetensors": b"x", "2_Dense/pytorch_model.bin": b"x"},
                          modules=[{"path": ""}, {"path": "2_Dense"}])
    with pytest.raises(ModelError, match="2_Dense has only pickle weights"):
        resolve_model(str(dense))
    with pytest.raises(ModelError, match="no model.safetensors"):
        resolve_model(str(_model_folder(tmp_path / "none", {})))
    both = _model_folder(tmp_path / "both", {"model.safetensors": b"x", "pytorch_model.bin": b"x"})
    assert resolve_model(str(both)).path == both.resolve()           # safetensors present: that is what loads
