#!/usr/bin/env python3
"""Paired A/B throughput: does a change cost measurable speed? Runs two binaries (or one binary with
two config variants) alternately, A B B A A B ..., on the same config and rank count, and prints
each pair's training tokens/s and the pair ratios. Alternating cancels slow drifts of a shared
machine; the median ratio and its spread are the answer.

    python3 dev/bench/paired.py --a OLD_BINARY --b NEW_BINARY --config dev/bench/configs/tiny.json
    python3 dev/bench/paired.py --a BIN --b BIN --b-set training.deadline_s=0 --ranks 2 --config ...

tokens/s is the run's training tokens over its training wall time (elapsed_s of the last record in
metrics.jsonl: evaluation and checkpoint time excluded, start-up excluded). Evaluation is off and
the only checkpoint is the last one.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def variant(config, settings):
    config = json.loads(json.dumps(config))
    for setting in settings:
        key, value = setting.split("=", 1)
        section, field = key.split(".", 1)
        config.setdefault(section, {})[field] = json.loads(value)
    return config


def run(binary, config, ranks, threads, workdir, name):
    run_dir = os.path.join(workdir, name)
    config["output"] = {"run_dir": run_dir}
    path = os.path.join(workdir, name + ".json")
    json.dump(config, open(path, "w"))
    env = dict(os.environ, ATTN_TRAIN_THREADS=str(threads), OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    command = [binary, path, "--fresh"]
    if ranks > 1:
        command = ["mpirun", "--oversubscribe", "-np", str(ranks)] + command
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    records = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    last = records[-1]
    steps = last["step"]
    tokens_per_step = json.load(open(os.path.join(run_dir, "plan.json")))["tokens_per_step"] if os.path.exists(
        os.path.join(run_dir, "plan.json")) else None
    if tokens_per_step is None:
        training = config["training"]
        tokens_per_step = training["batch_size"] * training.get("grad_accum_steps", 1) * config["model"]["block_size"]
    return steps * tokens_per_step / last["elapsed_s"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", required=True, help="binary A (before)")
    parser.add_argument("--b", required=True, help="binary B (after)")
    parser.add_argument("--a-set", action="append", default=[], help="section.key=JSON for A's config")
    parser.add_argument("--b-set", action="append", default=[], help="section.key=JSON for B's config")
    parser.add_argument("--config", default=os.path.join(ROOT, "dev/bench/configs/tiny.json"))
    parser.add_argument("--ranks", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="compute threads per rank")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    base = json.load(open(args.config))
    data = base.get("data", {})
    for key in ("train_path", "dev_path"):
        if key in data and not os.path.isabs(data[key]):
            data[key] = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(args.config)), data[key]))
    base["training"].update({"max_steps": args.steps, "eval_interval": 0, "checkpoint_interval": 0, "log_interval": 10})
    configs = {"A": variant(base, args.a_set), "B": variant(base, args.b_set)}
    binaries = {"A": args.a, "B": args.b}
    print(f"{os.path.basename(args.config)}, {args.steps} steps, {args.ranks} rank(s) x {args.threads} thread(s)")
    print(f"A: {args.a} {' '.join(args.a_set)}")
    print(f"B: {args.b} {' '.join(args.b_set)}")
    print("| round | A tok/s | B tok/s | B/A |")
    print("|---|---|---|---|")
    ratios, rates = [], {"A": [], "B": []}
    with tempfile.TemporaryDirectory(prefix="attn-paired-") as workdir:
        for round in range(args.rounds):
            order = "AB" if round % 2 == 0 else "BA"
            got = {}
            for which in order:
                got[which] = run(binaries[which], configs[which], args.ranks, args.threads, workdir, f"{which}{round}")
                rates[which].append(got[which])
            ratios.append(got["B"] / got["A"])
            print(f"| {round + 1} ({order}) | {got['A']:,.0f} | {got['B']:,.0f} | {ratios[-1]:.3f} |", flush=True)
    print(f"| median | {statistics.median(rates['A']):,.0f} | {statistics.median(rates['B']):,.0f} | "
          f"{statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f}) |")


if __name__ == "__main__":
    main()
