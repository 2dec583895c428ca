// The token streams a run trains and evaluates on: the configured files read, checked and tokenized.
// How they are cut into sequences is BatchSampler's (training) and DevWindows' (evaluation).

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

  /// Reads and tokenizes the config's data. The char vocabulary covers every character of the files
  /// read (train and dev), as nanoGPT builds it from the whole input; `vocabulary` (from a run
  /// directory or checkpoint) is used instead when given, so a resumed run keeps its ids. Without a
  /// dev file the text is cut before it is tokenized (at a character; for the byte tokenizer, at a
  /// byte), as nanoGPT's prepare scripts cut it, so no token straddles the cut.
  public static func load(_ config: Config, vocabulary: Tokenizer? = nil) throws -> TextData {
    let data = config.data
    let kind = vocabulary?.kind ?? data.tokenizer.kind
    let trainFile = try SourceFile(data.trainPath, field: "data.train_path", tokenizer: kind)
    let devFile = try data.devPath.map { try SourceFile($0, field: "data.dev_path", tokenizer: kind) }
    let tokenizer: Tokenizer
    switch (vocabulary, data.tokenizer) {
    case (let vocabulary?, _): tokenizer = vocabulary
    case (nil, .char): tokenizer = .characters(of: [trainFile.text ?? "", devFile?.text ?? ""])
    case (nil, .byte): tokenizer = .bytes
    case (nil, .bpe(let path)): tokenizer = Tokenizer(try BytePairEncoding.load(path: path, field: "data.tokenizer"))
    case (nil, .trainedBPE(let size)):
      tokenizer = Tokenizer(try BytePairEncoding.train(on: [trainFile.trainingText(data)], vocabularySize: size))
    }
    if let padded = config.model.vocabSize, padded < tokenizer.vocabSize {
      throw InputError(
        file: config.sourcePath, field: "model.vocab_size",
        problem: "\(padded) is smaller than the \(tokenizer.vocabSize) tokens of the \(tokenizer.kind.rawValue) tokenizer on this data",
        hint: "remove vocab_size or set it to at least \(tokenizer.vocabSize)")
    }
    let train: [Int32]
    let dev: [Int32]
    if let devFile {
      train = try trainFile.tokens(tokenizer)
      dev = try devFile.tokens(tokenizer)
    } else {
      (train, dev) = try trainFile.tokens(tokenizer, cutAt: data.trainFraction)
    }
    // A window needs block_size inputs plus one more token for the last target.
    let needed = config.model.blockSize + 1
    let devSource = data.devPath ?? data.trainPath
    if train.count < needed {
      throw InputError(
        file: data.trainPath, field: "model.block_size",
        problem: "the training split has \(train.count) tokens, fewer than block_size + 1 = \(needed)",
        hint: "use more data or a smaller block_size")
    }
    if dev.count < needed {
      throw InputError(
        file: devSource, field: data.devPath == nil ? "data.train_fraction" : "model.block_size",
        problem: "the dev split has \(dev.count) tokens, fewer than block_size + 1 = \(needed)",
        hint: data.devPath == nil ? "lower train_fraction or use more data" : "use a longer dev file or a smaller block_size")
    }
    return TextData(tokenizer: tokenizer, train: TokenStream(train, name: "\(data.trainPath) (training split)"),
                    dev: TokenStream(dev, name: "\(devSource) (dev split)"))
  }

}

/// A data file's bytes, checked: present, readable, not empty, and UTF-8 when the char or BPE
/// tokenizer will read it. The byte tokenizer takes the bytes as they are (a String would replace
/// invalid UTF-8 with U+FFFD and silently train on other data).
struct SourceFile {
  let path: String
  let bytes: Data
  /// The decoded text, for the char and BPE tokenizers.
  let text: String?

  init(_ path: String, field: String, tokenizer: TokenizerKind) throws {
    self.path = path
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
      throw InputError(file: path, field: field, problem: "no such file")
    }
    guard !isDirectory.boolValue, let bytes = FileManager.default.contents(atPath: path) else {
      throw InputError(file: path, field: field, problem: "cannot read the file (a directory, or no permission)")
    }
    guard !bytes.isEmpty else { throw InputError(file: path, field: field, problem: "the file is empty") }
    self.bytes = bytes
    guard tokenizer != .byte else {
      text = nil
      return
    }
    guard let text = String(validatingUTF8: bytes) else {
      let offset = firstInvalidUTF8Offset(bytes)
      throw InputError(
        file: path, field: field,
        problem: "not valid UTF-8: byte 0x\(String(bytes[offset], radix: 16, uppercase: true)) at offset \(offset)",
        hint: "the \(tokenizer.rawValue) tokenizer reads UTF-8 text; set data.tokenizer to \"byte\" for arbitrary bytes")
    }
    self.text = text
  }

  func tokens(_ tokenizer: Tokenizer) throws -> [Int32] {
    guard let text else { return bytes.map { Int32($0) } }
    return try tokenizer.encode(text, source: path)
  }

  /// The text a tokenizer may learn from: the training split only, never the dev text.
  func trainingText(_ data: DataConfig) -> String {
    guard let text else { return "" }
    guard data.devPath == nil else { return text }
    let scalars = text.unicodeScalars
    return String(scalars[..<scalars.index(scalars.startIndex, offsetBy: Int(Double(scalars.count) * data.trainFraction))])
  }

  /// The tokens of the first `fraction` of the file and of the rest, cut at a character (a byte
  /// for the byte tokenizer) before tokenizing.
  func tokens(_ tokenizer: Tokenizer, cutAt fraction: Double) throws -> (first: [Int32], rest: [Int32]) {
    guard let text else {
      let cut = Int(Double(bytes.count) * fraction)
      return (bytes[..<cut].map { Int32($0) }, bytes[cut...].map { Int32($0) })
    }
    let scalars = text.unicodeScalars
    let cut = scalars.index(scalars.startIndex, offsetBy: Int(Double(scalars.count) * fraction))
    return (
      try tokenizer.encode(String(scalars[..<cut]), source: path), try tokenizer.encode(String(scalars[cut...]), source: path)
    )
  }
}

extension String {
  /// Strict UTF-8 decoding: nil instead of replacement characters.
  init?(validatingUTF8 bytes: Data) {
    guard firstInvalidUTF8Offset(bytes) == bytes.count else { return nil }
    self = String(decoding: bytes, as: UTF8.self)
  }
}

/// The offset of the first byte that does not belong to a valid UTF-8 sequence (bytes.count if none).
func firstInvalidUTF8Offset(_ bytes: Data) -> Int {
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
