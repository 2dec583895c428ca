// The numbers that fix a model's buffers. The config layer (AttnTrain) fills this in; AttnCore knows
// nothing about files.

public enum PositionEncoding: String, Sendable, CaseIterable {
  case learned, sinusoidal, rope
}

/// Which keys a query sees: those at or before it (a decoder), or every real token of its sequence
/// (an encoder).
public enum AttentionKind: String, Sendable, CaseIterable {
  case causal, bidirectional
}

/// What the model puts out: next-token logits at every position (attending causally), logits for
/// the hidden tokens of a masked sequence (attending both ways, as BERT's pretraining does), or one
/// set of class logits per sequence, from its real tokens pooled.
public enum ModelTask: Equatable, Sendable {
  case languageModel
  /// `predictedPerSequence` of each sequence's tokens are hidden and predicted (what its cost counts).
  case maskedLanguageModel(predictedPerSequence: Int)
  case classifier(ClassifierShape)
}

public struct ClassifierShape: Equatable, Sendable {
  public var classes: Int
  public var pooling: Pooling
  public var attention: AttentionKind
  /// Width of a hidden layer (GELU, then dropout) between the pooled vector and the class logits; 0
  /// for none.
  public var hidden: Int

  public init(classes: Int, pooling: Pooling, attention: AttentionKind, hidden: Int = 0) {
    self.classes = classes
    self.pooling = pooling
    self.attention = attention
    self.hidden = hidden
  }
}

public struct ModelShape: Equatable, Sendable {
  public var vocabSize: Int
  public var blockSize: Int
  public var layers: Int
  public var heads: Int
  public var channels: Int
  public var positionEncoding: PositionEncoding
  public var tieEmbeddings: Bool
  public var dropout: Float
  public var task: ModelTask

  public init(
    vocabSize: Int, blockSize: Int, layers: Int, heads: Int, channels: Int,
    positionEncoding: PositionEncoding = .learned, tieEmbeddings: Bool = true, dropout: Float = 0,
    task: ModelTask = .languageModel
  ) {
    self.vocabSize = vocabSize
    self.blockSize = blockSize
    self.layers = layers
    self.heads = heads
    self.channels = channels
    self.positionEncoding = positionEncoding
    self.tieEmbeddings = tieEmbeddings
    self.dropout = dropout
    self.task = task
  }

  public var headSize: Int { channels / heads }
}

extension ModelShape {
  /// The classifier's shape, nil for a language model.
  public var classifier: ClassifierShape? {
    if case .classifier(let shape) = task { return shape }
    return nil
  }

  public var isMaskedLanguageModel: Bool {
    if case .maskedLanguageModel = task { return true }
    return false
  }

  /// Which keys a query sees.
  public var attention: AttentionKind {
    switch task {
    case .languageModel: return .causal
    case .maskedLanguageModel: return .bidirectional
    case .classifier(let head): return head.attention
    }
  }
}
