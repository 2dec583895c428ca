#!/usr/bin/env python3
"""Throughput across hosts that share no memory, on one machine: network namespaces on a bridge
(as Tests/EndToEndTests/NamespaceHosts.swift makes them), mpirun over TCP between them, the links
limited with `tc qdisc ... tbf`. Prints tokens/s per rank count, link rate, and whether gradients
are reduced during backward (overlap) or after it.

    sudo python3 dev/bench/hosts.py [--config dev/bench/configs/medium.json] [--ranks 2,4]
                                    [--rates unlimited,10gbit,1gbit] [--steps 12]

Needs root and iproute2; cleans up every namespace it makes, also on failure. tokens/s is measured
between the first and the last record (the first steps warm up), training time only.
"""
import argparse, json, os, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAME = f"attnb{os.getpid()}"
SUBNET = f"10.79.{os.getpid() % 200 + 20}"


def ip(*args, check=True):
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def make_hosts(count, directory, mtu):
    ip("netns", "add", f"{NAME}-sw")
    ip("-n", f"{NAME}-sw", "link", "add", "br0", "type", "bridge")
    ip("-n", f"{NAME}-sw", "link", "set", "br0", "up")
    for i in range(count):
        ns = f"{NAME}-h{i}"
        ip("netns", "add", ns)
        ip("link", "add", f"{NAME}v{i}", "type", "veth", "peer", "name", f"{NAME}p{i}")
        ip("link", "set", f"{NAME}v{i}", "netns", ns)
        ip("link", "set", f"{NAME}p{i}", "netns", f"{NAME}-sw")
        ip("-n", ns, "link", "set", f"{NAME}v{i}", "name", f"v{i}")
        ip("-n", f"{NAME}-sw", "link", "set", f"{NAME}p{i}", "master", "br0")
        ip("-n", f"{NAME}-sw", "link", "set", f"{NAME}p{i}", "up")
        ip("-n", ns, "addr", "add", f"{SUBNET}.{i + 1}/24", "dev", f"v{i}")
        ip("-n", ns, "link", "set", f"v{i}", "mtu", str(mtu), "up")
        ip("-n", f"{NAME}-sw", "link", "set", f"{NAME}p{i}", "mtu", str(mtu))
        ip("-n", ns, "link", "set", "lo", "up")
    agent = os.path.join(directory, "netns-rsh")
    cases = "\n".join(f"  {SUBNET}.{i + 1}) ns={NAME}-h{i} ;;" for i in range(count))
    with open(agent, "w") as f:
        f.write(f"""#!/bin/bash
while [[ "$1" == -* ]]; do shift; done
host="$1"; shift
case "$host" in
{cases}
  *) echo "unknown host $host" >&2; exit 1 ;;
esac
exec ip netns exec "$ns" unshare --uts /bin/sh -c "hostname $ns; $*"
""")
    os.chmod(agent, 0o755)
    return agent


def remove_hosts(count):
    for ns in [f"{NAME}-h{i}" for i in range(count)] + [f"{NAME}-sw"]:
        ip("netns", "del", ns, check=False)


def limit(count, rate):
    for i in range(count):
        subprocess.run(["ip", "netns", "exec", f"{NAME}-h{i}", "tc", "qdisc", "del", "dev", f"v{i}", "root"],
                       capture_output=True)
        if rate != "unlimited":
            subprocess.run(["ip", "netns", "exec", f"{NAME}-h{i}", "tc", "qdisc", "add", "dev", f"v{i}", "root", "tbf",
                            "rate", rate, "burst", "1mb", "latency", "100ms"], check=True)


def run(binary, agent, hosts, ranks, config, workdir, name):
    run_dir = os.path.join(workdir, name)
    config["output"] = {"run_dir": run_dir}
    path = os.path.join(workdir, name + ".json")
    json.dump(config, open(path, "w"))
    host_list = ",".join(f"{SUBNET}.{i + 1}:4" for i in range(hosts))
    # Unbound: each "host" would bind its rank to its core 0, and all of them are this machine's.
    mpirun = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--mca", "plm_rsh_agent", agent,
              "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", f"{SUBNET}.0/24",
              "--mca", "oob_tcp_if_include", f"{SUBNET}.0/24", "--map-by", "node", "--bind-to", "none", "--host", host_list,
              "-np", str(ranks), "-x", "ATTN_TRAIN_THREADS", binary, path, "--fresh"]
    command = ["ip", "netns", "exec", f"{NAME}-h0", "unshare", "--uts", "/bin/sh", "-c",
               f"hostname {NAME}-h0; exec " + " ".join(f"'{a}'" for a in mpirun)]
    env = dict(os.environ, ATTN_TRAIN_THREADS="1")
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        sys.exit(f"{name} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    records = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    first, last = records[0], records[-1]
    return (last["tokens"] - first["tokens"]) / (last["elapsed_s"] - first["elapsed_s"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=os.path.join(ROOT, "dev/bench/configs/medium.json"))
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build/release/attn-train"))
    parser.add_argument("--ranks", default="2,4")
    parser.add_argument("--rates", default="unlimited,10gbit,1gbit")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--mtu", type=int, default=9000, help="the links' MTU (9000: jumbo frames, as HPC Ethernet uses)")
    args = parser.parse_args()
    ranks = [int(r) for r in args.ranks.split(",")]
    base = json.load(open(args.config))
    data = base.get("data", {})
    if not os.path.isabs(data.get("train_path", "/")):
        data["train_path"] = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(args.config)), data["train_path"]))
    base["training"].update({"max_steps": args.steps, "log_interval": 2, "eval_interval": 0, "checkpoint_interval": 0,
                             "deadline_startup_s": 1800})
    hosts = max(ranks)
    print(f"{os.path.basename(args.config)}, {args.steps} steps, 1 rank per host, 1 thread per rank, TCP between hosts, MTU {args.mtu}")
    print("| ranks | link | overlap tok/s | after-backward tok/s | overlap gain |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="attn-hosts-") as workdir:
        agent = make_hosts(hosts, workdir, args.mtu)
        try:
            for n in ranks:
                for rate in args.rates.split(","):
                    limit(hosts, rate)
                    got = {}
                    for overlap in (True, False):
                        config = json.loads(json.dumps(base))
                        config["training"]["reduce_during_backward"] = overlap
                        got[overlap] = run(args.binary, agent, n, n, config, workdir, f"np{n}-{rate}-{overlap}")
                    print(f"| {n} | {rate} | {got[True]:,.0f} | {got[False]:,.0f} | {got[True] / got[False]:.2f}x |", flush=True)
        finally:
            remove_hosts(hosts)


if __name__ == "__main__":
    main()
