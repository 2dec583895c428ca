"""
Independent PyTorch reference for the attn-train text classifier (dev/MODEL_SPEC.md, "Classifier").

The body is gpt_reference's (embeddings, blocks, ln_f); on top of it:

    real[b, t]   = t < lengths[b]                       (the rest of row b is padding)
    attention    causal: key <= query, as the language model (a real query never sees padding,
                 which comes after it); bidirectional: every real key of the sequence
    pooled[b]    mean: mean of x[b, t] over real t;  first: x[b, 0];  last: x[b, lengths[b] - 1]
    features     pooled, or dropout(gelu(pooled @ hidden.weight^T + hidden.bias)) with a hidden layer
    logits       features @ out.weight^T + out.bias                      [B, K]
    loss         (1/B) sum_b w[y_b] * -sum_j q_bj log softmax(logits_b)_j,
                 q_b = (1 - e) onehot(y_b) + e / K,   w = class weights (all 1 without)

The loss is a plain mean over examples of the weighted example losses, NOT PyTorch's weighted
mean (F.cross_entropy(weight=w) divides by sum_b w[y_b], and also weights the smoothing term per
class j instead of per example); so it is written out here.

Padded query rows are computed like any other (they attend to the real keys), as
F.scaled_dot_product_attention would; nothing real reads them, so logits, loss and gradients are
those of a model that skips them.

Parameter names and order: the body's spec names (no lm_head), then
classifier.hidden.weight [H, C], classifier.hidden.bias [H] (only with a hidden layer),
classifier.out.weight [K, H or C], classifier.out.bias [K].
"""

from collections import OrderedDict
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
from torch.nn import functional as F

from gpt_reference import GPT, GPTConfig, spec_parameter_shapes

POOLINGS = ("mean", "max", "first", "last")
ATTENTIONS = ("causal", "bidirectional")


@dataclass
class ClassifierConfig(GPTConfig):
    num_classes: int = 4
    pooling: str = "mean"               # "mean" | "max" | "first" | "last"
    attention: str = "bidirectional"    # "causal" | "bidirectional"
    hidden: int = 0                     # width of the hidden layer, 0 for none


class ClassifierHead(nn.Module):

    def __init__(self, config):
        super().__init__()
        C, H, K = config.n_embd, config.hidden, config.num_classes
        self.hidden = nn.Linear(C, H, bias=True) if H > 0 else None   # [H, C], [H]
        self.gelu = nn.GELU()  # exact erf GELU, as in the MLP
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(H if H > 0 else C, K, bias=True)         # [K, H or C], [K]

    def forward(self, pooled):
        if self.hidden is not None:
            pooled = self.dropout(self.gelu(self.hidden(pooled)))
        return self.out(pooled)


def real_tokens(lengths, T):
    """[B, T] bool: True at the real tokens."""
    return torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)


def pool(x, lengths, pooling):
    """x [B, T, C] -> [B, C] from the real tokens only."""
    B, T, _ = x.shape
    if pooling == "first":
        return x[:, 0]
    if pooling == "last":
        return x[torch.arange(B), lengths - 1]
    if pooling == "max":
        # Padded positions can never be the maximum.
        return x.masked_fill(~real_tokens(lengths, T).unsqueeze(-1), float("-inf")).amax(dim=1)
    real = real_tokens(lengths, T).to(x.dtype).unsqueeze(-1)     # [B, T, 1]
    return (x * real).sum(dim=1) / lengths.to(x.dtype).unsqueeze(1)


def classification_loss(logits, labels, label_smoothing=0.0, class_weights=None):
    """Mean over the B examples of w[y] * cross-entropy against the smoothed target."""
    K = logits.size(-1)
    logp = F.log_softmax(logits, dim=-1)
    q = (1 - label_smoothing) * F.one_hot(labels, K).to(logits.dtype) + label_smoothing / K
    per_example = -(q * logp).sum(dim=-1)
    if class_weights is not None:
        per_example = per_example * torch.as_tensor(class_weights, dtype=logits.dtype)[labels]
    return per_example.mean()


class GPTClassifier(GPT):

    def __init__(self, config):
        assert config.pooling in POOLINGS and config.attention in ATTENTIONS
        super().__init__(replace(config, tie_embeddings=True))  # the body only: no lm_head
        self.config = config
        self.classifier = ClassifierHead(config)  # registered last == last in the flat buffer

    def forward(self, idx, lengths, labels=None, label_smoothing=0.0, class_weights=None):
        """idx [B, T], lengths [B] (1 <= lengths <= T), labels [B] -> (logits [B, K], loss or None)."""
        B, T = idx.shape
        assert bool((lengths >= 1).all()) and bool((lengths <= T).all())
        if self.config.attention == "bidirectional":
            visible = real_tokens(lengths, T)[:, None, None, :]   # keys, [B, 1, 1, T]
        else:
            visible = None                                       # causal
        x = self.body(idx, visible)
        logits = self.classifier(pool(x, lengths, self.config.pooling))
        loss = None
        if labels is not None:
            loss = classification_loss(logits, labels, label_smoothing, class_weights)
        return logits, loss

    def parameter_shapes(self):
        return classifier_parameter_shapes(self.config)


def classifier_parameter_shapes(config):
    """spec name -> shape in flat-buffer order: the body, then the head."""
    C, H, K = config.n_embd, config.hidden, config.num_classes
    shapes = spec_parameter_shapes(replace(config, tie_embeddings=True))
    if H > 0:
        shapes["classifier.hidden.weight"] = (H, C)
        shapes["classifier.hidden.bias"] = (H,)
    shapes["classifier.out.weight"] = (K, H if H > 0 else C)
    shapes["classifier.out.bias"] = (K,)
    return OrderedDict(shapes)
