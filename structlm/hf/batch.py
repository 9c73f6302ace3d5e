"""Several plans in one padded dense forward (other backends run plan by plan, with the same numbers).

Padding rows see only themselves (no empty softmax row) and no real token sees padding, so each plan's outputs
equal its own forward; the masks come from :func:`structlm.masks.batch_mask`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from structlm.hf.call import mask_kind
from structlm.hf.hooks import AttentionHook
from structlm.hf.outputs import LogitsFor, StructuredOutput, logit_rows
from structlm.masks import batch_mask
from structlm.plan import Plan

if TYPE_CHECKING:  # pragma: no cover - annotations only; the model module imports this one lazily
    from structlm.hf.model import StructuredLM

__all__ = ["forward_batch"]


def forward_batch(lm: "StructuredLM", plans: list[Plan], backend: str, output_hidden_states: bool,
                  attention: AttentionHook | None, logits_for: LogitsFor = "all") -> list[StructuredOutput]:
    """See :meth:`StructuredLM.forward` with a list of plans."""
    if not plans:
        return []
    chosen = {lm.choose_backend(p, output_hidden_states) if backend == "auto" else backend for p in plans}
    if chosen != {"dense"} or attention is not None or len(plans) == 1:
        return [lm.forward(p, backend=backend, output_hidden_states=output_hidden_states, attention=attention,
                           logits_for=logits_for) for p in plans]
    for plan in plans:
        lm.check_plan(plan)
    call = lm.call
    longest = max(len(p) for p in plans)
    implementation = call.masked_implementation(None)
    float_positions = any(p.position_ids.is_floating_point() for p in plans)
    positions, embeds = [], []
    embedding = lm.model.get_input_embeddings()
    for plan in plans:
        n = len(plan)
        pos = torch.zeros(longest, dtype=torch.float32 if float_positions else torch.long)
        pos[:n] = plan.position_ids[0]
        positions.append(pos)
        inputs = plan.inputs_embeds(embedding, dtype=lm.dtype)[0]
        embeds.append(torch.cat([inputs, inputs.new_zeros(longest - n, inputs.shape[-1])]))
    typed = {}
    if any(p.token_type_ids is not None for p in plans):  # BERT-style types; padding and untyped plans get 0
        types = torch.zeros(len(plans), longest, dtype=torch.long)
        for i, p in enumerate(plans):
            if p.token_type_ids is not None:
                types[i, :len(p)] = p.token_type_ids[0]
        typed["token_type_ids"] = types.to(lm.device)
    mask = batch_mask(plans, longest, mask_kind(implementation), lm.dtype).to(lm.device)
    batch_positions = call.positions(torch.stack(positions))
    batch_embeds = torch.stack(embeds)
    with torch.no_grad(), call.implementation(implementation):
        if lm.is_decoder:
            out = call.base(inputs_embeds=batch_embeds, attention_mask=mask, position_ids=batch_positions,
                            use_cache=False, output_hidden_states=output_hidden_states, **typed)
            last = out.last_hidden_state
            logits = None
        else:
            out = lm.model(inputs_embeds=batch_embeds, attention_mask=mask, position_ids=batch_positions,
                           output_hidden_states=True, **typed)
            logits = getattr(out, "logits", None)
            last = getattr(out, "last_hidden_state", None)
            last = out.hidden_states[-1] if last is None else last
    results = []
    for i, plan in enumerate(plans):
        n = len(plan)
        rows = logit_rows(plan, logits_for)
        if lm.is_decoder:
            plan_logits = lm.logits(last[i: i + 1, :n], rows)
        else:
            plan_logits = None if logits is None else logits[i: i + 1, :n]
            if plan_logits is not None and rows is not None:
                plan_logits = plan_logits[:, rows.to(plan_logits.device)]
        results.append(StructuredOutput(
            logits=plan_logits,
            last_hidden_state=last[i: i + 1, :n],
            hidden_states=tuple(h[i: i + 1, :n] for h in out.hidden_states) if output_hidden_states else None,
            backend="dense",
            logits_index=rows,
        ))
    return results
