// What a run trains on: a language model's token shards or a classifier's labelled examples, and
// how every rank opens them alike.

import AttnDist
import AttnFormats
import Foundation

public enum TrainingData: Sendable {
  case text(TextData)
  case labeled(ClassificationData)

  public var tokenizer: Tokenizer {
    switch self {
    case .text(let data): return data.tokenizer
    case .labeled(let data): return data.tokenizer
    }
  }

  /// The run's data, and the config with what the data settles: a classifier's labels and class
  /// count (explicit in the resolved config and the checkpoints, so eval and predict read ids as
  /// training wrote them), and max_steps from training.epochs. A resumed run keeps the checkpoint's
  /// tokenizer and labels; rank 0 has read them, or made the tokenizer, and the others receive them.
  public static func open(
    _ config: Config, plan: BatchPlan, checkpoint: LoadedCheckpoint?, pretrained: Pretrained? = nil, run: RunDirectory,
    communicator: Communicator, log: RunLog
  ) throws -> (TrainingData, Config) {
    // The tokenizer a resumed run had, or the one its pretrained body reads.
    let tokenizer = checkpoint?.tokenizer ?? pretrained?.checkpoint.tokenizer
    guard config.task.kind == .classification else {
      // The token shards, prepared first when they are missing; a resumed run's must be in the
      // checkpoint's tokenizer (rank 0 has read it and checks).
      let data = try PreparedData.open(
        config, directory: run.preparedDirectory(for: config), tokenizer: tokenizer,
        learnedTokenizerFile: run.learnedTokenizerFile, communicator: communicator, log: log)
      return (.text(data), config)
    }
    var known: ClassificationData?
    if communicator.rank == 0 {
      known = try ClassificationData.load(
        config, vocabulary: tokenizer, labels: checkpoint?.config.task.labels,
        learnedTokenizerFile: run.learnedTokenizerFile, log: log)
    }
    let vocabulary = try communicator.broadcast(known?.tokenizer.vocabularyJSON() ?? "", root: 0)
    let labelList = try communicator.broadcast(known.map { JSONValue.array($0.labels.map { .string($0) }).description } ?? "", root: 0)
    let data = try known ?? ClassificationData.load(
      config, vocabulary: try Tokenizer(vocabularyJSON: vocabulary, source: "rank 0's tokenizer"),
      labels: try JSONObject.strings(JSONValue.parse(Data(labelList.utf8))))
    var settled = config
    settled.task.labels = data.labels
    settled.task.numClasses = data.labels.count
    if let epochs = config.training.epochs {
      // The resolved config records the steps epochs come to, so a config that gives both is what
      // every run writes; a different max_steps is the user's, and epochs overrule it.
      let steps = max(1, Int((epochs * Double(data.train.count) / Double(plan.examplesPerStep)).rounded(.up)))
      if config.training.maxSteps != TrainingConfig().maxSteps && config.training.maxSteps != steps {
        log.warn("\(config.sourcePath): training.max_steps \(config.training.maxSteps) is ignored: training.epochs \(epochs) sets the length, \(steps) steps of \(plan.examplesPerStep) examples")
      }
      settled.training.maxSteps = steps
    }
    return (.labeled(data), settled)
  }
}
