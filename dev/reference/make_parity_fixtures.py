"""
Writes the Swift parity fixtures into Tests/AttnCoreTests/Fixtures/:

    parity-learned-tied.safetensors
    parity-rope-untied.safetensors
    parity-sinusoidal-tied.safetensors

Usage (from the repository root):  python3 dev/reference/make_parity_fixtures.py

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
"""

import json
import os
import struct
import sys
from collections import OrderedDict

import torch
from safetensors.torch import save

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt_reference import GPT, GPTConfig, export_parameters, export_gradients, import_parameters  # noqa: E402

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


def make_config(position_encoding, tie):
    return GPTConfig(vocab_size=V, block_size=BLOCK_SIZE, n_layer=L, n_head=NH, n_embd=C,
                     position_encoding=position_encoding, tie_embeddings=tie, dropout=0.0)


def random_weights(config, gen):
    """Random starting weights, already rounded to float32 (returned as float32 tensors).
    matrices / embeddings: normal(0, 0.3); LayerNorm weight: 1 + 0.2*normal;
    LayerNorm bias and Linear biases: 0.1*normal."""
    model = GPT(config)  # only used for the names/shapes, in spec order
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


def build_model64(config, weights32):
    model = GPT(config).to(torch.float64)
    import_parameters(model, {n: t.to(torch.float64) for n, t in weights32.items()})
    return model


def make_optimizer(model):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": ADAMW_WEIGHT_DECAY},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=ADAMW_LR, betas=ADAMW_BETAS, eps=ADAMW_EPS)


def run_adamw(model, idx, targets):
    """ADAMW_STEPS steps on the same batch; returns (losses before each update, pre-clip grad norms)."""
    opt = make_optimizer(model)
    losses, norms = [], []
    for _ in range(ADAMW_STEPS):
        opt.zero_grad(set_to_none=True)
        _, loss = model(idx, targets)
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


def make_fixture(stem, position_encoding, tie, seed, verbose=True):
    config = make_config(position_encoding, tie)
    gen = torch.Generator().manual_seed(seed)
    weights32 = random_weights(config, gen)
    idx = torch.randint(0, V, (B, T), generator=gen, dtype=torch.int64)
    targets = torch.randint(0, V, (B, T), generator=gen, dtype=torch.int64)

    # forward + backward in float64
    model = build_model64(config, weights32)
    model.train()  # dropout is 0, so train/eval are identical
    logits, loss = model(idx, targets)
    loss.backward()
    grads = export_gradients(model)

    # AdamW on a fresh float64 copy of the same starting weights
    model_opt = build_model64(config, weights32)
    losses, norms = run_adamw(model_opt, idx, targets)
    assert losses[0] == loss.item()
    final = export_parameters(model_opt)

    tensors = OrderedDict()
    for n, w in weights32.items():
        tensors[n] = w.contiguous()
    tensors["input_tokens"] = idx.to(torch.int32).contiguous()
    tensors["target_tokens"] = targets.to(torch.int32).contiguous()
    tensors["expected.logits"] = f32(logits)
    tensors["expected.loss"] = f32(loss.reshape(1))
    for n, g in grads.items():
        tensors["grad." + n] = f32(g)
    tensors["expected.adamw_losses"] = f32(torch.tensor(losses, dtype=torch.float64))
    for n, p in final.items():
        tensors["expected.adamw_final." + n] = f32(p)

    metadata = {
        "n_layer": str(L), "n_head": str(NH), "n_embd": str(C), "block_size": str(BLOCK_SIZE),
        "vocab_size": str(V), "batch": str(B), "seq_len": str(T),
        "position_encoding": position_encoding, "tie_embeddings": "true" if tie else "false",
        "adamw_lr": repr(ADAMW_LR), "adamw_beta1": repr(ADAMW_BETAS[0]),
        "adamw_beta2": repr(ADAMW_BETAS[1]), "adamw_eps": repr(ADAMW_EPS),
        "adamw_weight_decay": repr(ADAMW_WEIGHT_DECAY), "grad_clip": repr(GRAD_CLIP),
        "adamw_steps": str(ADAMW_STEPS), "seed": str(seed),
        "generator": "dev/reference/make_parity_fixtures.py",
    }

    os.makedirs(FIXTURE_DIR, exist_ok=True)
    path = os.path.join(FIXTURE_DIR, stem + ".safetensors")
    save_deterministic(tensors, path, metadata)
    if verbose:
        n_params = sum(w.numel() for w in weights32.values())
        print(f"{stem}: {n_params} params, loss {loss.item():.10f}, "
              f"adamw losses {losses[0]:.6f} -> {losses[-1]:.6f}, "
              f"pre-clip grad norms {norms[0]:.4f} .. {norms[-1]:.4f}, "
              f"{os.path.getsize(path)} bytes -> {os.path.relpath(path, REPO_ROOT)}")
    return path


def main():
    for stem, pe, tie, seed in FIXTURES:
        make_fixture(stem, pe, tie, seed)


if __name__ == "__main__":
    main()
