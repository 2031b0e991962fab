"""`azchat index --ray`: the chunks embedded on a real local Ray cluster give the index the local build writes.

A cluster is started once for the module with `ray start --head` (a free port, 127.0.0.1 only, 2 CPUs: two
embedding workers) and its processes are stopped by their ids at the end. Without Ray the tests skip, and in
CI ($CI, or AZCHAT_REQUIRE_RAY=1 as .ci/run sets) they fail: scripts/setup.sh --test installs azchat[ray].
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, free_port, skip_or_fail, write, write_fixture_vault
from azchat.index.embedding import HashEmbedder
from azchat.index.building import build_index
from azchat.index.store import load_generation

QUESTIONS = ["How do I peer two virtual networks?", "Which storage keeps copies in a paired region?",
             "What does the archive tier need before reading?", "Wie erfolgt die Namensauflösung?",
             "What do network security groups filter?", "compute clusters for training jobs"]


def _ray_or_skip():
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError as exc:
        skip_or_fail(f"Ray is not installed ({exc}); pip install \"azchat[ray]\" (scripts/setup.sh --test does)",
                     "AZCHAT_REQUIRE_RAY")


def _cluster_pids(token: str, temp: str) -> list[int]:
    """Processes of the cluster this module started: each has the marker in its environment, or (Ray's agents,
    started with an environment of their own) a log file open under the cluster's temp folder."""
    marker = f"AZCHAT_RAY_TEST_CLUSTER={token}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0") or any(
                    os.readlink(fd).startswith(temp + "/") for fd in (entry / "fd").iterdir()):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _stop(token: str, temp: str) -> None:
    """Stop the cluster's processes by their ids (SIGTERM, then SIGKILL for the ones still there)."""
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
        pids = _cluster_pids(token, temp)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while pids and time.monotonic() < deadline:
            time.sleep(0.2)
            pids = [p for p in _cluster_pids(token, temp) if _alive(p)]
        if not pids:
            return


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return False


RAY_AUTH_TOKEN = uuid.uuid4().hex + uuid.uuid4().hex     # the module's cluster accepts only this token


def ray_env(token: str) -> dict:
    """The environment of the cluster's processes: this checkout's azchat importable by the workers, the
    cluster on 127.0.0.1 only, a token of its own, no usage statistics."""
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": RAY_AUTH_TOKEN,
            "AZCHAT_RAY_TEST_CLUSTER": token}


DRIVER_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
              "RAY_AUTH_TOKEN": RAY_AUTH_TOKEN}


@pytest.fixture(scope="module")
def cluster():
    """`ray start --head` on a free port with 2 CPUs, 127.0.0.1 only; yields its address. This process gets
    the cluster's token before it imports ray (Ray reads it at import; a driver without it hangs connecting)."""
    if "ray" in sys.modules and os.environ.get("RAY_AUTH_TOKEN") != RAY_AUTH_TOKEN:
        pytest.fail("ray was imported before the Ray test cluster's token was set")
    mp = pytest.MonkeyPatch()
    for name, value in DRIVER_ENV.items():
        mp.setenv(name, value)
    try:
        yield from _cluster()
    finally:
        mp.undo()


def _cluster():
    _ray_or_skip()
    ray_bin = Path(sys.executable).with_name("ray")
    if not ray_bin.is_file():
        skip_or_fail(f"the `ray` command is not beside {sys.executable}", "AZCHAT_REQUIRE_RAY")
    token = uuid.uuid4().hex
    temp = tempfile.mkdtemp(prefix="azray-", dir="/tmp")    # short: Ray's socket paths live under it
    port = free_port()
    cmd = [str(ray_bin), "start", "--head", "--port", str(port), "--node-ip-address", "127.0.0.1",
           "--num-cpus", "2", "--include-dashboard=false", "--disable-usage-stats", "--temp-dir", temp,
           "--object-store-memory", str(200 * 1024 * 1024)]
    done = subprocess.run(cmd, env=ray_env(token), capture_output=True, text=True, timeout=180)
    if done.returncode != 0:
        _stop(token, temp)
        pytest.fail(f"ray start failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        _stop(token, temp)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def ray_driver(cluster, monkeypatch):
    """This process as a driver of the module's cluster (what `azchat index --ray ADDRESS` does)."""
    for name, value in DRIVER_ENV.items():
        monkeypatch.setenv(name, value)
    return cluster


def made_up_vault(root: Path) -> Path:
    """The fixture vault plus a dozen generated notes: ~40 chunks, several Ray blocks of 8."""
    notes = write_fixture_vault(root / "notes")
    for n in range(12):
        sections = "\n\n".join(f"## Part {k}\n\nService {n}-{k} stores item {n * 7 + k} in region r{k}; the "
                               f"retention is {n + k} days and the tier is t{(n + k) % 3}." for k in range(3))
        write(notes, f"gen/note-{n:02d}.md", f"---\ntitle: Generated {n}\ntags: [gen{n % 3}]\n---\n{sections}\n")
    return notes


def chunk_rows(index: Path) -> list[tuple]:
    gen = load_generation(index)
    table = gen.chunks
    return [(c.id, c.path, c.start_line, c.end_line, c.heading, c.text, c.embed_text, c.search_text)
            for c in (table[i] for i in range(len(table)))]


def answers(index: Path, embedder) -> list[dict]:
    from azchat import Retriever

    r = Retriever(index, embedder=embedder)
    out = []
    for q in QUESTIONS:
        a = r.ask(q).to_dict()
        hits = [(h.path, h.start_line, h.end_line) for h in r.search(q, k=5)]
        out.append({"q": q, "answer": a.get("answer"), "hits": hits})
    return out


def assert_same_index(local: Path, ray_index: Path, embedder, atol: float = 1e-6) -> None:
    assert chunk_rows(ray_index) == chunk_rows(local)
    a, b = load_generation(local), load_generation(ray_index)
    va, vb = np.asarray(a.vectors), np.asarray(b.vectors)
    assert va.shape == vb.shape and va.shape[0] > 0
    np.testing.assert_allclose(vb, va, rtol=2**-10, atol=atol)   # stored as float16: one step apart at most
    for key in ("embedder", "dim", "prefixes", "chunker", "notes", "dense"):
        assert b.manifest.get(key) == a.manifest.get(key), key
    assert answers(ray_index, embedder) == answers(local, embedder)


def test_missing_ray_names_the_extra(tmp_path, monkeypatch, capsys):
    """Without Ray, `azchat index --ray` stops before reading a note, with one sentence naming the extra."""
    from azchat.apps import cli
    from azchat.index.ray_build import RayMissingError, require_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "ray.data", None)
    monkeypatch.setattr(os, "environ", os.environ.copy())     # what require_ray sets for Ray stays in this test
    with pytest.raises(RayMissingError, match=r'pip install "azchat\[ray\]"'):
        require_ray()
    notes = write_fixture_vault(tmp_path / "notes")
    code = cli.main(["index", "--notes", str(notes), "--index", str(tmp_path / "index"), "--ray"])
    err = capsys.readouterr().err
    assert code == RayMissingError.exit_code and 'pip install "azchat[ray]"' in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "index" / "CURRENT").exists()


def test_ray_workers_without_ray_is_refused_before_anything_is_built(tmp_path, capsys):
    """`--ray-workers` alone would be silently ignored: it is one sentence and exit 2 instead, nothing built."""
    from azchat.apps import cli

    notes = write_fixture_vault(tmp_path / "notes")
    code = cli.main(["index", "--notes", str(notes), "--index", str(tmp_path / "index"), "--ray-workers", "2"])
    assert code == 2 and "--ray-workers goes with --ray." in capsys.readouterr().err
    assert not (tmp_path / "index" / "CURRENT").exists()


def test_ray_build_is_the_local_build(tmp_path, ray_driver):
    """Two workers embed the chunks in blocks of 8: same chunks, same vectors, same answers; an incremental
    update through Ray embeds only the changed note's chunks and still equals the local update."""
    from azchat.index.ray_build import build_on_ray

    notes = made_up_vault(tmp_path)
    build_index(notes, tmp_path / "local", embedder=HashEmbedder())
    stats = build_on_ray(notes, tmp_path / "ray", address=ray_driver, workers=2, block_rows=8,
                         embedder=HashEmbedder())
    # a pool of two actors (which of them embeds each block is Ray's choice: under load one may do them all)
    assert stats.ray["workers"] == 2 and stats.ray["blocks"] > 2 and stats.ray["texts"] == stats.embedded > 30
    assert 1 <= stats.ray["workers_used"] <= 2, stats.ray
    assert_same_index(tmp_path / "local", tmp_path / "ray", HashEmbedder())

    write(notes, "gen/note-03.md", "---\ntitle: Generated 3\n---\n## Changed\n\nThe cold tier keeps blobs for "
                                    "180 days before they are deleted.\n")
    local = build_index(notes, tmp_path / "local", embedder=HashEmbedder())
    again = build_on_ray(notes, tmp_path / "ray", address=ray_driver, workers=2, block_rows=8,
                         embedder=HashEmbedder())
    assert again.updated == local.updated == 1 and again.embedded == local.embedded == 1
    assert again.ray["texts"] == 1
    assert_same_index(tmp_path / "local", tmp_path / "ray", HashEmbedder())

    nothing = build_on_ray(notes, tmp_path / "ray", address=ray_driver, embedder=HashEmbedder())
    assert nothing.embedded == 0 and nothing.ray["texts"] == 0      # nothing to embed: Ray is not touched


def test_a_worker_with_another_model_stops_the_build(tmp_path, ray_driver):
    """The actors build the model from its name; when that is not the driver's model (here: the driver claims
    another dimension) the build stops with one sentence and writes nothing."""
    from conftest import bundled_model_dir

    from azchat.errors import AzchatError
    from azchat.index.embedding import SentenceTransformerEmbedder
    from azchat.index.models import resolve_model
    from azchat.index.ray_build import build_on_ray

    bundled_model_dir()
    claims = SentenceTransformerEmbedder(resolve_model("all-MiniLM-L6-v2"))
    claims.dim = 64
    notes = write_fixture_vault(tmp_path / "notes")
    with pytest.raises(AzchatError, match="Embedding on Ray failed: .*not the one the build uses"):
        build_on_ray(notes, tmp_path / "ray", address=ray_driver, workers=1, embedder=claims)
    assert not (tmp_path / "ray" / "CURRENT").exists()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A sentence-transformers model with random weights, made here (loads torch: slow tests only)."""
    from tiny_models import make_embedding_model

    return make_embedding_model(tmp_path_factory.mktemp("tiny") / "tiny-model")


@pytest.mark.slow
def test_ray_build_with_a_real_model_by_name(tmp_path, ray_driver, tiny_model):
    """`model=` as `azchat index --model` gives it: each worker loads the model from the name the manifest
    records (sentence-transformers), then on a --full rebuild the ONNX export the first build made (its folder
    is on this machine); the vectors equal the local build's within float tolerance, and so do the answers."""
    from azchat.index.embedding import SentenceTransformerEmbedder
    from azchat.index.models import resolve_model
    from azchat.index.ray_build import build_on_ray

    notes = made_up_vault(tmp_path)
    build_index(notes, tmp_path / "local", model=str(tiny_model))
    stats = build_on_ray(notes, tmp_path / "ray", address=ray_driver, workers=2, model=str(tiny_model))
    assert stats.ray["workers"] == 2 and stats.ray["embedder"] == "sentence-transformers", stats.ray
    assert stats.ray["texts"] == stats.embedded > 30
    assert load_generation(tmp_path / "ray").manifest["embedder"] == str(tiny_model)
    reference = SentenceTransformerEmbedder(resolve_model(str(tiny_model)))
    assert_same_index(tmp_path / "local", tmp_path / "ray", reference, atol=1e-5)

    again = build_on_ray(notes, tmp_path / "ray", address=ray_driver, workers=2, model=str(tiny_model), full=True)
    assert again.ray["embedder"] == "onnx" and again.ray["texts"] == stats.embedded, again.ray
    assert_same_index(tmp_path / "local", tmp_path / "ray", reference, atol=1e-5)


@pytest.mark.slow
def test_index_ray_flag_starts_a_local_cluster(tmp_path, tiny_model):
    """`azchat index --ray --json` with no address starts its own cluster (127.0.0.1) and stops it, reports
    the Ray part beside the usual build numbers, and writes the index the local build writes."""
    _ray_or_skip()
    from azchat.index.embedding import SentenceTransformerEmbedder
    from azchat.index.models import resolve_model

    notes = made_up_vault(tmp_path)
    local = build_index(notes, tmp_path / "local", model=str(tiny_model)).to_dict()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1", "AZCHAT_CACHE_DIR": str(tmp_path)}
    for name in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_MODE", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-m", "azchat", "index", "--notes", str(notes), "--index",
                           str(tmp_path / "ray"), "--model", str(tiny_model), "--json", "--ray", "--ray-workers", "2"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ray = json.loads(done.stdout)
    info = ray.pop("ray")
    assert info["address"] == "local" and info["workers"] == 2, info
    assert "Embedding:" in done.stderr and "/s" in done.stderr         # progress: rate (and time left)
    for key in ("notes", "chunks", "added", "embedded", "skipped", "warnings"):
        assert ray[key] == local[key], key
    assert_same_index(tmp_path / "local", tmp_path / "ray", SentenceTransformerEmbedder(resolve_model(str(tiny_model))),
                      atol=1e-5)

def test_a_worker_refuses_another_model_under_the_same_name():
    """What a worker builds from the manifest's name must be the driver's model (dimension, prefixes): a node
    where the name resolves to something else stops the build instead of writing other vectors."""
    from conftest import bundled_model_dir

    from azchat.index.embedding import SentenceTransformerEmbedder
    from azchat.errors import AzchatError, ModelError
    from azchat.index.models import resolve_model
    from azchat.index.ray_build import embedder_from_spec, embedder_spec

    bundled_model_dir()
    spec = embedder_spec(SentenceTransformerEmbedder(resolve_model("all-MiniLM-L6-v2")))
    assert spec["kind"] == "sentence-transformers" and spec["name"] == "all-MiniLM-L6-v2"
    assert embedder_from_spec(spec).dim == 384               # built from the name alone (no torch yet)
    with pytest.raises(ModelError, match="not the one the build uses"):
        embedder_from_spec({**spec, "dim": 768})
    with pytest.raises(ModelError, match="not the one the build uses"):
        embedder_from_spec({**spec, "prefixes": {"query": "query: ", "passage": "passage: "}})

    class Other:
        name, dim, max_tokens = "other", 8, 10

    with pytest.raises(AzchatError, match="cannot send the embedder"):
        embedder_spec(Other())
