"""agent.model: the in-process gpt-oss runtime.

    model = agent.model.load(path | "nano" | "gpt-oss-20b", device="cpu", dtype=None,
                             dense=None | "int8" | "int8-unembedding",
                             experts=None | "packed" | "dense")
    model.config                                   GptOssConfig
    model.logits(token_ids) -> torch.Tensor        float32 [len(token_ids), vocab]
    model.generate(prompt_tokens, max_tokens=256, stop_tokens=(), temperature=1.0, top_p=1.0,
                   top_k=0, seed=None, logprobs=False, constraint=None, lookahead=None)
                                                   -> Iterator[Generated(token, logprob)]
    model.spell(token_ids)                         the ids a compact checkpoint reads for them
    model.last_drafts                              drafted / accepted tokens of the last call
    model.last_usage                               prompt/reused/computed/generated tokens
    model.generate_batch(prompts, max_tokens=int | [int per prompt], ...) -> list[list[Generated]]
    model.stream_batch(prompts, ...) -> Iterator[(row, Generated)]   the same, streaming
    model.reset()                                  drop the session cache

Modules: config (GptOssConfig), checkpoint (files, names, validation), mxfp4 (the format),
transformer (the architecture), cache (KV cache, prefix reuse, rollback), generate (sampling),
lookup (prompt-lookup drafts), random (random checkpoints), download (real weights).
"""

if __name__ != "agent.model":  # run from the repo root as `model`: see agent/shadowing.py
    from agent.shadowing import stand_aside
    stand_aside(__name__)
from agent.model.checkpoint import CheckpointError
from agent.model.config import ConfigError, GptOssConfig
from agent.model.generate import Generated, Sampler
from agent.model.transformer import GptOss, load

__all__ = ["load", "GptOss", "GptOssConfig", "Generated", "Sampler", "CheckpointError",
           "ConfigError"]
