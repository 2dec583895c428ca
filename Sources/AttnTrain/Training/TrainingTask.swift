// What a training step computes, by task: a language model reads token windows and predicts every
// next token; a classifier reads whole examples and predicts one label each. The trainer (Trainer.swift)
// runs the loop, the data-parallel step, the optimizer and the checkpoints the same way for both.

import AttnCore
import AttnDist
import AttnFormats

/// A step's work on this rank's share of one micro-batch, and the dev-set evaluation.
protocol TrainingTask: AnyObject {
  /// What one optimizer step's loss is averaged over: tokens, or examples.
  var unitsPerStep: Int { get }
  /// The micro-batch's forward and backward on this rank's share (first global sample
  /// `firstSample`), gradients written or added (`accumulate`); returns the sum of its losses.
  /// Allocates nothing.
  func microStep(
    _ step: Int, _ micro: Int, firstSample: Int, lossScale: Float, dropout: DropoutContext, accumulate: Bool,
    gradientsReady: (Range<Int>) -> Void
  ) throws -> Double
  func evaluate(_ communicator: Communicator) throws -> DevFigures
}

/// What an evaluation during training reports: the dev loss, and a classifier's accuracy.
public struct DevFigures: Sendable {
  public let loss: Double
  public let accuracy: Double?

  /// Better than the best so far: a higher accuracy when there is one, else a lower loss.
  func isBetter(than state: TrainerState) -> Bool {
    if let accuracy { return accuracy > (state.bestDevAccuracy ?? -1) }
    return loss < (state.bestDevLoss ?? .infinity)
  }
}

final class LanguageModelTask: TrainingTask {
  private let model: GPT
  private let data: TextData
  private let plan: BatchPlan
  private let sampler: BatchSampler
  private let evaluator: Evaluator
  private let tokens, targets: UnsafeMutablePointer<Int32>

  init(model: GPT, data: TextData, plan: BatchPlan, config: Config) {
    self.model = model
    self.data = data
    self.plan = plan
    let T = model.shape.blockSize
    sampler = BatchSampler(seed: config.training.seed, sequenceLength: T, tokenCount: data.train.count)
    evaluator = Evaluator(
      model: model, dev: data.dev, bytesPerToken: data.tokenizer.bytesPerToken(), maxTokens: config.training.evalTokens)
    tokens = .allocate(capacity: plan.sequencesPerRank * T)
    targets = .allocate(capacity: plan.sequencesPerRank * T)
  }

  deinit {
    tokens.deallocate()
    targets.deallocate()
  }

  var unitsPerStep: Int { plan.tokensPerStep }

  func microStep(
    _ step: Int, _ micro: Int, firstSample: Int, lossScale: Float, dropout: DropoutContext, accumulate: Bool,
    gradientsReady: (Range<Int>) -> Void
  ) throws -> Double {
    let (B, T) = (plan.sequencesPerRank, model.shape.blockSize)
    try sampler.fill(
      tokens: tokens, targets: targets, from: data.train, vocabularySize: data.tokenizer.vocabSize, step: step,
      microStep: micro, firstSample: firstSample, count: B)
    let loss = model.forward(tokens: tokens, targets: targets, B: B, T: T, dropout: dropout)
    model.backward(
      tokens: tokens, targets: targets, B: B, T: T, lossScale: lossScale, dropout: dropout, accumulate: accumulate,
      gradientsReady: gradientsReady)
    return loss
  }

  func evaluate(_ communicator: Communicator) throws -> DevFigures {
    DevFigures(loss: try evaluator.evaluate(communicator).loss, accuracy: nil)
  }
}

final class ClassificationTask: TrainingTask {
  private let model: GPT
  private let data: ClassificationData
  private let plan: BatchPlan
  private let sampler: EpochSampler
  private let evaluator: ClassificationEvaluator
  private let tokens, lengths, labels: UnsafeMutablePointer<Int32>

  init(model: GPT, data: ClassificationData, plan: BatchPlan, config: Config) {
    self.model = model
    self.data = data
    self.plan = plan
    sampler = EpochSampler(seed: config.training.seed, count: data.train.count)
    evaluator = ClassificationEvaluator(model: model, dev: data.dev, labels: data.labels)
    tokens = .allocate(capacity: plan.sequencesPerRank * model.shape.blockSize)
    lengths = .allocate(capacity: plan.sequencesPerRank)
    labels = .allocate(capacity: plan.sequencesPerRank)
  }

  deinit {
    tokens.deallocate()
    lengths.deallocate()
    labels.deallocate()
  }

  var unitsPerStep: Int { plan.examplesPerStep }

  func microStep(
    _ step: Int, _ micro: Int, firstSample: Int, lossScale: Float, dropout: DropoutContext, accumulate: Bool,
    gradientsReady: (Range<Int>) -> Void
  ) throws -> Double {
    let (B, T) = (plan.sequencesPerRank, model.shape.blockSize)
    // Global sample numbers run through micro-steps and steps, so epochs follow one another.
    let stepStart = (step * plan.microSteps + micro) * plan.globalBatch
    for row in 0..<B {
      let n = sampler.example(globalSample: stepStart + firstSample + row)
      data.train.copy(n, toRow: row, tokens: tokens, lengths: lengths, labels: labels)
    }
    let loss = model.classify(tokens: tokens, lengths: lengths, labels: labels, B: B, T: T, dropout: dropout)
    model.backwardClassifier(
      tokens: tokens, lengths: lengths, labels: labels, B: B, T: T, lossScale: lossScale, dropout: dropout,
      accumulate: accumulate, gradientsReady: gradientsReady)
    return loss
  }

  func evaluate(_ communicator: Communicator) throws -> DevFigures {
    let metrics = try evaluator.evaluate(communicator)
    return DevFigures(loss: metrics.loss, accuracy: metrics.accuracy)
  }
}
