// The files a byte-level BPE tokenizer comes in, read as hostile input (every error names the file,
// and the line or field), and the one attn-train writes:
// - a tiktoken ranks file (`gpt2.tiktoken`): a line per token, its bytes in base64, a space and its
//   rank; ranks are ids and merge priorities at once. It names no special tokens: <|endoftext|> gets
//   the id after the last rank, as tiktoken's GPT-2 encoding has it (50256).
// - a Hugging Face `tokenizer.json` with a BPE model and a ByteLevel pre-tokenizer; merges as
//   "a b" strings or ["a", "b"] pairs; special tokens from "added_tokens".
// - GPT-2's original `vocab.json` (token -> id) with `merges.txt` beside it ("#version" line, then
//   "a b" per line, first merge first).
// Vocabulary strings in the JSON forms are in the byte-level alphabet (ByteLevelAlphabet).

import AttnFormats
import Foundation

extension BytePairEncoding {
  /// Reads any of the three forms, told apart by the file: `.tiktoken`, a JSON object whose "model"
  /// is an object (tokenizer.json), or another JSON object (vocab.json, with merges.txt beside it).
  public static func load(path: String, field: String? = nil) throws -> BytePairEncoding {
    guard let data = FileManager.default.contents(atPath: path) else {
      let reason = FileManager.default.fileExists(atPath: path) ? "cannot be read" : "does not exist"
      throw InputError(file: path, field: field, problem: "the tokenizer file \(reason)")
    }
    if path.hasSuffix(".tiktoken") { return try tiktokenRanks(data, path: path) }
    let json: JSONValue
    do {
      json = try JSONValue.parse(data)
    } catch let error as JSONSyntaxError {
      throw InputError(
        file: path, field: field, problem: "not a tokenizer: neither a .tiktoken ranks file nor valid JSON (\(error))")
    }
    // GPT-2's vocab.json has a token "model" too, with an id; tokenizer.json's "model" is an object.
    if case .object(let members) = json, case .object = members.first(where: { $0.key == "model" })?.value {
      return try huggingFace(json, path: path)
    }
    let merges = ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent("merges.txt")
    return try gpt2VocabularyAndMerges(json, vocabularyPath: path, mergesPath: merges)
  }

  // MARK: - tiktoken

  static func tiktokenRanks(_ data: Data, path: String) throws -> BytePairEncoding {
    var tokens: [[UInt8]?] = []
    var lineNumber = 0
    for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
      lineNumber += 1
      if line.isEmpty { continue }
      func fail(_ problem: String) -> InputError {
        InputError(file: path, problem: "line \(lineNumber): \(problem) (a ranks file has \"<base64 token> <rank>\" per line)")
      }
      let fields = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
      guard fields.count == 2, let bytes = Data(base64Encoded: Data(fields[0])), !bytes.isEmpty,
        let rank = Int(String(decoding: fields[1], as: UTF8.self)), rank >= 0, rank < 16_777_216
      else { throw fail("malformed") }
      if rank >= tokens.count { tokens += [[UInt8]?](repeating: nil, count: rank + 1 - tokens.count) }
      guard tokens[rank] == nil else { throw fail("rank \(rank) is given twice") }
      tokens[rank] = Array(bytes)
    }
    guard !tokens.isEmpty else { throw InputError(file: path, problem: "no tokens: a ranks file has \"<base64 token> <rank>\" per line") }
    if let gap = tokens.firstIndex(where: { $0 == nil }) {
      throw InputError(file: path, problem: "no token has rank \(gap); ranks must run 0, 1, 2, ... without gaps")
    }
    let vocabulary = tokens.map { $0! }
    do {
      let merges = try mergesOfRanks(vocabulary)
      let special = [(text: "<|endoftext|>", id: Int32(vocabulary.count))]
      return try BytePairEncoding(
        tokenBytes: vocabulary + [Array("<|endoftext|>".utf8)], merges: merges, specialTokens: special)
    } catch let error as BPEModelError {
      throw InputError(file: path, problem: "\(error)")
    }
  }

  /// The merge that makes each multi-byte token, in rank order: the two parts its bytes end in when
  /// merged by the ranks below its own (how tiktoken's ranks and BPE merges correspond).
  private static func mergesOfRanks(_ tokens: [[UInt8]]) throws -> [(Int32, Int32)] {
    var rankOf: [[UInt8]: Int32] = [:]
    for (rank, bytes) in tokens.enumerated() {
      guard rankOf.updateValue(Int32(rank), forKey: bytes) == nil else {
        throw BPEModelError("ranks \(rankOf[bytes]!) and \(rank) are the same token \(ByteLevelAlphabet.encode(bytes).debugDescription)")
      }
    }
    var merges: [(Int32, Int32)] = []
    for (rank, bytes) in tokens.enumerated() where bytes.count > 1 {
      var parts = bytes.map { [$0] }
      while parts.count > 2 {
        var best = Int32(rank)
        var at = -1
        for k in 0..<(parts.count - 1) {
          if let r = rankOf[parts[k] + parts[k + 1]], r < best {
            best = r
            at = k
          }
        }
        guard at >= 0 else { break }
        parts[at] += parts[at + 1]
        parts.remove(at: at + 1)
      }
      guard parts.count == 2, let left = rankOf[parts[0]], let right = rankOf[parts[1]] else {
        throw BPEModelError("token \(rank) \(ByteLevelAlphabet.encode(bytes).debugDescription) cannot be made from two tokens of lower rank")
      }
      merges.append((left, right))
    }
    return merges
  }

  // MARK: - Hugging Face tokenizer.json

  static func huggingFace(_ json: JSONValue, path: String) throws -> BytePairEncoding {
    func fail(_ field: String?, _ problem: String) -> InputError { InputError(file: path, field: field, problem: problem) }
    do {
      let root = try JSONObject(json)
      let model = try root.object("model")
      let type = try model.string("type")
      guard type == "BPE" else {
        throw fail("model.type", "\"\(type)\" is not supported: attn-train reads byte-level BPE tokenizers (model type \"BPE\")")
      }
      if let normalizer = root["normalizer"], normalizer != .null {
        throw fail("normalizer", "must be null: attn-train's byte-level BPE applies no normalizer")
      }
      let preTokenizer = try root.object("pre_tokenizer")
      guard try preTokenizer.string("type") == "ByteLevel" else {
        throw fail("pre_tokenizer.type", "must be \"ByteLevel\" (GPT-2's pre-tokenizer)")
      }
      if preTokenizer["add_prefix_space"] == .bool(true) {
        throw fail("pre_tokenizer.add_prefix_space", "must be false: GPT-2 encodes text as it is")
      }
      if preTokenizer["use_regex"] == .bool(false) {
        throw fail("pre_tokenizer.use_regex", "must be true: GPT-2 splits text with its pattern first")
      }
      for (key, expected) in [("dropout", JSONValue.null), ("continuing_subword_prefix", .null), ("end_of_word_suffix", .null)] {
        if let value = model[key], value != expected, value != .string("") {
          throw fail("model.\(key)", "must be null: attn-train's byte-level BPE has no \(key.replacingOccurrences(of: "_", with: " "))")
        }
      }
      if model["ignore_merges"] == .bool(true) || model["byte_fallback"] == .bool(true) {
        throw fail("model", "ignore_merges and byte_fallback must be false")
      }
      let vocabulary = try model.object("vocab")
      let merges = try model.value("merges")
      var added: [(text: String, id: Int32)] = []
      if let tokens = root["added_tokens"], tokens != .null {
        guard case .array(let entries) = tokens else { throw fail("added_tokens", "must be an array") }
        for (n, entry) in entries.enumerated() {
          let token = try JSONObject(entry, path: "added_tokens[\(n)]")
          let id = try token.int("id")
          guard (0..<16_777_216).contains(id) else { throw fail("added_tokens[\(n)].id", "\(id) is not a token id") }
          added.append((try token.string("content"), Int32(id)))
        }
      }
      return try build(vocabulary: vocabulary, merges: merges, added: added, path: path, mergesField: "model.merges")
    } catch let error as JSONFieldError {
      throw fail(error.field.isEmpty ? nil : error.field, error.message)
    } catch let error as BPEModelError {
      throw fail(nil, "\(error)")
    }
  }

  // MARK: - GPT-2's vocab.json and merges.txt

  static func gpt2VocabularyAndMerges(_ json: JSONValue, vocabularyPath: String, mergesPath: String) throws
    -> BytePairEncoding
  {
    guard let data = FileManager.default.contents(atPath: mergesPath) else {
      throw InputError(
        file: mergesPath,
        problem: "missing: \(vocabularyPath) is not a tokenizer.json (no \"model\"), so it is read as GPT-2's vocab.json, which needs merges.txt beside it")
    }
    guard let text = String(data: data, encoding: .utf8) else { throw InputError(file: mergesPath, problem: "not valid UTF-8") }
    var merges: [JSONValue] = []
    for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      let line = line.hasSuffix("\r") ? line.dropLast() : line
      if line.isEmpty || (n == 0 && line.hasPrefix("#version")) { continue }
      let parts = line.split(separator: " ", omittingEmptySubsequences: false)
      guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
        throw InputError(file: mergesPath, problem: "line \(n + 1): \(String(line).debugDescription) is not two tokens separated by one space")
      }
      merges.append(.array([.string(String(parts[0])), .string(String(parts[1]))]))
    }
    do {
      let vocabulary = try JSONObject(json)
      // GPT-2's vocab.json lists <|endoftext|> among the tokens; it is special, not text.
      let special = try vocabulary.optionalInt("<|endoftext|>").map { [(text: "<|endoftext|>", id: Int32($0))] } ?? []
      return try build(vocabulary: vocabulary, merges: .array(merges), added: special, path: mergesPath, mergesField: nil)
    } catch let error as JSONFieldError {
      throw InputError(file: vocabularyPath, field: error.field.isEmpty ? nil : error.field, problem: error.message)
    } catch let error as BPEModelError {
      throw InputError(file: vocabularyPath, problem: "\(error)")
    }
  }

  // MARK: - Shared

  /// A model from a byte-level vocabulary (token string -> id), merges ("a b" or ["a", "b"]) and
  /// special tokens, which may or may not also be in the vocabulary.
  private static func build(
    vocabulary: JSONObject, merges: JSONValue, added: [(text: String, id: Int32)], path: String, mergesField: String?
  ) throws -> BytePairEncoding {
    let specialIDs = Dictionary(added.map { ($0.id, $0.text) }, uniquingKeysWith: { a, _ in a })
    var tokenBytes: [[UInt8]?] = []
    var idOfString: [String: Int32] = [:]
    for (string, value) in vocabulary.members {
      guard let id = value.exactInt, (0..<16_777_216).contains(id) else {
        throw JSONFieldError(field: vocabulary.path(of: string), "expected a token id, found \(value.description)")
      }
      if id >= tokenBytes.count { tokenBytes += [[UInt8]?](repeating: nil, count: id + 1 - tokenBytes.count) }
      guard tokenBytes[id] == nil else { throw BPEModelError("id \(id) is given to two tokens") }
      if let text = specialIDs[Int32(id)] {
        tokenBytes[id] = Array(text.utf8)
      } else {
        guard let bytes = ByteLevelAlphabet.decode(string) else {
          throw BPEModelError("token \(string.debugDescription) has a character outside the byte-level alphabet")
        }
        tokenBytes[id] = bytes
      }
      idOfString[string] = Int32(id)
    }
    for (text, id) in added {
      if Int(id) >= tokenBytes.count { tokenBytes += [[UInt8]?](repeating: nil, count: Int(id) + 1 - tokenBytes.count) }
      if tokenBytes[Int(id)] == nil { tokenBytes[Int(id)] = Array(text.utf8) }
    }
    if let gap = tokenBytes.firstIndex(where: { $0 == nil }) {
      throw BPEModelError("no token has id \(gap); ids must run 0, 1, 2, ... without gaps")
    }
    guard case .array(let entries) = merges else { throw BPEModelError("the merges must be an array") }
    var pairs: [(Int32, Int32)] = []
    pairs.reserveCapacity(entries.count)
    for (n, entry) in entries.enumerated() {
      let sides: [String]
      switch entry {
      case .string(let text): sides = text.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
      case .array(let items): sides = items.compactMap { if case .string(let s) = $0 { return s } else { return nil } }
      default: sides = []
      }
      let place = mergesField.map { "\($0)[\(n)]" } ?? "merge \(n + 1)"
      guard sides.count == 2, let left = idOfString[sides[0]], let right = idOfString[sides[1]] else {
        throw BPEModelError("\(place) \(entry.description) is not two tokens of the vocabulary")
      }
      pairs.append((left, right))
    }
    return try BytePairEncoding(tokenBytes: tokenBytes.map { $0! }, merges: pairs, specialTokens: added)
  }

  /// This model as a Hugging Face tokenizer.json (ByteLevel BPE, merges as pairs), which
  /// `tokenizers.Tokenizer.from_file` loads and which `huggingFace(_:path:)` reads back.
  public var huggingFaceJSON: JSONValue {
    let specialIDs = Set(specialTokens.map(\.id))
    let vocabulary = tokenBytes.enumerated().map { id, bytes -> (key: String, value: JSONValue) in
      let text = specialIDs.contains(Int32(id)) ? String(decoding: bytes, as: UTF8.self) : ByteLevelAlphabet.encode(bytes)
      return (key: text, value: JSONValue(integer: id))
    }
    let ordered = merges.sorted { $0.value.rank < $1.value.rank }.map { key, _ -> JSONValue in
      let left = Int(key >> 32)
      let right = Int(key & 0xFFFF_FFFF)
      return .array([.string(ByteLevelAlphabet.encode(tokenBytes[left])), .string(ByteLevelAlphabet.encode(tokenBytes[right]))])
    }
    let byteLevel: JSONValue = .object([
      (key: "type", value: .string("ByteLevel")), (key: "add_prefix_space", value: .bool(false)),
      (key: "trim_offsets", value: .bool(true)), (key: "use_regex", value: .bool(true)),
    ])
    let added = specialTokens.map { token -> JSONValue in
      .object([
        (key: "id", value: JSONValue(integer: Int(token.id))), (key: "content", value: .string(token.text)),
        (key: "single_word", value: .bool(false)), (key: "lstrip", value: .bool(false)), (key: "rstrip", value: .bool(false)),
        (key: "normalized", value: .bool(false)), (key: "special", value: .bool(true)),
      ])
    }
    return .object([
      (key: "version", value: .string("1.0")), (key: "truncation", value: .null), (key: "padding", value: .null),
      (key: "added_tokens", value: .array(added)), (key: "normalizer", value: .null), (key: "pre_tokenizer", value: byteLevel),
      (key: "post_processor", value: .null), (key: "decoder", value: byteLevel),
      (key: "model", value: .object([
        (key: "type", value: .string("BPE")), (key: "dropout", value: .null), (key: "unk_token", value: .null),
        (key: "continuing_subword_prefix", value: .null), (key: "end_of_word_suffix", value: .null),
        (key: "fuse_unk", value: .bool(false)), (key: "byte_fallback", value: .bool(false)),
        (key: "ignore_merges", value: .bool(false)), (key: "vocab", value: .object(vocabulary)),
        (key: "merges", value: .array(ordered)),
      ])),
    ])
  }
}
