"""
Self-checks for the parity fixtures and the reference (run after make_parity_fixtures.py):

    python3 dev/reference/check_parity_fixtures.py [--fd-one] [STEM_SUBSTRING ...]

For the language-model, the classifier and the masked-language-model fixtures alike:
1. every fixture loads with safetensors.numpy.load_file, with the expected keys/dtypes/shapes;
2. a float64 recompute from the stored float32 weights reproduces expected.loss (<= 1e-6 rel),
   expected.logits and grad.* ;
3. the reference forward agrees with a second implementation built from torch built-ins
   (F.layer_norm, F.scaled_dot_product_attention, F.gelu, F.embedding; for the classifier also
   SDPA's attn_mask for the padding, pooling by slicing each sequence to its length, and
   F.cross_entropy(label_smoothing=) times the label's weight; for the masked language model SDPA
   with an all-True mask, the predicted rows picked by index and F.cross_entropy over them);
4. autograd gradients agree with central finite differences in float64, for EVERY scalar
   parameter, for every fixture;
5. a hand-written AdamW + global-norm clip (formulas spelled out below) reproduces
   expected.adamw_losses and expected.adamw_final.*;
6. classifier only: other padding ids change no logit, loss or gradient bit, and the padding id's
   embedding gets an exactly zero gradient;
7. masked language model only: the batch is as documented (mask id only at predicted positions,
   the unused id nowhere), with an untied head the unused id's embedding gradient is exactly 0,
   a later token changes an earlier predicted row's logits (attention is bidirectional), the
   causal model's loss differs.
Exits non-zero if any check fails.
"""

import math
import os
import sys

import numpy as np
import torch
from torch.nn import functional as F
from safetensors import safe_open
from safetensors.numpy import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt_reference import (GPT, GPTConfig, GPTMaskedLM, import_parameters, export_gradients,  # noqa: E402
                           all_visible, spec_parameter_shapes, sinusoidal_table, rope_cos_sin, apply_rope)
from classifier_reference import (ClassifierConfig, GPTClassifier,  # noqa: E402
                                  classifier_parameter_shapes)
import make_parity_fixtures as mk  # noqa: E402

FAILED = []


def check(cond, msg):
    print(("  ok   " if cond else "  FAIL ") + msg)
    if not cond:
        FAILED.append(msg)


def load(stem):
    path = os.path.join(mk.FIXTURE_DIR, stem + ".safetensors")
    arrays = load_file(path)
    with safe_open(path, framework="np") as f:
        meta = f.metadata()
    return path, arrays, meta


def body_config_fields(meta):
    return dict(vocab_size=int(meta["vocab_size"]), block_size=int(meta["block_size"]),
                n_layer=int(meta["n_layer"]), n_head=int(meta["n_head"]),
                n_embd=int(meta["n_embd"]), position_encoding=meta["position_encoding"], dropout=0.0)


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def builtin_body(cfg, P, idx, attn_mask=None):
    """Second, independent body (embeddings, blocks, ln_f) from torch built-ins (float64). Causal
    unless attn_mask (bool, True = may attend) is given."""
    B, T = idx.shape
    C, NH = cfg.n_embd, cfg.n_head
    HS = C // NH
    x = F.embedding(idx, P["wte"])
    if cfg.position_encoding == "learned":
        x = x + P["wpe"][:T]
    elif cfg.position_encoding == "sinusoidal":
        x = x + sinusoidal_table(T, C, torch.float64)
    for l in range(cfg.n_layer):
        p = f"h.{l}."
        a = F.layer_norm(x, (C,), P[p + "ln1.weight"], P[p + "ln1.bias"], eps=1e-5)
        q, k, v = F.linear(a, P[p + "attn.qkv.weight"], P[p + "attn.qkv.bias"]).chunk(3, dim=-1)
        q, k, v = (t.reshape(B, T, NH, HS).permute(0, 2, 1, 3) for t in (q, k, v))
        if cfg.position_encoding == "rope":
            cos, sin = rope_cos_sin(T, HS, torch.float64)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if attn_mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        y = y.permute(0, 2, 1, 3).reshape(B, T, C)
        x = x + F.linear(y, P[p + "attn.proj.weight"], P[p + "attn.proj.bias"])
        m = F.layer_norm(x, (C,), P[p + "ln2.weight"], P[p + "ln2.bias"], eps=1e-5)
        m = F.gelu(F.linear(m, P[p + "mlp.fc.weight"], P[p + "mlp.fc.bias"]))
        x = x + F.linear(m, P[p + "mlp.proj.weight"], P[p + "mlp.proj.bias"])
    return F.layer_norm(x, (C,), P["ln_f.weight"], P["ln_f.bias"], eps=1e-5)


class LanguageModelCase:
    """What a language-model fixture holds and how the reference runs it."""

    def __init__(self, A, meta):
        self.cfg = GPTConfig(**body_config_fields(meta), tie_embeddings=meta["tie_embeddings"] == "true")
        self.shapes = spec_parameter_shapes(self.cfg)
        B, T = int(meta["batch"]), int(meta["seq_len"])
        self.data_shapes = {"input_tokens": (B, T), "target_tokens": (B, T)}
        self.logits_shape = (B, T, self.cfg.vocab_size)
        self.idx = torch.from_numpy(A["input_tokens"]).long()
        self.tgt = torch.from_numpy(A["target_tokens"]).long()

    def model(self, params):
        return import_parameters(GPT(self.cfg).to(torch.float64), params)

    def run(self, model):
        return model(self.idx, self.tgt)

    def builtin_run(self, P):
        W = P["wte"] if self.cfg.tie_embeddings else P["lm_head.weight"]
        logits = F.linear(builtin_body(self.cfg, P, self.idx), W)
        return logits, F.cross_entropy(logits.reshape(-1, logits.size(-1)), self.tgt.reshape(-1))

    def extra_checks(self, A, model, grads):
        # informational: gradients that vanish analytically (key bias without rope)
        for l in range(self.cfg.n_layer):
            gk = A[f"grad.h.{l}.attn.qkv.bias"][self.cfg.n_embd:2 * self.cfg.n_embd]
            print(f"  info h.{l}.attn.qkv.bias key-part |grad| max {np.abs(gk).max():.2e}")


class MaskedLanguageModelCase(LanguageModelCase):
    """What a masked-language-model fixture holds and how the reference runs it."""

    def __init__(self, A, meta):
        super().__init__(A, meta)
        self.M = int((self.tgt >= 0).sum())
        self.logits_shape = (self.M, self.cfg.vocab_size)
        self.mask, self.unused = int(meta["mask_token"]), int(meta["unused_token"])
        self.predicted = [int(n) for n in meta["predicted"].split(",")]

    def model(self, params):
        return import_parameters(GPTMaskedLM(self.cfg).to(torch.float64), params)

    def builtin_run(self, P):
        T = self.idx.size(1)
        W = P["wte"] if self.cfg.tie_embeddings else P["lm_head.weight"]
        x = builtin_body(self.cfg, P, self.idx, all_visible(T))
        rows = torch.nonzero(self.tgt.reshape(-1) >= 0).squeeze(1)
        logits = F.linear(x.reshape(-1, x.size(-1))[rows], W)
        return logits, F.cross_entropy(logits, self.tgt.reshape(-1)[rows])

    def extra_checks(self, A, model, grads):
        predicted = self.tgt >= 0
        check([int(n) for n in predicted.sum(1)] == self.predicted and min(self.predicted) == 1,
              f"predicted positions per sequence {self.predicted}, one sequence with a single one")
        at = self.idx[predicted]
        check(bool((at == self.mask).any()) and bool((at != self.mask).any())
              and bool((self.idx[~predicted] != self.mask).all()),
              f"mask id {self.mask} at some predicted positions (not all) and at no other")
        check(not bool((self.idx == self.unused).any()), f"id {self.unused} never in the input")
        if not self.cfg.tie_embeddings:
            check(float(grads["wte"][self.unused].abs().max()) == 0.0,
                  "untied: the unused id's embedding has an exactly zero gradient")
        with torch.no_grad():
            logits0, loss0 = self.run(model)
            # the first predicted row of a sequence with a later position: change that later token
            b, t = [(b, t) for b, t in predicted.nonzero().tolist() if t < self.idx.size(1) - 1][0]
            idx = self.idx.clone()
            idx[b, -1] = (idx[b, -1] + 1) % self.unused
            m = int(predicted.reshape(-1)[:b * self.idx.size(1) + t].sum())
            moved = (model(idx, self.tgt)[0][m] - logits0[m]).abs().max().item()
            check(moved > 1e-3, f"token ({b}, {idx.size(1) - 1}) moves predicted row {m} at ({b}, {t}) "
                                f"by {moved:.2e}: attention is bidirectional")
            causal = GPT(self.cfg).to(torch.float64)
            causal.load_state_dict(model.state_dict())
            causal_loss = F.cross_entropy(causal(self.idx)[0].reshape(-1, self.cfg.vocab_size),
                                          self.tgt.reshape(-1), ignore_index=-1).item()
            check(abs(causal_loss - loss0.item()) > 1e-3,
                  f"the causal model's loss {causal_loss:.6f} differs from {loss0.item():.6f}")


class ClassifierCase:
    """What a classifier fixture holds and how the reference runs it."""

    def __init__(self, A, meta):
        self.cfg = ClassifierConfig(**body_config_fields(meta), num_classes=int(meta["num_classes"]),
                                    pooling=meta["pooling"], attention=meta["attention"],
                                    hidden=int(meta["hidden"]))
        self.shapes = classifier_parameter_shapes(self.cfg)
        B, T = int(meta["batch"]), int(meta["seq_len"])
        self.data_shapes = {"input_tokens": (B, T), "lengths": (B,), "labels": (B,)}
        self.logits_shape = (B, self.cfg.num_classes)
        self.idx = torch.from_numpy(A["input_tokens"]).long()
        self.lengths = torch.from_numpy(A["lengths"]).long()
        self.labels = torch.from_numpy(A["labels"]).long()
        self.smoothing = float(meta["label_smoothing"])
        w = meta["class_weights"]
        self.weights = None if w == "none" else [float(x) for x in w.split(",")]
        self.pad = int(meta["pad_token"])

    def model(self, params):
        return import_parameters(GPTClassifier(self.cfg).to(torch.float64), params)

    def run(self, model, idx=None):
        return model(self.idx if idx is None else idx, self.lengths, self.labels, self.smoothing, self.weights)

    def builtin_run(self, P):
        cfg, (B, T) = self.cfg, self.idx.shape
        mask = None
        if cfg.attention == "bidirectional":
            mask = (torch.arange(T)[None, :] < self.lengths[:, None])[:, None, None, :]
        x = builtin_body(cfg, P, self.idx, mask)
        rows = []
        for b in range(B):
            real = x[b, :int(self.lengths[b])]
            rows.append({"mean": real.mean(0), "max": real.amax(0), "first": real[0], "last": real[-1]}[cfg.pooling])
        f = torch.stack(rows)
        if cfg.hidden > 0:
            f = F.gelu(F.linear(f, P["classifier.hidden.weight"], P["classifier.hidden.bias"]))
        logits = F.linear(f, P["classifier.out.weight"], P["classifier.out.bias"])
        per_example = F.cross_entropy(logits, self.labels, reduction="none", label_smoothing=self.smoothing)
        if self.weights is not None:
            per_example = per_example * torch.tensor(self.weights, dtype=torch.float64)[self.labels]
        return logits, per_example.mean()

    def extra_checks(self, A, model, grads):
        T = self.idx.size(1)
        padded = torch.arange(T)[None, :] >= self.lengths[:, None]
        check(bool((self.idx[padded] == self.pad).all()) and bool((self.idx[~padded] != self.pad).all()),
              f"token {self.pad} appears exactly at the padded positions")
        check(float(grads["wte"][self.pad].abs().max()) == 0.0, "the padding id's embedding has a zero gradient")
        logits0, loss0 = self.run(model)
        for other in (0, 3):
            idx = self.idx.clone()
            idx[padded] = other
            model.zero_grad(set_to_none=True)
            logits, loss = self.run(model, idx)
            loss.backward()
            g2 = export_gradients(model)
            same = bool(torch.equal(logits, logits0)) and loss.item() == loss0.item()
            same &= all(torch.equal(g2[n], grads[n]) for n in grads)
            check(same, f"padding with id {other} instead: logits, loss and every gradient bit for bit the same")


def finite_difference_check(model, run, h=1e-5):
    """Central differences on every scalar parameter vs autograd, float64."""
    model.zero_grad(set_to_none=True)
    _, loss = run(model)
    loss.backward()
    worst_abs, worst_rel, worst_name, n = 0.0, 0.0, "", 0
    with torch.no_grad():
        for name, p in model.named_parameters():
            flat = p.view(-1)
            g = p.grad.view(-1)
            fd = torch.empty_like(flat)
            for i in range(flat.numel()):
                old = flat[i].item()
                flat[i] = old + h
                lp = run(model)[1].item()
                flat[i] = old - h
                lm = run(model)[1].item()
                flat[i] = old
                fd[i] = (lp - lm) / (2 * h)
            n += flat.numel()
            a = (fd - g).abs().max().item()
            r = a / max(g.abs().max().item(), 1e-12)
            if a > worst_abs:
                worst_abs, worst_name = a, name
            worst_rel = max(worst_rel, r)
    return n, worst_abs, worst_rel, worst_name


def manual_adamw(params, grads_fn, steps, lr, b1, b2, eps, wd, clip):
    """torch.optim.AdamW + clip_grad_norm_ written out:
       g <- g * min(1, clip / (||g||_2 over all params + 1e-6))
       p <- p * (1 - lr*wd_p)                      (decoupled decay; wd_p = wd if p.dim() >= 2 else 0)
       m <- b1*m + (1-b1)*g ; v <- b2*v + (1-b2)*g^2
       p <- p - lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)"""
    m = {n: torch.zeros_like(p) for n, p in params.items()}
    v = {n: torch.zeros_like(p) for n, p in params.items()}
    losses = []
    for t in range(1, steps + 1):
        loss, grads = grads_fn(params)
        losses.append(loss)
        norm = math.sqrt(sum(float((g * g).sum()) for g in grads.values()))
        coef = min(1.0, clip / (norm + 1e-6))
        for n, p in params.items():
            g = grads[n] * coef
            wdp = wd if p.dim() >= 2 else 0.0
            p.mul_(1 - lr * wdp)
            m[n].mul_(b1).add_((1 - b1) * g)
            v[n].mul_(b2).add_((1 - b2) * g * g)
            mhat = m[n] / (1 - b1 ** t)
            vhat = v[n] / (1 - b2 ** t)
            p.sub_(lr * mhat / (vhat.sqrt() + eps))
    return losses, params


def check_fixture(stem, case_class, do_fd):
    path, A, meta = load(stem)
    print(f"{stem}  ({os.path.getsize(path)} bytes)")
    case = case_class(A, meta)
    shapes = case.shapes

    # 1. keys / dtypes / shapes
    want = set(shapes) | set(case.data_shapes) | {"expected.logits", "expected.loss", "expected.adamw_losses"}
    want |= {"grad." + n for n in shapes} | {"expected.adamw_final." + n for n in shapes}
    check(set(A) == want, f"load_file ok, {len(A)} tensors, key set as specified")
    ok = all(A[n].dtype == np.float32 and A[n].shape == s for n, s in shapes.items())
    ok &= all(A["grad." + n].shape == s and A["expected.adamw_final." + n].shape == s for n, s in shapes.items())
    ok &= all(A[n].dtype == np.int32 and A[n].shape == s for n, s in case.data_shapes.items())
    ok &= A["expected.logits"].shape == case.logits_shape and A["expected.loss"].shape == (1,)
    ok &= A["expected.adamw_losses"].shape == (int(meta["adamw_steps"]),)
    check(bool(ok), "dtypes and shapes")
    check(A["expected.adamw_losses"][0] == A["expected.loss"][0], "expected.adamw_losses[0] == expected.loss")

    # 2. float64 recompute from the stored float32 weights
    P = {n: torch.from_numpy(A[n]).double() for n in shapes}
    model = case.model(P)
    logits, loss = case.run(model)
    loss.backward()
    r = abs(loss.item() - float(A["expected.loss"][0])) / abs(loss.item())
    check(r <= 1e-6, f"float64 recompute loss {loss.item():.12f} vs stored {A['expected.loss'][0]:.9f}: rel err {r:.2e}")
    r = rel_err(A["expected.logits"], logits.detach().numpy())
    check(r <= 1e-6, f"logits recompute rel err {r:.2e}")
    grads = export_gradients(model)
    r = max(rel_err(A["grad." + n], g.numpy()) for n, g in grads.items())
    check(r <= 1e-6, f"gradient recompute worst rel err {r:.2e}")

    # 3. independent forward from torch built-ins
    lg2, loss2 = case.builtin_run(P)
    r = rel_err(lg2.numpy(), logits.detach().numpy())
    r = max(r, abs(loss2.item() - loss.item()) / abs(loss.item()))
    check(r <= 1e-12, f"reference logits and loss vs torch built-ins (F.layer_norm/SDPA/F.gelu/F.cross_entropy): "
                      f"rel err {r:.2e}")

    # 4. finite differences
    if do_fd:
        n, a, rr, nm = finite_difference_check(model, case.run)
        check(rr <= 1e-6, f"finite differences (h=1e-5, float64) on all {n} scalars: "
                          f"max abs err {a:.2e} (at {nm}), max err / max|grad| per tensor {rr:.2e}")

    # 5. hand-written AdamW
    def grads_fn(params):
        m = case.model(params)
        _, l = case.run(m)
        l.backward()
        return l.item(), export_gradients(m)
    losses, final = manual_adamw({n: p.clone() for n, p in P.items()}, grads_fn,
                                 int(meta["adamw_steps"]), float(meta["adamw_lr"]),
                                 float(meta["adamw_beta1"]), float(meta["adamw_beta2"]),
                                 float(meta["adamw_eps"]), float(meta["adamw_weight_decay"]),
                                 float(meta["grad_clip"]))
    r = rel_err(A["expected.adamw_losses"], np.array(losses))
    check(r <= 1e-6, f"hand-written AdamW losses vs stored: rel err {r:.2e}  "
                     f"({losses[0]:.5f} -> {losses[-1]:.5f})")
    r = max(rel_err(A["expected.adamw_final." + n], p.numpy()) for n, p in final.items())
    check(r <= 1e-6, f"hand-written AdamW final params vs stored: worst rel err {r:.2e}")

    case.extra_checks(A, model, grads)


def main():
    fd_all = "--fd-one" not in sys.argv
    only = [a for a in sys.argv[1:] if not a.startswith("--")]  # substrings of the stems to check
    fixtures = [(f[0], LanguageModelCase) for f in mk.FIXTURES]
    fixtures += [(f[0], ClassifierCase) for f in mk.CLASSIFIER_FIXTURES]
    fixtures += [(f[0], MaskedLanguageModelCase) for f in mk.MLM_FIXTURES]
    fixtures = [f for f in fixtures if not only or any(o in f[0] for o in only)]
    for i, (stem, case_class) in enumerate(fixtures):
        check_fixture(stem, case_class, do_fd=fd_all or i == 0)
    print("ALL CHECKS PASSED" if not FAILED else f"{len(FAILED)} CHECK(S) FAILED")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
