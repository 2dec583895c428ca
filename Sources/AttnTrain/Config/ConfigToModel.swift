// What the numerics need from a config, in AttnCore's types. The optimizer's settings already are
// one (OptimizerConfig.settings); the model's shape and the schedule are derived here.

import AttnCore

extension Config {
  /// The model for a tokenizer of `vocabSize` ids (padded to model.vocab_size when that is set).
  public func modelShape(vocabSize: Int) -> ModelShape {
    ModelShape(
      vocabSize: max(vocabSize, model.vocabSize ?? 0), blockSize: model.blockSize, layers: model.nLayer, heads: model.nHead,
      channels: model.nEmbd, positionEncoding: model.positionEncoding,
      tieEmbeddings: model.tieEmbeddings, dropout: Float(model.dropout))
  }

  public var learningRateSchedule: LearningRateSchedule {
    LearningRateSchedule(
      kind: schedule.kind, peak: optimizer.learningRate, warmupSteps: schedule.warmupSteps,
      decaySteps: decaySteps, minimum: schedule.minLR)
  }
}
