#!/usr/bin/env python3
"""Soak: a long run must not grow. Trains Configs/tiny.json for 20,000 steps with a checkpoint every
100 (200 checkpoints written, 197 pruned), and samples the process's resident memory (VmRSS) and
open file descriptors at the start of training, in the middle and at the end. Both must stay flat:
a leak of a few KB per checkpoint or one descriptor per file would show as a climb.

    python3 dev/bench/soak.py [--steps 20000] [--binary .build/release/attn-train]
"""
import argparse, json, os, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sample(pid):
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return rss / 1024, len(os.listdir(f"/proc/{pid}/fd"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build/release/attn-train"))
    args = parser.parse_args()
    config = json.load(open(os.path.join(ROOT, "Configs/tiny.json")))
    config["data"]["train_path"] = os.path.join(ROOT, "data/tinyshakespeare/input.txt")
    config["training"].update({"max_steps": args.steps, "checkpoint_interval": 100, "eval_interval": 1000,
                               "log_interval": 100, "keep_checkpoints": 3})
    config["schedule"] = {"kind": "cosine", "warmup_steps": 10, "min_lr": 3e-4}
    with tempfile.TemporaryDirectory(prefix="attn-soak-") as workdir:
        config["output"] = {"run_dir": os.path.join(workdir, "run")}
        path = os.path.join(workdir, "soak.json")
        json.dump(config, open(path, "w"))
        process = subprocess.Popen([args.binary, path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   env=dict(os.environ, ATTN_TRAIN_THREADS="1"))
        marks = {args.steps // 100: "start (step 1%)", args.steps // 2: "middle", args.steps * 99 // 100: "end (step 99%)"}
        rows = []
        for line in process.stdout:
            if line.startswith("step "):
                step = int(line.split()[1].split("/")[0])
                if step in marks:
                    rss, fds = sample(process.pid)
                    rows.append((marks[step], step, rss, fds))
        process.wait()
        if process.returncode != 0:
            sys.exit(f"the run failed with status {process.returncode}")
        checkpoints = sorted(os.listdir(os.path.join(workdir, "run", "checkpoints")))
    print(f"tiny, {args.steps} steps, checkpoint every 100 (keep 3), dev loss every 1000, 1 thread")
    print("| point | step | resident MiB | open fds |")
    print("|---|---|---|---|")
    for name, step, rss, fds in rows:
        print(f"| {name} | {step} | {rss:.1f} | {fds} |")
    print(f"checkpoints left on disk: {', '.join(checkpoints)}")


if __name__ == "__main__":
    main()
