// Prepared data: the token shards of both splits, made once by `attn-train prepare` (or by the first
// training run or eval that finds them missing) and then memory-mapped, so a corpus may be far larger
// than memory and each rank touches only the windows it reads. The directory (data.prepared_dir, by
// default <run_dir>/data) holds:
//   manifest.json                    written last: the sources' fingerprint, the tokenizer's SHA-256,
//                                    each split's shards and their token counts
//   vocab.json                       the tokenizer the ids are in
//   train-000000.tokens, ...         token shards (AttnFormats/TokenShards/TokenShard.swift)
//   dev-000000.tokens, ...
// Shards hold consecutive units of about data.shard_mb (256 MiB) of source text each; shard s is encoded by rank
// s mod N, so the shards are byte-identical for any rank and thread count. A shard is written under a
// temporary name and renamed; without a manifest nothing is used, and preparing starts over. Data
// prepared from other sources or settings, or with another tokenizer, is refused, never overwritten.

import AttnCore
import AttnDist
import AttnFormats
import Foundation

public enum PreparedData {
  public static let manifestFile = "manifest.json"
  public static let vocabularyFile = "vocab.json"

  /// The prepared data of `config` in `directory`, preparing it first when it is missing (every rank
  /// takes part). `tokenizer`: the tokenizer the ids must be in (a checkpoint's, on rank 0), or nil
  /// to take the prepared one, or make one. `learnedTokenizerFile`: where a learned BPE is kept.
  public static func open(
    _ config: Config, directory: String, tokenizer known: Tokenizer?, learnedTokenizerFile: String,
    communicator: Communicator, log: RunLog
  ) throws -> TextData {
    var missing: UInt8 = 0
    if communicator.rank == 0 {
      missing = try state(config, directory: directory, tokenizer: known, learnedTokenizerFile: learnedTokenizerFile) == nil ? 1 : 0
    }
    try communicator.broadcast(&missing, root: 0)
    if missing == 1 {
      try prepare(
        config, directory: directory, tokenizer: known, learnedTokenizerFile: learnedTokenizerFile, communicator: communicator,
        log: log)
    }
    return try read(config, directory: directory)
  }

  /// The manifest when the directory holds data prepared from these sources (and with `tokenizer`,
  /// when given); nil when there is none. Throws when the data there was made otherwise.
  static func state(_ config: Config, directory: String, tokenizer: Tokenizer?, learnedTokenizerFile: String) throws
    -> JSONObject?
  {
    let path = (directory as NSString).appendingPathComponent(manifestFile)
    guard let data = FileManager.default.contents(atPath: path) else { return nil }
    let manifest: JSONObject
    let recorded: JSONValue
    let tokenizerSHA256: String
    do {
      manifest = try JSONObject(JSONValue.parse(data))
      guard try manifest.int("format_version") == 1 else {
        throw InputError(file: path, problem: "format_version is not 1; this attn-train reads version 1")
      }
      recorded = try manifest.value("sources")
      tokenizerSHA256 = try manifest.string("tokenizer_sha256")
    } catch let error as JSONSyntaxError {
      throw InputError(file: path, problem: "malformed manifest: \(error)", hint: "move \(directory) away to prepare the data again")
    } catch let error as JSONFieldError {
      throw InputError(file: path, problem: "malformed manifest: \(error)", hint: "move \(directory) away to prepare the data again")
    }
    let current = try CorpusSources.fingerprint(config.data, tokenizerFile: tokenizerFile(config, learnedTokenizerFile))
    // Compared in the canonical form the manifest is written in (keys sorted).
    guard current.prettyPrinted() == recorded.prettyPrinted() else {
      throw InputError(
        file: directory, field: config.data.preparedDirectory == nil ? nil : "data.prepared_dir",
        problem: "holds data prepared from other sources or settings (\(difference(recorded, current)))",
        hint: "move it away (or delete it) to prepare the data again, or set data.prepared_dir")
    }
    if let tokenizer, SHA256.hexDigest(of: Data(tokenizer.vocabularyJSON().utf8)) != tokenizerSHA256 {
      throw InputError(
        file: directory, problem: "holds data prepared with another tokenizer than the checkpoint's",
        hint: "move it away to prepare the data again with the checkpoint's tokenizer")
    }
    return manifest
  }

  /// The tokenizer file whose changes invalidate prepared data, when one is read from a file.
  private static func tokenizerFile(_ config: Config, _ learned: String) -> String? {
    switch config.data.tokenizer {
    case .bpe(let path): return path
    case .trainedBPE: return learned
    case .char, .byte: return nil
    }
  }

  /// The first file or setting that differs, for the message.
  private static func difference(_ old: JSONValue, _ new: JSONValue) -> String {
    guard case .object(let a) = old, case .object(let b) = new else { return "another manifest format" }
    func files(_ value: JSONValue?) -> [(path: String, bytes: String)] {
      guard case .array(let entries)? = value else { return [] }
      return entries.compactMap { entry in
        guard case .object(let fields) = entry, case .string(let path)? = fields.first(where: { $0.key == "path" })?.value
        else { return nil }
        return (path, fields.first { $0.key == "bytes" }?.value.description ?? "?")
      }
    }
    for (key, value) in b where a.first(where: { $0.key == key })?.value.prettyPrinted() != value.prettyPrinted() {
      guard key == "train" || key == "dev" || key == "tokenizer_file" else { return "data.\(key) changed" }
      let before = files(a.first { $0.key == key }?.value)
      let now = files(value)
      for file in now {
        guard let then = before.first(where: { $0.path == file.path }) else { return "\(file.path) is new" }
        if then.bytes != file.bytes { return "\(file.path) changed: \(then.bytes) bytes then, \(file.bytes) now" }
      }
      if let gone = before.first(where: { old in !now.contains { $0.path == old.path } }) { return "\(gone.path) is gone" }
      return "\(now.first?.path ?? key) was modified since"
    }
    return "another manifest format"
  }

  // MARK: - Preparing

  /// Tokenizes both splits into shards in `directory`; every rank encodes its share of the shards.
  public static func prepare(
    _ config: Config, directory: String, tokenizer known: Tokenizer?, learnedTokenizerFile: String,
    communicator: Communicator, log: RunLog
  ) throws {
    let clock = Stopwatch()
    // Rank 0 settles the tokenizer (a char vocabulary is read from all the text) and clears what an
    // interrupted preparation left; every rank then maps the sources itself.
    var vocabulary = ""
    if communicator.rank == 0 {
      try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
      try removeLeftovers(in: directory)
      let tokenizer =
        try known ?? Tokenizer.learned(for: config, file: learnedTokenizerFile, log: log)
        ?? CorpusSources(config.data, tokenizer: config.data.tokenizer.kind).makeTokenizer(config.data.tokenizer)
      vocabulary = tokenizer.vocabularyJSON()
    }
    vocabulary = try communicator.broadcast(vocabulary, root: 0)
    let tokenizer = try Tokenizer(vocabularyJSON: vocabulary, source: "the prepared tokenizer")
    try TextData.check(tokenizer, against: config)
    let sources = try CorpusSources(config.data, tokenizer: tokenizer.kind)
    let shards = plan(sources.units, shardBytes: CorpusSources.shardBytes(config.data))
    let width = TokenShardFormat.width(vocabularySize: tokenizer.vocabSize)
    let digest = SHA256.hash(Data(vocabulary.utf8))
    let mine = shards.indices.filter { $0 % communicator.size == communicator.rank }
    let myBytes = mine.reduce(0) { $0 + shards[$1].bytes }
    log.say("prepare: \(sources.units.count) units, \(shards.count) shards, \(communicator.size) rank(s) into \(directory)")
    var done = 0
    for s in mine {
      let shard = shards[s]
      let path = (directory as NSString).appendingPathComponent(shard.name)
      let partial = path + ".partial-\(getpid())"
      let writer = try TokenShardWriter(path: partial, width: width, tokenizerSHA256: digest)
      for unit in shard.units {
        let ids = try sources.encode(unit, tokenizer, threads: ComputeThreads.current)
        try ids.withUnsafeBufferPointer { try writer.append($0) }
        done += unit.bytes.count
        let seconds = clock.seconds
        let rate = Double(done) / max(seconds, 1e-9)
        log.progress(
          String(
            format: "prepare: %@ %.1f / %.1f MB of this rank's text, %.1f MB/s, ETA %.0f s", shard.name, Double(done) / 1e6,
            Double(myBytes) / 1e6, rate / 1e6, Double(myBytes - done) / max(rate, 1)),
          final: unit.bytes.upperBound == shard.units.last!.bytes.upperBound && unit.file == shard.units.last!.file)
      }
      try writer.finish()
      try atomicRename(from: partial, to: path)
    }
    try communicator.barrier()
    if communicator.rank == 0 {
      try writeManifest(config, directory: directory, vocabulary: vocabulary, learnedTokenizerFile: learnedTokenizerFile)
      log.say(String(format: "prepare: done in %.1f s", clock.seconds))
    }
    try communicator.barrier()
  }

  /// Makes the shards in `directory` prepared data of `config`: writes `vocabulary` (the
  /// tokenizer's vocab.json) and, last, the manifest listing every train-*.tokens and dev-*.tokens
  /// file in name order with its token count. Shards written by other tools (or synthetic ones) can
  /// be indexed this way; each must carry the tokenizer's SHA-256.
  public static func writeManifest(_ config: Config, directory: String, vocabulary: String, learnedTokenizerFile: String)
    throws
  {
    let digest = SHA256.hash(Data(vocabulary.utf8))
    let tokenizer = try Tokenizer(vocabularyJSON: vocabulary, source: "the prepared tokenizer")
    let names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".tokens") }.sorted()
    var splits: [(key: String, value: JSONValue)] = []
    for split in [Split.train, .dev] {
      let entries = try names.filter { $0.hasPrefix(split.rawValue + "-") }.map { name -> JSONValue in
        let mapped = try MappedTokenShard(path: (directory as NSString).appendingPathComponent(name))
        guard mapped.tokenizerSHA256 == digest else {
          throw InputError(file: mapped.path, problem: "was made with another tokenizer than the one being recorded")
        }
        return .object([(key: "file", value: .string(name)), (key: "tokens", value: JSONValue(integer: mapped.count))])
      }
      splits.append((key: split.rawValue, value: .array(entries)))
    }
    try writeFileDurably(path: (directory as NSString).appendingPathComponent(vocabularyFile), contents: Data(vocabulary.utf8))
    let manifest: JSONValue = .object(
      [
        (key: "format_version", value: JSONValue(integer: 1)),
        (key: "sources", value: try CorpusSources.fingerprint(config.data, tokenizerFile: tokenizerFile(config, learnedTokenizerFile))),
        (key: "tokenizer_sha256", value: .string(SHA256.hex(digest))),
        (key: "vocab_size", value: JSONValue(integer: tokenizer.vocabSize)),
        (key: "token_width", value: JSONValue(integer: TokenShardFormat.width(vocabularySize: tokenizer.vocabSize))),
      ] + splits)
    try replaceFileAtomically(
      path: (directory as NSString).appendingPathComponent(manifestFile), contents: Data(manifest.prettyPrinted().utf8))
  }

  /// One shard to write: a split's consecutive units of about `shardBytes` of source text.
  struct ShardPlan {
    let name: String
    let split: Split
    let units: [SourceUnit]
    var bytes: Int { units.reduce(0) { $0 + $1.bytes.count } }
  }

  static func plan(_ units: [SourceUnit], shardBytes: Int) -> [ShardPlan] {
    var shards: [ShardPlan] = []
    for split in [Split.train, .dev] {
      var current: [SourceUnit] = []
      var bytes = 0
      func close() {
        let name = String(format: "%@-%06d.tokens", split.rawValue, shards.filter { $0.split == split }.count)
        shards.append(ShardPlan(name: name, split: split, units: current))
        current = []
        bytes = 0
      }
      for unit in units where unit.split == split {
        current.append(unit)
        bytes += unit.bytes.count
        if bytes >= shardBytes { close() }
      }
      if !current.isEmpty { close() }
    }
    return shards
  }

  /// What a preparation writes, gone before a new one starts: shards, temporaries, the manifest.
  private static func removeLeftovers(in directory: String) throws {
    for name in try FileManager.default.contentsOfDirectory(atPath: directory)
    where name.hasSuffix(".tokens") || name.contains(".tokens.partial-") || name == manifestFile || name == vocabularyFile {
      try removeTree((directory as NSString).appendingPathComponent(name))
    }
  }

  // MARK: - Reading

  /// Maps the shards the manifest lists, each checked against it: the count, and the tokenizer.
  static func read(_ config: Config, directory: String) throws -> TextData {
    let manifestPath = (directory as NSString).appendingPathComponent(manifestFile)
    let vocabularyPath = (directory as NSString).appendingPathComponent(vocabularyFile)
    let tokenizer = try Tokenizer.load(vocabularyFile: vocabularyPath)
    let digest = SHA256.hash(try Data(contentsOf: URL(fileURLWithPath: vocabularyPath)))
    var streams: [Split: TokenStream] = [:]
    do {
      let manifest = try JSONObject(JSONValue.parse(try Data(contentsOf: URL(fileURLWithPath: manifestPath))))
      guard try manifest.string("tokenizer_sha256") == SHA256.hex(digest) else {
        throw InputError(file: vocabularyPath, problem: "is not the tokenizer the manifest names (changed since the data was prepared)")
      }
      for split in [Split.train, .dev] {
        guard case .array(let entries) = try manifest.value(split.rawValue) else {
          throw InputError(file: manifestPath, field: split.rawValue, problem: "expected a list of shards")
        }
        var shards: [MappedTokenShard] = []
        for (n, entry) in entries.enumerated() {
          let shard = try JSONObject(entry, path: "\(split.rawValue)[\(n)]")
          let name = try shard.string("file")
          guard !name.contains("/") else { throw InputError(file: manifestPath, field: "\(split.rawValue)[\(n)].file", problem: "must be a file name") }
          let mapped = try MappedTokenShard(path: (directory as NSString).appendingPathComponent(name))
          guard mapped.count == (try shard.int("tokens")) else {
            throw InputError(file: mapped.path, problem: "holds \(mapped.count) ids, the manifest says \(try shard.int("tokens"))")
          }
          guard mapped.tokenizerSHA256 == digest else {
            throw InputError(file: mapped.path, problem: "was made with another tokenizer than \(vocabularyPath)")
          }
          shards.append(mapped)
        }
        streams[split] = TokenStream(shards: shards)
      }
    } catch let error as JSONSyntaxError {
      throw InputError(file: manifestPath, problem: "malformed manifest: \(error)")
    } catch let error as JSONFieldError {
      throw InputError(file: manifestPath, problem: "malformed manifest: \(error)")
    } catch let error as TokenShardError {
      throw InputError(file: error.path, problem: error.reason, hint: "move \(directory) away to prepare the data again")
    }
    try TextData.check(tokenizer, against: config)
    let data = TextData(tokenizer: tokenizer, train: streams[.train]!, dev: streams[.dev]!)
    try data.checkLengths(config)
    return data
  }
}
