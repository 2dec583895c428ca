// Every parser of outside input, fed mutated copies of valid files: the config, a safetensors file
// (header and body), a checkpoint's manifest and trainer state, a char vocabulary, a BPE
// tokenizer.json, a token shard, and labelled data (TSV, CSV, JSONL). A seeded mutator flips bits,
// overwrites bytes with ones that matter to the format (quotes, brackets, huge little-endian
// lengths), inserts, deletes, duplicates and truncates. Each input must parse or be refused with an
// error that names the file (no trap: a trap ends this process and fails the suite), and none may
// take long (no hang).
//
// 10,000 inputs per parser in the suite. A longer run is one command:
//   ATTN_TRAIN_FUZZ_SECONDS=600 swift test --filter FuzzTests
// (each parser runs for that long; ATTN_TRAIN_FUZZ_SEED picks another sequence of inputs, and
// ATTN_TRAIN_FUZZ_TARGET=safetensors, say, only the parsers whose name contains it).

import AttnCore
import AttnFormats
import Foundation
import Testing

@testable import AttnTrain

/// SplitMix64: a seeded, reproducible sequence.
struct FuzzRandom {
  var state: UInt64
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
  mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
}

enum Mutator {
  static let interestingBytes: [UInt8] = Array("\"{}[],:-.0123456789eE\n\t\r\\ ".utf8) + [0, 0x7F, 0x80, 0xC3, 0xFF]
  static let interestingTokens = [
    "1e400", "-1", "null", "99999999999999999999", "0.0", "true", "\"\"", "[]", "{}", "-0", "1e-400", "\"\\ud800\"",
    "\u{0}", "NaN", "\"\\u0000\"",
  ].map { Array($0.utf8) }
  static let interestingWords: [UInt64] = [0, 1, 0x7F, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFF, 1 << 40, UInt64(Int64.max), .max]

  /// One to four mutations of `seed`.
  static func mutate(_ seed: [UInt8], _ random: inout FuzzRandom) -> [UInt8] {
    var bytes = seed
    for _ in 0..<(1 + random.below(4)) {
      let at = random.below(bytes.count + 1)
      switch random.below(8) {
      case 0 where !bytes.isEmpty: bytes[min(at, bytes.count - 1)] ^= UInt8(1 << random.below(8))
      case 1 where !bytes.isEmpty: bytes[min(at, bytes.count - 1)] = interestingBytes[random.below(interestingBytes.count)]
      case 2: bytes.insert(contentsOf: (0..<(1 + random.below(8))).map { _ in UInt8(truncatingIfNeeded: random.next()) }, at: at)
      case 3: bytes.removeSubrange(at..<min(bytes.count, at + 1 + random.below(16)))
      case 4:
        let end = min(bytes.count, at + 1 + random.below(64))
        bytes.insert(contentsOf: bytes[at..<end], at: random.below(bytes.count + 1))
      case 5: bytes = Array(bytes.prefix(at))
      case 6: bytes.insert(contentsOf: interestingTokens[random.below(interestingTokens.count)], at: at)
      default:
        guard bytes.count >= 8 else { continue }
        let start = min(at, bytes.count - 8)
        let word = interestingWords[random.below(interestingWords.count)]
        for i in 0..<8 { bytes[start + i] = UInt8(truncatingIfNeeded: word >> (8 * UInt64(i))) }
      }
    }
    return bytes
  }
}

/// One parser under fuzzing: valid seeds, and what reading one input means.
struct FuzzTarget: Sendable, CustomTestStringConvertible {
  let name: String
  let fileName: String
  let seeds: @Sendable (String) throws -> [[UInt8]]
  /// Parses the file at the path (and uses what it got, where reading is lazy).
  let parse: @Sendable (String) throws -> Void
  var testDescription: String { name }
}

@Suite struct FuzzTests {
  static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

  static func file(_ relative: String) throws -> [UInt8] {
    Array(try Data(contentsOf: repository.appendingPathComponent(relative)))
  }

  static func lines(_ relative: String, _ count: Int) throws -> [UInt8] {
    let text = String(decoding: try file(relative), as: UTF8.self)
    return Array((text.split(separator: "\n", omittingEmptySubsequences: false).prefix(count).joined(separator: "\n") + "\n").utf8)
  }

  static func bytesOf(_ write: (String) throws -> Void, in directory: String) throws -> [UInt8] {
    let path = (directory as NSString).appendingPathComponent("seed-\(UUID().uuidString.prefix(6))")
    try write(path)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
  }

  static let targets: [FuzzTarget] = [
    FuzzTarget(name: "config", fileName: "config.json", seeds: { _ in
      [try file("Configs/tiny.json"), try file("Configs/sst2.json"), try file("Configs/shakespeare-bpe.json")]
    }) { path in
      _ = try Config.parse(json: Data(contentsOf: URL(fileURLWithPath: path)), sourcePath: path)
    },
    FuzzTarget(name: "safetensors", fileName: "model.safetensors", seeds: { directory in
      [try bytesOf({ path in
        var writer = SafeTensorsWriter(metadata: ["format": "pt", "step": "3"])
        let values = (0..<24).map { Float($0) * 0.5 }
        values.withUnsafeBufferPointer { buffer in
          writer.add("wte", shape: [4, 3], UnsafeBufferPointer(rebasing: buffer[0..<12]))
          writer.add("h.0.ln1.weight", shape: [3], UnsafeBufferPointer(rebasing: buffer[12..<15]))
          writer.add("ln_f.bias", shape: [9], UnsafeBufferPointer(rebasing: buffer[15..<24]))
        }
        try writer.write(to: path)
      }, in: directory)]
    }) { path in
      let file = try SafeTensorsFile(path: path)
      for name in file.names where file.dtype(of: name) == .f32 { _ = try file.floats(name) }
    },
    FuzzTarget(name: "trainer state", fileName: "trainer.json", seeds: { _ in
      var state = TrainerState(step: 40, tokensSeen: 4096, elapsedSeconds: 1.5, bestDevLoss: 2.5, bestStep: 40, worldSize: 2)
      state.data = DataFingerprint(
        tokenizer: Tokenizer.characters(of: ["abc"]), train: .init(count: 9, digest: "0123456789abcdef"),
        dev: .init(count: 3, digest: "fedcba9876543210"), unit: "tokens")
      return [Array(state.json.prettyPrinted().utf8)]
    }) { path in
      _ = try TrainerState.read(path)
    },
    FuzzTarget(name: "manifest", fileName: "manifest.json", seeds: { _ in
      [Array(#"{"sha256": {"model.safetensors": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "trainer.json": "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"}}"#.utf8)]
    }) { path in
      _ = try CheckpointManifest.read(path)
    },
    FuzzTarget(name: "char vocabulary", fileName: "vocab.json", seeds: { _ in
      [Array(Tokenizer.characters(of: ["Hello, world!\nÉtude ü 漢字"]).vocabularyJSON().utf8)]
    }) { path in
      _ = try Tokenizer(vocabularyJSON: String(decoding: Data(contentsOf: URL(fileURLWithPath: path)), as: UTF8.self), source: path)
    },
    FuzzTarget(name: "BPE tokenizer.json", fileName: "tokenizer.json", seeds: { _ in
      let text = String(decoding: try file("data/tinyshakespeare/input.txt").prefix(20_000), as: UTF8.self)
      let bpe = try BytePairEncoding.train(on: [text], vocabularySize: 300)
      return [Array(bpe.huggingFaceJSON.description.utf8)]
    }) { path in
      let bpe = try BytePairEncoding.load(path: path)
      _ = bpe.decode(bpe.encode("To be, or not to be"))
    },
    FuzzTarget(name: "token shard", fileName: "train-000000.tokens", seeds: { directory in
      [try bytesOf({ path in
        let writer = try TokenShardWriter(path: path, width: 2, tokenizerSHA256: [UInt8](repeating: 7, count: 32))
        let ids = (0..<500).map { Int32($0 % 65) }
        try ids.withUnsafeBufferPointer { try writer.append($0) }
        try writer.finish()
      }, in: directory)]
    }) { path in
      let shard = try MappedTokenShard(path: path)
      let stream = TokenStream(shards: [shard])
      let buffer = UnsafeMutablePointer<Int32>.allocate(capacity: max(stream.count, 1))
      defer { buffer.deallocate() }
      try stream.copy(0, stream.count, into: buffer, vocabularySize: 65)
    },
    FuzzTarget(name: "labelled TSV", fileName: "train.tsv", seeds: { _ in [try lines("data/sst2/train.tsv", 30)] }) { path in
      _ = try ClassificationData.readExamples(path, field: "data.train_path", format: .tsv, textField: "sentence", labelField: "label")
    },
    FuzzTarget(name: "labelled CSV", fileName: "train.csv", seeds: { _ in
      [Array("text,label\n\"a, quoted \"\"one\"\"\",pos\nplain,neg\n\"multi\nline\",pos\n".utf8)]
    }) { path in
      _ = try ClassificationData.readExamples(path, field: "data.train_path", format: .csv, textField: "text", labelField: "label")
    },
    FuzzTarget(name: "labelled JSONL", fileName: "train.jsonl", seeds: { _ in
      [Array("{\"text\": \"good film\", \"label\": 1}\n{\"text\": \"bad \\u00e9\", \"label\": \"neg\"}\n{\"text\": \"ok\", \"label\": 0}\n".utf8)]
    }) { path in
      _ = try ClassificationData.readExamples(path, field: "data.train_path", format: .jsonl, textField: "text", labelField: "label")
    },
  ]

  @Test(arguments: targets)
  func mutatedInputsParseOrAreRefusedByName(_ target: FuzzTarget) throws {
    let environment = ProcessInfo.processInfo.environment
    let seconds = environment["ATTN_TRAIN_FUZZ_SECONDS"].flatMap(Double.init)
    let seed = environment["ATTN_TRAIN_FUZZ_SEED"].flatMap(UInt64.init) ?? 20_261_203
    if let only = environment["ATTN_TRAIN_FUZZ_TARGET"], !target.name.contains(only) { return }
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("attn-fuzz-\(UUID().uuidString.prefix(8))").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = (directory as NSString).appendingPathComponent(target.fileName)

    let seeds = try target.seeds(directory)
    // The seeds themselves are valid: a parser that refuses everything would pass the rest.
    for bytes in seeds {
      try Data(bytes).write(to: URL(fileURLWithPath: path))
      try target.parse(path)
    }
    var random = FuzzRandom(state: seed &+ target.name.utf8.reduce(UInt64(0)) { $0 &* 31 &+ UInt64($1) })
    let start = Date()
    var (inputs, accepted, slowest) = (0, 0, 0.0)
    var badErrors: [String] = []
    while seconds.map({ Date().timeIntervalSince(start) < $0 }) ?? (inputs < 10_000) {
      let input = Mutator.mutate(seeds[random.below(seeds.count)], &random)
      try Data(input).write(to: URL(fileURLWithPath: path))
      let began = Date()
      do {
        try target.parse(path)
        accepted += 1
      } catch {
        let message = "\(error)"
        if !message.contains(target.fileName) || message.utf8.count > 4000, badErrors.count < 5 {
          badErrors.append("input \(inputs): \(message.prefix(300))")
        }
      }
      slowest = max(slowest, Date().timeIntervalSince(began))
      inputs += 1
    }
    #expect(inputs >= 10_000 || seconds != nil)
    #expect(badErrors.isEmpty, "errors that do not name the file (or run on): \(badErrors)")
    #expect(slowest < 2, "an input took \(slowest) s")
    print("fuzz \(target.name): \(inputs) inputs, \(accepted) accepted, \(inputs - accepted) refused, slowest \(String(format: "%.4f", slowest)) s")
  }
}
