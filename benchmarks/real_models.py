"""Real models: SmolLM2-135M-Instruct (fp32) — RAG time to first token, generation speed, needle accuracy, one run.

    python benchmarks/real_models.py                 # 16 contexts (~4.6k tokens), 40 new tokens, 24 needle questions
    python benchmarks/real_models.py --quick         # 4 contexts, 8 new tokens, 4 needle questions (a smoke run)
    python benchmarks/real_models.py --questions 48 --haystack 12

1. Time to first token of a RAG prompt: ``--contexts`` pydoc_data topics (``--context-tokens`` each) between the
   chat template's header and the question.
   * sequential: the ordinary prefill of the whole prompt (HF, one causal forward, last logits only);
   * parallel cold: ``StructuredLM.generate(rag.parallel(...), max_new_tokens=1)`` on an empty SegmentCache;
   * parallel warm: the same with a new question over contexts already in the cache;
   * parallel warm + APE: the warm path with ``attention=APE()`` (T = S = 0.9).
2. Generation: the sequential prompt, prefill + ``--new-tokens`` greedy tokens (EOS ignored by both) —
   ``StructuredLM.generate`` on the sequential plan (cold cache) vs ``model.generate``; the tokens must agree.
3. Needle in a haystack over real text: ``--haystack`` pydoc_data topic chunks (other topics than part 1); a
   sentence "The password of the <name> server is <number>." is put into one chunk (the chunk and the place in it
   rotate); the question asks for it; an answer is right when its first ``--answer-tokens`` tokens hold the
   number. Sequential prompt vs parallel vs parallel + APE, the same chunks and question for each.

Wall time is the median of ``--repeat`` runs; process CPU time beside it (the machine is shared). Ratios are against
the sequential baseline of the same run.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from measure import timed  # noqa: E402
from structlm import rag  # noqa: E402
from structlm.text import Template  # noqa: E402

SYSTEM = "Answer the question from the documents."
PREFIX = "Documents:\n"
RAG_QUESTIONS = ["What does the pass statement do?", "What do lambda expressions create?",
                 "How long does a global statement hold?", "What is the while statement used for?",
                 "What does the del statement do?", "What are assert statements for?"]
NAMES = ["amber", "birch", "cobalt", "delta", "ember", "falcon", "garnet", "harbor", "indigo", "juniper", "kestrel",
         "lantern", "marble", "nectar", "onyx", "pepper", "quartz", "raven", "saffron", "tundra", "umber", "violet",
         "willow", "yarrow", "zephyr", "aspen", "basalt", "cedar", "dune", "fjord", "glacier", "heron"]


def topic_chunks(tokenizer, count: int, tokens: int, skip: int = 0) -> list[str]:
    """``count`` pydoc_data topics (in name order, after ``skip``), each cut to its first ``tokens`` tokens."""
    from pydoc_data.topics import topics

    chunks = []
    for name in sorted(topics)[skip:]:
        ids = tokenizer.encode(" ".join(topics[name].split()), add_special_tokens=False)
        if len(ids) >= tokens:
            chunks.append(tokenizer.decode(ids[:tokens]))
        if len(chunks) == count:
            return chunks
    raise ValueError(f"only {len(chunks)} pydoc topics have {tokens} tokens")


def time_to_first_token(lm, tokenizer, template, contexts, repeat: int) -> dict:
    from structlm.hf import APE

    model = lm.model
    rows: dict[str, list] = {}
    questions = iter(RAG_QUESTIONS * (repeat + 2))

    def record(name, fn):
        result, wall, cpu, _ = timed(fn)
        rows.setdefault(name, []).append((wall, cpu))
        return result

    def plan_for(kind, question):
        return getattr(rag, kind)(tokenizer, contexts, question, prefix=PREFIX, template=template)

    def hf_prefill(ids):
        with torch.no_grad():
            return int(model(input_ids=ids, use_cache=False, logits_to_keep=1).logits[0, -1].argmax())

    tokens = len(plan_for("sequential", RAG_QUESTIONS[0]))
    for _ in range(repeat):
        question = next(questions)
        seq = plan_for("sequential", question)
        first = record("sequential (HF prefill)", lambda: hf_prefill(seq.input_ids))
        lm.cache.clear()
        cold = record("parallel cold", lambda: lm.generate(plan_for("parallel", question), max_new_tokens=1))
        warm_q = next(questions)
        record("parallel warm", lambda: lm.generate(plan_for("parallel", warm_q), max_new_tokens=1))
        record("parallel warm + APE", lambda: lm.generate(plan_for("parallel", warm_q), max_new_tokens=1,
                                                          attention=APE()))
        assert isinstance(first, int) and cold.shape == (1, 1)
    # warm and cold agree on the first token of one question
    plan = plan_for("parallel", RAG_QUESTIONS[-1])
    again = lm.generate(plan, max_new_tokens=1)
    lm.cache.clear()
    assert torch.equal(again, lm.generate(plan, max_new_tokens=1)), "warm and cold parallel prefill disagree"
    summary = {name: tuple(statistics.median(v[i] for v in values) for i in range(2)) for name, values in rows.items()}
    return {"tokens": tokens, "rows": summary}


def generation(lm, tokenizer, template, contexts, new_tokens: int, repeat: int) -> dict:
    model = lm.model
    plan = rag.sequential(tokenizer, contexts, RAG_QUESTIONS[0], prefix=PREFIX, template=template)
    ids = plan.input_ids
    rows: dict[str, list] = {}

    def ours():
        lm.cache.clear()
        return lm.generate(plan, max_new_tokens=new_tokens, eos_token_id=[])

    def theirs():
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                                 min_new_tokens=new_tokens, do_sample=False, eos_token_id=None, pad_token_id=0)
        return out[:, ids.shape[1]:]

    outputs = {}
    for _ in range(repeat):
        for name, fn in (("model.generate (HF)", theirs), ("StructuredLM.generate", ours)):
            outputs[name], wall, cpu, _ = timed(fn)
            rows.setdefault(name, []).append((wall, cpu))
    a, b = outputs["model.generate (HF)"][0].tolist(), outputs["StructuredLM.generate"][0].tolist()
    eos = tokenizer.eos_token_id
    same = a[: a.index(eos)] == b[: b.index(eos)] if eos in a and eos in b else a == b
    summary = {name: tuple(statistics.median(v[i] for v in values) for i in range(2)) for name, values in rows.items()}
    return {"tokens": ids.shape[1], "rows": summary, "same": same, "text": tokenizer.decode(b, skip_special_tokens=True)}


def needle(lm, tokenizer, template, haystack: list[str], questions: int, answer_tokens: int, seed: int = 0) -> dict:
    from structlm.hf import APE

    rng = random.Random(seed)
    methods = {"sequential": ("sequential", None), "parallel": ("parallel", None), "parallel + APE": ("parallel", APE())}
    right = {name: 0 for name in methods}
    seconds = {name: 0.0 for name in methods}
    examples = []
    for i in range(questions):
        name, number = NAMES[i % len(NAMES)], rng.randrange(1000, 10000)
        fact = f"The password of the {name} server is {number}."
        docs = list(haystack)
        target = i % len(docs)
        sentences = docs[target].split(". ")
        where = (i // len(docs)) % 3 * len(sentences) // 2 if len(sentences) > 1 else 0  # start, middle, end
        sentences.insert(min(where, len(sentences)), fact.rstrip("."))
        docs[target] = ". ".join(sentences)
        question = f"What is the password of the {name} server?"
        for method, (kind, attention) in methods.items():
            plan = getattr(rag, kind)(tokenizer, docs, question, prefix=PREFIX, template=template)
            start = time.perf_counter()
            out = lm.generate(plan, max_new_tokens=answer_tokens, attention=attention)
            seconds[method] += time.perf_counter() - start
            text = tokenizer.decode(out[0], skip_special_tokens=True)
            right[method] += str(number) in text
            if i < 2:
                examples.append(f"  q{i} {method:<15} {'right' if str(number) in text else 'wrong'}: {text!r}")
    tokens = len(rag.sequential(tokenizer, haystack, "What is the password of the amber server?", prefix=PREFIX,
                                template=template))
    return {"right": right, "seconds": seconds, "questions": questions, "tokens": tokens, "examples": examples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 contexts, 8 new tokens, 4 needle questions")
    parser.add_argument("--contexts", type=int, default=16, help="RAG contexts (part 1 and 2)")
    parser.add_argument("--context-tokens", type=int, default=280, help="tokens per RAG context")
    parser.add_argument("--new-tokens", type=int, default=40, help="tokens generated in part 2")
    parser.add_argument("--questions", type=int, default=24, help="needle questions (part 3)")
    parser.add_argument("--haystack", type=int, default=8, help="haystack chunks per needle question")
    parser.add_argument("--haystack-tokens", type=int, default=200, help="tokens per haystack chunk")
    parser.add_argument("--answer-tokens", type=int, default=16, help="tokens generated per needle answer")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    if args.quick:
        args.contexts, args.new_tokens, args.questions, args.haystack, args.repeat = 4, 8, 4, 4, 1
    from structlm.hf import StructuredLM, load_embedded

    torch.manual_seed(0)
    model, tokenizer = load_embedded("smollm2-135m-instruct")
    lm = StructuredLM(model, tokenizer)
    template = Template.chat(tokenizer, system=SYSTEM)
    print(f"SmolLM2-135M-Instruct (embedded, fp32, sdpa); torch {torch.__version__}, threads "
          f"{torch.get_num_threads()}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")
    contexts = topic_chunks(tokenizer, args.contexts, args.context_tokens)
    lm.generate(rag.parallel(tokenizer, contexts[:1], "Warm up.", prefix=PREFIX, template=template), max_new_tokens=2)

    ttft = time_to_first_token(lm, tokenizer, template, contexts, args.repeat)
    base = ttft["rows"]["sequential (HF prefill)"]
    print(f"\n1. time to first token, {args.contexts} contexts x {args.context_tokens} tokens ({ttft['tokens']} "
          f"tokens in the sequential prompt)")
    print(f"   {'method':<26} {'wall ms':>9} {'CPU ms':>9} {'speed-up':>9} {'CPU speed-up':>12}")
    for name, (wall, cpu) in ttft["rows"].items():
        print(f"   {name:<26} {wall * 1e3:9.1f} {cpu * 1e3:9.1f} {base[0] / wall:8.1f}x {base[1] / cpu:11.1f}x")

    gen = generation(lm, tokenizer, template, contexts, args.new_tokens, args.repeat)
    hf = gen["rows"]["model.generate (HF)"]
    print(f"\n2. generation: {gen['tokens']}-token prompt + {args.new_tokens} tokens (greedy); same tokens: {gen['same']}")
    print(f"   {'method':<26} {'wall s':>9} {'CPU s':>9} {'vs HF':>9} {'CPU vs HF':>12}")
    for name, (wall, cpu) in gen["rows"].items():
        print(f"   {name:<26} {wall:9.2f} {cpu:9.2f} {wall / hf[0]:8.2f}x {cpu / hf[1]:11.2f}x")
    print(f"   answer: {gen['text']!r}")

    haystack = topic_chunks(tokenizer, args.haystack, args.haystack_tokens, skip=60)
    found = needle(lm, tokenizer, template, haystack, args.questions, args.answer_tokens)
    print(f"\n3. needle in {args.haystack} pydoc chunks x {args.haystack_tokens} tokens ({found['tokens']} tokens "
          f"sequential), {found['questions']} questions, {args.answer_tokens} answer tokens")
    print(f"   {'method':<26} {'right':>9} {'accuracy':>9} {'s/question':>11}")
    for name, count in found["right"].items():
        print(f"   {name:<26} {count:>5}/{found['questions']:<3} {count / found['questions']:9.0%} "
              f"{found['seconds'][name] / found['questions']:11.2f}")
    print("\n".join(found["examples"]))


if __name__ == "__main__":
    main()
