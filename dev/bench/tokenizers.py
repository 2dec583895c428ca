#!/usr/bin/env python3
"""Tokenizer speed, side by side in one run: GPT-2 encoding throughput of attn-train, tiktoken and
Hugging Face `tokenizers` on War and Peace repeated to at least 100 MB, on 1 and 2 threads, and the
time to learn a byte-level BPE of the same size with attn-train and with Hugging Face's trainer.

    python3 dev/bench/tokenizers.py [--megabytes 100] [--vocab 4096]

Prints a markdown table (about 10 minutes, most of it Hugging Face encoding 100 MB; attn-train and
tiktoken report the best of 3 runs, Hugging Face one). Every side encodes the same bytes with the same ranks file
(data/tokenizers/gpt2.tiktoken; Hugging Face reads the tokenizer.json attn-train writes from it) and
must produce the same number of ids. Builds attn-bench in release mode first.
"""
import argparse, json, os, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RANKS = os.path.join(ROOT, "data/tokenizers/gpt2.tiktoken")


def best_of(runs, work):
    best, result = float("inf"), None
    for _ in range(runs):
        start = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - start)
    return best, result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--corpus", default=os.path.join(ROOT, "../shared/data/warpeace/input.txt"))
    args = parser.parse_args()
    corpus = args.corpus if os.path.exists(args.corpus) else os.path.join(ROOT, "data/tinyshakespeare/input.txt")
    base = open(corpus, "rb").read()
    work = tempfile.mkdtemp(prefix="attn-tokenizers-")
    text_path = os.path.join(work, "corpus.txt")
    repeats = -(-args.megabytes * 1_000_000 // len(base))
    with open(text_path, "wb") as f:
        f.write(base * repeats)
    text = (base * repeats).decode("utf-8")
    size = len(text.encode())
    print(f"corpus: {os.path.basename(os.path.dirname(corpus))}/{os.path.basename(corpus)} x {repeats} = {size / 1e6:.1f} MB", flush=True)

    subprocess.run(["swift", "build", "-c", "release", "--product", "attn-bench"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    bench = os.path.join(subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT,
                                        capture_output=True, text=True, check=True).stdout.strip(), "attn-bench")
    rows = []
    out = subprocess.run([bench, "--tokenize", RANKS, text_path, "--threads", "1,2"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        _, threads, nbytes, ids, seconds, rate = line.split()
        rows.append(("attn-train", int(threads), int(ids), float(rate)))

    import tiktoken, tiktoken.load
    from tiktoken_ext.openai_public import r50k_pat_str
    enc = tiktoken.Encoding(name="gpt2-file", pat_str=r50k_pat_str, mergeable_ranks=tiktoken.load.load_tiktoken_bpe(RANKS),
                            special_tokens={"<|endoftext|>": 50256})
    seconds, ids = best_of(3, lambda: enc.encode_ordinary(text))
    rows.append(("tiktoken", 1, len(ids), size / seconds / 1e6))
    # Two threads: the batch API over 1 MB pieces cut at a space (tiktoken has no other parallel path).
    pieces, start = [], 0
    while start < len(text):
        end = text.find(" ", start + 1_000_000)
        end = len(text) if end < 0 else end
        pieces.append(text[start:end])
        start = end
    seconds, batch = best_of(3, lambda: enc.encode_ordinary_batch(pieces, num_threads=2))
    rows.append(("tiktoken", 2, sum(map(len, batch)), size / seconds / 1e6))

    # Hugging Face: the same model as a tokenizer.json, written by attn-train's own writer.
    sys.path.insert(0, ROOT)
    hf_path = os.path.join(work, "gpt2-tokenizer.json")
    subprocess.run([bench, "--export-tokenizer", RANKS, hf_path], check=True)
    for threads in (1, 2):
        script = f"""
import os, sys, time
os.environ["RAYON_NUM_THREADS"] = "{threads}"
from tokenizers import Tokenizer
tok = Tokenizer.from_file({hf_path!r})
text = open({text_path!r}, encoding="utf-8").read()
pieces, start = [], 0
while start < len(text):
    end = text.find(" ", start + 1_000_000)
    end = len(text) if end < 0 else end
    pieces.append(text[start:end]); start = end
best = 1e9
for _ in range(1):  # one run: Hugging Face takes minutes over 100 MB
    t = time.perf_counter()
    ids = {"tok.encode(text).ids" if threads == 1 else "[i for e in tok.encode_batch(pieces) for i in e.ids]"}
    best = min(best, time.perf_counter() - t)
print(len(ids), best)
"""
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="true")
        count, seconds = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env).stdout.split()
        rows.append(("Hugging Face tokenizers", threads, int(count), size / float(seconds) / 1e6))

    print()
    print("| encoder | threads | ids | MB/s |")
    print("|---|--:|--:|--:|")
    for name, threads, count, rate in rows:
        print(f"| {name} | {threads} | {count:,} | {rate:.1f} |")
    counts = {count for _, _, count, _ in rows}
    print("\nsame number of ids everywhere:", "yes" if len(counts) == 1 else f"NO: {sorted(counts)}")

    # Learning a BPE of --vocab ids from the same corpus.
    out = subprocess.run([bench, "--learn-bpe", str(args.vocab), text_path], capture_output=True, text=True, check=True).stdout
    ours = float(out.split()[2])
    script = f"""
import time
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
trainer = trainers.BpeTrainer(vocab_size={args.vocab}, special_tokens=["<|endoftext|>"], show_progress=False,
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
t = time.perf_counter()
tok.train([{text_path!r}], trainer)
print(time.perf_counter() - t)
"""
    theirs = float(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)
    print()
    print(f"| learning a byte-level BPE of {args.vocab} ids from the corpus | seconds |")
    print("|---|--:|")
    print(f"| attn-train (1 thread) | {ours:.2f} |")
    print(f"| Hugging Face BpeTrainer (its threads) | {theirs:.2f} |")


if __name__ == "__main__":
    main()
