// What the numerics need from a config, in AttnCore's types. The optimizer's settings already are
// one (OptimizerConfig.settings); the model's shape and the schedule are derived here.

import AttnCore

extension Config {
  /// The model for a tokenizer of `vocabSize` ids (padded to model.vocab_size when that is set). A
  /// classifier's class count must be settled (task.num_classes, set from the data's labels).
  public func modelShape(vocabSize: Int) -> ModelShape {
    let modelTask: ModelTask
    switch task.kind {
    case .languageModel: modelTask = .languageModel
    case .maskedLanguageModel: modelTask = .maskedLanguageModel(predictedPerSequence: maskedPerSequence)
    case .classification:
      guard let classes = task.numClasses else { preconditionFailure("task.num_classes is settled when the data is loaded") }
      modelTask = .classifier(ClassifierShape(classes: classes, pooling: pooling, attention: attention, hidden: task.hiddenSize))
    }
    return ModelShape(
      vocabSize: max(vocabSize, model.vocabSize ?? 0), blockSize: model.blockSize, layers: model.nLayer, heads: model.nHead,
      channels: model.nEmbd, positionEncoding: model.positionEncoding,
      tieEmbeddings: model.tieEmbeddings, dropout: Float(model.dropout), task: modelTask)
  }

  /// model.attention, or the task's own.
  public var attention: AttentionKind { model.attention ?? (task.kind == .languageModel ? .causal : .bidirectional) }

  /// A masked language model's predicted positions per window: round(mask_probability x block_size),
  /// at least 1.
  public var maskedPerSequence: Int {
    min(model.blockSize, max(1, Int((task.maskProbability * Double(model.blockSize)).rounded())))
  }

  /// task.pooling, or the natural one for the attention.
  public var pooling: Pooling { task.pooling ?? (attention == .causal ? .last : .mean) }

  public var learningRateSchedule: LearningRateSchedule {
    LearningRateSchedule(
      kind: schedule.kind, peak: optimizer.learningRate, warmupSteps: schedule.warmupSteps,
      decaySteps: decaySteps, minimum: schedule.minLR)
  }
}

extension Config {
  /// This config with `other`'s data section (the files to read now), keeping everything else.
  public func with(dataOf other: Config) -> Config {
    var config = self
    config.data = other.data
    return config
  }
}
