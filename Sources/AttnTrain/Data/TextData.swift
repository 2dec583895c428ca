// The token streams a run trains and evaluates on, with the tokenizer that made them. Training and
// evaluation read prepared shards (PreparedData.swift); `load` encodes the sources in memory, for
// tests and tools. How the streams are cut into sequences is BatchSampler's (training) and
// DevWindows' (evaluation).

import AttnCore
import AttnFormats
import Foundation

public struct TextData: Sendable {
  public let tokenizer: Tokenizer
  public let train: TokenStream
  public let dev: TokenStream

  public init(tokenizer: Tokenizer, train: TokenStream, dev: TokenStream) {
    self.tokenizer = tokenizer
    self.train = train
    self.dev = dev
  }

  /// Reads and tokenizes the config's sources in memory. The char vocabulary covers every character
  /// of the train and dev texts, as nanoGPT builds it from the whole input; `vocabulary` (from a
  /// checkpoint) is used instead when given, so a resumed run keeps its ids.
  public static func load(_ config: Config, vocabulary: Tokenizer? = nil) throws -> TextData {
    let sources = try CorpusSources(config.data, tokenizer: vocabulary?.kind ?? config.data.tokenizer.kind)
    let tokenizer = try vocabulary ?? sources.makeTokenizer(config.data.tokenizer)
    try check(tokenizer, against: config)
    var train: [Int32] = []
    var dev: [Int32] = []
    for unit in sources.units {
      let ids = try sources.encode(unit, tokenizer, threads: ComputeThreads.current)
      if unit.split == .train { train += ids } else { dev += ids }
    }
    let data = TextData(
      tokenizer: tokenizer, train: TokenStream(train, name: "the training split"), dev: TokenStream(dev, name: "the dev split"))
    try data.checkLengths(config)
    return data
  }

  /// The model's vocabulary must hold the tokenizer's.
  static func check(_ tokenizer: Tokenizer, against config: Config) throws {
    if let padded = config.model.vocabSize, padded < tokenizer.vocabSize {
      throw InputError(
        file: config.sourcePath, field: "model.vocab_size",
        problem: "\(padded) is smaller than the \(tokenizer.vocabSize) tokens of the \(tokenizer.kind.rawValue) tokenizer on this data",
        hint: "remove vocab_size or set it to at least \(tokenizer.vocabSize)")
    }
  }

  /// A window needs block_size inputs plus one more token for the last target, in both splits.
  func checkLengths(_ config: Config) throws {
    let needed = config.model.blockSize + 1
    let data = config.data
    let trainSource = data.trainPaths.joined(separator: ", ")
    if train.count < needed {
      throw InputError(
        file: trainSource, field: "model.block_size",
        problem: "the training split has \(train.count) tokens, fewer than block_size + 1 = \(needed)",
        hint: "use more data or a smaller block_size")
    }
    if dev.count < needed {
      let held = data.devPaths.isEmpty
      throw InputError(
        file: held ? trainSource : data.devPaths.joined(separator: ", "), field: held ? "data.train_fraction" : "model.block_size",
        problem: "the dev split has \(dev.count) tokens, fewer than block_size + 1 = \(needed)",
        hint: held ? "lower train_fraction or use more data" : "use a longer dev file or a smaller block_size")
    }
  }
}

extension String {
  /// Strict UTF-8 decoding: nil instead of replacement characters.
  init?(validatingUTF8 bytes: some Collection<UInt8>) {
    guard firstInvalidUTF8Offset(bytes) == bytes.count else { return nil }
    self = String(decoding: bytes, as: UTF8.self)
  }
}

/// The offset of the first byte that does not belong to a valid UTF-8 sequence (bytes.count if none).
func firstInvalidUTF8Offset(_ bytes: some Collection<UInt8>) -> Int {
  var decoder = UTF8()
  var iterator = bytes.makeIterator()
  var offset = 0
  while true {
    switch decoder.decode(&iterator) {
    case .scalarValue(let scalar): offset += UTF8.width(scalar)
    case .emptyInput: return bytes.count
    case .error: return min(offset, bytes.count - 1)
    }
  }
}
