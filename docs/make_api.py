"""Write docs/api.md, the API reference, from the public names (``__all__``) and their docstrings.

    python docs/make_api.py          # rewrites docs/api.md; tests/test_docs.py fails when it is stale
"""
from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

MODULES = [
    ("structlm", "Top-level names (the core, and the runtime's main classes)"),
    ("structlm.errors", "Errors"),
    ("structlm.plan", "Plans"),
    ("structlm.masks", "Compile targets"),
    ("structlm.schedule", "Dependency levels"),
    ("structlm.layouts", "Shared layouts"),
    ("structlm.text", "Text to ids"),
    ("structlm.viz", "Pictures"),
    ("structlm.testing", "Fixtures: tiny models and the reference forward"),
    ("structlm.hf", "The runtime"),
    ("structlm.hf.call", "The runtime: one model call"),
    ("structlm.rag", "RAG layouts"),
    ("structlm.graph", "Graphs: input, anchors, distances, node tokens, plans"),
    ("structlm.code", "Code: parsing, UniXcoder, AST-Probe tuples"),
    ("structlm.stream", "Streams: group positions, wait-k plans, latency"),
    ("structlm.candidates", "Candidate sets: Uni-Encoder plans, metrics, the docstring task"),
    ("structlm.probe", "Code: the probe"),
    ("structlm.scale", "Past one machine: Ray Data corpora, probing features, the shared store"),
]


def _summary(obj) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.split("\n\n")[0].replace("\n", " ").strip()


def _signature(obj) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return ""


def render() -> str:
    lines = ["# API reference", "",
             "Generated from the docstrings by `python docs/make_api.py`; the guides explain how the pieces fit.", ""]
    documented = {name for name, _ in MODULES}
    for module_name, title in MODULES:
        module = importlib.import_module(module_name)
        lines += [f"## `{module_name}` — {title}", ""]
        for name in getattr(module, "__all__", []):
            if name.startswith("__"):
                continue
            obj = getattr(module, name)
            home = getattr(obj, "__module__", module_name) or module_name
            if module_name != home and home in documented and home != module_name:
                lines.append(f"- `{name}` — {_summary(obj)} (documented under `{home}`)")
                continue
            if inspect.isclass(obj):
                lines.append(f"- **class `{name}{_signature(obj)}`** — {_summary(obj)}")
                for member_name, member in inspect.getmembers(obj):
                    if member_name.startswith("_") or not (inspect.isfunction(member) or inspect.ismethod(member)
                                                           or isinstance(member, property)):
                        continue
                    if member_name not in vars(obj):
                        continue  # inherited
                    if isinstance(member, property):
                        lines.append(f"  - `.{member_name}` — {_summary(member)}")
                    else:
                        lines.append(f"  - `.{member_name}{_signature(member)}` — {_summary(member)}")
            elif callable(obj):
                lines.append(f"- `{name}{_signature(obj)}` — {_summary(obj)}")
            else:
                lines.append(f"- `{name}` = `{obj!r}`")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    target = Path(__file__).with_name("api.md")
    target.write_text(render())
    sys.stdout.write(f"wrote {target}\n")
