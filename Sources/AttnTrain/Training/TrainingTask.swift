// What a training step computes, by task: a language model reads token windows and predicts every
// next token (a masked one: the tokens hidden in each window); a classifier reads whole examples and
// predicts one label each. The trainer (Trainer.swift)
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
  /// The dev set's figures; `progress` hears (batches done, batches) on the way.
  func evaluate(_ communicator: Communicator, progress: (Int, Int) -> Void) throws -> DevFigures
  /// Whether the step of this 1-based number finishes a pass over the training examples.
  func endsEpoch(step: Int) -> Bool
}

/// What an evaluation during training reports: the dev loss, and a classifier's accuracy and
/// macro-F1.
public struct DevFigures: Sendable {
  public let loss: Double
  public var accuracy: Double?
  public var macroF1: Double?

  public init(loss: Double, accuracy: Double? = nil, macroF1: Double? = nil) {
    self.loss = loss
    self.accuracy = accuracy
    self.macroF1 = macroF1
  }

  /// Strictly better than the best so far by `metric` (the first evaluation always is).
  func isBetter(than state: TrainerState, by metric: BestMetric) -> Bool {
    switch metric {
    case .loss: return loss < (state.bestDevLoss ?? .infinity)
    case .accuracy: return (accuracy ?? -1) > (state.bestDevAccuracy ?? -.infinity)
    case .macroF1: return (macroF1 ?? -1) > (state.bestDevMacroF1 ?? -.infinity)
    }
  }
}

final class LanguageModelTask: TrainingTask {
  private let model: GPT
  private let data: TextData
  private let plan: BatchPlan
  private let sampler: BatchSampler
  private let evaluator: Evaluator
  private let masking: TokenMasking?
  private let tokens, targets, positions: UnsafeMutablePointer<Int32>
  private let activity: RankActivity?

  init(model: GPT, data: TextData, plan: BatchPlan, config: Config, activity: RankActivity?) throws {
    self.activity = activity
    self.model = model
    self.data = data
    self.plan = plan
    let T = model.shape.blockSize
    masking = try TokenMasking(config, tokenizer: data.tokenizer)
    sampler = BatchSampler(seed: config.training.seed, sequenceLength: T, tokenCount: data.train.count)
    evaluator = Evaluator(
      model: model, dev: data.dev, bytesPerToken: data.tokenizer.bytesPerToken(), maxTokens: config.training.evalTokens,
      masking: masking)
    tokens = .allocate(capacity: plan.sequencesPerRank * T)
    targets = .allocate(capacity: plan.sequencesPerRank * T)
    positions = .allocate(capacity: T)
  }

  deinit {
    tokens.deallocate()
    targets.deallocate()
    positions.deallocate()
  }

  /// Tokens predicted in a step: every one, or a masked model's hidden ones.
  var unitsPerStep: Int { masking.map { plan.examplesPerStep * $0.predictedPerSequence } ?? plan.tokensPerStep }

  func microStep(
    _ step: Int, _ micro: Int, firstSample: Int, lossScale: Float, dropout: DropoutContext, accumulate: Bool,
    gradientsReady: (Range<Int>) -> Void
  ) throws -> Double {
    let (B, T) = (plan.sequencesPerRank, model.shape.blockSize)
    try sampler.fill(
      tokens: tokens, targets: targets, from: data.train, vocabularySize: data.tokenizer.vocabSize, step: step,
      microStep: micro, firstSample: firstSample, count: B)
    if let masking {
      masking.apply(rows: B, tokens: tokens, targets: targets, T: T, positions: positions) {
        masking.key(step: step, microStep: micro, globalSample: firstSample + $0)
      }
    }
    activity?.begin(.forward, step: step + 1)
    let loss = model.forward(tokens: tokens, targets: targets, B: B, T: T, dropout: dropout)
    activity?.begin(.backward, step: step + 1)
    model.backward(
      tokens: tokens, targets: targets, B: B, T: T, lossScale: lossScale, dropout: dropout, accumulate: accumulate,
      gradientsReady: gradientsReady)
    return loss
  }

  func evaluate(_ communicator: Communicator, progress: (Int, Int) -> Void) throws -> DevFigures {
    DevFigures(loss: try evaluator.evaluate(communicator, progress: progress).loss)
  }

  /// Windows are drawn at random, not in passes.
  func endsEpoch(step: Int) -> Bool { false }
}

final class ClassificationTask: TrainingTask {
  private let model: GPT
  private let data: ClassificationData
  private let plan: BatchPlan
  private let sampler: EpochSampler
  private let evaluator: ClassificationEvaluator
  private let loss: ClassificationLoss
  private let tokens, lengths, labels: UnsafeMutablePointer<Int32>
  private let activity: RankActivity?

  init(model: GPT, data: ClassificationData, plan: BatchPlan, config: Config, activity: RankActivity?) throws {
    self.activity = activity
    loss = try data.loss(config)
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
    activity?.begin(.forward, step: step + 1)
    let sum = model.classify(tokens: tokens, lengths: lengths, labels: labels, B: B, T: T, loss: loss, dropout: dropout)
    activity?.begin(.backward, step: step + 1)
    model.backwardClassifier(
      tokens: tokens, lengths: lengths, labels: labels, B: B, T: T, loss: loss, lossScale: lossScale, dropout: dropout,
      accumulate: accumulate, gradientsReady: gradientsReady)
    return sum
  }

  func evaluate(_ communicator: Communicator, progress: (Int, Int) -> Void) throws -> DevFigures {
    let metrics = try evaluator.evaluate(communicator, progress: progress)
    return DevFigures(loss: metrics.loss, accuracy: metrics.accuracy, macroF1: metrics.macroF1)
  }

  func endsEpoch(step: Int) -> Bool {
    let (perStep, count) = (plan.examplesPerStep, data.train.count)
    return step * perStep / count > (step - 1) * perStep / count
  }
}
