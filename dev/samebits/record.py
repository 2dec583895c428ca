#!/usr/bin/env python3
"""Records what a change that is not meant to change results must leave identical: the per-step
train losses, dev losses and the final weights (SHA-256 of model.safetensors' tensor bytes) of
Configs/tiny.json without dropout, with dropout 0.1 and with grad_accum_steps 2, at 1, 2 and 4 ranks.

    python3 dev/samebits/record.py OUT.json [--binary .build/release/attn-train]
    python3 dev/samebits/record.py NEW.json --compare OLD.json

Every run logs every step and uses one compute thread per rank (another thread count changes the
last bits by design). Takes about two minutes here.
"""
import argparse, hashlib, json, os, struct, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VARIANTS = {
    "plain": {},
    "dropout": {"model": {"dropout": 0.1}},
    "accum2": {"training": {"grad_accum_steps": 2}},
}
RANKS = [1, 2, 4]


def tensor_digest(path):
    """SHA-256 over the tensor bytes only: the header's metadata may name the writer's version."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        f.seek(8 + n)
        return hashlib.sha256(f.read()).hexdigest()


def run(binary, variant, ranks, workdir):
    with open(os.path.join(ROOT, "Configs/tiny.json")) as f:
        config = json.load(f)
    config["data"]["train_path"] = os.path.join(ROOT, "data/tinyshakespeare/input.txt")
    run_dir = os.path.join(workdir, f"{variant}-np{ranks}")
    config["output"]["run_dir"] = run_dir
    config["training"]["log_interval"] = 1
    for section, values in VARIANTS[variant].items():
        config[section].update(values)
    path = os.path.join(workdir, f"{variant}-np{ranks}.json")
    with open(path, "w") as f:
        json.dump(config, f)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "PMI_"))}
    env.update(ATTN_TRAIN_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    command = [binary, path] if ranks == 1 else ["mpirun", "-np", str(ranks), binary, path]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0 or "step 100/100" not in done.stdout:
        sys.exit(f"{variant} np{ranks} failed:\n{done.stdout}\n{done.stderr}")
    losses, dev = {}, {}
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            record = json.loads(line)
            losses[record["step"]] = record["train_loss"]
            if "dev_loss" in record:
                dev[record["step"]] = record["dev_loss"]
    final = os.path.join(run_dir, "checkpoints", "step-0000100")
    return {
        "train_loss": [losses[s] for s in sorted(losses)],
        "dev_loss": {str(s): dev[s] for s in sorted(dev)},
        "weights_sha256": tensor_digest(os.path.join(final, "model.safetensors")),
        "optimizer_sha256": tensor_digest(os.path.join(final, "optimizer.safetensors")),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build/release/attn-train"))
    parser.add_argument("--compare")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        for variant in VARIANTS:
            for ranks in RANKS:
                results[f"{variant}-np{ranks}"] = run(args.binary, variant, ranks, workdir)
                print(f"{variant}-np{ranks}: final loss {results[f'{variant}-np{ranks}']['train_loss'][-1]!r}", flush=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    if args.compare:
        with open(args.compare) as f:
            before = json.load(f)
        same = True
        for name, now in results.items():
            for field in now:
                if before.get(name, {}).get(field) != now[field]:
                    print(f"DIFFERENT: {name} {field}")
                    same = False
        print("same bits in every run" if same else "results differ")
        sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
