// Text to token ids and back. "char": the sorted unique Unicode scalars of the run's text, as
// nanoGPT's shakespeare_char builds it; "byte": the 256 byte values, for any file. The vocabulary is
// saved as JSON in the run directory and in every checkpoint, so eval and sample decode exactly as
// training encoded.

import AttnFormats
import Foundation

public struct Tokenizer: Equatable, Sendable {
  public let kind: TokenizerKind
  /// The character of each id (char tokenizer only).
  public let characters: [Unicode.Scalar]
  private let ids: [Unicode.Scalar: Int32]

  public var vocabSize: Int { kind == .byte ? 256 : characters.count }

  public static let bytes = Tokenizer(kind: .byte, characters: [])

  public init(kind: TokenizerKind, characters: [Unicode.Scalar]) {
    self.kind = kind
    self.characters = characters
    ids = Dictionary(uniqueKeysWithValues: characters.enumerated().map { ($1, Int32($0)) })
  }

  /// A char vocabulary over every scalar in `texts`.
  public static func characters(of texts: [String]) -> Tokenizer {
    var seen = Set<Unicode.Scalar>()
    for text in texts { seen.formUnion(text.unicodeScalars) }
    return Tokenizer(kind: .char, characters: seen.sorted { $0.value < $1.value })
  }

  /// The ids of `text`; a character outside the vocabulary is an error naming it and where it is.
  public func encode(_ text: String, source: String) throws -> [Int32] {
    switch kind {
    case .byte:
      return text.utf8.map { Int32($0) }
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

  public func decode(_ tokens: some Sequence<Int32>) -> String {
    switch kind {
    case .byte: return String(decoding: tokens.map { UInt8(truncatingIfNeeded: $0) }, as: UTF8.self)
    case .char:
      var text = String.UnicodeScalarView()
      for token in tokens { text.append(characters[Int(token)]) }
      return String(text)
    }
  }

  static func describe(_ scalar: Unicode.Scalar) -> String {
    scalar.properties.isWhitespace || scalar.value < 32
      ? String(format: "U+%04X", scalar.value) : "'\(scalar)' (U+\(String(scalar.value, radix: 16, uppercase: true)))"
  }

  // MARK: - Vocabulary file

  /// `{"kind": "char", "vocab_size": 65, "characters": ["\n", " ", ...]}`: one JSON string per id, in
  /// id order.
  public func vocabularyJSON() -> String {
    var members: [(key: String, value: JSONValue)] = [
      (key: "kind", value: .string(kind.rawValue)), (key: "vocab_size", value: JSONValue(integer: vocabSize)),
    ]
    if kind == .char { members.append((key: "characters", value: .array(characters.map { .string(String($0)) }))) }
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
    let object: JSONObject
    let kind: TokenizerKind
    do {
      object = try JSONObject(JSONValue.parse(Data(vocabularyJSON.utf8)))
      let name = try object.string("kind")
      guard let known = TokenizerKind(rawValue: name) else { throw malformed("unknown kind \"\(name)\"") }
      kind = known
    } catch let error as JSONSyntaxError {
      throw malformed("\(error)")
    } catch let error as JSONFieldError {
      throw malformed("\(error)")
    }
    if kind == .byte {
      self = .bytes
      return
    }
    let strings: [String]
    do {
      strings = try object.strings("characters")
    } catch let error as JSONFieldError {
      throw malformed("\(error)")
    }
    var characters: [Unicode.Scalar] = []
    for string in strings {
      guard string.unicodeScalars.count == 1, let scalar = string.unicodeScalars.first else {
        throw malformed("\(string.debugDescription) is not one character")
      }
      characters.append(scalar)
    }
    guard !characters.isEmpty else { throw malformed("no characters") }
    guard Set(characters).count == characters.count else { throw malformed("a character is listed twice") }
    self.init(kind: .char, characters: characters)
  }
}
