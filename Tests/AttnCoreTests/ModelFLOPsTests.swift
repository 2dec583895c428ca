// MFU is only as honest as its FLOP count. The formula in ModelFLOPs.swift is checked against a
// count made another way: from the parameter layout, every matrix a token passes through costs 2
// FLOPs per weight forward (6 with backward), plus attention's two products over the keys a query
// actually sees, counted by walking the positions.

import AttnCore
import Testing

@Suite struct ModelFLOPsTests {
  /// 6 x (matrix weights a token meets) + 3 x 2 x 2 x C x (mean keys per query) per layer.
  private func independentCount(_ shape: ModelShape) -> Double {
    let layout = ParameterLayout(shape)
    var weights = 0.0
    for tensor in layout.tensors where tensor.shape.count == 2 {
      if tensor.name.hasPrefix("h.") {
        weights += Double(tensor.count)
      } else if shape.classifier == nil && (tensor.name == "lm_head.weight" || (tensor.name == "wte" && shape.tieEmbeddings)) {
        weights += Double(tensor.count)  // the output projection to the vocabulary
      } else if tensor.name.hasPrefix("classifier.") {
        weights += Double(tensor.count) / Double(shape.blockSize)  // once per example of T tokens
      }
    }
    let T = shape.blockSize
    let causal = shape.classifier.map { $0.attention == .causal } ?? true
    let keysSeen = (0..<T).reduce(0) { $0 + (causal ? $1 + 1 : T) }
    let meanKeys = Double(keysSeen) / Double(T)
    let attention = Double(shape.layers) * 2 * 2 * Double(shape.channels) * meanKeys
    return 3 * (2 * weights + attention)
  }

  @Test(arguments: [(2, 64, 64, 65), (4, 128, 256, 50304), (6, 384, 256, 65)])
  func languageModelMatchesTheLayoutCount(layers: Int, channels: Int, block: Int, vocabulary: Int) {
    let shape = ModelShape(
      vocabSize: vocabulary, blockSize: block, layers: layers, heads: 2, channels: channels, tieEmbeddings: layers != 4)
    let formula = shape.trainingFLOPsPerToken
    #expect(abs(formula - independentCount(shape)) <= 1e-9 * formula, "\(formula) vs \(independentCount(shape))")
  }

  @Test(arguments: [AttentionKind.bidirectional, .causal], [0, 32])
  func classifierMatchesTheLayoutCount(attention: AttentionKind, hidden: Int) {
    let head = ClassifierShape(classes: 3, pooling: .mean, attention: attention, hidden: hidden)
    let shape = ModelShape(
      vocabSize: 300, blockSize: 48, layers: 2, heads: 4, channels: 64, task: .classifier(head))
    let formula = shape.trainingFLOPsPerToken
    #expect(abs(formula - independentCount(shape)) <= 1e-9 * formula, "\(formula) vs \(independentCount(shape))")
  }

  /// A bidirectional encoder attends over every key: its attention costs about twice the causal one.
  @Test func bidirectionalAttentionCountsEveryKey() {
    func flops(_ attention: AttentionKind) -> Double {
      let head = ClassifierShape(classes: 2, pooling: .mean, attention: attention)
      return ModelShape(vocabSize: 10, blockSize: 128, layers: 1, heads: 1, channels: 8, task: .classifier(head))
        .trainingFLOPsPerToken
    }
    #expect(flops(.bidirectional) > flops(.causal))
  }
}
