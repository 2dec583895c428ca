// The masked language model against central finite differences: every parameter tensor, tied and
// untied, each position encoding, with dropout; a position without a target (-1) changes nothing,
// whatever its token's target would have been; the loss is the cross-entropy of the predicted rows
// of the full logits; attention reaches later tokens; and a step's first micro-step writes exactly
// the zeroed-then-added gradients (also when no position is predicted).

@testable import AttnCore
import Foundation
import Testing

@Suite struct MaskedLanguageModelGradientTests {
  static let cases: [(tied: Bool, dropout: Float, positions: PositionEncoding)] = [
    (true, 0, .learned), (false, 0.1, .rope), (true, 0.2, .sinusoidal),
  ]

  static func shape(_ caseIndex: Int) -> ModelShape {
    let c = cases[caseIndex]
    return ModelShape(
      vocabSize: 7, blockSize: 6, layers: 2, heads: 2, channels: 8, positionEncoding: c.positions,
      tieEmbeddings: c.tied, dropout: c.dropout, task: .maskedLanguageModel(predictedPerSequence: 2))
  }

  // Three whole sequences of T = 5; id 6 stands for [MASK]; -1: no target there.
  static let tokens: [Int32] = [1, 6, 2, 0, 3, 5, 2, 6, 6, 4, 3, 3, 1, 0, 2]
  static let targets: [Int32] = [-1, 4, -1, -1, 0, -1, -1, 1, 5, -1, -1, -1, -1, 2, -1]

  static func context(_ caseIndex: Int) -> DropoutContext {
    DropoutContext(probability: cases[caseIndex].dropout, stepKey: RandomKey(seed: 5, purpose: .dropout).then(3), firstGlobalSample: 1)
  }

  @Test(arguments: 0..<3)
  func everyParameterTensor(caseIndex: Int) {
    let (B, T) = (3, 5)
    let model = GPT(shape: Self.shape(caseIndex), maxBatch: B)
    model.initializeParameters(seed: 7)
    let noise = randomBuffer(model.parameters.count, seed: 99, scale: 0.3)
    for i in 0..<model.parameters.count { model.parameters.pointer[i] += noise.pointer[i] }
    let context = Self.context(caseIndex)
    func loss() -> Double { model.forward(tokens: Self.tokens, targets: Self.targets, B: B, T: T, dropout: context) }
    model.zeroGradients()
    _ = loss()
    model.backward(tokens: Self.tokens, targets: Self.targets, B: B, T: T, lossScale: 1, dropout: context)
    for tensor in model.layout.tensors {
      expectGradientMatches(
        "case \(caseIndex) \(tensor.name)", analytic: model.gradients.pointer + tensor.offset,
        x: model.parameters.pointer + tensor.offset, count: tensor.count, limit: 60, objective: loss)
    }
  }

  /// The loss is the sum over the predicted rows of cross-entropy on the logits a forward without
  /// targets gives for every position, computed here in Double; and the logits of the predicted
  /// rows are those rows, in order.
  @Test func lossIsTheCrossEntropyOfThePredictedRows() {
    let (B, T, V) = (3, 5, 7)
    let model = GPT(shape: Self.shape(0), maxBatch: B)
    model.initializeParameters(seed: 11)
    model.forward(tokens: Self.tokens, targets: nil, B: B, T: T)
    let all = Array(UnsafeBufferPointer(start: model.logits, count: B * T * V))
    var expected = 0.0
    var rows: [Int] = []
    for (i, target) in Self.targets.enumerated() where target >= 0 {
      let row = all[(i * V)..<((i + 1) * V)].map(Double.init)
      let top = row.max()!
      expected += top + log(row.map { exp($0 - top) }.reduce(0, +)) - row[Int(target)]
      rows.append(i)
    }
    let loss = model.forward(tokens: Self.tokens, targets: Self.targets, B: B, T: T)
    #expect(abs(loss - expected) < 1e-5 * expected)
    for (m, i) in rows.enumerated() {
      #expect(Array(UnsafeBufferPointer(start: model.logits + m * V, count: V)) == Array(all[(i * V)..<((i + 1) * V)]))
    }
  }

  /// A position without a target is not predicted: moving a target elsewhere changes the loss,
  /// while the tokens of the unpredicted positions still matter (they are context, both ways).
  @Test func attentionSeesLaterTokensAndUnpredictedRowsAddNothing() {
    let (B, T) = (3, 5)
    let model = GPT(shape: Self.shape(0), maxBatch: B)
    model.initializeParameters(seed: 13)
    let base = model.forward(tokens: Self.tokens, targets: Self.targets, B: B, T: T)
    // The last token of sequence 0 (position 4, predicted) changed: position 1's prediction moves too.
    var onlyFirst = Self.targets.map { _ in Int32(-1) }
    onlyFirst[1] = Self.targets[1]
    let before = model.forward(tokens: Self.tokens, targets: onlyFirst, B: B, T: T)
    var later = Self.tokens
    later[3] = 5
    let after = model.forward(tokens: later, targets: onlyFirst, B: B, T: T)
    #expect(before != after, "a later token does not reach an earlier position: attention is not bidirectional")
    // Sequence 2's unpredicted rows: no target anywhere in it leaves the other sequences' sum.
    var without2 = Self.targets
    without2[13] = -1
    let partial = model.forward(tokens: Self.tokens, targets: without2, B: B, T: T)
    let alone = model.forward(tokens: Self.tokens, targets: Self.targets.enumerated().map { $0.offset == 13 ? $0.element : -1 }, B: B, T: T)
    #expect(abs(partial + alone - base) < 1e-5 * base)
  }

  @Test(arguments: [false, true])
  func writtenGradientsEqualZeroedThenAdded(nothingPredicted: Bool) {
    let (B, T) = (3, 5)
    let model = GPT(shape: Self.shape(1), maxBatch: B, pool: WorkerPool(threads: 2))
    model.initializeParameters(seed: 7)
    let targets = nothingPredicted ? Self.targets.map { _ in Int32(-1) } : Self.targets
    let context = Self.context(1)
    model.zeroGradients()
    model.forward(tokens: Self.tokens, targets: targets, B: B, T: T, dropout: context)
    model.backward(tokens: Self.tokens, targets: targets, B: B, T: T, lossScale: 0.5, dropout: context)
    let zeroedThenAdded = Array(model.gradients.buffer)
    #expect(zeroedThenAdded.allSatisfy { $0 == 0 } == nothingPredicted)
    model.gradients.pointer.update(repeating: .nan, count: model.gradients.count)
    model.forward(tokens: Self.tokens, targets: targets, B: B, T: T, dropout: context)
    model.backward(tokens: Self.tokens, targets: targets, B: B, T: T, lossScale: 0.5, dropout: context, accumulate: false)
    for tensor in model.layout.tensors {
      #expect(Array(model.gradients.buffer)[tensor.range] == zeroedThenAdded[tensor.range], "\(tensor.name)")
    }
  }
}
