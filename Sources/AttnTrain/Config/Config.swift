// The settings of a training run: one typed struct per JSON section. The defaults live in the
// initialisers below and nowhere else. ConfigSchema.swift maps each field to its snake_case key,
// ConfigParsing.swift reads a file strictly, ConfigValidation.swift holds the cross-field rules, and
// dev/config-reference.md documents every key for users. PositionEncoding, OptimizerKind and
// ScheduleKind are AttnCore's own enums, so the trainer hands them to the model unconverted.
import AttnCore
import AttnFormats
import Foundation

public enum TokenizerKind: String, CaseIterable, Sendable { case char, byte }

public struct ModelConfig: Equatable, Sendable {
  public var nLayer: Int
  public var nHead: Int
  public var nEmbd: Int
  public var blockSize: Int
  public var dropout: Double
  public var positionEncoding: PositionEncoding
  public var tieEmbeddings: Bool
  /// Pads the tokenizer's vocabulary to this size (as nanoGPT pads GPT-2's 50257 to 50304); the
  /// extra ids never occur in the data. nil: exactly the tokenizer's vocabulary.
  public var vocabSize: Int?

  public init(
    nLayer: Int = 4, nHead: Int = 4, nEmbd: Int = 128, blockSize: Int = 64, dropout: Double = 0,
    positionEncoding: PositionEncoding = .learned, tieEmbeddings: Bool = true, vocabSize: Int? = nil
  ) {
    self.nLayer = nLayer
    self.nHead = nHead
    self.nEmbd = nEmbd
    self.blockSize = blockSize
    self.dropout = dropout
    self.positionEncoding = positionEncoding
    self.tieEmbeddings = tieEmbeddings
    self.vocabSize = vocabSize
  }
}

public struct OptimizerConfig: Equatable, Sendable {
  public var kind: OptimizerKind
  public var learningRate: Double
  public var weightDecay: Double
  public var beta1: Double
  public var beta2: Double
  public var eps: Double
  /// SGD and RMSprop only; Adam and AdamW take their momentum from beta1.
  public var momentum: Double
  /// SGD only, and only with momentum > 0.
  public var nesterov: Bool
  /// RMSprop's smoothing constant for the running mean of squared gradients.
  public var alpha: Double
  /// Maximum global gradient norm; 0 turns clipping off.
  public var gradClip: Double
  /// Whether wte, wpe and lm_head get weight decay. Other weight matrices always do; biases and
  /// LayerNorm parameters never do.
  public var decayEmbeddings: Bool

  public init(
    kind: OptimizerKind = .adamw, learningRate: Double = 1e-3, weightDecay: Double = 0.1,
    beta1: Double = 0.9, beta2: Double = 0.99, eps: Double = 1e-8, momentum: Double = 0,
    nesterov: Bool = false, alpha: Double = 0.99, gradClip: Double = 1.0, decayEmbeddings: Bool = true
  ) {
    self.kind = kind
    self.learningRate = learningRate
    self.weightDecay = weightDecay
    self.beta1 = beta1
    self.beta2 = beta2
    self.eps = eps
    self.momentum = momentum
    self.nesterov = nesterov
    self.alpha = alpha
    self.gradClip = gradClip
    self.decayEmbeddings = decayEmbeddings
  }
}

public struct ScheduleConfig: Equatable, Sendable {
  public var kind: ScheduleKind
  public var warmupSteps: Int
  /// The step, counted from the start with warmup included, at which a decaying rate reaches minLR;
  /// nil means training.maxSteps (see `Config.decaySteps`).
  public var decaySteps: Int?
  public var minLR: Double

  public init(
    kind: ScheduleKind = .cosine, warmupSteps: Int = 100, decaySteps: Int? = nil, minLR: Double = 1e-4
  ) {
    self.kind = kind
    self.warmupSteps = warmupSteps
    self.decaySteps = decaySteps
    self.minLR = minLR
  }
}

public struct TrainingConfig: Equatable, Sendable {
  /// Global samples per micro-step, summed over all ranks (each rank takes its share).
  public var batchSize: Int
  public var gradAccumSteps: Int
  public var maxSteps: Int
  public var seed: UInt64
  /// 0 evaluates only at the end.
  public var evalInterval: Int
  public var logInterval: Int
  /// 0 checkpoints only at the end.
  public var checkpointInterval: Int
  /// How many checkpoints to keep on disk, at least 1.
  public var keepCheckpoints: Int
  /// How often ranks compare a parameter checksum; 0 turns the check off.
  public var consistencyCheckInterval: Int
  /// Compute threads per rank; nil means the node's cores divided by the ranks on the node.
  public var threads: Int?
  /// Gradients are summed over ranks in buckets of about this many MiB.
  public var gradientBucketMB: Double
  /// Whether a communication thread sums each bucket while backward computes the layers below.
  public var reduceDuringBackward: Bool

  public init(
    batchSize: Int = 12, gradAccumSteps: Int = 1, maxSteps: Int = 2000, seed: UInt64 = 1337,
    evalInterval: Int = 250, logInterval: Int = 10, checkpointInterval: Int = 250,
    keepCheckpoints: Int = 3, consistencyCheckInterval: Int = 100, threads: Int? = nil,
    gradientBucketMB: Double = 4, reduceDuringBackward: Bool = true
  ) {
    self.batchSize = batchSize
    self.gradAccumSteps = gradAccumSteps
    self.maxSteps = maxSteps
    self.seed = seed
    self.evalInterval = evalInterval
    self.logInterval = logInterval
    self.checkpointInterval = checkpointInterval
    self.keepCheckpoints = keepCheckpoints
    self.consistencyCheckInterval = consistencyCheckInterval
    self.threads = threads
    self.gradientBucketMB = gradientBucketMB
    self.reduceDuringBackward = reduceDuringBackward
  }
}

public struct DataConfig: Equatable, Sendable {
  /// Absolute once parsed: a relative path in the file is resolved against the config's directory.
  public var trainPath: String
  /// A separate evaluation text; without it the last (1 - trainFraction) of the training text is used.
  public var devPath: String?
  /// Used only without devPath.
  public var trainFraction: Double
  public var tokenizer: TokenizerKind

  public init(
    trainPath: String, devPath: String? = nil, trainFraction: Double = 0.9, tokenizer: TokenizerKind = .char
  ) {
    self.trainPath = trainPath
    self.devPath = devPath
    self.trainFraction = trainFraction
    self.tokenizer = tokenizer
  }
}

public struct OutputConfig: Equatable, Sendable {
  /// Absolute once parsed; defaults to runs/<config file name without .json> beside the config.
  public var runDir: String

  public init(runDir: String) {
    self.runDir = runDir
  }
}

public struct Config: Equatable, Sendable {
  public var model: ModelConfig
  public var optimizer: OptimizerConfig
  public var schedule: ScheduleConfig
  public var training: TrainingConfig
  public var data: DataConfig
  public var output: OutputConfig
  /// The config file's path as the user gave it, for messages.
  public var sourcePath: String

  public init(
    model: ModelConfig = ModelConfig(), optimizer: OptimizerConfig = OptimizerConfig(),
    schedule: ScheduleConfig = ScheduleConfig(), training: TrainingConfig = TrainingConfig(),
    data: DataConfig, output: OutputConfig, sourcePath: String
  ) {
    self.model = model
    self.optimizer = optimizer
    self.schedule = schedule
    self.training = training
    self.data = data
    self.output = output
    self.sourcePath = sourcePath
  }

  /// The steps the learning rate decays over after warmup: schedule.decay_steps, else training.max_steps.
  public var decaySteps: Int { schedule.decaySteps ?? training.maxSteps }
}
