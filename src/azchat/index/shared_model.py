"""The index's ONNX export with its weights in a file of their own (`models/.mapped-<export>/`), at page-aligned
offsets, so that onnxruntime memory-maps them instead of copying them into each process's heap: the processes of
`azchat serve --workers N` then share one copy through the page cache (44 MB private per session instead of
119 MB for MiniLM; the same vectors).

    python -m azchat.index.shared_model SOURCE TARGET     # writes the copy (apps/workers.py runs it once)
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import AzchatError

MAPPED = ".mapped-"        # the shared-weights copy of export folder F is F.parent / (MAPPED + F.name)
ALIGN = 65536              # weights offsets: a multiple of every page size onnxruntime maps with


def source_export(index: Path, model: str | None) -> Path | None:
    """The folder of the index's ONNX export that `azchat serve` would load (embedding.load_embedder's choice),
    or None (no export, or ONNX turned off)."""
    from ..config import model_name
    from .embedding import light_enabled
    from .models import resolve_model
    from .onnx_embedding import find_export
    from .store import read_manifest

    if not light_enabled():
        return None
    try:
        manifest = read_manifest(index) or {}
        return find_export(Path(index), resolve_model(model_name(model or manifest.get("model"))))
    except AzchatError:
        return None



def write_mapped_export(source: Path, target: Path) -> None:
    """Copy an ONNX export with every weight of 1 KiB or more moved to model.onnx.data, each at an offset that
    is a multiple of ALIGN, so that onnxruntime maps the file instead of reading it (its pages are then shared
    by every process). Written beside, then renamed into place."""
    import shutil
    import uuid

    import onnx
    from onnx import TensorProto

    from .store import fsync_file

    tmp = target.parent / f".tmp-{target.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        model = onnx.load(str(source / "model.onnx"))
        with open(tmp / "model.onnx.data", "wb") as fh:
            for t in model.graph.initializer:
                if not t.HasField("raw_data") or len(t.raw_data) < 1024:
                    continue
                fh.write(b"\0" * (-fh.tell() % ALIGN))
                offset = fh.tell()
                fh.write(t.raw_data)
                t.ClearField("raw_data")
                del t.external_data[:]
                for key, value in (("location", "model.onnx.data"), ("offset", str(offset)),
                                   ("length", str(fh.tell() - offset))):
                    entry = t.external_data.add()
                    entry.key, entry.value = key, value
                t.data_location = TensorProto.EXTERNAL
        onnx.save(model, str(tmp / "model.onnx"))
        shutil.copyfile(source / "tokenizer.json", tmp / "tokenizer.json")
        shutil.copyfile(source / "export.json", tmp / "export.json")      # last: it marks the copy complete
        for name in ("model.onnx.data", "model.onnx", "tokenizer.json", "export.json"):
            fsync_file(tmp / name)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)




def mapped_export(index: Path, model: str | None, log=None) -> Path | None:
    """The shared-weights copy of the index's ONNX export (made now when missing or out of date, in a child
    process, `python -m azchat.index.shared_model`: reading the model takes memory); None when there is no export
    or the copy cannot be made."""
    source = source_export(index, model)
    if source is None:
        return None
    target = source.parent / (MAPPED + source.name)
    try:
        if (target / "export.json").read_bytes() == (source / "export.json").read_bytes():
            return target
    except OSError:
        pass
    args = [sys.executable, "-m", __name__, str(source), str(target)]        # no shell; stdout to our stderr
    actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0), (os.POSIX_SPAWN_DUP2, 2, 1)]
    _, status = os.waitpid(os.posix_spawn(sys.executable, args, dict(os.environ), file_actions=actions), 0)
    if os.waitstatus_to_exitcode(status) != 0:
        if log:
            log("azchat: could not write the shared copy of the embedding model; every worker loads its own.")
        return None
    return target


def main(argv: list[str]) -> int:
    try:
        write_mapped_export(Path(argv[0]), Path(argv[1]))
    except Exception as exc:            # e.g. a read-only index folder: the workers load the export itself
        print(f"azchat: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
