// The classifier against central finite differences: every parameter tensor, for causal and
// bidirectional attention, each pooling, with and without a hidden layer, with dropout, with label
// smoothing and class weights, on a batch of sequences of different lengths; padding changes nothing; and a step's first micro-step writes
// exactly the zeroed-then-added gradients.

@testable import AttnCore
import Foundation
import Testing

@Suite struct ClassifierGradientTests {
  static let cases: [(AttentionKind, Pooling, Int, Float, PositionEncoding)] = [
    (.bidirectional, .mean, 6, 0.1, .learned), (.bidirectional, .first, 6, 0.2, .rope),
    (.bidirectional, .last, 0, 0.1, .sinusoidal), (.causal, .last, 5, 0, .learned), (.causal, .mean, 0, 0.1, .rope),
    (.bidirectional, .max, 6, 0.1, .learned), (.causal, .max, 0, 0, .rope),
  ]

  static func shape(_ caseIndex: Int) -> ModelShape {
    let (attention, pooling, hidden, dropout, positions) = cases[caseIndex]
    return ModelShape(
      vocabSize: 7, blockSize: 6, layers: 2, heads: 2, channels: 8, positionEncoding: positions, dropout: dropout,
      task: .classifier(ClassifierShape(classes: 3, pooling: pooling, attention: attention, hidden: hidden)))
  }

  /// Plain cross-entropy, smoothed, weighted, and both.
  static func loss(_ caseIndex: Int) -> ClassificationLoss {
    ClassificationLoss(
      labelSmoothing: caseIndex % 2 == 1 ? 0.1 : 0, classWeights: caseIndex >= 2 && caseIndex <= 3 ? [1, 2.5, 0.5] : nil)
  }

  // Three sequences of lengths 5, 2 and 4 in T = 5: padding tokens (id 6) after each.
  static let tokens: [Int32] = [1, 4, 2, 0, 3, 5, 2, 6, 6, 6, 3, 3, 1, 0, 6]
  static let lengths: [Int32] = [5, 2, 4]
  static let labels: [Int32] = [2, 0, 1]

  @Test(arguments: cases.indices)
  func everyParameterTensor(caseIndex: Int) {
    let (attention, pooling, hidden, dropout, _) = Self.cases[caseIndex]
    let (B, T) = (3, 5)
    let model = GPT(shape: Self.shape(caseIndex), maxBatch: B)
    model.initializeParameters(seed: 7)
    let noise = randomBuffer(model.parameters.count, seed: 99, scale: 0.3)
    for i in 0..<model.parameters.count { model.parameters.pointer[i] += noise.pointer[i] }
    // The head's weights scaled up: what reaches the body passes through them, and at their
    // initial size the body's gradients were small enough that float32 rounding in the differences
    // reached 2e-3 to 3e-2 relative (measured: it grew as the weights or h shrank, so it was
    // rounding, not a wrong term, which gives 1e-1 or more).
    for tensor in model.layout.tensors where tensor.name.hasPrefix("classifier.") && tensor.kind == .matrix {
      for i in tensor.range { model.parameters.pointer[i] *= 4 }
    }
    let context = DropoutContext(probability: dropout, stepKey: RandomKey(seed: 5, purpose: .dropout).then(3), firstGlobalSample: 1)
    let weighting = Self.loss(caseIndex)
    func loss() -> Double {
      model.classify(tokens: Self.tokens, lengths: Self.lengths, labels: Self.labels, B: B, T: T, loss: weighting, dropout: context)
    }
    model.zeroGradients()
    _ = loss()
    model.backwardClassifier(
      tokens: Self.tokens, lengths: Self.lengths, labels: Self.labels, B: B, T: T, loss: weighting, lossScale: 1,
      dropout: context)
    // Max pooling is piecewise linear: a step of 1e-2 can move a channel's maximum to another token
    // (central differences then straddle the kink; seen: 2e-2 relative), so it takes 3e-3 (at 1e-3
    // float32 rounding in the differences reached 2.3e-3).
    let h: Float = pooling == .max ? 3e-3 : 1e-2
    for tensor in model.layout.tensors {
      expectGradientMatches(
        "\(attention) \(pooling) hidden=\(hidden) \(weighting) \(tensor.name)", analytic: model.gradients.pointer + tensor.offset,
        x: model.parameters.pointer + tensor.offset, count: tensor.count, limit: 60, h: h, objective: loss)
    }
  }

  /// What lies past a sequence's length never matters: other padding ids give the same loss and
  /// gradients, bit for bit, and the padding token's embedding gets no gradient.
  @Test(arguments: cases.indices)
  func paddingChangesNothing(caseIndex: Int) {
    let (B, T) = (3, 5)
    let model = GPT(shape: Self.shape(caseIndex), maxBatch: B)
    model.initializeParameters(seed: 3)
    let dropout = Self.cases[caseIndex].3
    let context = DropoutContext(probability: dropout, stepKey: RandomKey(seed: 8, purpose: .dropout), firstGlobalSample: 0)
    var results: [(Double, [Float])] = []
    for padding: Int32 in [6, 0] {
      let tokens = zip(Self.tokens.indices, Self.tokens).map { i, id in i % T < Int(Self.lengths[i / T]) ? id : padding }
      model.zeroGradients()
      let loss = model.classify(tokens: tokens, lengths: Self.lengths, labels: Self.labels, B: B, T: T, dropout: context)
      model.backwardClassifier(tokens: tokens, lengths: Self.lengths, labels: Self.labels, B: B, T: T, lossScale: 1, dropout: context)
      results.append((loss, Array(model.gradients.buffer)))
    }
    #expect(results[0].0 == results[1].0)
    #expect(results[0].1 == results[1].1)
    if Self.cases[caseIndex].0 == .bidirectional {
      let wte = model.layout["wte"]!
      let row6 = (wte.offset + 6 * 8)..<(wte.offset + 7 * 8)
      #expect(results[0].1[row6].allSatisfy { $0 == 0 }, "the padding id's embedding has a gradient")
    }
  }

  @Test(arguments: cases.indices)
  func writtenGradientsEqualZeroedThenAdded(caseIndex: Int) {
    let (B, T) = (3, 5)
    let model = GPT(shape: Self.shape(caseIndex), maxBatch: B, pool: WorkerPool(threads: 2))
    model.initializeParameters(seed: 7)
    let context = DropoutContext(probability: Self.cases[caseIndex].3, stepKey: RandomKey(seed: 5, purpose: .dropout), firstGlobalSample: 2)
    model.zeroGradients()
    model.classify(tokens: Self.tokens, lengths: Self.lengths, labels: Self.labels, B: B, T: T, dropout: context)
    model.backwardClassifier(tokens: Self.tokens, lengths: Self.lengths, labels: Self.labels, B: B, T: T, lossScale: 0.5, dropout: context)
    let zeroedThenAdded = Array(model.gradients.buffer)
    model.gradients.pointer.update(repeating: .nan, count: model.gradients.count)
    model.classify(tokens: Self.tokens, lengths: Self.lengths, labels: Self.labels, B: B, T: T, dropout: context)
    model.backwardClassifier(
      tokens: Self.tokens, lengths: Self.lengths, labels: Self.labels, B: B, T: T, lossScale: 0.5, dropout: context,
      accumulate: false)
    for tensor in model.layout.tensors {
      let range = tensor.offset..<(tensor.offset + tensor.count)
      #expect(Array(model.gradients.buffer)[range] == zeroedThenAdded[range], "\(tensor.name)")
    }
  }

  /// The smoothed, weighted loss of one example is its definition, computed here in Double from the
  /// logits the model produced: w(y) * -sum_j q_j log softmax_j, q = (1 - e) onehot(y) + e / K.
  @Test func smoothedWeightedLossIsTheCrossEntropyAgainstTheSmoothedTarget() {
    let (B, T, K) = (3, 5, 3)
    let model = GPT(shape: Self.shape(0), maxBatch: B)
    model.initializeParameters(seed: 11)
    for tensor in model.layout.tensors where tensor.name.hasPrefix("classifier.") {
      for i in tensor.range { model.parameters.pointer[i] *= 20 }
    }
    let weighting = ClassificationLoss(labelSmoothing: 0.2, classWeights: [0.5, 1, 3])
    let total = model.classify(tokens: Self.tokens, lengths: Self.lengths, labels: Self.labels, B: B, T: T, loss: weighting)
    model.classify(tokens: Self.tokens, lengths: Self.lengths, labels: nil, B: B, T: T)
    var expected = 0.0
    for n in 0..<B {
      let z = (0..<K).map { Double(model.logits[n * K + $0]) }
      let logSumExp = log(z.map { exp($0) }.reduce(0, +))
      let y = Int(Self.labels[n])
      let q = (0..<K).map { (j: Int) -> Double in (j == y ? 0.8 : 0) + 0.2 / 3 }
      expected += [0.5, 1, 3][y] * (0..<K).map { -q[$0] * (z[$0] - logSumExp) }.reduce(0, +)
    }
    #expect(abs(total - expected) <= 1e-5 * abs(expected), "\(total) vs \(expected)")
  }
}
