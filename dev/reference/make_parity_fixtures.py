"""
Writes the Swift parity fixtures into Tests/AttnCoreTests/Fixtures/: the language model's
(FIXTURES), the classifier's (CLASSIFIER_FIXTURES) and the masked language model's (MLM_FIXTURES),
listed in dev/reference/README.md.

Usage (from the repository root):  python3 dev/reference/make_parity_fixtures.py [STEM_SUBSTRING ...]
(with substrings, only the fixtures whose stem contains one of them are written, e.g. "mlm")

Precision: the initial weights are drawn, rounded to float32 (these float32 values are
what is stored), and then ALL expected values (logits, loss, gradients, the AdamW run)
are computed in float64 from those exact float32 weights, and only the results are
rounded to float32 for storage. The reference therefore carries negligible rounding
error of its own; any mismatch seen by the Swift tests is the float32 Swift code's.

Contents of each file (safetensors, all tensors contiguous):
    <spec name>                    every parameter (F32), the starting weights
    input_tokens, target_tokens    [B, T] int32
    expected.logits                [B, T, V] F32
    expected.loss                  [1] F32, mean cross-entropy over B*T
    grad.<spec name>               F32, gradient of expected.loss
    expected.adamw_losses          [10] F32, loss at the forward of each AdamW step, before
                                   that step's update (element 0 == expected.loss)
    expected.adamw_final.<name>    F32, every parameter after the 10 steps
plus string metadata describing the model and the optimizer.

A classifier fixture has instead of target_tokens / logits [B, T, V]:
    lengths                        [B] int32, real tokens per sequence (the rest is padding)
    labels                         [B] int32
    expected.logits                [B, K] F32
    expected.loss                  [1] F32, mean over B of w[label] * smoothed cross-entropy
and its metadata adds task = classifier, num_classes, pooling, attention, hidden,
label_smoothing, class_weights ("none" or comma-separated) and pad_token.

A masked language model fixture has the language model's keys, but
    target_tokens                  [B, T] int32, the original token where predicted, -1 elsewhere
    expected.logits                [M, V] F32, the predicted rows only (target >= 0), row-major order
    expected.loss                  [1] F32, mean cross-entropy over the M predicted positions
and its metadata adds task = masked_language_model, attention = bidirectional, mask_token,
unused_token, predicted (per sequence, comma-separated) and predicted_per_sequence.
"""

import json
import os
import struct
import sys
from collections import OrderedDict

# Analytically zero gradients (the key bias without RoPE) come out as ~1e-17 of rounding noise whose
# bits depend on which vector kernels ATen picks; the committed files were made with AVX2 ones, so
# an AVX-512 machine reproduces them byte for byte only when held to those.
os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")

import torch  # noqa: E402
from safetensors.torch import save  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt_reference import (GPT, GPTConfig, GPTMaskedLM, export_parameters, export_gradients,  # noqa: E402
                           import_parameters)
from classifier_reference import ClassifierConfig, GPTClassifier  # noqa: E402

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
FIXTURE_DIR = os.path.join(REPO_ROOT, "Tests", "AttnCoreTests", "Fixtures")

# model / batch
V, C, NH, L, BLOCK_SIZE = 11, 16, 2, 2, 8
B, T = 3, 8

# optimizer (torch.optim.AdamW semantics)
ADAMW_LR = 3e-3
ADAMW_BETAS = (0.9, 0.95)
ADAMW_EPS = 1e-8
ADAMW_WEIGHT_DECAY = 0.1   # for tensors with dim >= 2; 1-D tensors get 0
GRAD_CLIP = 1.0            # torch.nn.utils.clip_grad_norm_ max_norm, before each step
ADAMW_STEPS = 10

FIXTURES = [
    # (file stem, position_encoding, tie_embeddings, seed)
    ("parity-learned-tied", "learned", True, 1001),
    ("parity-rope-untied", "rope", False, 2002),
    ("parity-sinusoidal-tied", "sinusoidal", True, 3003),
]


# classifier: the same body, B sequences of lengths 1..T padded with PAD, K classes
CLASSIFIER_B, CLASSIFIER_K, CLASSIFIER_HIDDEN = 4, 4, 12
PAD = V - 1  # never a real token, so wte[PAD]'s gradient is exactly 0 unless padding leaks
CLASS_WEIGHTS = [1.0, 2.5, 0.5, 2.0]  # exact in float32, as are the smoothing values below

CLASSIFIER_FIXTURES = [
    # (file stem, attention, pooling, hidden, position_encoding, T, lengths, label_smoothing,
    #  class_weights, seed)
    ("parity-classifier-bidirectional-mean-hidden", "bidirectional", "mean", CLASSIFIER_HIDDEN,
     "learned", 8, [8, 5, 1, 3], 0.0, None, 4004),
    ("parity-classifier-causal-last", "causal", "last", 0, "sinusoidal", 8, [3, 8, 6, 1], 0.0, None, 5005),
    ("parity-classifier-bidirectional-first-smoothing-weights", "bidirectional", "first", 0, "rope",
     8, [2, 8, 4, 7], 0.125, CLASS_WEIGHTS, 6006),
    ("parity-classifier-bidirectional-last-hidden-weights", "bidirectional", "last", CLASSIFIER_HIDDEN,
     "sinusoidal", 6, [6, 2, 1, 4], 0.0, CLASS_WEIGHTS, 7007),
    ("parity-classifier-causal-mean-hidden-smoothing", "causal", "mean", CLASSIFIER_HIDDEN, "rope",
     7, [5, 7, 2, 1], 0.25, None, 8008),
    ("parity-classifier-causal-first", "causal", "first", 0, "learned", 8, [4, 1, 8, 6], 0.0, None, 9009),
    ("parity-classifier-bidirectional-max-hidden", "bidirectional", "max", CLASSIFIER_HIDDEN, "learned",
     8, [8, 3, 1, 6], 0.0, None, 10010),
    ("parity-classifier-causal-max-smoothing", "causal", "max", 0, "rope", 7, [2, 7, 5, 1], 0.125, None, 11111),
]


# masked language model: the language model's sizes, whole sequences (no padding); in each sequence
# MLM_PREDICTED[b] positions get a target (about a quarter of T, one sequence with a single one),
# the rest -1. Real tokens are drawn from 0..<UNUSED; the input at a predicted position is, as in
# BERT, MASK (80%), a random real token (10%) or left as it was (10%). UNUSED never occurs in the
# input (nor as a target), so with an untied head grad.wte[UNUSED] is exactly 0.
MASK = V - 1
UNUSED = V - 2
MLM_PREDICTED = [2, 1, 3]  # M = 6 of B*T = 24

MLM_FIXTURES = [
    # (file stem, position_encoding, tie_embeddings, seed)
    ("parity-mlm-learned-tied", "learned", True, 10017),
    ("parity-mlm-rope-untied", "rope", False, 11011),
]


def make_config(position_encoding, tie):
    return GPTConfig(vocab_size=V, block_size=BLOCK_SIZE, n_layer=L, n_head=NH, n_embd=C,
                     position_encoding=position_encoding, tie_embeddings=tie, dropout=0.0)


def make_classifier_config(attention, pooling, hidden, position_encoding):
    return ClassifierConfig(vocab_size=V, block_size=BLOCK_SIZE, n_layer=L, n_head=NH, n_embd=C,
                            position_encoding=position_encoding, dropout=0.0,
                            num_classes=CLASSIFIER_K, pooling=pooling, attention=attention,
                            hidden=hidden)


def random_weights(model, gen):
    """Random starting weights for `model`'s tensors (only their names/shapes, in spec order are
    used), already rounded to float32 (returned as float32 tensors).
    matrices / embeddings: normal(0, 0.3); LayerNorm weight: 1 + 0.2*normal;
    LayerNorm bias and Linear biases: 0.1*normal."""
    out = OrderedDict()
    for name, p in model.named_parameters():
        z = torch.randn(p.shape, generator=gen, dtype=torch.float64)
        if p.dim() >= 2:
            w = 0.3 * z
        elif ".ln" in name or name.startswith("ln_f."):
            w = (1.0 + 0.2 * z) if name.endswith(".weight") else 0.1 * z
        else:  # linear bias
            w = 0.1 * z
        out[name] = w.to(torch.float32)
    return out


def build_model64(model_class, config, weights32):
    model = model_class(config).to(torch.float64)
    import_parameters(model, {n: t.to(torch.float64) for n, t in weights32.items()})
    return model


def make_optimizer(model):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": ADAMW_WEIGHT_DECAY},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=ADAMW_LR, betas=ADAMW_BETAS, eps=ADAMW_EPS)


def run_adamw(model, run):
    """ADAMW_STEPS steps on the same batch, `run(model)` -> (logits, loss); returns (losses before
    each update, pre-clip grad norms)."""
    opt = make_optimizer(model)
    losses, norms = [], []
    for _ in range(ADAMW_STEPS):
        opt.zero_grad(set_to_none=True)
        _, loss = run(model)
        losses.append(loss.item())
        loss.backward()
        norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP).item())
        opt.step()
    return losses, norms


def save_deterministic(tensors, path, metadata):
    """safetensors.torch.save, but with the metadata keys sorted so that the file is
    byte-for-byte reproducible (the library writes its metadata map in random order)."""
    blob = save(tensors, metadata=metadata)
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n], object_pairs_hook=OrderedDict)
    header["__metadata__"] = OrderedDict(sorted(header["__metadata__"].items()))
    new = json.dumps(header, separators=(",", ":")).encode("utf-8")
    assert len(new) <= n
    new += b" " * (n - len(new))  # keep the original (8-byte aligned) header length
    with open(path, "wb") as f:
        f.write(blob[:8] + new + blob[8 + n:])
    os.chmod(path, 0o644)


def f32(t):
    return t.detach().to(torch.float32).contiguous()


def expected_tensors(model_class, config, weights32, run):
    """Parameters, loss, logits, gradients and the AdamW run, all computed in float64 from the
    float32 weights. Returns (tensors, loss, losses, norms); the batch is the caller's."""
    model = build_model64(model_class, config, weights32)
    model.train()  # dropout is 0, so train/eval are identical
    logits, loss = run(model)
    loss.backward()
    grads = export_gradients(model)

    # AdamW on a fresh float64 copy of the same starting weights
    model_opt = build_model64(model_class, config, weights32)
    losses, norms = run_adamw(model_opt, run)
    assert losses[0] == loss.item()
    final = export_parameters(model_opt)

    tensors = OrderedDict((n, w.contiguous()) for n, w in weights32.items())
    tensors["expected.logits"] = f32(logits)
    tensors["expected.loss"] = f32(loss.reshape(1))
    for n, g in grads.items():
        tensors["grad." + n] = f32(g)
    tensors["expected.adamw_losses"] = f32(torch.tensor(losses, dtype=torch.float64))
    for n, p in final.items():
        tensors["expected.adamw_final." + n] = f32(p)
    return tensors, loss.item(), losses, norms


def common_metadata(seed, batch, seq_len):
    return {
        "n_layer": str(L), "n_head": str(NH), "n_embd": str(C), "block_size": str(BLOCK_SIZE),
        "vocab_size": str(V), "batch": str(batch), "seq_len": str(seq_len),
        "adamw_lr": repr(ADAMW_LR), "adamw_beta1": repr(ADAMW_BETAS[0]),
        "adamw_beta2": repr(ADAMW_BETAS[1]), "adamw_eps": repr(ADAMW_EPS),
        "adamw_weight_decay": repr(ADAMW_WEIGHT_DECAY), "grad_clip": repr(GRAD_CLIP),
        "adamw_steps": str(ADAMW_STEPS), "seed": str(seed),
        "generator": "dev/reference/make_parity_fixtures.py",
    }


def write(stem, tensors, metadata, weights32, loss, losses, norms, verbose):
    os.makedirs(FIXTURE_DIR, exist_ok=True)
    path = os.path.join(FIXTURE_DIR, stem + ".safetensors")
    save_deterministic(tensors, path, metadata)
    if verbose:
        n_params = sum(w.numel() for w in weights32.values())
        print(f"{stem}: {n_params} params, loss {loss:.10f}, "
              f"adamw losses {losses[0]:.6f} -> {losses[-1]:.6f}, "
              f"pre-clip grad norms {norms[0]:.4f} .. {norms[-1]:.4f}, "
              f"{os.path.getsize(path)} bytes -> {os.path.relpath(path, REPO_ROOT)}")
    return path


def make_fixture(stem, position_encoding, tie, seed, verbose=True):
    config = make_config(position_encoding, tie)
    gen = torch.Generator().manual_seed(seed)
    weights32 = random_weights(GPT(config), gen)
    idx = torch.randint(0, V, (B, T), generator=gen, dtype=torch.int64)
    targets = torch.randint(0, V, (B, T), generator=gen, dtype=torch.int64)

    tensors, loss, losses, norms = expected_tensors(GPT, config, weights32, lambda m: m(idx, targets))
    tensors["input_tokens"] = idx.to(torch.int32).contiguous()
    tensors["target_tokens"] = targets.to(torch.int32).contiguous()
    metadata = common_metadata(seed, B, T)
    metadata.update({"position_encoding": position_encoding,
                     "tie_embeddings": "true" if tie else "false"})
    return write(stem, tensors, metadata, weights32, loss, losses, norms, verbose)


def classifier_batch(T, lengths, gen):
    """Tokens [B, T] with real ids in [0, PAD) and PAD past each length; labels [B]."""
    idx = torch.randint(0, PAD, (len(lengths), T), generator=gen, dtype=torch.int64)
    lengths = torch.tensor(lengths, dtype=torch.int64)
    idx[torch.arange(T).unsqueeze(0) >= lengths.unsqueeze(1)] = PAD
    labels = torch.randint(0, CLASSIFIER_K, (len(lengths),), generator=gen, dtype=torch.int64)
    return idx, lengths, labels


def make_classifier_fixture(stem, attention, pooling, hidden, position_encoding, T, lengths,
                            label_smoothing, class_weights, seed, verbose=True):
    assert len(lengths) == CLASSIFIER_B and max(lengths) == T and min(lengths) < T
    config = make_classifier_config(attention, pooling, hidden, position_encoding)
    gen = torch.Generator().manual_seed(seed)
    weights32 = random_weights(GPTClassifier(config), gen)
    idx, lengths, labels = classifier_batch(T, lengths, gen)
    # Otherwise the plain mean of the weighted losses equals PyTorch's weighted mean (which divides
    # by the weights drawn), and the fixture could not tell which one was implemented.
    assert class_weights is None or sum(class_weights[y] for y in labels.tolist()) != len(labels)

    def run(model):
        return model(idx, lengths, labels, label_smoothing, class_weights)
    tensors, loss, losses, norms = expected_tensors(GPTClassifier, config, weights32, run)
    tensors["input_tokens"] = idx.to(torch.int32).contiguous()
    tensors["lengths"] = lengths.to(torch.int32).contiguous()
    tensors["labels"] = labels.to(torch.int32).contiguous()
    metadata = common_metadata(seed, CLASSIFIER_B, T)
    metadata.update({
        "task": "classifier", "position_encoding": position_encoding,
        "num_classes": str(CLASSIFIER_K), "pooling": pooling, "attention": attention,
        "hidden": str(hidden), "label_smoothing": repr(label_smoothing),
        "class_weights": "none" if class_weights is None else ",".join(repr(w) for w in class_weights),
        "pad_token": str(PAD),
        "loss": "mean over the batch of class_weights[label] * cross-entropy against "
                "(1 - label_smoothing) * onehot(label) + label_smoothing / num_classes",
    })
    return write(stem, tensors, metadata, weights32, loss, losses, norms, verbose)


def mlm_batch(gen):
    """Input tokens and targets [B, T] for the masked language model: see MLM_PREDICTED."""
    original = torch.randint(0, UNUSED, (B, T), generator=gen, dtype=torch.int64)
    idx = original.clone()
    targets = torch.full((B, T), -1, dtype=torch.int64)
    for b, count in enumerate(MLM_PREDICTED):
        positions = torch.randperm(T, generator=gen)[:count].sort().values
        for t in positions.tolist():
            targets[b, t] = original[b, t]
            u = torch.rand((), generator=gen, dtype=torch.float64).item()
            if u < 0.8:
                idx[b, t] = MASK
            elif u < 0.9:
                idx[b, t] = torch.randint(0, UNUSED, (), generator=gen, dtype=torch.int64).item()
            # else: the original token stays
    predicted = targets >= 0
    assert bool((idx[predicted] == MASK).any()) and bool((idx[predicted] != MASK).any()), \
        "want both masked and unmasked predicted positions: pick another seed"
    assert bool((idx[~predicted] != MASK).all()) and not bool((idx == UNUSED).any())
    return idx, targets


def make_mlm_fixture(stem, position_encoding, tie, seed, verbose=True):
    config = make_config(position_encoding, tie)
    gen = torch.Generator().manual_seed(seed)
    weights32 = random_weights(GPTMaskedLM(config), gen)
    idx, targets = mlm_batch(gen)

    tensors, loss, losses, norms = expected_tensors(GPTMaskedLM, config, weights32, lambda m: m(idx, targets))
    assert tensors["expected.logits"].shape == (sum(MLM_PREDICTED), V)
    tensors["input_tokens"] = idx.to(torch.int32).contiguous()
    tensors["target_tokens"] = targets.to(torch.int32).contiguous()
    metadata = common_metadata(seed, B, T)
    metadata.update({
        "task": "masked_language_model", "attention": "bidirectional",
        "position_encoding": position_encoding, "tie_embeddings": "true" if tie else "false",
        "mask_token": str(MASK), "unused_token": str(UNUSED),
        "predicted": ",".join(str(n) for n in MLM_PREDICTED),
        "predicted_per_sequence": str(round(sum(MLM_PREDICTED) / B)),
        "loss": "mean cross-entropy over the positions with target_tokens >= 0 "
                "(F.cross_entropy(ignore_index=-1)); expected.logits holds those rows only, in order",
    })
    return write(stem, tensors, metadata, weights32, loss, losses, norms, verbose)


def main():
    only = sys.argv[1:]  # substrings of the stems to write; none: all of them

    def wanted(stem):
        return not only or any(o in stem for o in only)
    for stem, pe, tie, seed in FIXTURES:
        if wanted(stem):
            make_fixture(stem, pe, tie, seed)
    for fixture in CLASSIFIER_FIXTURES:
        if wanted(fixture[0]):
            make_classifier_fixture(*fixture)
    for fixture in MLM_FIXTURES:
        if wanted(fixture[0]):
            make_mlm_fixture(*fixture)


if __name__ == "__main__":
    main()
