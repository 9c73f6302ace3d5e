"""``encode_corpus``: a document store encoded across a Ray cluster into one shared segment store.

Ray Data does the scheduling (``map_batches`` over an actor pool, one model per actor); the store is a folder
every worker and every later reader can reach (local disk on one machine, NFS or a mounted bucket on many).
Afterwards any process's ``StructuredLM(model, cache=SegmentCache(directory=cache_dir))`` answers
``rag.parallel`` prompts over those contexts with disk hits only.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from structlm.scale.cluster import WorkerError, actor_cpus, ensure_ray, ordered, require_ray
from structlm.scale.encoder import ENCODED, FAILED, PRESENT, ContextEncoder

__all__ = ["CorpusReport", "encode_corpus", "read_contexts", "check_model"]

TEXT_SUFFIXES = (".txt", ".text", ".md")


@dataclass
class CorpusReport:
    """What one ``encode_corpus`` run did: counts, the failures with their reasons, and every context's key."""

    encoded: int = 0
    present: int = 0
    failed: list[tuple[int, str]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    seconds: float = 0.0
    encode_seconds: float = 0.0  # first batch started to last batch finished, in the workers (actors up)

    @property
    def total(self) -> int:
        return self.encoded + self.present + len(self.failed)

    def __repr__(self) -> str:
        return (f"CorpusReport(encoded={self.encoded}, present={self.present}, failed={len(self.failed)}, "
                f"{self.seconds:.1f} s)")


def read_contexts(contexts: Any):
    """A Ray Dataset with a ``text`` column from a list of strings, a Dataset, or a path.

    Paths: ``.jsonl``/``.json`` files (one object per line with a ``text`` field) or text files (``.txt``,
    ``.md``: one context per non-empty line), or a folder of them. A missing path or an empty corpus raises here,
    before any worker starts.
    """
    ray = require_ray()
    if isinstance(contexts, ray.data.Dataset):
        if "text" not in (contexts.schema().names if contexts.schema() else []):
            raise ValueError("the Dataset needs a 'text' column (one context per row); rename yours with "
                             "ds.rename_columns({...: 'text'})")
        return contexts.select_columns(["text"])
    if isinstance(contexts, (str, os.PathLike)):
        return _read_path(Path(contexts))
    if isinstance(contexts, (bytes, dict)):
        raise TypeError(f"contexts must be a list of strings, a ray.data.Dataset or a path, "
                        f"not {type(contexts).__name__}")
    items = list(contexts)
    if not items:
        raise ValueError("the corpus is empty: no contexts to encode")
    return ray.data.from_items([{"text": text} for text in items])


def _read_path(path: Path):
    ray = require_ray()
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path} (give JSONL or text files, or a list of strings)")
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    jsonl = [str(p) for p in files if p.suffix in (".jsonl", ".json")]
    text = [str(p) for p in files if p.suffix in TEXT_SUFFIXES or (p == path and p.suffix not in (".jsonl", ".json"))]
    if not jsonl and not text:
        raise FileNotFoundError(f"no .jsonl or text files ({', '.join(TEXT_SUFFIXES)}) under {path}")
    if not any(os.path.getsize(p) for p in jsonl + text):
        raise ValueError(f"the corpus is empty: {path} holds no contexts")
    parts = []
    if jsonl:
        data = ray.data.read_json(jsonl, lines=True)
        if "text" not in data.schema().names:
            raise ValueError(f"JSONL rows under {path} have no 'text' field (fields: {data.schema().names})")
        parts.append(data.select_columns(["text"]))
    if text:
        parts.append(ray.data.read_text(text, drop_empty_lines=True))
    if len(parts) == 1:
        return parts[0]
    parts = [part.map_batches(_text_table, batch_format="pyarrow") for part in parts]  # one block type to join
    return parts[0].union(*parts[1:])


def _text_table(batch):
    import pyarrow as pa

    return pa.table({"text": pa.array([str(t) for t in batch.column("text").to_pylist()], pa.string())})


def check_model(model: str | os.PathLike) -> None:
    """Fail fast in the driver on a model no worker could load (a missing folder, no config): reading a config
    costs nothing next to starting actors that would each fail."""
    from structlm.hf.embedded import is_embedded

    if is_embedded(str(model)) and not os.path.exists(model):
        return
    if os.path.isdir(model) or os.path.isabs(str(model)) or str(model).startswith("."):
        if not os.path.isfile(os.path.join(model, "config.json")):
            raise FileNotFoundError(f"model folder {model} has no config.json: save the model there with "
                                    f"model.save_pretrained(folder) (and its tokenizer) so workers can load it")


def encode_corpus(
    contexts: Sequence[str] | Any,
    model: str | os.PathLike,
    cache_dir: str | os.PathLike,
    prefix: str = "",
    tokenizer: Any = None,
    template: Any = None,
    num_workers: int = 2,
    batch_size: int = 16,
    progress: bool = True,
) -> CorpusReport:
    """Encode every context into the shared store ``cache_dir`` with ``num_workers`` Ray actors.

    Each actor loads ``model`` (a folder, hub id or embedded name) on ``SegmentCache(directory=cache_dir)`` and
    encodes batches exactly as ``rag.parallel(tokenizer, contexts, query, prefix, template)`` lays them out;
    contexts already in the store are skipped. Runs on the Ray the caller joined, else a local one
    (``ray.init(num_cpus=2)``). Returns a :class:`CorpusReport`; a model that cannot load raises one
    ``WorkerError`` carrying the worker's reason (nothing is written then).
    """
    import time

    if num_workers < 1 or batch_size < 1:
        raise ValueError(f"num_workers and batch_size must be >= 1, got {num_workers} and {batch_size}")
    check_model(model)
    if tokenizer is not None and not isinstance(tokenizer, (str, os.PathLike)):
        raise TypeError("tokenizer must be a path or hub id workers can load it from (or None for the model's)")
    start = time.perf_counter()
    ray = ensure_ray(progress=progress)
    data = read_contexts(contexts)
    cache_dir = os.path.abspath(cache_dir)
    os.makedirs(cache_dir, exist_ok=True)
    cpus = actor_cpus(num_workers)
    results = data.map_batches(
        ContextEncoder, compute=ray.data.ActorPoolStrategy(size=num_workers), batch_size=batch_size, num_cpus=cpus,
        batch_format="numpy",
        fn_constructor_kwargs=dict(model=str(model), cache_dir=cache_dir, prefix=prefix, template=template,
                                   tokenizer=None if tokenizer is None else str(tokenizer),
                                   threads=max(1, int(cpus))),
    )
    report = CorpusReport()
    statuses: Counter = Counter()
    with ordered():
        rows = list(results.iter_rows())
    for index, row in enumerate(rows):
        status, reason = row["status"], row["reason"]
        if status == "load_error":
            raise WorkerError(f"the workers could not load model {model!r}: {reason}; check that every "
                                     f"worker can read it (a shared folder, or the same embedded wheel)")
        statuses[status] += 1
        report.keys.append(row["key"])
        if status == FAILED:
            report.failed.append((index, reason))
    if not report.keys:
        raise ValueError("the corpus is empty: no contexts to encode")
    report.encoded, report.present = statuses[ENCODED], statuses[PRESENT]
    report.encode_seconds = max(row["finished"] for row in rows) - min(row["started"] for row in rows)
    report.seconds = time.perf_counter() - start
    return report
