"""How close `--dry-run`'s prompt-token estimate is to what a llama.cpp server reports (issue 34).

Starts llama-cpp-python's OpenAI-compatible server with the bundled SmolLM2 GGUF, plans a criteria
run with `clusterdiv score --dry-run` (litellm's token counter: for a model it has no tokenizer for,
tiktoken's cl100k, on the messages as sent) and then runs it, reading the usage the server reported
from the report's timings. Re-asks and retries are further calls with longer prompts, so the run's
total is also compared per call actually made.

    python eval/plan_tokens.py [--n 40]   ->  eval/results/plan_tokens.md / .json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    import httpx
    from corpora import intent_corpus

    from clusterdiv.llm.local import default_threads, resolve_local_model

    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=40)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="plan_tokens_"))
    texts = list(dict.fromkeys(t for t, _ in intent_corpus(["weather", "alarm", "music", "joke"], 10 * args.n)))
    batch = work / "batch.jsonl"
    batch.write_text("".join(json.dumps({"id": f"e{i}", "text": t}) + "\n" for i, t in enumerate(texts[:args.n])))
    port, threads = free_port(), str(default_threads())
    server = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(resolve_local_model("smollm2").path),
                               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
                               "--n_threads", threads, "--n_threads_batch", threads],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(400):
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        env = {**os.environ, "CLUSTERDIV_CACHE_DIR": str(work / "cache")}
        cli = [sys.executable, "-m", "clusterdiv.cli", "score", str(batch), "--model", "openai/smollm2",
               "--api-base", url, "--representation", "criteria", "--metrics", "none", "--no-record",
               "--format", "json", "--concurrency", "2"]
        plan = json.loads(subprocess.run([*cli, "--dry-run"], env=env, capture_output=True, text=True,
                                         check=True).stdout)
        started = time.perf_counter()
        report = json.loads(subprocess.run(cli, env=env, capture_output=True, text=True, check=True).stdout)
        seconds = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
    step, t = plan["steps"][0], report["timings"]
    per_call_plan = step["prompt_tokens"] / step["calls"]
    per_call_real = t["prompt_tokens"] / t["llm_calls"]
    result = {"examples": args.n, "planned_calls": step["calls"], "calls": t["llm_calls"],
              "planned_prompt_tokens": step["prompt_tokens"], "server_prompt_tokens": t["prompt_tokens"],
              "ratio_total": round(t["prompt_tokens"] / step["prompt_tokens"], 3),
              "planned_per_call": round(per_call_plan, 1), "server_per_call": round(per_call_real, 1),
              "ratio_per_call": round(per_call_real / per_call_plan, 3),
              "completion_tokens": t["completion_tokens"], "completion_bound": step["completion_tokens_max"],
              "failed": report["failed"]["count"], "run_s": round(seconds, 1)}
    out = HERE / "results"
    (out / "plan_tokens.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = "\n".join(f"| {k} | {v} |" for k, v in result.items())
    (out / "plan_tokens.md").write_text(
        "# Plan vs llama.cpp server: prompt tokens\n\n"
        f"`python eval/plan_tokens.py --n {args.n}`: a criteria run of the bundled SmolLM2 GGUF behind "
        "llama-cpp-python's OpenAI-compatible server, planned with `--dry-run` (litellm's counter: cl100k "
        "for a model it has no tokenizer for) and then run; the server's usage is the report's.\n\n"
        f"| figure | value |\n| --- | --- |\n{rows}\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
