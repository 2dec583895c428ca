// Prepared token shards through the binary: the same bytes for any number of ranks and threads (and
// the ids an in-memory encoding gives), a corpus of gigabytes trained and evaluated in the memory of
// a tiny one, numpy reading a shard the documented way, and every kind of bad shard or source
// refused with its file named.

import AttnFormats
import AttnTrain
import Foundation
import TestProcesses
import Testing

private func expectError(_ result: Harness.Result, _ words: [String], sourceLocation: SourceLocation = #_sourceLocation) {
  #expect(result.status != 0, "expected a failure: \(result.output)", sourceLocation: sourceLocation)
  let line = result.stderr.split(separator: "\n").first { $0.contains("error: ") }.map(String.init) ?? ""
  for word in words { #expect(line.contains(word), "\(word) missing from: \(result.stderr)", sourceLocation: sourceLocation) }
  #expect(!result.output.contains("Fatal error"), "a Swift trap: \(result.output)", sourceLocation: sourceLocation)
}

private func files(_ directory: String) throws -> [String: Data] {
  var contents: [String: Data] = [:]
  for name in try FileManager.default.contentsOfDirectory(atPath: directory) where name.hasSuffix(".tokens") {
    contents[name] = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name))
  }
  return contents
}

extension MPIEndToEnd {
  @Suite(.enabled(if: Harness.mpirunAvailable, "mpirun is not installed (apt-get install openmpi-bin)"))
  struct PreparedDataTests {
    /// GPT-2 tokens of Tiny Shakespeare in shards of 48 KiB of text: byte-identical whether one
    /// process on 1 or 2 threads or 2 or 4 ranks make them, and the ids of an in-memory encoding.
    @Test func shardsAreTheSameForAnyRankAndThreadCount() throws {
      let dir = try Harness.temporaryDirectory("prepare-ranks")
      let tokenizer = Harness.repository.appendingPathComponent("data/tokenizers/gpt2.tiktoken").path
      func config(_ name: String) throws -> String {
        try Harness.writeConfig(in: dir, name: "\(name).json", [
          "data": ["tokenizer": ["kind": "bpe", "path": tokenizer], "shard_mb": 0.047],
          "output": ["run_dir": dir.appendingPathComponent(name).path],
        ])
      }
      var prepared: [String: [String: Data]] = [:]
      for (name, ranks, threads) in [("one", 1, "1"), ("threads", 1, "2"), ("np2", 2, "1"), ("np4", 4, "1")] {
        let path = try config(name)
        let result =
          ranks == 1
          ? try Harness.attnTrain(["prepare", path], environment: ["ATTN_TRAIN_THREADS": threads])
          : try Harness.mpirun(ranks, ["prepare", path], timeout: 120)
        #expect(result.status == 0 && result.stdout.contains("prepared data in"), "\(name): \(result.output)")
        prepared[name] = try files(dir.appendingPathComponent(name).path + "/data")
      }
      let reference = try #require(prepared["one"])
      #expect(reference.count > 20, "shards: \(reference.keys.sorted())")
      for (name, shards) in prepared { #expect(shards == reference, "\(name) differs from one process on one thread") }

      let inMemory = try TextData.load(try Config.load(path: try config("one")))
      let mapped = try TokenStream(shards: reference.keys.filter { $0.hasPrefix("train-") }.sorted().map {
        try MappedTokenShard(path: dir.appendingPathComponent("one/data/\($0)").path)
      })
      #expect(mapped.array() == inMemory.train.array())
      #expect(mapped.count == 301_966)
    }
  }
}

@Suite struct PreparedDataFaultTests {
  /// A config whose prepared data is written here by hand: byte tokens, one training shard per
  /// element of `train` (a count, a multiple of 2^20 when above it, and the id at each position),
  /// and a dev shard.
  static func handMade(_ dir: URL, train: [(count: Int, id: (Int) -> Int32)], dev: Int = 8192, evalTokens: Int = 4096)
    throws -> String
  {
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let source = dir.appendingPathComponent("source.txt").path
    try Data("a small stand-in for the sources the shards were made from\n".utf8).write(to: URL(fileURLWithPath: source))
    let prepared = dir.appendingPathComponent("prepared").path
    try FileManager.default.createDirectory(atPath: prepared, withIntermediateDirectories: true)
    let path = try Harness.writeConfig(in: dir, [
      "model": ["n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 32],
      "schedule": ["warmup_steps": 1],
      "training": ["max_steps": 3, "batch_size": 8, "eval_tokens": evalTokens],
      "data": ["train_path": source, "tokenizer": "byte", "prepared_dir": prepared],
    ])
    let vocabulary = Tokenizer.bytes.vocabularyJSON()
    let digest = SHA256.hash(Data(vocabulary.utf8))
    let shards = train + [(count: dev, id: { (i: Int) -> Int32 in Int32(i % 200) })]
    for (n, shard) in shards.enumerated() {
      let name = n < train.count ? String(format: "train-%06d.tokens", n) : "dev-000000.tokens"
      let path = prepared + "/" + name
      let writer = try TokenShardWriter(path: path, width: 2, tokenizerSHA256: digest)
      let chunk = (0..<min(shard.count, 1 << 20)).map(shard.id)
      try chunk.withUnsafeBufferPointer { try writer.append($0) }
      try writer.finish()
      guard shard.count > chunk.count else { continue }
      // A big shard is the chunk's bytes again and again, appended directly (the format is
      // documented: ids after a 64-byte header whose count is at offset 16), so it costs only I/O.
      let ids = try Data(contentsOf: URL(fileURLWithPath: path))[64...]
      let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
      try handle.seekToEnd()
      for _ in 1..<(shard.count / chunk.count) { try handle.write(contentsOf: ids) }
      try handle.seek(toOffset: 16)
      try handle.write(contentsOf: withUnsafeBytes(of: UInt64(shard.count).littleEndian) { Data($0) })
      try handle.close()
    }
    try PreparedData.writeManifest(
      try Config.load(path: path), directory: prepared, vocabulary: vocabulary,
      learnedTokenizerFile: dir.appendingPathComponent("run/tokenizer.json").path)
    return path
  }

  /// The resident memory a run reports: its peak and what it held before building the model (MiB).
  static func memory(_ result: Harness.Result) throws -> (peak: Double, plan: Double) {
    let planLine = try #require(result.stdout.split(separator: "\n").first { $0.hasPrefix("memory plan per rank:") })
    let plan = try #require(Double(planLine.split(separator: " ").last { Double($0) != nil } ?? ""))
    let peakLine = try #require(result.stdout.split(separator: "\n").first { $0.hasPrefix("peak resident memory") })
    let words = peakLine.split(separator: " ")
    return (try #require(Double(words[words.firstIndex(of: "0:")! + 1])), plan)
  }

  /// Two gigabytes of tokens (a billion uint16 ids in two shards) train and evaluate in the memory a
  /// four-megabyte corpus takes: the shards are mapped, and a step touches only its windows.
  @Test func aCorpusOfGigabytesTrainsInTheMemoryOfATinyOne() throws {
    let dir = try Harness.temporaryDirectory("bigger-than-memory")
    defer { try? FileManager.default.removeItem(at: dir) }
    let scramble: (Int) -> Int32 = { Int32(truncatingIfNeeded: ($0 &* 2_654_435_761) >> 7) & 0xFF }
    let big = try Self.handMade(dir.appendingPathComponent("big"), train: [(1 << 29, scramble), (1 << 29, scramble)])
    let small = try Self.handMade(dir.appendingPathComponent("small"), train: [(1 << 21, scramble)])
    let bigRun = try Harness.attnTrain([big], timeout: 300)
    #expect(bigRun.status == 0, "\(bigRun.output)")
    #expect(bigRun.stdout.contains("train 1073741824 tokens"), "\(bigRun.output)")
    // Four times the steps on the same corpus: no more memory either.
    let longerConfig = big.replacingOccurrences(of: "config.json", with: "longer.json")
    let text = try String(contentsOfFile: big, encoding: .utf8)
    try text.replacingOccurrences(of: "\"max_steps\" : 3", with: "\"max_steps\" : 12")
      .replacingOccurrences(of: "big/run", with: "big/longer-run").write(toFile: longerConfig, atomically: true, encoding: .utf8)
    let longer = try Harness.attnTrain([longerConfig], timeout: 300)
    #expect(longer.status == 0 && longer.stdout.contains("step 12/12"), "\(longer.output)")
    let smallRun = try Harness.attnTrain([small], timeout: 300)
    #expect(smallRun.status == 0, "\(smallRun.output)")
    let (bigPeak, plan) = try Self.memory(bigRun)
    let (smallPeak, _) = try Self.memory(smallRun)
    // The same model and steps: the corpus adds only the windows being read (each given back once
    // copied). 4 MiB of slack is a thousandth of the 2 GiB the corpus would take in memory.
    #expect(bigPeak <= smallPeak + 4, "peak \(bigPeak) MiB on 2 GiB of tokens, \(smallPeak) MiB on 4 MiB (plan \(plan) MiB)")
    let (longerPeak, _) = try Self.memory(longer)
    #expect(longerPeak <= bigPeak + 4, "peak \(longerPeak) MiB after 12 steps, \(bigPeak) MiB after 3")
  }

  @Test func aDamagedOrForeignShardIsRefusedWithItsName() throws {
    let dir = try Harness.temporaryDirectory("bad-shards")
    func fresh(_ name: String, id: @escaping (Int) -> Int32 = { Int32($0 % 256) }) throws -> (config: String, shard: String) {
      let config = try Self.handMade(dir.appendingPathComponent(name), train: [(100_000, id)])
      return (config, dir.appendingPathComponent("\(name)/prepared/train-000000.tokens").path)
    }
    // Cut short: the header's count no longer fits the file.
    let truncated = try fresh("truncated")
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: truncated.shard))
    try handle.truncate(atOffset: 1000)
    try handle.close()
    expectError(try Harness.attnTrain([truncated.config]), [truncated.shard, "truncated"])

    func patch(_ path: String, at offset: Int, _ bytes: [UInt8]) throws {
      var data = try Data(contentsOf: URL(fileURLWithPath: path))
      data.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
      try data.write(to: URL(fileURLWithPath: path))
    }
    let magic = try fresh("magic")
    try patch(magic.shard, at: 0, Array("NOTTOKEN".utf8))
    expectError(try Harness.attnTrain([magic.config]), [magic.shard, "not a token shard"])
    let version = try fresh("version")
    try patch(version.shard, at: 8, [9, 0, 0, 0])
    expectError(try Harness.attnTrain([version.config]), [version.shard, "version 9"])
    let foreign = try fresh("foreign")
    try patch(foreign.shard, at: 24, [UInt8](repeating: 7, count: 32))
    expectError(try Harness.attnTrain([foreign.config]), [foreign.shard, "another tokenizer"])
    // Every id 300: beyond the byte tokenizer's 256, found as soon as a batch reads one.
    let beyond = try fresh("beyond", id: { _ in 300 })
    expectError(try Harness.attnTrain([beyond.config]), [beyond.shard, "id 300", "256 ids"])
  }

  @Test func badSourcesAreRefusedWithTheFileAndLine() throws {
    let dir = try Harness.temporaryDirectory("bad-sources")
    func prepare(_ data: [String: Any]) throws -> Harness.Result {
      let config = try Harness.writeConfig(in: dir, name: "c\(UUID().uuidString.prefix(6)).json", [
        "data": data, "output": ["run_dir": dir.appendingPathComponent("run-\(UUID().uuidString.prefix(6))").path],
      ])
      return try Harness.attnTrain(["prepare", config])
    }
    let pattern = dir.appendingPathComponent("nothing-*.txt").path
    expectError(try prepare(["train_path": pattern]), [pattern, "matches no file"])

    let good = String(repeating: #"{"text": "a document of plain words"}"# + "\n", count: 200)
    let jsonl = dir.appendingPathComponent("docs.jsonl").path
    try Data((good + #"{"body": "the text is under another key"}"# + "\n").utf8).write(to: URL(fileURLWithPath: jsonl))
    expectError(try prepare(["train_path": jsonl, "format": "jsonl"]), [jsonl, "line 201", "no \"text\" field"])

    var invalid = Array((good + #"{"text": "bad "#).utf8)
    invalid += [0xFF, 0xFE]
    invalid += Array("\"}\n".utf8)
    let broken = dir.appendingPathComponent("broken.jsonl").path
    try Data(invalid).write(to: URL(fileURLWithPath: broken))
    expectError(try prepare(["train_path": broken, "format": "jsonl"]), [broken, "line 201", "UTF-8"])

    // Another tokenizer's data in a shared prepared_dir is refused, not overwritten.
    let shared = dir.appendingPathComponent("shared").path
    let first = try prepare(["prepared_dir": shared])
    #expect(first.status == 0, "\(first.output)")
    let before = try files(shared)
    expectError(try prepare(["prepared_dir": shared, "tokenizer": "byte"]), [shared, "data.tokenizer changed"])
    #expect(try files(shared) == before)
  }

  /// The README's three numpy lines read a shard to the ids attn-train reads.
  @Test(.enabled(if: Python.canLoadSafetensors, "Python cannot import numpy (launch/setup.sh --python installs it)"))
  func numpyReadsAShardTheDocumentedWay() throws {
    let dir = try Harness.temporaryDirectory("numpy-shard")
    let config = try Self.handMade(dir, train: [(70_000, { Int32(($0 * 7) % 256) })])
    _ = config
    let shard = dir.appendingPathComponent("prepared/train-000000.tokens").path
    let script = """
      import sys, numpy as np
      path = sys.argv[1]
      header = np.fromfile(path, dtype=np.uint8, count=64)
      width, count = int(header[12:16].view("<u4")[0]), int(header[16:24].view("<u8")[0])
      ids = np.memmap(path, dtype="<u2" if width == 2 else "<u4", mode="r", offset=64, shape=(count,))
      print(count, int(ids.astype(np.int64).sum()), int(ids[12345]))
      """
    let printed = try python3(script, [shard]).split(separator: " ").map { Int($0.trimmingCharacters(in: .whitespacesAndNewlines))! }
    let ids = try TokenStream(shards: [MappedTokenShard(path: shard)]).array()
    #expect(printed == [ids.count, ids.reduce(0) { $0 + Int($1) }, Int(ids[12345])])
  }
}
