// The whole model's analytic gradient against central finite differences, for every parameter
// tensor, for each position encoding, tied and untied heads, with dropout on.

@testable import AttnCore
import Testing

@Suite struct ModelGradientTests {
  static let cases: [(PositionEncoding, Bool, Float)] = [
    (.learned, true, 0), (.learned, false, 0.2), (.sinusoidal, true, 0.1), (.rope, false, 0),
  ]

  /// A two-layer model small enough for finite differences, with case `caseIndex`'s position
  /// encoding, head tying and dropout.
  static func shape(_ caseIndex: Int) -> ModelShape {
    let (positions, tied, dropout) = cases[caseIndex]
    return ModelShape(
      vocabSize: 7, blockSize: 6, layers: 2, heads: 2, channels: 8, positionEncoding: positions,
      tieEmbeddings: tied, dropout: dropout)
  }

  @Test(arguments: 0..<4)
  func everyParameterTensor(caseIndex: Int) {
    let (positions, tied, dropout) = Self.cases[caseIndex]
    let shape = Self.shape(caseIndex)
    let (B, T) = (2, 5)
    let model = GPT(shape: shape, maxBatch: B)
    model.initializeParameters(seed: 7)
    // Larger-than-default weights and non-trivial LayerNorm parameters so every path carries signal.
    let noise = randomBuffer(model.parameters.count, seed: 99, scale: 0.3)
    for i in 0..<model.parameters.count { model.parameters.pointer[i] += noise.pointer[i] }
    let tokens: [Int32] = [1, 4, 6, 0, 2, 5, 5, 3, 1, 0]
    let targets: [Int32] = [4, 6, 0, 2, 3, 5, 3, 1, 0, 6]
    let context = DropoutContext(
      probability: dropout, stepKey: RandomKey(seed: 5, purpose: .dropout).then(3), firstGlobalSample: 2)
    func loss() -> Double { model.forward(tokens: tokens, targets: targets, B: B, T: T, dropout: context) }
    model.zeroGradients()
    _ = loss()
    model.backward(tokens: tokens, targets: targets, B: B, T: T, lossScale: 1, dropout: context)
    for tensor in model.layout.tensors {
      expectGradientMatches(
        "\(positions) tied=\(tied) \(tensor.name)", analytic: model.gradients.pointer + tensor.offset,
        x: model.parameters.pointer + tensor.offset, count: tensor.count, limit: 60, objective: loss)
    }
  }

  /// A step's first micro-step writes the gradients instead of adding to them: the same values as
  /// zeroing first, whatever the buffer held before (NaN here, which any element left unwritten, or
  /// read before being written, would carry into the result).
  @Test(arguments: 0..<4)
  func writtenGradientsEqualZeroedThenAdded(caseIndex: Int) {
    let (positions, tied, dropout) = Self.cases[caseIndex]
    let shape = Self.shape(caseIndex)
    let (B, T) = (2, 4)  // T < blockSize: learned positions past T get no gradient and must read 0
    let model = GPT(shape: shape, maxBatch: B, pool: WorkerPool(threads: 2))
    model.initializeParameters(seed: 7)
    let tokens: [Int32] = [1, 4, 6, 0, 2, 5, 5, 3]
    let targets: [Int32] = [4, 6, 0, 2, 3, 5, 3, 1]
    let context = DropoutContext(
      probability: dropout, stepKey: RandomKey(seed: 5, purpose: .dropout).then(3), firstGlobalSample: 2)
    model.zeroGradients()
    model.forward(tokens: tokens, targets: targets, B: B, T: T, dropout: context)
    model.backward(tokens: tokens, targets: targets, B: B, T: T, lossScale: 0.5, dropout: context)
    let zeroedThenAdded = Array(model.gradients.buffer)
    model.gradients.pointer.update(repeating: .nan, count: model.gradients.count)
    model.forward(tokens: tokens, targets: targets, B: B, T: T, dropout: context)
    model.backward(tokens: tokens, targets: targets, B: B, T: T, lossScale: 0.5, dropout: context, accumulate: false)
    let written = Array(model.gradients.buffer)
    for tensor in model.layout.tensors {
      let range = tensor.offset..<(tensor.offset + tensor.count)
      #expect(Array(written[range]) == Array(zeroedThenAdded[range]), "\(positions) tied=\(tied) \(tensor.name)")
    }
  }

  @Test func gradientsAccumulateAcrossMicroSteps() {
    let shape = ModelShape(vocabSize: 5, blockSize: 4, layers: 1, heads: 1, channels: 4)
    let model = GPT(shape: shape, maxBatch: 1)
    model.initializeParameters(seed: 1)
    let tokens: [Int32] = [1, 2, 3, 4]
    let targets: [Int32] = [2, 3, 4, 0]
    model.zeroGradients()
    model.forward(tokens: tokens, targets: targets, B: 1, T: 4)
    model.backward(tokens: tokens, targets: targets, B: 1, T: 4, lossScale: 1)
    let once = Array(model.gradients.buffer)
    model.forward(tokens: tokens, targets: targets, B: 1, T: 4)
    model.backward(tokens: tokens, targets: targets, B: 1, T: 4, lossScale: 1)
    for (a, b) in zip(once, model.gradients.buffer) { #expect(abs(2 * a - b) <= 1e-6 * max(1, abs(b))) }
  }
}

@Suite struct ThreadCountTests {
  /// Work is split among threads by rows, (batch, head) pairs and columns, never inside a sum; only
  /// the sgemms see other shapes (half the rows each), which moves the last bits. So the thread count
  /// may change results by float rounding and no more: 1e-5 relative is ~100 float32 ulps, far below
  /// what a race or a lost share of the work would cause (errors of order 1).
  @Test func resultsDoNotDependOnThreadsBeyondRounding() {
    let shape = ModelShape(
      vocabSize: 13, blockSize: 70, layers: 2, heads: 3, channels: 24, positionEncoding: .rope,
      tieEmbeddings: false, dropout: 0.1)
    let (B, T) = (3, 70)
    let tokens = (0..<(B * T)).map { Int32(($0 * 7 + 3) % 13) }
    let targets = (0..<(B * T)).map { Int32(($0 * 5 + 1) % 13) }
    let context = DropoutContext(probability: 0.1, stepKey: RandomKey(seed: 2, purpose: .dropout), firstGlobalSample: 5)
    var results: [(Double, [Float])] = []
    for threads in [1, 3] {
      let model = GPT(shape: shape, maxBatch: B, pool: WorkerPool(threads: threads))
      model.initializeParameters(seed: 11)
      model.zeroGradients()
      let loss = model.forward(tokens: tokens, targets: targets, B: B, T: T, dropout: context)
      model.backward(tokens: tokens, targets: targets, B: B, T: T, lossScale: 0.01, dropout: context)
      results.append((loss, Array(model.gradients.buffer)))
    }
    #expect(abs(results[0].0 - results[1].0) <= 1e-5 * abs(results[0].0))
    var difference = 0.0
    var norm = 0.0
    for (a, b) in zip(results[0].1, results[1].1) {
      difference += Double(a - b) * Double(a - b)
      norm += Double(a) * Double(a)
    }
    #expect((difference / norm).squareRoot() <= 1e-5, "relative difference \((difference / norm).squareRoot())")
  }

  /// The same thread count repeats itself exactly: what exact resume relies on.
  @Test func sameThreadsRepeatBitForBit() {
    let shape = ModelShape(vocabSize: 13, blockSize: 40, layers: 2, heads: 2, channels: 32, dropout: 0.1)
    let tokens: [Int32] = (0..<160).map { (i: Int) -> Int32 in Int32((i * 7 + 3) % 13) }
    let targets: [Int32] = (0..<160).map { (i: Int) -> Int32 in Int32((i * 5 + 1) % 13) }
    let context = DropoutContext(probability: 0.1, stepKey: RandomKey(seed: 2, purpose: .dropout), firstGlobalSample: 0)
    let pool = WorkerPool(threads: 2)
    var results: [[Float]] = []
    for _ in 0..<2 {
      let model = GPT(shape: shape, maxBatch: 4, pool: pool)
      model.initializeParameters(seed: 5)
      model.zeroGradients()
      model.forward(tokens: tokens, targets: targets, B: 4, T: 40, dropout: context)
      model.backward(tokens: tokens, targets: targets, B: 4, T: 40, lossScale: 0.01, dropout: context)
      results.append(Array(model.gradients.buffer))
    }
    #expect(results[0] == results[1])
  }
}

@Suite struct GradientReadinessTests {
  /// The ranges backward announces cover the gradient buffer exactly once, and each is already final
  /// when announced: what lets a trainer reduce them while backward continues.
  @Test(arguments: [true, false])
  func announcedRangesAreFinalAndCoverTheBuffer(tied: Bool) {
    let shape = ModelShape(vocabSize: 9, blockSize: 6, layers: 3, heads: 2, channels: 8, tieEmbeddings: tied)
    let model = GPT(shape: shape, maxBatch: 2, pool: .serial)
    model.initializeParameters(seed: 3)
    let tokens: [Int32] = [1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 2, 3]
    let targets: [Int32] = [2, 3, 4, 5, 6, 7, 8, 0, 1, 2, 3, 4]
    model.zeroGradients()
    model.forward(tokens: tokens, targets: targets, B: 2, T: 6)
    var snapshots: [(Range<Int>, [Float])] = []
    model.backward(tokens: tokens, targets: targets, B: 2, T: 6, lossScale: 0.1) { range in
      snapshots.append((range, Array(model.gradients.buffer[range])))
    }
    var covered = [Int](repeating: 0, count: model.parameters.count)
    for (range, values) in snapshots {
      for i in range { covered[i] += 1 }
      #expect(values == Array(model.gradients.buffer[range]), "range \(range) changed after it was announced")
    }
    #expect(covered.allSatisfy { $0 == 1 })
    // One range per block's product or LayerNorm (six), so that little is left after the first block.
    #expect(snapshots.count == 6 * shape.layers + 2)
  }
}
