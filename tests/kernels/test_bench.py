"""`python -m agent.bench` end to end on a tiny random checkpoint (a smoke test of the script;
the numbers themselves are recorded in BENCHMARKS.md)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parents[2]


def test_bench_prints_the_keys_external_checks_read(tmp_path):
    subprocess.run([sys.executable, "-m", "agent.model.random", "--config", "tiny", "--layers", "2",
                    "--out", str(tmp_path)], check=True, capture_output=True, cwd=REPO)
    run = subprocess.run([sys.executable, "-m", "agent.bench", "--checkpoint", str(tmp_path), "--json",
                          "--prompt-tokens", "24", "--decode-tokens", "6", "--batch", "2",
                          "--dense", "int8", "--threads", "1", "--depths", "0,40",
                          "--depth-rounds", "2"],
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout)
    for key in ("prefill_tok_s", "decode_tok_s", "peak_rss_gb", "roofline_fraction",
                "decode_batch2_tok_s", "ttft_s", "read_bandwidth_gb_s"):
        assert result[key] > 0, key
    assert result["load_s"] >= 0 and 0 < result["rss_loaded_gb"] <= result["peak_rss_gb"]
    # the second call extends the first conversation: its cached prompt and answer are reused
    assert result["second_call"]["reused_tokens"] >= 24 and result["second_call"]["computed_tokens"] >= 16
    assert result["layers"] == 2 and result["dense"] == "int8"
    assert 0 < result["weight_bytes_per_token"] < 10e6        # a tiny model reads little per token
    assert 0 <= result["logit_rms_error_over_rms"] < 0.2      # int8 against the model's own dtype
    low, high = result["logit_rms_error_per_prompt"]           # ... over 8 prompts, pooled
    assert result["logit_prompts"] == 8 and low <= result["logit_rms_error_over_rms"] <= high
    paired = result["roofline_fraction_paired"]                # rounds of probe, then decode
    assert paired["rounds"] == 6 and 0 < paired["range"][0] <= paired["median"] <= paired["range"][1]
    assert [row["depth"] for row in result["depths"]] == [0, 40]  # prefill on a cached prefix
    assert result["depths"][1]["reused_tokens"] == 40
    deep, = result["depth_ratio_paired"]                       # ... against 0, in alternation
    assert deep["depth"] == 40 and deep["rounds"] == 2
    assert 0 < deep["ratio_range"][0] <= deep["ratio_median"] <= deep["ratio_range"][1]
    assert deep["prefill_tok_s_at_0"] > 0 and deep["prefill_tok_s_at_depth"] > 0


def test_attention_table_times_both_kernels_per_layer_kind():
    run = subprocess.run([sys.executable, "-m", "agent.bench", "--attention", "--depths", "70",
                          "--prompt-tokens", "8", "--threads", "1", "--json"],
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = json.loads(run.stdout)["attention"]
    assert [(r["queries"], r["layer"]) for r in rows] == [(8, "full"), (8, "sliding"), (1, "full"), (1, "sliding")]
    assert all(r["depth"] == 70 and r["ours_ms"] > 0 and r["torch_flash_ms"] > 0 for r in rows)
