// Byte-level BPE against the references: GPT-2's ids from attn-train equal tiktoken's (an
// Encoding built from the same ranks file, no network) on Tiny Shakespeare, SST-2 and a file of
// adversarial text, and decoding gives the bytes back; the three file forms read to the same model;
// and every malformed tokenizer file is refused with the file and the place named.

import AttnFormats
import Foundation
import TestProcesses
import Testing

@testable import AttnTrain

@Suite struct BytePairEncodingTests {
  static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()
  static let ranksFile = repository.appendingPathComponent("data/tokenizers/gpt2.tiktoken").path
  static let texts = [
    "data/tinyshakespeare/input.txt", "data/sst2/dev.tsv", "data/sst2/train.tsv",
    "Tests/AttnTrainTests/Fixtures/adversarial.txt",
  ].map { repository.appendingPathComponent($0).path }
  static let gpt2 = Result { try BytePairEncoding.load(path: ranksFile) }

  static let tiktokenAvailable = (try? python3("import tiktoken", [], timeout: 60)) != nil

  /// tiktoken's ids of each file, written by Python as little-endian int32 beside `directory`.
  static func tiktokenIDs(_ files: [String], directory: String) throws -> [[Int32]] {
    let script = """
      import sys, tiktoken, tiktoken.load
      from tiktoken_ext.openai_public import r50k_pat_str
      ranks = tiktoken.load.load_tiktoken_bpe(sys.argv[1])
      enc = tiktoken.Encoding(name="gpt2-file", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                              special_tokens={"<|endoftext|>": len(ranks)})
      import array
      for n, path in enumerate(sys.argv[3:]):
          ids = enc.encode_ordinary(open(path, encoding="utf-8", newline="").read())
          with open(f"{sys.argv[2]}/{n}.ids", "wb") as f:
              array.array("i", ids).tofile(f)
      """
    _ = try python3(script, [ranksFile, directory] + files, timeout: 300)
    return try files.indices.map { n in
      let data = try Data(contentsOf: URL(fileURLWithPath: "\(directory)/\(n).ids"))
      return data.withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) }
    }
  }

  @Test(.enabled(if: tiktokenAvailable, "Python cannot import tiktoken (launch/setup.sh --python installs it)"))
  func gpt2IdsEqualTiktokensAndDecodeToTheSameBytes() throws {
    let bpe = try Self.gpt2.get()
    let directory = NSTemporaryDirectory() + "attn-bpe-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? removeTree(directory) }
    let expected = try Self.tiktokenIDs(Self.texts, directory: directory)
    for (file, reference) in zip(Self.texts, expected) {
      let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
      var ids: [Int32] = []
      bytes.withUnsafeBytes { bpe.encode($0.bindMemory(to: UInt8.self), into: &ids) }
      let firstDifference = zip(ids, reference).enumerated().first { $1.0 != $1.1 }?.offset
      #expect(ids == reference, "\(file): \(ids.count) ids against tiktoken's \(reference.count); first difference at \(String(describing: firstDifference))")
      #expect(bpe.decode(ids) == Array(bytes), "\(file): decoding does not give the bytes back")
    }
  }

  static let tokenizersAvailable = (try? python3("import tokenizers", [], timeout: 60)) != nil

  /// Hugging Face's ids of each file under the tokenizer.json at `tokenizer`, as little-endian int32.
  static func huggingFaceIDs(_ tokenizer: String, _ files: [String], directory: String) throws -> [[Int32]] {
    let script = """
      import sys, array
      from tokenizers import Tokenizer
      tok = Tokenizer.from_file(sys.argv[1])
      for n, path in enumerate(sys.argv[3:]):
          ids = tok.encode(open(path, encoding="utf-8", newline="").read()).ids
          with open(f"{sys.argv[2]}/{n}.hf", "wb") as f:
              array.array("i", ids).tofile(f)
      """
    _ = try python3(script, [tokenizer, directory] + files, timeout: 300)
    return try files.indices.map { n in
      let data = try Data(contentsOf: URL(fileURLWithPath: "\(directory)/\(n).hf"))
      return data.withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) }
    }
  }

  static func expectSameIDs(_ bpe: BytePairEncoding, _ reference: [[Int32]], _ files: [String], _ who: String) throws {
    for (file, expected) in zip(files, reference) {
      let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
      var ids: [Int32] = []
      bytes.withUnsafeBytes { bpe.encode($0.bindMemory(to: UInt8.self), into: &ids) }
      let first = zip(ids, expected).enumerated().first { $1.0 != $1.1 }?.offset
      #expect(ids == expected, "\(file): \(ids.count) ids against \(who)'s \(expected.count); first difference at \(String(describing: first))")
    }
  }

  /// The tokenizer.json attn-train learns loads in Hugging Face `tokenizers`, which encodes every
  /// text to the ids attn-train gives it.
  @Test(.enabled(if: tokenizersAvailable, "Python cannot import tokenizers (launch/setup.sh --python installs it)"))
  func aLearnedTokenizerEncodesAlikeInHuggingFace() throws {
    let directory = NSTemporaryDirectory() + "attn-bpe-learned-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? removeTree(directory) }
    let text = try String(contentsOfFile: Self.texts[0], encoding: .utf8)
    let bpe = try BytePairEncoding.train(on: [text], vocabularySize: 1000)
    #expect(bpe.vocabSize == 1000)
    #expect(bpe.endOfText == 999)
    let file = directory + "/tokenizer.json"
    try Data(bpe.huggingFaceJSON.prettyPrinted().utf8).write(to: URL(fileURLWithPath: file))
    let files = [Self.texts[0], Self.texts[1], Self.texts[3]]
    try Self.expectSameIDs(bpe, Self.huggingFaceIDs(file, files, directory: directory), files, "Hugging Face")
    // The merges do their work: a thousand ids learned from Shakespeare give it about 2.4 bytes per
    // token (measured); bytes alone would be 1.
    #expect(bpe.encode(text).count * 2 < text.utf8.count)
  }

  /// A tokenizer.json that Hugging Face's own BpeTrainer wrote (ByteLevel, 1000 ids) loads in
  /// attn-train and encodes every text to Hugging Face's ids.
  @Test(.enabled(if: tokenizersAvailable, "Python cannot import tokenizers (launch/setup.sh --python installs it)"))
  func aHuggingFaceTrainedTokenizerEncodesAlikeHere() throws {
    let directory = NSTemporaryDirectory() + "attn-bpe-hf-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? removeTree(directory) }
    let file = directory + "/tokenizer.json"
    let script = """
      import sys
      from tokenizers import Tokenizer, models, pre_tokenizers, trainers, decoders
      tok = Tokenizer(models.BPE())
      tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
      tok.decoder = decoders.ByteLevel()
      trainer = trainers.BpeTrainer(vocab_size=1000, special_tokens=["<|endoftext|>"], show_progress=False,
                                    initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
      tok.train([sys.argv[2]], trainer)
      tok.save(sys.argv[1])
      """
    _ = try python3(script, [file, Self.texts[0]], timeout: 300)
    let bpe = try BytePairEncoding.load(path: file)
    #expect(bpe.vocabSize == 1000)
    #expect(bpe.endOfText == 0)
    let files = [Self.texts[0], Self.texts[1], Self.texts[3]]
    try Self.expectSameIDs(bpe, Self.huggingFaceIDs(file, files, directory: directory), files, "Hugging Face")
  }

  /// Encoding on several threads cuts the text only where a piece starts whatever follows, so the
  /// ids are one thread's; the cuts are really made (several parts).
  @Test func encodingOnThreadsGivesTheIdsOfOneThread() throws {
    let bpe = try Self.gpt2.get()
    for file in [Self.texts[0], Self.texts[2]] {
      let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
      try bytes.withUnsafeBytes { raw in
        let text = raw.bindMemory(to: UInt8.self)
        var single: [Int32] = []
        bpe.encode(text, into: &single)
        for threads in [2, 3, 7] {
          #expect(BytePairEncoding.cutPoints(text, parts: threads).count == threads + 1, "\(file): cuts for \(threads)")
          #expect(bpe.encode(text, threads: threads) == single, "\(file) on \(threads) threads")
        }
        _ = try #require(single.count > 0)
      }
    }
  }

  @Test func theGPT2VocabularyHasItsKnownShape() throws {
    let bpe = try Self.gpt2.get()
    #expect(bpe.vocabSize == 50257)
    #expect(bpe.endOfText == 50256)
    #expect(bpe.merges.count == 50000)
    // Two ids tiktoken documents for GPT-2: "hello" is one token, " world" another.
    #expect(bpe.encode("hello world") == [31373, 995])
  }

  /// The model written as tokenizer.json reads back to the same vocabulary and merges, and the
  /// same model comes from GPT-2's vocab.json and merges.txt written from it.
  @Test func theThreeFileFormsReadToTheSameModel() throws {
    let bpe = try Self.gpt2.get()
    let directory = NSTemporaryDirectory() + "attn-bpe-forms-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? removeTree(directory) }
    let json = bpe.huggingFaceJSON
    try Data(json.description.utf8).write(to: URL(fileURLWithPath: directory + "/tokenizer.json"))
    let fromJSON = try BytePairEncoding.load(path: directory + "/tokenizer.json")
    #expect(fromJSON.tokenBytes == bpe.tokenBytes)
    #expect(fromJSON.merges.mapValues(\.rank) == bpe.merges.mapValues(\.rank))

    let model = try JSONObject(json).object("model")
    try Data(model["vocab"]!.description.utf8).write(to: URL(fileURLWithPath: directory + "/vocab.json"))
    guard case .array(let merges) = model["merges"]! else { Issue.record("merges are not an array"); return }
    let lines = merges.map { merge -> String in
      guard case .array(let sides) = merge, case .string(let a) = sides[0], case .string(let b) = sides[1] else { return "" }
      return "\(a) \(b)"
    }
    try Data(("#version: 0.2\n" + lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: directory + "/merges.txt"))
    let fromOriginal = try BytePairEncoding.load(path: directory + "/vocab.json")
    #expect(fromOriginal.tokenBytes == bpe.tokenBytes)
    #expect(fromOriginal.merges.mapValues(\.rank) == bpe.merges.mapValues(\.rank))
    #expect(fromOriginal.endOfText == 50256)
  }

  /// A bad file, what it holds, and the phrases its error must contain.
  struct BadFile: Sendable, CustomTestStringConvertible {
    let label: String
    let name: String
    let contents: String
    let fragments: [String]
    var testDescription: String { label }
  }

  static let validHF = #"""
    {"model": {"type": "BPE", "vocab": VOCAB, "merges": MERGES},
     "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}, "normalizer": null}
    """#
  static var byteVocabulary: String {
    "{" + (0..<256).map { "\(JSONValue.string(String(ByteLevelAlphabet.characters[$0])).description): \($0)" }.joined(separator: ", ")
  }

  static let badFiles: [BadFile] = [
    BadFile(label: "duplicate rank", name: "x.tiktoken", contents: "IQ== 0\nIg== 0\n", fragments: ["line 2", "rank 0 is given twice"]),
    BadFile(label: "rank gap", name: "x.tiktoken", contents: "IQ== 0\nIg== 2\n", fragments: ["no token has rank 1"]),
    BadFile(label: "malformed ranks line", name: "x.tiktoken", contents: "IQ== 0\nnot base64!\n", fragments: ["line 2", "malformed"]),
    BadFile(label: "unsupported model", name: "tokenizer.json",
            contents: #"{"model": {"type": "WordPiece", "vocab": {}}, "pre_tokenizer": null}"#,
            fragments: ["model.type", "\"WordPiece\" is not supported", "BPE"]),
    BadFile(label: "missing pre-tokenizer", name: "tokenizer.json",
            contents: #"{"model": {"type": "BPE", "vocab": {}, "merges": []}}"#, fragments: ["pre_tokenizer", "missing"]),
    BadFile(label: "not JSON", name: "tokenizer.json", contents: "{model", fragments: ["not a tokenizer", "line 1"]),
    BadFile(label: "merge of unknown tokens", name: "tokenizer.json",
            contents: validHF.replacingOccurrences(of: "VOCAB", with: byteVocabulary + "}").replacingOccurrences(of: "MERGES", with: #"["Ġ zz"]"#),
            fragments: ["model.merges[0]", "not two tokens of the vocabulary"]),
    BadFile(label: "a byte without a token", name: "tokenizer.json",
            contents: validHF.replacingOccurrences(of: "VOCAB", with: #"{"a": 0}"#).replacingOccurrences(of: "MERGES", with: "[]"),
            fragments: ["byte 0x0 has no token"]),
  ]

  @Test(arguments: badFiles) func aMalformedTokenizerFileIsRefusedWithItsPlace(_ bad: BadFile) throws {
    let directory = NSTemporaryDirectory() + "attn-bpe-bad-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? removeTree(directory) }
    let path = directory + "/" + bad.name
    try Data(bad.contents.utf8).write(to: URL(fileURLWithPath: path))
    let error = try #require(throws: InputError.self) { _ = try BytePairEncoding.load(path: path) }
    #expect(error.file == path)
    for fragment in bad.fragments { #expect(error.description.contains(fragment), "\(error)") }
  }

  @Test func aMalformedMergesLineIsRefusedWithItsLineNumber() throws {
    let directory = NSTemporaryDirectory() + "attn-bpe-merges-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? removeTree(directory) }
    try Data((Self.byteVocabulary + "}").utf8).write(to: URL(fileURLWithPath: directory + "/vocab.json"))
    try Data("#version: 0.2\nĠ t\nthree parts here\n".utf8).write(to: URL(fileURLWithPath: directory + "/merges.txt"))
    let error = try #require(throws: InputError.self) { _ = try BytePairEncoding.load(path: directory + "/vocab.json") }
    #expect(error.file == directory + "/merges.txt")
    #expect(error.description.contains("line 3"), "\(error)")
  }
}
