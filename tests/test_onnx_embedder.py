"""The light embedder (ONNX export + onnxruntime + tokenizers) gives the reference's vectors."""
import json

import numpy as np
import pytest

from azchat.index.embedding import SentenceTransformerEmbedder, load_embedder
from azchat.index.models import resolve_model
from azchat.index.onnx_embedding import OnnxEmbedder, find_export

pytestmark = pytest.mark.slow

LONG_EN = " ".join(f"Sentence {i} explains how virtual network peering routes traffic over the backbone."
                   for i in range(60))
LONG_DE = " ".join(f"Absatz {i}: Die Namensauflösung für private Endpunkte erfolgt über eine private DNS-Zone."
                   for i in range(50))
TEXTS = [
    "How do I peer two virtual networks?",
    "vnet",
    "x",
    "",
    "   ",
    "Networking Basics > Peering\nTo peer two virtual networks you create a peering link in each direction.",
    "Ein Private Endpoint gibt einem Dienst eine private IP-Adresse im eigenen Netzwerk.",
    "Wie funktioniert die Namensauflösung über eine private DNS-Zone?",
    "Größenänderung übernimmt Änderungen sofort — äöüß ÄÖÜ",
    "Locally redundant storage keeps three copies in one datacenter; geo redundant storage copies data to a paired region.",
    "az network nsg rule create --priority 100 --name allow-ssh --destination-port-ranges 22",
    "def embed(texts):\n    return [model(t) for t in texts]  # list comprehension",
    "SELECT name, COUNT(*) FROM vms GROUP BY name HAVING COUNT(*) > 1;",
    "```mermaid\nstateDiagram-v2\n  AzureMachineLearning --> MLWorkspace\n```",
    "Ünïcödé ✓ emoji 🚀 and CJK 日本語のテキスト",
    "The archive tier is offline and needs rehydration before reading.",
    "RBAC role assignments: Owner, Contributor, Reader, User Access Administrator.",
    "1 2 3 4 5 6 7 8 9 10 100 1000 10.0.0.0/16 192.168.1.0/24",
    "AKS node pools scale with the cluster autoscaler; pods scale with the horizontal pod autoscaler.",
    "Azure Monitor collects metrics and logs; Log Analytics queries them with KQL.",
    LONG_EN,
    LONG_DE,
    "word " * 400,
]


@pytest.fixture(scope="module")
def pair(real_index):
    _, _, folder = real_index
    ref = SentenceTransformerEmbedder(resolve_model("all-MiniLM-L6-v2"))
    return ref, OnnxEmbedder(folder)


def test_long_texts_really_are_truncated(pair):
    ref, light = pair
    assert max(light.count_tokens([LONG_EN, LONG_DE])) > 256


def test_onnx_vectors_match_sentence_transformers(pair):
    ref, light = pair
    a = ref.embed(TEXTS)
    b = light.embed(TEXTS)
    assert a.shape == b.shape == (len(TEXTS), 384)
    cos = np.sum(a * b, axis=1)
    assert cos.min() >= 0.9999, list(zip(TEXTS, cos))
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    # batching and order do not change a text's vector
    single = np.vstack([light.embed([t]) for t in TEXTS[::-1]])[::-1]
    assert np.sum(single * b, axis=1).min() >= 0.99999


def test_same_name_dim_and_token_counts(pair):
    ref, light = pair
    assert (light.name, light.dim, light.max_tokens) == (ref.name, ref.dim, ref.max_tokens)
    assert light.count_tokens(TEXTS) == ref.count_tokens(TEXTS)


def test_export_is_found_for_the_same_model_only(real_index, tmp_path):
    _, index, folder = real_index
    info = resolve_model("all-MiniLM-L6-v2")
    assert find_export(index, info) == folder
    assert find_export(tmp_path, info) is None
    meta = json.loads((folder / "export.json").read_text())
    assert meta["name"] == "all-MiniLM-L6-v2" and len(meta["sha256"]) == 64
    # the Retriever's loader prefers the export; AZCHAT_ONNX=0 falls back to the reference
    assert isinstance(load_embedder("all-MiniLM-L6-v2", index), OnnxEmbedder)
    assert isinstance(load_embedder("all-MiniLM-L6-v2"), SentenceTransformerEmbedder)


def test_fallback_to_reference_when_disabled(real_index, monkeypatch):
    from azchat import Retriever

    _, index, _ = real_index
    assert isinstance(Retriever(index).embedder, OnnxEmbedder)
    monkeypatch.setenv("AZCHAT_ONNX", "0")
    r = Retriever(index)
    assert isinstance(r.embedder, SentenceTransformerEmbedder)
    assert r.search("how do I peer two virtual networks", k=1)[0].path == "networking.md"


def test_manifest_records_the_export(real_index):
    from azchat.index.store import read_manifest

    _, index, folder = real_index
    assert read_manifest(index)["onnx"] == f"models/{folder.name}"
