// The numbers that fix a model's buffers. The config layer (AttnTrain) fills this in; AttnCore knows
// nothing about files.

public enum PositionEncoding: String, Sendable, CaseIterable {
  case learned, sinusoidal, rope
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

  public init(
    vocabSize: Int, blockSize: Int, layers: Int, heads: Int, channels: Int,
    positionEncoding: PositionEncoding = .learned, tieEmbeddings: Bool = true, dropout: Float = 0
  ) {
    self.vocabSize = vocabSize
    self.blockSize = blockSize
    self.layers = layers
    self.heads = heads
    self.channels = channels
    self.positionEncoding = positionEncoding
    self.tieEmbeddings = tieEmbeddings
    self.dropout = dropout
  }

  public var headSize: Int { channels / heads }
}
