// What the numerics need from a config, in AttnCore's types.

import AttnCore

extension Config {
  /// The model for a tokenizer of `vocabSize` ids (padded to model.vocab_size when that is set).
  public func modelShape(vocabSize: Int) -> ModelShape {
    ModelShape(
      vocabSize: max(vocabSize, model.vocabSize ?? 0), blockSize: model.blockSize, layers: model.nLayer, heads: model.nHead,
      channels: model.nEmbd, positionEncoding: model.positionEncoding,
      tieEmbeddings: model.tieEmbeddings, dropout: Float(model.dropout))
  }

  public var optimizerSettings: OptimizerSettings {
    OptimizerSettings(
      kind: optimizer.kind, weightDecay: Float(optimizer.weightDecay), beta1: Float(optimizer.beta1),
      beta2: Float(optimizer.beta2), eps: Float(optimizer.eps), momentum: Float(optimizer.momentum),
      nesterov: optimizer.nesterov, alpha: Float(optimizer.alpha),
      decayEmbeddings: optimizer.decayEmbeddings)
  }

  public var learningRateSchedule: LearningRateSchedule {
    LearningRateSchedule(
      kind: schedule.kind, peak: optimizer.learningRate, warmupSteps: schedule.warmupSteps,
      decaySteps: decaySteps, minimum: schedule.minLR)
  }
}
