// The settings of a training run: one typed struct per JSON section. Each field's key, default,
// allowed values and meaning are its row in ConfigSchema.swift and nowhere else: `init()` sets every
// field from its row (the zeros below are never seen), parsing reads and range-checks through the
// rows, resolvedJSON() writes through them, and the README's config reference is generated from them.
// Rules that tie fields together are in ConfigValidation.swift.

import AttnCore
import Foundation

/// Which tokenizer a run uses (data.tokenizer): "char", "byte", {"kind": "bpe", "path": FILE} or
/// {"kind": "bpe", "vocab_size": N, "special_tokens": [...]}.
public enum TokenizerSpec: Equatable, Sendable {
  case char
  case byte
  /// A byte-level BPE read from this file (absolute once parsed): a tiktoken ranks file, a Hugging
  /// Face tokenizer.json, or GPT-2's vocab.json with merges.txt beside it.
  case bpe(path: String)
  /// A byte-level BPE of this many ids learned from the training text, kept as the run directory's
  /// tokenizer.json; its special tokens are <|endoftext|> and these (such as "[MASK]", "[CLS]").
  case trainedBPE(vocabularySize: Int, specialTokens: [String] = [])

  public var kind: TokenizerKind {
    switch self {
    case .char: return .char
    case .byte: return .byte
    case .bpe, .trainedBPE: return .bpe
    }
  }
}

public struct ModelConfig: Equatable, Sendable {
  public var nLayer = 0
  public var nHead = 0
  public var nEmbd = 0
  public var blockSize = 0
  public var dropout = 0.0
  public var positionEncoding = PositionEncoding.learned
  public var tieEmbeddings = false
  /// Pads the tokenizer's vocabulary to this size; nil: exactly the tokenizer's vocabulary.
  public var vocabSize: Int?
  /// nil: the task's own (causal for a language model, bidirectional for a classifier).
  public var attention: AttentionKind?

  public init() { ConfigSchema.model.setDefaults(&self) }
}

public struct OptimizerConfig: Equatable, Sendable {
  /// The update rule's own settings, in AttnCore's type, so the optimizer takes them as they are.
  public var settings = OptimizerSettings(kind: .sgd)
  public var learningRate = 0.0
  /// Largest global gradient norm; 0 turns clipping off.
  public var gradClip = 0.0

  public init() { ConfigSchema.optimizer.setDefaults(&self) }
}

public struct ScheduleConfig: Equatable, Sendable {
  public var kind = ScheduleKind.constant
  public var warmupSteps = 0
  /// nil means training.maxSteps (see `Config.decaySteps`).
  public var decaySteps: Int?
  public var minLR = 0.0

  public init() { ConfigSchema.schedule.setDefaults(&self) }
}

public struct TrainingConfig: Equatable, Sendable {
  /// Global sequences per micro-step, summed over all ranks (BatchPlan splits them).
  public var batchSize = 0
  public var gradAccumSteps = 0
  public var maxSteps = 0
  public var seed: UInt64 = 0
  public var evalInterval = 0
  /// nil: the whole dev split.
  public var evalTokens: Int?
  public var logInterval = 0
  public var checkpointInterval = 0
  public var keepCheckpoints = 0
  public var consistencyCheckInterval = 0
  /// The collective watchdog's deadline (CollectiveWatchdog): seconds (0: off), multiple of the step
  /// time, and the longer allowances for the first steps and for evaluation and checkpoints.
  public var deadlineSeconds = 0.0
  public var deadlineStepMultiple = 0.0
  public var deadlineStartupSeconds = 0.0
  public var deadlineSlowWorkSeconds = 0.0
  /// Non-finite steps skipped in a row before training stops.
  public var maxSkippedSteps = 0
  /// nil means the node's cores divided by the ranks on the node.
  public var threads: Int?
  /// Training length in passes over the training examples (classification); nil: max_steps.
  public var epochs: Double?
  /// nil: accuracy for a classifier, loss for a language model.
  public var bestMetric: BestMetric?
  /// Evaluations in a row without a better best_metric after which training stops; nil: never.
  public var patience: Int?
  public var evalEachEpoch = false
  /// A checkpoint (or a run directory: its newest valid checkpoint) whose body a fresh run starts from.
  public var initFrom: String?
  public var gradientBucketMB = 0.0
  public var reduceDuringBackward = false

  public init() { ConfigSchema.training.setDefaults(&self) }
}

/// How source files hold their documents (data.format).
public enum SourceFormat: String, CaseIterable, Sendable {
  /// Each file is one document.
  case text
  /// Each line is a JSON object whose text field (data.text_field) is one document (and, for
  /// classification, whose label field its label).
  case jsonl
  /// Labelled examples, a row each, with a header naming the text and label columns.
  case tsv, csv
}

public struct DataConfig: Equatable, Sendable {
  /// Files or glob patterns, absolute once parsed: a relative path in the file is resolved against
  /// the config's directory.
  public var trainPaths: [String] = []
  /// Empty: the dev split is held out from the training sources (trainFraction).
  public var devPaths: [String] = []
  /// Used only without devPaths.
  public var trainFraction = 0.0
  public var format = SourceFormat.text
  public var textField = ""
  public var tokenizer = TokenizerSpec.char
  /// Where prepared token shards go; nil: the run directory's data/.
  public var preparedDirectory: String?
  /// Source text per token shard, in MiB.
  public var shardMB = 0.0

  public init() { ConfigSchema.data.setDefaults(&self) }
}

public enum TaskKind: String, CaseIterable, Sendable {
  case languageModel = "language_model"
  case maskedLanguageModel = "masked_language_model"
  case classification
}

/// Which end of an example longer than block_size is cut off.
public enum TruncationSide: String, CaseIterable, Sendable { case end, start }

/// How much each class's examples count in a classifier's loss (task.class_weights).
public enum ClassWeights: Equatable, Sendable {
  /// Inversely to the class's share of the training examples: count / (classes * class count), as
  /// scikit-learn's "balanced".
  case balanced
  /// By label; a label not named weighs 1.
  case byLabel([(label: String, weight: Double)])

  public static func == (a: ClassWeights, b: ClassWeights) -> Bool {
    switch (a, b) {
    case (.balanced, .balanced): return true
    case (.byLabel(let x), .byLabel(let y)): return x.map(\.label) == y.map(\.label) && x.map(\.weight) == y.map(\.weight)
    default: return false
    }
  }
}

/// What picks the best checkpoint and decides early stopping (training.best_metric).
public enum BestMetric: String, CaseIterable, Sendable {
  case loss, accuracy
  case macroF1 = "macro_f1"
}

public struct TaskConfig: Equatable, Sendable {
  public var kind = TaskKind.languageModel
  /// The label's column (TSV, CSV) or key (JSONL).
  public var labelField = ""
  /// The labels in id order; nil: the training data's labels, sorted (numerically when all are integers).
  public var labels: [String]?
  /// nil: as many as the labels.
  public var numClasses: Int?
  /// nil: mean for bidirectional attention, last for causal.
  public var pooling: Pooling?
  /// Width of a hidden layer before the class logits; 0 for none.
  public var hiddenSize = 0
  public var truncate = TruncationSide.end
  public var labelSmoothing = 0.0
  /// nil: every class weighs 1.
  public var classWeights: ClassWeights?
  /// Masked language model: the share of each sequence's tokens hidden and predicted.
  public var maskProbability = 0.0

  public init() { ConfigSchema.task.setDefaults(&self) }
}

public struct OutputConfig: Equatable, Sendable {
  /// Absolute once parsed; Config(sourcePath:) derives the default from the config file's name.
  public var runDir = ""

  public init() { ConfigSchema.output.setDefaults(&self) }
}

public struct Config: Equatable, Sendable {
  public var model = ModelConfig()
  public var optimizer = OptimizerConfig()
  public var schedule = ScheduleConfig()
  public var training = TrainingConfig()
  public var data = DataConfig()
  public var task = TaskConfig()
  public var output = OutputConfig()
  /// The config file's path as the user gave it, for messages.
  public var sourcePath: String

  /// Every key at its default, for a config file at `sourcePath` ("" for none): data.train_path
  /// still to be set, output.run_dir runs/<file name without .json> beside the file.
  public init(sourcePath: String) {
    self.sourcePath = sourcePath
    let runName =
      sourcePath.isEmpty ? "run" : URL(fileURLWithPath: sourcePath).deletingPathExtension().lastPathComponent
    output.runDir = resolvePath("runs/\(runName)", against: Self.directory(of: sourcePath))
  }

  /// The step at which a decaying learning rate reaches min_lr: schedule.decay_steps, else
  /// training.max_steps.
  public var decaySteps: Int { schedule.decaySteps ?? training.maxSteps }
}
