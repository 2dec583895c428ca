#!/usr/bin/env python3
"""PyTorch side of the attn-train benchmark: trains the model of an attn-train config with PyTorch
eager fp32 and reports training tokens/s and peak resident memory.

    python3 dev/bench/torch_gpt.py CONFIG.json [--threads N] [--ddp] [--warmup W] [--steps M] [--json OUT]
    python3 dev/bench/torch_gpt.py --install-only

The model is the one in dev/MODEL_SPEC.md (pre-LN GPT, learned positions, tied head, exact GELU,
LayerNorm eps 1e-5), written the way nanoGPT writes it: nn.Linear, nn.LayerNorm,
F.scaled_dot_product_attention(is_causal=True) (`--attention manual` uses the explicit masked
softmax of dev/reference/gpt_reference.py instead). Each step: random windows of the config's
training text (nanoGPT's get_batch), forward, cross-entropy, backward, clip_grad_norm_, AdamW
(fused=False, foreach left at its default; weight decay on tensors with 2 or more dimensions, the
embeddings included, as attn-train's decay_embeddings=true).

A config with task.kind "classification" (dev/bench/configs/sst2.json) trains attn-train's text
classifier instead: the same body with bidirectional attention under a key padding mask (each query
sees the keys before its sequence's length; sdpa with a boolean attn_mask), mean pooling of ln_f's
output over the real tokens, a Linear(C, K) head (classifier.out, as attn-train names it) and
cross-entropy over the examples (task.label_smoothing as attn-train applies it). wte stays, as the
input embedding only. Each step draws random examples of the training TSV, CSV or JSONL, encodes
them as UTF-8 bytes (only the byte tokenizer, so the ids are attn-train's), cuts them to block_size
as task.truncate says and pads them to block_size: like attn-train, every step computes all
block_size positions of every example, and tokens/s counts them, padding included. Padded query
rows attend over the real keys here, where attn-train leaves them out (its output there is 0); they
reach neither the loss nor a gradient either way.

--warmup steps run first and are not timed; tokens/s is over the --steps that follow (defaults:
the config's training.log_interval and max_steps - log_interval, the same windows compare.py uses
for attn-train). --threads N is torch.set_num_threads(N). --ddp runs 2 processes x 1 thread with
DistributedDataParallel over gloo on this machine; the config's batch_size is the global batch,
split between them as attn-train splits it between MPI ranks.

Prints one JSON object (also written to --json): tokens_per_s, step_ms, per-step times, first/last
loss, parameter counts, peak RSS in KiB (ru_maxrss; under --ddp per worker, with their max and sum)
and the torch build. If torch cannot be imported it is installed first: from a local wheel
(`torch-*.whl`, as this machine image carries one) with `pip install --no-deps`, plus its few
pure-Python dependencies and numpy; only if no wheel is found, `pip install torch` from PyPI.
"""

import argparse
import glob
import importlib.util
import json
import os
import re
import resource
import socket
import subprocess
import sys
import time

TORCH_DEPS = ["filelock", "fsspec", "numpy", "typing_extensions", "sympy", "networkx", "jinja2"]


def log(message):
    print(f"torch_gpt: {message}", file=sys.stderr, flush=True)


def pip_install(arguments):
    command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check"] + arguments
    log("running " + " ".join(command))
    if subprocess.call(command) == 0:
        return
    # Debian's system Python refuses pip installs (PEP 668) unless told otherwise.
    if subprocess.call(command + ["--break-system-packages"]) != 0:
        raise SystemExit("torch_gpt: pip install failed: " + " ".join(arguments))


def find_torch_wheel():
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    candidates = []
    for pattern in ["/opt/wheels/torch-*.whl", "/opt/*/torch-*.whl", "/root/*/torch-*.whl", "/tmp/torch-*.whl"]:
        candidates += glob.glob(pattern)
    if not candidates:
        try:
            found = subprocess.run(["find", "/", "-xdev", "-name", "torch-*.whl"], capture_output=True, text=True,
                                   timeout=300).stdout
            candidates = [line for line in found.splitlines() if line.strip()]
        except (OSError, subprocess.TimeoutExpired):
            candidates = []
    matching = [c for c in candidates if tag in os.path.basename(c) and "x86_64" in os.path.basename(c)]
    return sorted(matching or candidates)[-1] if (matching or candidates) else None


def ensure_torch():
    """Makes `import torch` work, installing a CPU build if needed (see the module docstring)."""
    if importlib.util.find_spec("torch") is not None:
        try:
            subprocess.run([sys.executable, "-c", "import torch"], check=True, capture_output=True)
            return
        except subprocess.CalledProcessError as error:
            log("import torch failed, reinstalling: " + error.stderr.decode(errors="replace").strip()[-300:])
    wheel = find_torch_wheel()
    if wheel:
        pip_install(["--no-deps", wheel])
        pip_install(TORCH_DEPS)
    else:
        log("no torch wheel on this machine; installing from PyPI")
        pip_install(["torch"] + TORCH_DEPS)
    importlib.invalidate_caches()


def load_config(path):
    """The parts of an attn-train config that shape the run, with attn-train's defaults."""
    with open(path) as f:
        raw = json.load(f)
    base = os.path.dirname(os.path.abspath(path))
    model, training, data = raw.get("model", {}), raw.get("training", {}), raw["data"]
    optimizer = raw.get("optimizer", {})
    if optimizer.get("kind", "adamw") != "adamw":
        raise SystemExit("torch_gpt: only optimizer.kind adamw is benchmarked")
    task = raw.get("task", {})
    kind = task.get("kind", "language_model")
    if kind not in ("language_model", "classification"):
        raise SystemExit(f"torch_gpt: unknown task.kind {kind!r}")
    classifier = kind == "classification"
    # A classifier has no output layer over the vocabulary, so tie_embeddings means nothing there.
    if model.get("position_encoding", "learned") != "learned" or (not classifier and not model.get("tie_embeddings", True)):
        raise SystemExit("torch_gpt: the benchmark model has learned positions and a tied head")
    if classifier:
        # Only what this script writes: any other choice would time a different model than attn-train's.
        if model.get("attention") not in (None, "bidirectional") or task.get("pooling") not in (None, "mean"):
            raise SystemExit("torch_gpt: a benchmark classifier has bidirectional attention and mean pooling")
        if task.get("hidden_size", 0) or task.get("class_weights") is not None:
            raise SystemExit("torch_gpt: a benchmark classifier has no hidden layer and no class weights")
        if data.get("tokenizer", "char") != "byte":
            raise SystemExit("torch_gpt: a benchmark classifier uses the byte tokenizer (its ids are the UTF-8 bytes)")

    def resolve(p):
        return None if p is None else os.path.normpath(os.path.join(base, os.path.expanduser(p)))

    max_steps = training.get("max_steps", 2000)
    log_interval = training.get("log_interval", 10)
    return {
        "n_layer": model.get("n_layer", 4), "n_head": model.get("n_head", 4), "n_embd": model.get("n_embd", 128),
        "block_size": model.get("block_size", 64), "dropout": model.get("dropout", 0.0),
        "vocab_size": model.get("vocab_size"),
        "lr": optimizer.get("learning_rate", 1e-3), "beta1": optimizer.get("beta1", 0.9),
        "beta2": optimizer.get("beta2", 0.99), "eps": optimizer.get("eps", 1e-8),
        "weight_decay": optimizer.get("weight_decay", 0.1), "grad_clip": optimizer.get("grad_clip", 1.0),
        "decay_embeddings": optimizer.get("decay_embeddings", True),
        "batch_size": training.get("batch_size", 12), "grad_accum_steps": training.get("grad_accum_steps", 1),
        "seed": training.get("seed", 1337),
        "warmup": min(log_interval, max_steps), "steps": max(max_steps - log_interval, 1),
        "train_path": resolve(data["train_path"]), "dev_path": resolve(data.get("dev_path")),
        "train_fraction": data.get("train_fraction", 0.9), "tokenizer": data.get("tokenizer", "char"),
        "task": kind, "format": data.get("format", "text"), "text_field": data.get("text_field", "text"),
        "label_field": task.get("label_field", "label"), "labels": task.get("labels"),
        "num_classes": task.get("num_classes"), "truncate": task.get("truncate", "end"),
        "label_smoothing": task.get("label_smoothing", 0.0),
    }


def read_examples(path, fmt, text_field, label_field):
    """(text, label as written) of every example in one TSV, CSV (header row) or JSONL file, as
    attn-train reads them (LabeledExamples.swift). Python's csv module treats quotes as attn-train
    does: a field that starts with one is quoted, a quote elsewhere is text."""
    import csv

    if fmt == "jsonl":
        examples = []
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    row = json.loads(line)
                    if text_field not in row or label_field not in row:
                        raise SystemExit(f"torch_gpt: {path} line {number}: no {text_field!r} or {label_field!r}")
                    examples.append((row[text_field], str(row[label_field])))
        return examples
    if fmt not in ("tsv", "csv"):
        raise SystemExit(f"torch_gpt: classification reads tsv, csv or jsonl, not {fmt!r}")
    with open(path, encoding="utf-8", newline="") as f:
        rows = [row for row in csv.reader(f, delimiter="\t" if fmt == "tsv" else ",") if row]
    if not rows:
        raise SystemExit(f"torch_gpt: {path} is empty")
    header = rows[0]
    if text_field not in header or label_field not in header:
        raise SystemExit(f"torch_gpt: {path}: the header {header} lacks {text_field!r} or {label_field!r}")
    text_column, label_column = header.index(text_field), header.index(label_field)
    return [(row[text_column], row[label_column]) for row in rows[1:]]


def label_list(given, num_classes, train_labels):
    """The labels in id order, as attn-train settles them: task.labels, else the training labels
    sorted (as numbers when every one is an integer)."""
    if given is not None:
        labels = [str(label) for label in given]
    else:
        distinct = set(train_labels)
        if all(re.fullmatch(r"[+-]?[0-9]+", label) for label in distinct):
            labels = sorted(distinct, key=int)
        else:
            labels = sorted(distinct)
    if num_classes is not None and num_classes != len(labels):
        raise SystemExit(f"torch_gpt: task.num_classes is {num_classes}, the labels are {len(labels)}")
    if len(labels) < 2:
        raise SystemExit("torch_gpt: a classifier needs two labels at least")
    return labels


def train_examples(cfg):
    """The training examples of a classification config: the files' own (the first train_fraction
    of them when there is no dev_path, as attn-train splits them)."""
    examples = read_examples(cfg["train_path"], cfg["format"], cfg["text_field"], cfg["label_field"])
    if not cfg["dev_path"]:
        examples = examples[: int(len(examples) * cfg["train_fraction"])]
    return examples


def load_examples(cfg):
    """Token ids [examples, T] padded with 0, real lengths [examples], label ids [examples], and the
    number of classes."""
    import numpy as np

    T = cfg["block_size"]
    examples = train_examples(cfg)
    labels = label_list(cfg["labels"], cfg["num_classes"], [label for _, label in examples])
    label_id = {label: i for i, label in enumerate(labels)}
    tokens = np.zeros((len(examples), T), dtype=np.int64)
    lengths = np.zeros(len(examples), dtype=np.int64)
    ids = np.zeros(len(examples), dtype=np.int64)
    for n, (text, label) in enumerate(examples):
        encoded = text.encode("utf-8")
        encoded = encoded[:T] if cfg["truncate"] == "end" else encoded[-T:]
        if not encoded or label not in label_id:
            raise SystemExit(f"torch_gpt: training example {n + 1} is empty or has an unknown label {label!r}")
        tokens[n, : len(encoded)] = np.frombuffer(encoded, dtype=np.uint8)
        lengths[n] = len(encoded)
        ids[n] = label_id[label]
    return tokens, lengths, ids, len(labels)


def load_tokens(cfg):
    """Token ids of the training text and the vocabulary size (attn-train's char/byte tokenizers)."""
    import numpy as np

    with open(cfg["train_path"], "rb") as f:
        train = f.read()
    dev = b""
    if cfg["dev_path"]:
        with open(cfg["dev_path"], "rb") as f:
            dev = f.read()
    if cfg["tokenizer"] == "byte":
        ids, vocab = np.frombuffer(train, dtype=np.uint8).astype(np.int64), 256
    else:
        text, dev_text = train.decode("utf-8"), dev.decode("utf-8")
        chars = sorted(set(text) | set(dev_text))
        index = {c: i for i, c in enumerate(chars)}
        ids, vocab = np.array([index[c] for c in text], dtype=np.int64), len(chars)
    if not cfg["dev_path"]:
        ids = ids[: int(len(ids) * cfg["train_fraction"])]
    if cfg["vocab_size"]:
        vocab = max(vocab, cfg["vocab_size"])
    return ids, vocab


def build_model(cfg, vocab, attention, classes=None):
    """The language model, or with `classes` the classifier (see the module docstring)."""
    import torch
    import torch.nn as nn
    from torch.nn import functional as F

    C, NH, T, L = cfg["n_embd"], cfg["n_head"], cfg["block_size"], cfg["n_layer"]

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(C, 3 * C)
            self.proj = nn.Linear(C, C)
            self.register_buffer("causal", torch.tril(torch.ones(T, T, dtype=torch.bool)), persistent=False)

        def forward(self, x, keys=None):
            """keys: the classifier's key padding mask [B, 1, 1, t] (True: a real key), else causal."""
            B, t, _ = x.shape
            q, k, v = self.qkv(x).split(C, dim=2)
            q, k, v = (z.view(B, t, NH, C // NH).transpose(1, 2) for z in (q, k, v))
            if attention == "sdpa":
                if keys is None:
                    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                else:
                    y = F.scaled_dot_product_attention(q, k, v, attn_mask=keys)
            else:
                att = (q @ k.transpose(-2, -1)) * (1.0 / (C // NH) ** 0.5)
                allowed = self.causal[:t, :t] if keys is None else keys
                att = F.softmax(att.masked_fill(~allowed, float("-inf")), dim=-1)
                y = att @ v
            return self.proj(y.transpose(1, 2).contiguous().view(B, t, C))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.attn = nn.LayerNorm(C, eps=1e-5), Attention()
            self.ln2 = nn.LayerNorm(C, eps=1e-5)
            self.fc, self.gelu, self.mlp_proj = nn.Linear(C, 4 * C), nn.GELU(), nn.Linear(4 * C, C)

        def forward(self, x, keys=None):
            x = x + self.attn(self.ln1(x), keys)
            return x + self.mlp_proj(self.gelu(self.fc(self.ln2(x))))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(vocab, C), nn.Embedding(T, C)
            self.h = nn.ModuleList(Block() for _ in range(L))
            self.ln_f = nn.LayerNorm(C, eps=1e-5)
            if classes is not None:
                self.classifier = nn.ModuleDict({"out": nn.Linear(C, classes)})
            self.register_buffer("positions", torch.arange(T), persistent=False)
            for name, p in self.named_parameters():
                if p.dim() >= 2:
                    nn.init.normal_(p, 0.0, 0.02)
                elif name.endswith("bias"):
                    nn.init.zeros_(p)

        def forward(self, idx, targets):
            t = idx.shape[1]
            x = self.wte(idx) + self.wpe(self.positions[:t])
            for block in self.h:
                x = block(x)
            logits = F.linear(self.ln_f(x), self.wte.weight)  # tied head, no bias
            return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    class Classifier(GPT):
        def forward(self, idx, lengths, labels):
            t = idx.shape[1]
            real = self.positions[:t].unsqueeze(0) < lengths.unsqueeze(1)  # [B, t]
            x = self.wte(idx) + self.wpe(self.positions[:t])
            keys = real[:, None, None, :]
            for block in self.h:
                x = block(x, keys)
            x = self.ln_f(x)
            pooled = (x * real.unsqueeze(2)).sum(1) / lengths.unsqueeze(1)
            logits = self.classifier["out"](pooled)
            return F.cross_entropy(logits, labels, label_smoothing=cfg["label_smoothing"])

    return GPT() if classes is None else Classifier()


def train(cfg, threads, warmup, steps, attention, rank=0, world=1, port=None):
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    if world > 1:
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel

        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    classifier = cfg["task"] == "classification"
    if classifier:
        tokens, lengths, labels, classes = load_examples(cfg)
        tokens, lengths, labels = (torch.from_numpy(a) for a in (tokens, lengths, labels))
        vocab = 256  # the byte tokenizer, the only one a benchmark classifier takes
    else:
        ids, vocab = load_tokens(cfg)
        data = torch.from_numpy(ids)
        classes = None
    T, B = cfg["block_size"], cfg["batch_size"]
    # The global batch is split evenly between ranks, as attn-train requires (batch_size % ranks == 0).
    if B % world:
        raise SystemExit(f"torch_gpt: batch_size {B} does not split between {world} ranks")
    local = B // world
    if cfg["grad_accum_steps"] != 1:
        raise SystemExit("torch_gpt: grad_accum_steps must be 1 in benchmark configs")
    if cfg["dropout"] != 0:
        raise SystemExit("torch_gpt: benchmark configs use dropout 0")

    torch.manual_seed(cfg["seed"])
    model = build_model(cfg, vocab, attention, classes)
    params = list(model.parameters())
    n_params = sum(p.numel() for p in params)
    n_no_pos = n_params - model.wpe.weight.numel()
    decay = [p for n, p in model.named_parameters()
             if p.dim() >= 2 and (cfg["decay_embeddings"] or not n.startswith(("wte", "wpe")))]
    no_decay = [p for p in params if all(p is not q for q in decay)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"], fused=False)
    net = DistributedDataParallel(model) if world > 1 else model
    generator = torch.Generator().manual_seed(cfg["seed"] * 1000 + rank)
    span = len(tokens) if classifier else len(data) - T - 1

    def step():
        ix = torch.randint(span, (local,), generator=generator)
        if classifier:
            loss = net(tokens[ix], lengths[ix], labels[ix])
        else:
            x = torch.stack([data[i:i + T] for i in ix])
            y = torch.stack([data[i + 1:i + 1 + T] for i in ix])
            loss = net(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg["grad_clip"])
        optimizer.step()
        return loss.item()

    losses = []
    for _ in range(warmup):
        losses.append(step())
    if world > 1:
        dist.barrier()
    step_ms = []
    start = time.perf_counter()
    for _ in range(steps):
        t0 = time.perf_counter()
        losses.append(step())
        step_ms.append((time.perf_counter() - t0) * 1000)
    if world > 1:
        dist.barrier()
    seconds = time.perf_counter() - start
    if world > 1:
        dist.destroy_process_group()
    return {
        "tokens_per_s": steps * B * T / seconds, "seconds": seconds, "warmup_steps": warmup, "steps": steps,
        "step_ms": sorted(step_ms)[len(step_ms) // 2], "step_ms_all": [round(s, 2) for s in step_ms],
        "first_loss": losses[0], "last_loss": losses[-1], "params": n_params, "params_no_pos": n_no_pos,
        "vocab_size": vocab, "batch_size": B, "local_batch": local, "block_size": T,
        "threads": threads, "world_size": world, "rank": rank, "attention": attention, "task": cfg["task"],
        "classes": classes, "train_examples": len(tokens) if classifier else None,
        # Of the tokens counted in tokens_per_s, the share that are not padding (on average).
        "real_token_share": float(lengths.float().mean()) / T if classifier else 1.0,
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "torch": torch.__version__, "torch_blas": torch_blas(torch),
    }


def torch_blas(torch):
    shown = torch.__config__.show()
    for key in ["BLAS_INFO=", "USE_MKL="]:
        for part in shown.replace("\n", ",").split(","):
            if key in part:
                return part.strip().split("Build settings:")[-1].strip()
    return "unknown"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ddp(args):
    """Two worker processes (this script, --worker-rank), 1 thread each; rank 0 times the steps."""
    port = free_port()
    out_dir = os.path.dirname(os.path.abspath(args.json)) if args.json else "/tmp"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    workers, files = [], []
    for rank in range(2):
        path = os.path.join(out_dir, f".torch_gpt.{os.getpid()}.rank{rank}.json")
        files.append(path)
        workers.append(subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), args.config, "--threads", "1", "--warmup", str(args.warmup),
             "--steps", str(args.steps), "--attention", args.attention, "--worker-rank", str(rank),
             "--world-size", "2", "--port", str(port), "--json", path], env=env))
    codes = [w.wait() for w in workers]
    if any(codes):
        raise SystemExit(f"torch_gpt: DDP worker exit codes {codes}")
    ranks = []
    for path in files:
        with open(path) as f:
            ranks.append(json.load(f))
        os.remove(path)
    result = dict(ranks[0])
    result["peak_rss_kib_per_rank"] = [r["peak_rss_kib"] for r in ranks]
    result["peak_rss_kib"] = max(result["peak_rss_kib_per_rank"])
    result["peak_rss_kib_sum"] = sum(result["peak_rss_kib_per_rank"])
    result["ddp"] = "gloo, 2 processes x 1 thread"
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ddp", action="store_true", help="2 processes x 1 thread, DistributedDataParallel (gloo)")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default: training.log_interval)")
    parser.add_argument("--steps", type=int, help="timed steps (default: max_steps - log_interval)")
    parser.add_argument("--attention", choices=["sdpa", "manual"], default="sdpa")
    parser.add_argument("--json", help="also write the result here")
    parser.add_argument("--install-only", action="store_true", help="make `import torch` work, then exit")
    parser.add_argument("--worker-rank", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--world-size", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.install_only:
        ensure_torch()
        return
    if not args.config:
        parser.error("give an attn-train config")
    cfg = load_config(args.config)
    args.warmup = cfg["warmup"] if args.warmup is None else args.warmup
    args.steps = cfg["steps"] if args.steps is None else args.steps
    if args.steps < 1 or args.warmup < 0 or args.threads < 1:
        raise SystemExit("torch_gpt: need --steps >= 1, --warmup >= 0, --threads >= 1")

    if args.worker_rank is not None:
        result = train(cfg, 1, args.warmup, args.steps, args.attention, args.worker_rank, args.world_size, args.port)
    else:
        ensure_torch()
        if args.ddp:
            result = run_ddp(args)
        else:
            result = train(cfg, args.threads, args.warmup, args.steps, args.attention)
    text = json.dumps(result)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    if args.worker_rank is None:
        print(text, flush=True)


if __name__ == "__main__":
    main()
