"""Ranking examples: the standard-library docstring task, in-batch negatives, and plans for training.

The task: the context is a function's source with its docstring removed; the candidates are the first line of
its docstring and K − 1 other functions' first lines. Real code and real text from the Python that runs this,
so nothing is downloaded and every machine gets the same examples for the same Python version.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import random
import textwrap
from dataclasses import dataclass
from typing import Iterable, Sequence

from structlm.candidates.layout import uni_encoder
from structlm.errors import PlanError
from structlm.plan import Plan

__all__ = ["Example", "STDLIB_MODULES", "stdlib_functions", "docstring_examples", "in_batch_negatives",
           "training_plans", "split"]

#: Pure-Python standard-library modules with many documented functions.
STDLIB_MODULES = ("textwrap", "shutil", "os", "posixpath", "json", "json.decoder", "json.encoder", "string",
                  "random", "statistics", "fractions", "difflib", "inspect", "ast", "tokenize", "glob", "fnmatch",
                  "tempfile", "calendar", "base64", "quopri", "html", "urllib.parse", "email.utils", "heapq",
                  "bisect", "functools", "copy", "pprint", "csv", "zipfile", "tarfile", "gettext", "locale",
                  "shlex", "subprocess", "platform", "sysconfig", "uuid", "ipaddress", "colorsys", "typing",
                  "dataclasses", "enum", "argparse", "logging", "contextlib", "operator", "warnings", "imaplib")


@dataclass(frozen=True)
class Example:
    """One ranking problem: a context, its candidates, the index of the right one, and a label."""

    context: str
    candidates: tuple[str, ...]
    gold: int
    label: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.gold < len(self.candidates):
            raise ValueError(f"gold index {self.gold} is outside the {len(self.candidates)} candidates")


def _without_docstring(source: str) -> str | None:
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return None
    if not tree.body or not isinstance(tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    function = tree.body[0]
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        function.body = body[1:] or [ast.Pass()]
    return ast.unparse(function)  # comments go too: they often repeat the docstring


def stdlib_functions(modules: Sequence[str] = STDLIB_MODULES, max_chars: int = 1500) -> list[tuple[str, str, str]]:
    """``(qualified name, source without docstring, first docstring line)`` for documented stdlib functions.

    Sources are cut to ``max_chars`` characters; functions whose first docstring line is shared with another
    function (or too short to say anything) are left out, so no two candidates are the same text.
    """
    found, seen_lines, seen_code = [], {}, set()
    for module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name, function in sorted(vars(module).items()):
            if not inspect.isfunction(function) or function.__module__ != module.__name__ or name.startswith("_"):
                continue
            doc = inspect.getdoc(function) or ""
            first = doc.strip().splitlines()[0].strip() if doc.strip() else ""
            if len(first.split()) < 3:
                continue
            try:
                source = _without_docstring(inspect.getsource(function))
            except (OSError, TypeError):
                continue
            if source is None or source in seen_code:
                continue
            seen_code.add(source)
            seen_lines[first] = seen_lines.get(first, 0) + 1
            found.append((f"{module_name}.{name}", source[:max_chars], first))
    return [item for item in found if seen_lines[item[2]] == 1]


def docstring_examples(k: int = 10, limit: int | None = None, seed: int = 0,
                       modules: Sequence[str] = STDLIB_MODULES, max_chars: int = 1500) -> list[Example]:
    """Match a function to its docstring: per function, its first docstring line among ``k - 1`` others'.

    The gold sits at a random place (seeded); ``limit`` keeps the first examples of a seeded shuffle.
    """
    functions = stdlib_functions(modules, max_chars)
    if k < 1 or k > len(functions):
        raise ValueError(f"k must be between 1 and the {len(functions)} functions found, got {k}")
    rng = random.Random(seed)
    order = list(range(len(functions)))
    rng.shuffle(order)
    examples = []
    for i in order[:limit] if limit is not None else order:
        label, source, line = functions[i]
        others = rng.sample([j for j in range(len(functions)) if j != i], k - 1)
        candidates = [functions[j][2] for j in others]
        gold = rng.randrange(k)
        candidates.insert(gold, line)
        examples.append(Example(source, tuple(candidates), gold, label))
    return examples


def split(examples: Sequence[Example], held_out: float = 0.5) -> tuple[list[Example], list[Example]]:
    """``(train, test)``: the last ``held_out`` share is the test split (no function in both)."""
    cut = len(examples) - max(1, int(round(len(examples) * held_out)))
    return list(examples[:cut]), list(examples[cut:])


def in_batch_negatives(examples: Sequence[Example], batch_size: int) -> list[Example]:
    """The paper's training trick: within each batch, every example's candidates are the batch's gold answers.

    Example i of a batch keeps its context; its candidates are the golds of the whole batch and its gold is at
    index i. Batches with a repeated gold text are left with their own candidates (a ranking needs distinct ones).
    """
    if batch_size < 2:
        raise ValueError(f"in-batch negatives need batches of at least 2, got {batch_size}")
    result = []
    for start in range(0, len(examples), batch_size):
        batch = list(examples[start:start + batch_size])
        golds = tuple(e.candidates[e.gold] for e in batch)
        if len(batch) < 2 or len(set(golds)) < len(golds):
            result.extend(batch)
            continue
        result.extend(Example(e.context, golds, i, e.label) for i, e in enumerate(batch))
    return result


def training_plans(tokenizer, examples: Iterable[Example], mask: str = "arrow", decoder: bool | None = None,
                   model=None, in_batch: int = 0, **options) -> list[tuple[Plan, str]]:
    """``(plan, gold candidate name)`` per example, ready for ``structlm.hf.ranking_train.fine_tune``.

    ``in_batch=B`` (B ≥ 2) replaces each example's candidates by the golds of its batch of B first.
    ``options`` go to :func:`~structlm.candidates.layout.uni_encoder`.
    """
    examples = list(examples)
    if in_batch:
        examples = in_batch_negatives(examples, in_batch)
    if not examples:
        raise PlanError("no examples to build training plans from")
    plans = []
    for example in examples:
        plan = uni_encoder(tokenizer, example.context, list(example.candidates), mask=mask, decoder=decoder,
                           model=model, **options)
        names = [s.name for s in plan if s.role == "candidate"]
        plans.append((plan, names[example.gold]))
    return plans
