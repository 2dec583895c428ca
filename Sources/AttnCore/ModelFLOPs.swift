// The FLOPs a training step spends per token, for MFU. Counted as PaLM's appendix B and nanoGPT's
// estimate_mfu count them: matrix products only (a multiply-add is 2 FLOPs), backward twice
// forward, so training is 3x forward. Layer norms, GELU, softmax and the optimizer are left out.
// Unlike nanoGPT, causal attention is counted as computed: our causal kernels skip the masked
// upper triangle, so a token at position t attends over t + 1 keys, (T + 1) / 2 on average.
//
// Forward FLOPs per token, C channels, L layers, block T, vocabulary V:
//   per layer  2·C·3C (qkv) + 2·C·C (projection) + 2·C·4C·2 (MLP) = 24·C²
//              + 2·2·C·T_keys (scores Q·Kᵀ and the weighted sum of V), T_keys = (T + 1) / 2 causal, T bidirectional
//   head       2·C·V (language model), 2·C·V·P/T (masked language model: P of T tokens predicted),
//              or a classifier's 2·C·H + 2·H·K per example, spread over its T tokens
// so a language model trains at 3 · (L · (24·C² + 4·C·T_keys) + 2·C·V) FLOPs per token.

extension ModelShape {
  public var trainingFLOPsPerToken: Double {
    let (C, T, L) = (Double(channels), Double(blockSize), Double(layers))
    let keys = attention == .causal ? (T + 1) / 2 : T
    let body = L * (24 * C * C + 4 * C * keys)
    let head: Double
    if let classifier {
      let hidden = Double(classifier.hidden)
      let classes = Double(classifier.classes)
      head = (classifier.hidden > 0 ? 2 * C * hidden + 2 * hidden * classes : 2 * C * classes) / T
    } else if case .maskedLanguageModel(let predicted) = task {
      head = 2 * C * Double(vocabSize) * Double(predicted) / T
    } else {
      head = 2 * C * Double(vocabSize)
    }
    return 3 * (body + head)
  }
}
