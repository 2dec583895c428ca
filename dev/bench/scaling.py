#!/usr/bin/env python3
"""Training tokens/s of a config at 1, 2 and 4 MPI ranks (threads per rank: cores / ranks).

    python3 dev/bench/scaling.py [CONFIG] [--steps N] [--ranks 1,2,4]

Default CONFIG is Configs/shakespeare-char-6l.json. Runs the real binary through launch/mpirun.sh
with a copy of the config that trains a few steps, evaluates only a tiny dev tail at the end and
skips intermediate checkpoints; tokens/s is the trainer's own figure for the steps after the first
log window (the first window includes start-up). Prints a markdown table.
"""
import argparse, json, os, subprocess, sys, tempfile, time

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
parser = argparse.ArgumentParser()
parser.add_argument("config", nargs="?", default=os.path.join(root, "Configs/shakespeare-char-6l.json"))
parser.add_argument("--steps", type=int, default=4, help="optimizer steps per run; the first half is warm-up")
parser.add_argument("--ranks", default="1,2,4")
args = parser.parse_args()

subprocess.run(["swift", "build", "-c", "release", "--product", "attn-train"], cwd=root, check=True,
               stdout=subprocess.DEVNULL)
with open(args.config) as f:
    config = json.load(f)
base = os.path.dirname(os.path.abspath(args.config))
data = config.setdefault("data", {})
for key in ("train_path", "dev_path"):
    if key in data and not os.path.isabs(data[key]):
        data[key] = os.path.normpath(os.path.join(base, data[key]))
if "dev_path" not in data:
    data["train_fraction"] = 0.998  # a short dev tail: the final evaluation is not what is measured
window = max(1, args.steps // 2)
training = config.setdefault("training", {})
training.update({"max_steps": args.steps, "log_interval": window, "eval_interval": 0,
                 "checkpoint_interval": 0, "consistency_check_interval": 0})

rows = []
with tempfile.TemporaryDirectory() as work:
    for ranks in [int(r) for r in args.ranks.split(",")]:
        run_dir = os.path.join(work, f"run-{ranks}")
        config.setdefault("output", {})["run_dir"] = run_dir
        path = os.path.join(work, f"config-{ranks}.json")
        with open(path, "w") as f:
            json.dump(config, f)
        env = dict(os.environ)
        env.pop("ATTN_TRAIN_THREADS", None)
        start = time.time()
        result = subprocess.run([os.path.join(root, "launch/mpirun.sh"), "-np", str(ranks), path],
                                cwd=root, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"ranks {ranks}: attn-train failed:\n{result.stdout}\n{result.stderr}")
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            records = [json.loads(line) for line in f if line.strip()]
        rates = [r["tokens_per_s"] for r in records if "tokens_per_s" in r and r["step"] > window]
        threads = next((line for line in result.stdout.splitlines() if "threads per rank" in line), "")
        rows.append((ranks, rates[-1] if rates else float("nan"), threads.split("per rank: ")[-1], time.time() - start))

one = rows[0][1]
print(f"config: {os.path.relpath(args.config, root)}, {args.steps} steps per run")
print("| ranks | threads per rank | tokens/s | speed-up vs first row | wall s |")
print("|---:|---|---:|---:|---:|")
for ranks, rate, threads, wall in rows:
    print(f"| {ranks} | {threads} | {rate:,.0f} | {rate / one:.2f}x | {wall:.0f} |")
