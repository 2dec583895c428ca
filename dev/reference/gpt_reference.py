"""
Independent PyTorch reference for the attn-train GPT (see dev/MODEL_SPEC.md).

Written from the math in the spec, in the style of nanoGPT's model.py. Module
attributes are named so that `model.named_parameters()` yields exactly the spec
names, in the spec's flat-buffer order:

    wte, [wpe], h.{l}.ln1.weight, h.{l}.ln1.bias, h.{l}.attn.qkv.weight,
    h.{l}.attn.qkv.bias, h.{l}.attn.proj.weight, h.{l}.attn.proj.bias,
    h.{l}.ln2.weight, h.{l}.ln2.bias, h.{l}.mlp.fc.weight, h.{l}.mlp.fc.bias,
    h.{l}.mlp.proj.weight, h.{l}.mlp.proj.bias, ln_f.weight, ln_f.bias, [lm_head.weight]

`GPTMaskedLM` is the masked language model on the same parameters (bidirectional attention, loss
on the positions with a target only).

The model works in whatever dtype its parameters have (the fixtures use float64).
"""

import math
from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F


@dataclass
class GPTConfig:
    vocab_size: int = 11
    block_size: int = 8
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 16
    position_encoding: str = "learned"  # "learned" | "sinusoidal" | "rope"
    tie_embeddings: bool = True
    dropout: float = 0.0


class LayerNorm(nn.Module):
    """LayerNorm over the last dim: biased variance, eps = 1e-5, elementwise weight and bias."""

    def __init__(self, ndim, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)  # biased variance
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


def sinusoidal_table(T, C, dtype):
    """pe[t, 2i] = sin(t / 10000^(2i/C)), pe[t, 2i+1] = cos(t / 10000^(2i/C)); C even."""
    assert C % 2 == 0, "sinusoidal position encoding needs an even n_embd"
    t = torch.arange(T, dtype=torch.float64).unsqueeze(1)          # [T, 1]
    two_i = torch.arange(0, C, 2, dtype=torch.float64)             # [C/2] = 2i
    angle = t / torch.pow(torch.tensor(10000.0, dtype=torch.float64), two_i / C)  # [T, C/2]
    pe = torch.zeros(T, C, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)
    return pe.to(dtype)


def rope_cos_sin(T, HS, dtype):
    """theta[t, i] = t * 10000^(-2i/HS) for i in [0, HS/2); returns cos, sin of shape [T, HS/2]."""
    assert HS % 2 == 0, "rope needs an even head size"
    t = torch.arange(T, dtype=torch.float64).unsqueeze(1)          # [T, 1]
    i = torch.arange(HS // 2, dtype=torch.float64)                 # [HS/2]
    inv_freq = torch.pow(torch.tensor(10000.0, dtype=torch.float64), -2.0 * i / HS)
    theta = t * inv_freq                                            # [T, HS/2]
    return torch.cos(theta).to(dtype), torch.sin(theta).to(dtype)


def apply_rope(x, cos, sin):
    """'Rotate half' RoPE on x of shape [B, NH, T, HS]; cos/sin are [T, HS/2]."""
    half = x.size(-1) // 2
    x1, x2 = x[..., :half], x[..., half:]
    out1 = x1 * cos - x2 * sin
    out2 = x1 * sin + x2 * cos
    return torch.cat([out1, out2], dim=-1)


def causal_mask(T):
    """[T, T] bool, True where the key may be seen: key position <= query position."""
    return torch.tril(torch.ones(T, T, dtype=torch.bool))


class SelfAttention(nn.Module):
    """Multi-head self-attention; `visible` (bool, broadcastable to [B, NH, T, T], True = the key
    may be seen) defaults to the causal mask, which is all the language model uses."""

    def __init__(self, config):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=True)   # [3C, C], [3C]
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=True)      # [C, C], [C]
        self.attn_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.rope = config.position_encoding == "rope"

    def forward(self, x, visible=None):
        B, T, C = x.size()
        NH, HS = self.n_head, C // self.n_head
        qkv = self.qkv(x)                                   # [B, T, 3C]
        q, k, v = qkv.split(self.n_embd, dim=2)             # columns 0:C, C:2C, 2C:3C
        # head h uses columns [h*HS, (h+1)*HS)
        q = q.view(B, T, NH, HS).transpose(1, 2)            # [B, NH, T, HS]
        k = k.view(B, T, NH, HS).transpose(1, 2)
        v = v.view(B, T, NH, HS).transpose(1, 2)
        if self.rope:
            cos, sin = rope_cos_sin(T, HS, x.dtype)
            q = apply_rope(q, cos, sin)
            k = apply_rope(k, cos, sin)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(HS))   # [B, NH, T, T]
        if visible is None:
            visible = causal_mask(T)
        att = att.masked_fill(~visible, float("-inf"))
        att = F.softmax(att, dim=-1)
        att = self.attn_dropout(att)
        y = att @ v                                          # [B, NH, T, HS]
        y = y.transpose(1, 2).contiguous().view(B, T, C)     # heads concatenated back
        return self.proj(y)


class MLP(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=True)    # [4C, C], [4C]
        self.gelu = nn.GELU()  # exact erf GELU (approximate='none')
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=True)  # [C, 4C], [C]

    def forward(self, x):
        return self.proj(self.gelu(self.fc(x)))


class Block(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.ln1 = LayerNorm(config.n_embd)
        self.attn = SelfAttention(config)
        self.ln2 = LayerNorm(config.n_embd)
        self.mlp = MLP(config)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x, visible=None):
        x = x + self.resid_dropout(self.attn(self.ln1(x), visible))
        x = x + self.resid_dropout(self.mlp(self.ln2(x)))
        return x


class GPT(nn.Module):

    def __init__(self, config):
        super().__init__()
        assert config.position_encoding in ("learned", "sinusoidal", "rope")
        self.config = config
        C, V = config.n_embd, config.vocab_size
        # registration order == spec flat-buffer order
        self.wte = nn.Parameter(torch.zeros(V, C))
        if config.position_encoding == "learned":
            self.wpe = nn.Parameter(torch.zeros(config.block_size, C))
        else:
            self.wpe = None
        self.emb_dropout = nn.Dropout(config.dropout)
        self.h = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = LayerNorm(C)
        if config.tie_embeddings:
            self.lm_head = None  # output head is wte
        else:
            self.lm_head = nn.Linear(C, V, bias=False)  # lm_head.weight [V, C]

    def body(self, idx, visible=None):
        """Embeddings, the blocks and ln_f: [B, T, C]; `visible` as in SelfAttention."""
        B, T = idx.size()
        assert T <= self.config.block_size
        x = self.wte[idx]                                    # [B, T, C]
        pe = self.config.position_encoding
        if pe == "learned":
            x = x + self.wpe[:T]
        elif pe == "sinusoidal":
            x = x + sinusoidal_table(T, self.config.n_embd, x.dtype)
        # rope: nothing added here; q/k are rotated inside attention
        x = self.emb_dropout(x)
        for block in self.h:
            x = block(x, visible)
        return self.ln_f(x)

    def forward(self, idx, targets=None):
        x = self.body(idx)
        W = self.wte if self.lm_head is None else self.lm_head.weight
        logits = x @ W.t()                                   # [B, T, V], no bias
        loss = None
        if targets is not None:
            # mean over all B*T positions
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1).long())
        return logits, loss

    def parameter_shapes(self):
        """spec name -> shape, in flat-buffer order (subclasses with more tensors extend it)."""
        return spec_parameter_shapes(self.config)


def all_visible(T):
    """[T, T] bool, all True: every query sees every key of its sequence (no mask, no padding)."""
    return torch.ones(T, T, dtype=torch.bool)


class GPTMaskedLM(GPT):
    """The masked language model (BERT-style pretraining) on the same parameters as GPT: wte, [wpe],
    the blocks, ln_f and the tied or untied head, in the same flat-buffer order.

        attention    bidirectional: query i sees every key j of its sequence (all T are real)
        predicted    the positions with targets[b, t] >= 0; targets == -1 are not predicted
        logits       ln_f(x) @ W^T at the predicted positions only, in row-major (b, t) order: [M, V]
        loss         mean over the M predicted positions of cross-entropy(logits, target)
                     (= F.cross_entropy(ignore_index=-1) over all B*T positions)

    The input tokens at predicted positions are whatever the caller hid them with (a mask id, a
    random id or the original); the model does not care which."""

    def forward(self, idx, targets=None):
        B, T = idx.size()
        x = self.body(idx, all_visible(T))
        W = self.wte if self.lm_head is None else self.lm_head.weight
        all_logits = x @ W.t()                               # [B, T, V]
        if targets is None:
            return all_logits, None
        flat = all_logits.reshape(-1, all_logits.size(-1))  # [B*T, V]
        flat_targets = targets.reshape(-1).long()
        assert bool((flat_targets >= -1).all()) and bool((flat_targets >= 0).any())
        logits = flat[flat_targets >= 0]                     # [M, V], row order
        loss = F.cross_entropy(flat, flat_targets, ignore_index=-1)  # mean over the M predicted
        return logits, loss


# --- parameter export / import under the spec names ---------------------------------------

def spec_parameter_names(config):
    """The spec's parameter names in flat-buffer order (independent of the module tree)."""
    names = ["wte"]
    if config.position_encoding == "learned":
        names.append("wpe")
    for l in range(config.n_layer):
        p = f"h.{l}."
        names += [p + "ln1.weight", p + "ln1.bias",
                  p + "attn.qkv.weight", p + "attn.qkv.bias",
                  p + "attn.proj.weight", p + "attn.proj.bias",
                  p + "ln2.weight", p + "ln2.bias",
                  p + "mlp.fc.weight", p + "mlp.fc.bias",
                  p + "mlp.proj.weight", p + "mlp.proj.bias"]
    names += ["ln_f.weight", "ln_f.bias"]
    if not config.tie_embeddings:
        names.append("lm_head.weight")
    return names


def spec_parameter_shapes(config):
    C, V, BS = config.n_embd, config.vocab_size, config.block_size
    shapes = OrderedDict()
    for n in spec_parameter_names(config):
        if n == "wte" or n == "lm_head.weight":
            s = (V, C)
        elif n == "wpe":
            s = (BS, C)
        elif n.endswith("attn.qkv.weight"):
            s = (3 * C, C)
        elif n.endswith("attn.qkv.bias"):
            s = (3 * C,)
        elif n.endswith("attn.proj.weight"):
            s = (C, C)
        elif n.endswith("mlp.fc.weight"):
            s = (4 * C, C)
        elif n.endswith("mlp.fc.bias"):
            s = (4 * C,)
        elif n.endswith("mlp.proj.weight"):
            s = (C, 4 * C)
        else:  # LayerNorm weight/bias, attn.proj.bias, mlp.proj.bias
            s = (C,)
        shapes[n] = s
    return shapes


def export_parameters(model):
    """OrderedDict spec-name -> detached tensor (model dtype), in spec flat-buffer order."""
    params = dict(model.named_parameters())
    names = list(model.parameter_shapes())
    assert list(params.keys()) == names, (list(params.keys()), names)
    return OrderedDict((n, params[n].detach().clone()) for n in names)


def export_gradients(model):
    """OrderedDict spec-name -> gradient tensor (zeros if no grad), spec order."""
    params = dict(model.named_parameters())
    out = OrderedDict()
    for n in model.parameter_shapes():
        g = params[n].grad
        out[n] = torch.zeros_like(params[n]) if g is None else g.detach().clone()
    return out


def import_parameters(model, tensors):
    """Copy tensors (dict spec-name -> tensor/ndarray) into the model, casting to its dtype.
    Every spec parameter must be present with the spec shape; extra keys are ignored."""
    params = dict(model.named_parameters())
    shapes = model.parameter_shapes()
    with torch.no_grad():
        for n, shape in shapes.items():
            t = torch.as_tensor(tensors[n])
            assert tuple(t.shape) == shape, f"{n}: got {tuple(t.shape)}, spec {shape}"
            params[n].copy_(t.to(params[n].dtype))
    return model
