// The rung of the test ladder between gradient checks and real training: with Configs/tiny.json's
// model and optimizer, repeated steps on ONE fixed batch of Tiny Shakespeare must memorise it,
// driving the mean loss on that batch below 0.1. A model whose forward, backward or optimizer is
// subtly wrong plateaus far above that (uniform guessing over 65 characters is ln 65 = 4.17).
import AttnCore
import AttnTrain
import Foundation
import Testing

@Suite struct OverfitTests {
  static let tinyConfig = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Configs/tiny.json").path

  /// Measured here: 89 to 92 steps (about 4.5 s on 2 shared cores). The bound, over three times that,
  /// leaves room for other BLAS rounding or thread counts; a real learning bug stalls far above 0.1
  /// rather than arriving a little late.
  static let stepBound = 300
  static let targetLoss = 0.1

  @Test func tinyConfigOverfitsOneBatch() throws {
    let config = try Config.load(path: Self.tinyConfig)
    #expect(config.model.dropout == 0, "memorising one batch needs no dropout noise")
    let data = try TextData.load(config)
    let B = config.training.batchSize
    let T = config.model.blockSize
    let model = GPT(shape: config.modelShape(vocabSize: data.tokenizer.vocabSize), maxBatch: B)
    model.initializeParameters(seed: config.training.seed)
    let optimizer = Optimizer(settings: config.optimizer.settings, layout: model.layout)

    // The batch the trainer would draw at step 0, fixed for the whole test.
    let sampler = BatchSampler(seed: config.training.seed, sequenceLength: T, tokenCount: data.train.count)
    var tokens = [Int32](repeating: 0, count: B * T)
    var targets = [Int32](repeating: 0, count: B * T)
    tokens.withUnsafeMutableBufferPointer { t in
      targets.withUnsafeMutableBufferPointer { y in
        try! sampler.fill(
          tokens: t.baseAddress!, targets: y.baseAddress!, from: data.train, vocabularySize: data.tokenizer.vocabSize,
          step: 0, microStep: 0, firstSample: 0, count: B)
      }
    }

    let learningRate = Float(config.optimizer.learningRate)
    let clip = Float(config.optimizer.gradClip)
    let scale = Float(1.0 / Double(B * T))
    var losses: [Double] = []
    var reachedAt: Int?
    for step in 0...Self.stepBound {
      // The loss of the current weights on the batch; stop as soon as it is low enough.
      let loss = model.forward(tokens: tokens, targets: targets, B: B, T: T) / Double(B * T)
      losses.append(loss)
      #expect(loss.isFinite, "step \(step)")
      if loss < Self.targetLoss {
        reachedAt = step
        break
      }
      if step == Self.stepBound { break }
      model.zeroGradients()
      model.backward(tokens: tokens, targets: targets, B: B, T: T, lossScale: scale)
      let clipping = gradientClipping(model.gradients, maxNorm: clip)
      optimizer.step(
        parameters: model.parameters, gradients: model.gradients, learningRate: learningRate,
        gradientScale: clipping.scale)
    }
    let trace = stride(from: 0, to: losses.count, by: 25).map { String(format: "%d: %.3f", $0, losses[$0]) }
    let steps = reachedAt.map(String.init) ?? "more than \(Self.stepBound)"
    print("overfit one batch (tiny.json, B=\(B), T=\(T)): loss < \(Self.targetLoss) after \(steps) steps; "
      + trace.joined(separator: ", "))
    // The starting loss is that of a freshly initialised model: near uniform over the vocabulary.
    #expect(abs(losses[0] - log(Double(data.tokenizer.vocabSize))) < 0.5)
    #expect(reachedAt != nil, "mean loss on one batch still \(losses.last!) after \(Self.stepBound) steps")
  }
}
