// Text to token ids and back. "char": the sorted unique Unicode scalars of the run's text, as
// nanoGPT's shakespeare_char builds it; "byte": the 256 byte values, for any file; "bpe": a
// byte-level BPE read from a file (BPE/: GPT-2's, or any tokenizer.json of that kind). The whole
// tokenizer is saved as JSON in the run directory and in every checkpoint (vocab.json), so eval and
// sample decode exactly as training encoded, without the original file.

import AttnCore
import AttnFormats
import Foundation

public enum TokenizerKind: String, CaseIterable, Sendable { case char, byte, bpe }

public struct Tokenizer: Equatable, Sendable {
  public let kind: TokenizerKind
  /// The character of each id (char tokenizer only).
  public let characters: [Unicode.Scalar]
  private let ids: [Unicode.Scalar: Int32]
  /// The byte-level BPE model (bpe only); tokenizers compare equal when their models do.
  public let bytePairEncoding: BytePairEncoding?

  public var vocabSize: Int {
    switch kind {
    case .char: return characters.count
    case .byte: return 256
    case .bpe: return bytePairEncoding!.vocabSize
    }
  }

  public static let bytes = Tokenizer(kind: .byte, characters: [], bytePairEncoding: nil)

  private init(kind: TokenizerKind, characters: [Unicode.Scalar], bytePairEncoding: BytePairEncoding?) {
    self.kind = kind
    self.characters = characters
    self.bytePairEncoding = bytePairEncoding
    ids = Dictionary(uniqueKeysWithValues: characters.enumerated().map { ($1, Int32($0)) })
  }

  public init(characters: [Unicode.Scalar]) { self.init(kind: .char, characters: characters, bytePairEncoding: nil) }

  public init(_ bytePairEncoding: BytePairEncoding) { self.init(kind: .bpe, characters: [], bytePairEncoding: bytePairEncoding) }

  /// A char vocabulary over every scalar in `texts`.
  public static func characters(of texts: [String]) -> Tokenizer {
    var seen = Set<Unicode.Scalar>()
    for text in texts { seen.formUnion(text.unicodeScalars) }
    return Tokenizer(characters: seen.sorted { $0.value < $1.value })
  }

  /// The id that separates documents, when the vocabulary has one (<|endoftext|>).
  public var endOfText: Int32? { bytePairEncoding?.endOfText }

  /// The id of a special token ("[CLS]"), when the vocabulary has it.
  public func specialID(_ text: String) -> Int32? { bytePairEncoding?.specialTokens.first { $0.text == text }?.id }

  /// The ids of `text`; a character outside the vocabulary is an error naming it and where it is.
  public func encode(_ text: String, source: String) throws -> [Int32] {
    switch kind {
    case .byte:
      return text.utf8.map { Int32($0) }
    case .bpe:
      // On the threads the rank computes with: the ids are one thread's (ParallelEncoding.swift).
      var text = text
      return text.withUTF8 { bytePairEncoding!.encode($0, threads: ComputeThreads.current) }
    case .char:
      var result: [Int32] = []
      result.reserveCapacity(text.unicodeScalars.count)
      for (offset, scalar) in text.unicodeScalars.enumerated() {
        guard let id = ids[scalar] else {
          throw InputError(
            file: source,
            problem: "character \(Self.describe(scalar)) at character \(offset) is not in the vocabulary",
            hint: "the char tokenizer only knows the \(characters.count) characters of the training data")
        }
        result.append(id)
      }
      return result
    }
  }

  /// The bytes of the text the ids stand for (ids outside the vocabulary are skipped).
  public func decodeBytes(_ tokens: some Sequence<Int32>) -> [UInt8] {
    switch kind {
    case .byte: return tokens.map { UInt8(truncatingIfNeeded: $0) }
    case .bpe: return bytePairEncoding!.decode(tokens)
    case .char:
      var text = String.UnicodeScalarView()
      for token in tokens where characters.indices.contains(Int(token)) { text.append(characters[Int(token)]) }
      return Array(String(text).utf8)
    }
  }

  /// The text of the ids; bytes that are not valid UTF-8 become U+FFFD.
  public func decode(_ tokens: some Sequence<Int32>) -> String {
    String(decoding: decodeBytes(tokens), as: UTF8.self)
  }

  /// How many bytes of the original text each id stands for: what "bits per byte" divides by, so
  /// that losses compare across tokenizers.
  public func bytesPerToken() -> [Int32] {
    (0..<vocabSize).map { Int32(decodeBytes([Int32($0)]).count) }
  }

  static func describe(_ scalar: Unicode.Scalar) -> String {
    scalar.properties.isWhitespace || scalar.value < 32
      ? String(format: "U+%04X", scalar.value) : "'\(scalar)' (U+\(String(scalar.value, radix: 16, uppercase: true)))"
  }

  // MARK: - Vocabulary file

  /// char: `{"kind": "char", "vocab_size": 65, "characters": ["\n", " ", ...]}`, one JSON string per
  /// id, in id order; byte: `{"kind": "byte", "vocab_size": 256}`; bpe: `{"kind": "bpe",
  /// "vocab_size": 50257, "tokenizer": {...}}` with the whole Hugging Face tokenizer.json inside.
  public func vocabularyJSON() -> String {
    var members: [(key: String, value: JSONValue)] = [
      (key: "kind", value: .string(kind.rawValue)), (key: "vocab_size", value: JSONValue(integer: vocabSize)),
    ]
    switch kind {
    case .char: members.append((key: "characters", value: .array(characters.map { .string(String($0)) })))
    case .byte: break
    case .bpe: members.append((key: "tokenizer", value: bytePairEncoding!.huggingFaceJSON))
    }
    return JSONValue.object(members).description + "\n"
  }

  public static func load(vocabularyFile path: String) throws -> Tokenizer {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw InputError(file: path, problem: "cannot read the vocabulary file")
    }
    return try Tokenizer(vocabularyJSON: String(decoding: data, as: UTF8.self), source: path)
  }

  /// Reads what vocabularyJSON() wrote, as hostile input: every field checked, nothing trusted.
  public init(vocabularyJSON: String, source: String) throws {
    func malformed(_ problem: String) -> InputError {
      InputError(file: source, problem: "not a vocabulary file written by attn-train: \(problem)")
    }
    do {
      let object = try JSONObject(JSONValue.parse(Data(vocabularyJSON.utf8)))
      let name = try object.string("kind")
      guard let kind = TokenizerKind(rawValue: name) else { throw malformed("unknown kind \"\(name)\"") }
      switch kind {
      case .byte:
        self = .bytes
      case .bpe:
        self.init(try BytePairEncoding.huggingFace(object.value("tokenizer"), path: source))
      case .char:
        var characters: [Unicode.Scalar] = []
        for string in try object.strings("characters") {
          guard string.unicodeScalars.count == 1, let scalar = string.unicodeScalars.first else {
            throw malformed("\(string.debugDescription) is not one character")
          }
          characters.append(scalar)
        }
        guard !characters.isEmpty else { throw malformed("no characters") }
        guard Set(characters).count == characters.count else { throw malformed("a character is listed twice") }
        self.init(characters: characters)
      }
      guard try object.optionalInt("vocab_size") ?? vocabSize == vocabSize else {
        throw malformed("vocab_size does not match the vocabulary")
      }
    } catch let error as JSONSyntaxError {
      throw malformed("\(error)")
    } catch let error as JSONFieldError {
      throw malformed("\(error)")
    }
  }
}
