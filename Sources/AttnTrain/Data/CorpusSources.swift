// The documents a run's text comes from, and how they are cut into units that encode independently.
// train_path and dev_path name files, glob patterns or lists of them; with format "text" each file is
// one document, with "jsonl" each line's text field is, with "tsv" or "csv" each row's text column
// (labels, if any, unread: a classifier's training sentences as a language model's text). Without dev_path the dev split is held out
// from the end of the training sources: text at a character of all the files together (one file:
// nanoGPT's split), JSONL at a document.
// A unit is part of a split that encodes on its own: a chunk of one text file, cut only at a space
// between two non-space characters (where GPT-2's pre-tokenizer starts a piece whatever follows, and
// a character boundary for the char tokenizer), or whole lines of a JSONL file. Units are listed in
// order and depend only on the files, so any number of ranks and threads encoding them give the same
// ids. With a BPE tokenizer, <|endoftext|> goes between documents of a split (not before its first).

import AttnFormats
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

enum Split: String, Sendable { case train, dev }

struct SourceUnit: Sendable {
  let split: Split
  /// Index into CorpusSources.files.
  let file: Int
  let bytes: Range<Int>
  /// The unit starts a document that is not its split's first: a separator goes before it (text),
  /// or before every line but the first of the split (JSONL, see firstLineIsFirstDocument).
  let separated: Bool
  /// JSONL: the 1-based line number of the unit's first line, for messages.
  let firstLine: Int
}

final class CorpusSources: @unchecked Sendable {
  struct File {
    let mapped: MappedFile
    /// The config field that named it, for messages.
    let field: String
  }

  let files: [File]
  let format: SourceFormat
  let textField: String
  let units: [SourceUnit]
  /// Bytes of source text per shard (data.shard_mb).
  static func shardBytes(_ data: DataConfig) -> Int { max(1, Int(data.shardMB * 1_048_576)) }

  /// The largest unit of a text file, in bytes (JSONL units hold whole lines up to about this much):
  /// 16 MiB, or a quarter of a shard when shards are smaller.
  static func unitBytes(_ data: DataConfig) -> Int { min(16 << 20, max(4096, shardBytes(data) / 4)) }

  /// Expands the config's patterns, maps and checks every file (UTF-8 unless the byte tokenizer
  /// reads it), and cuts both splits into units.
  init(_ data: DataConfig, tokenizer: TokenizerKind) throws {
    let unitBytes = Self.unitBytes(data)
    format = data.format
    textField = data.textField
    let trainFiles = try Self.expand(data.trainPaths, field: "data.train_path")
    let devFiles = try Self.expand(data.devPaths, field: "data.dev_path")
    if let shared = devFiles.first(where: trainFiles.contains) {
      throw InputError(
        file: shared, field: "data.dev_path", problem: "is also a training file, so evaluation would measure training loss",
        hint: "name disjoint files, or leave dev_path out to hold out the end of the training text")
    }
    var files: [File] = []
    for (paths, field) in [(trainFiles, "data.train_path"), (devFiles, "data.dev_path")] {
      for path in paths {
        let mapped = try MappedFile(path: path)
        guard mapped.count > 0 else { throw InputError(file: path, field: field, problem: "the file is empty") }
        if tokenizer != .byte, format == .text { try Self.checkUTF8(mapped, field: field, tokenizer: tokenizer) }
        files.append(File(mapped: mapped, field: field))
      }
    }
    self.files = files
    var units: [SourceUnit] = []
    let trainIndices = Array(0..<trainFiles.count)
    let devIndices = Array(trainFiles.count..<files.count)
    if devIndices.isEmpty && (format == .tsv || format == .csv) {
      throw InputError(
        file: data.trainPaths.joined(separator: ", "), field: "data.dev_path",
        problem: "is needed: a language model's TSV or CSV text is not split into train and dev",
        hint: "name a dev file of the same columns")
    }
    if devIndices.isEmpty {
      units = try Self.heldOut(
        files, trainIndices, fraction: data.trainFraction, format: format, bytes: tokenizer == .byte, unitBytes: unitBytes)
    } else {
      units = Self.units(files, trainIndices, .train, from: nil, unitBytes: unitBytes, format: format)
        + Self.units(files, devIndices, .dev, from: nil, unitBytes: unitBytes, format: format)
    }
    self.units = units
  }

  // MARK: - Files

  /// Each pattern's files: the path itself, or a glob's matches sorted by name (none is an error).
  static func expand(_ patterns: [String], field: String) throws -> [String] {
    var paths: [String] = []
    for pattern in patterns {
      guard pattern.contains(where: { "*?[".contains($0) }) else {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: pattern, isDirectory: &isDirectory) else {
          throw InputError(file: pattern, field: field, problem: "no such file")
        }
        guard !isDirectory.boolValue else {
          throw InputError(file: pattern, field: field, problem: "is a directory", hint: "name its files, e.g. \(pattern)/*.txt")
        }
        paths.append(pattern)
        continue
      }
      var result = glob_t()
      defer { globfree(&result) }
      let status = glob(pattern, 0, nil, &result)
      var matches: [String] = []
      if status == 0 {
        for i in 0..<Int(result.gl_pathc) {
          if let match = result.gl_pathv[i].map({ String(cString: $0) }) { matches.append(match) }
        }
      }
      let files = matches.filter { !FileManager.default.isDirectory($0) }.sorted()
      guard !files.isEmpty else { throw InputError(file: pattern, field: field, problem: "the pattern matches no file") }
      paths += files
    }
    return paths
  }

  private static func checkUTF8(_ file: MappedFile, field: String, tokenizer: TokenizerKind) throws {
    let offset = firstInvalidUTF8Offset(file.bytes)
    guard offset < file.count else { return }
    throw InputError(
      file: file.path, field: field,
      problem: "not valid UTF-8: byte 0x\(String(file.bytes[offset], radix: 16, uppercase: true)) at offset \(offset)",
      hint: "the \(tokenizer.rawValue) tokenizer reads UTF-8 text; set data.tokenizer to \"byte\" for arbitrary bytes")
  }

  // MARK: - Units

  /// Units of whole files, in order; `from` starts the first file at a byte offset (the dev part of
  /// a file cut in two).
  private static func units(
    _ files: [File], _ indices: [Int], _ split: Split, from start: Int?, unitBytes: Int, format: SourceFormat
  ) -> [SourceUnit] {
    var units: [SourceUnit] = []
    for (n, f) in indices.enumerated() {
      let begin = n == 0 ? (start ?? 0) : 0
      units += fileUnits(files[f], f, split, begin..<files[f].mapped.count, separated: n > 0, unitBytes: unitBytes, format: format)
    }
    return units
  }

  /// `range` of one file in units: chunks cut at safe spaces (text), or runs of whole lines (JSONL).
  private static func fileUnits(
    _ file: File, _ index: Int, _ split: Split, _ range: Range<Int>, separated: Bool, unitBytes: Int,
    format: SourceFormat, firstLine: Int = 1
  ) -> [SourceUnit] {
    let bytes = file.mapped.bytes
    if format == .tsv || format == .csv {
      // A row's quoted text may span lines, so a file is one unit, its rows read whole.
      return [SourceUnit(split: split, file: index, bytes: range, separated: separated, firstLine: 1)]
    }
    var units: [SourceUnit] = []
    var start = range.lowerBound
    var line = firstLine
    while start < range.upperBound {
      var end = min(range.upperBound, start + unitBytes)
      if end < range.upperBound {
        if format == .jsonl {
          while end < range.upperBound && bytes[end - 1] != UInt8(ascii: "\n") { end += 1 }
        } else {
          while end < range.upperBound && !isSafeCut(bytes, end) { end += 1 }
        }
      }
      // A later chunk of a text file continues its document; a later run of JSONL lines starts one.
      let startsDocument = format == .jsonl ? (separated || start != range.lowerBound) : (separated && start == range.lowerBound)
      units.append(SourceUnit(split: split, file: index, bytes: start..<end, separated: startsDocument, firstLine: line))
      if format == .jsonl { line += bytes[start..<end].reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) } }
      start = end
    }
    return units
  }

  /// The training files, their last (1 - fraction) held out as the dev split: cut at a character, or
  /// at a byte for the byte tokenizer (`bytes`), which reads any file.
  private static func heldOut(
    _ files: [File], _ indices: [Int], fraction: Double, format: SourceFormat, bytes: Bool, unitBytes: Int
  ) throws -> [SourceUnit] {
    // Where the cut falls: (file, byte offset, line number there).
    var cut: (file: Int, offset: Int, line: Int)?
    switch format {
    case .tsv, .csv: preconditionFailure("init refuses TSV and CSV without dev_path")
    case .text:
      let counts = indices.map { bytes ? files[$0].mapped.count : characterCount(files[$0].mapped.bytes) }
      var target = Int(Double(counts.reduce(0, +)) * fraction)
      for (n, f) in indices.enumerated() {
        if target < counts[n] || n == indices.count - 1 {
          cut = (f, bytes ? min(target, counts[n]) : byteOffset(ofCharacter: target, in: files[f].mapped.bytes), 1)
          break
        }
        target -= counts[n]
      }
    case .jsonl:
      let counts = indices.map { documentLines(files[$0].mapped.bytes).count }
      var target = Int(Double(counts.reduce(0, +)) * fraction)
      for (n, f) in indices.enumerated() {
        let lines = documentLines(files[f].mapped.bytes)
        if target < lines.count || n == indices.count - 1 {
          let offset = target < lines.count ? lines[target].lowerBound : files[f].mapped.count
          let lineNumber = files[f].mapped.bytes[..<offset].reduce(1) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
          cut = (f, offset, lineNumber)
          break
        }
        target -= counts[n]
      }
    }
    let (cutFile, cutOffset, cutLine) = cut!
    let position = indices.firstIndex(of: cutFile)!
    var units = self.units(files, Array(indices[..<position]), .train, from: nil, unitBytes: unitBytes, format: format)
    units += fileUnits(
      files[cutFile], cutFile, .train, 0..<cutOffset, separated: position > 0, unitBytes: unitBytes, format: format)
    units += fileUnits(
      files[cutFile], cutFile, .dev, cutOffset..<files[cutFile].mapped.count, separated: false, unitBytes: unitBytes,
      format: format, firstLine: cutLine)
    for (n, f) in indices[(position + 1)...].enumerated() {
      units += fileUnits(
        files[f], f, .dev, 0..<files[f].mapped.count, separated: n > 0 || cutOffset < files[cutFile].mapped.count,
        unitBytes: unitBytes, format: format)
    }
    return units.filter { !$0.bytes.isEmpty }
  }

  /// A space with a printable ASCII character before it and a non-whitespace character after.
  private static func isSafeCut(_ bytes: UnsafeBufferPointer<UInt8>, _ i: Int) -> Bool {
    guard i > 0, i + 1 < bytes.count, bytes[i] == 0x20, bytes[i - 1] > 0x20, bytes[i - 1] < 0x7F else { return false }
    return GPT2PreTokenizer.classify(bytes, i + 1).class != .whitespace
  }

  /// Unicode scalars in valid UTF-8: the bytes that are not continuation bytes.
  private static func characterCount(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
    bytes.reduce(0) { $0 + ($1 & 0xC0 == 0x80 ? 0 : 1) }
  }

  private static func byteOffset(ofCharacter n: Int, in bytes: UnsafeBufferPointer<UInt8>) -> Int {
    var seen = -1
    for (i, byte) in bytes.enumerated() where byte & 0xC0 != 0x80 {
      seen += 1
      if seen == n { return i }
    }
    return bytes.count
  }

  /// documentLines with each line's 1-based number, for messages.
  static func documentLinesWithNumbers(_ bytes: UnsafeBufferPointer<UInt8>) -> [(Range<Int>, Int)] {
    var numbered: [(Range<Int>, Int)] = []
    var line = 1
    var scanned = 0
    for range in documentLines(bytes) {
      for i in scanned..<range.lowerBound where bytes[i] == UInt8(ascii: "\n") { line += 1 }
      scanned = range.lowerBound
      numbered.append((range, line))
    }
    return numbered
  }

  /// The byte ranges of a JSONL file's non-empty lines (a document each), without their newlines.
  static func documentLines(_ bytes: UnsafeBufferPointer<UInt8>) -> [Range<Int>] {
    var lines: [Range<Int>] = []
    var start = 0
    for i in 0...bytes.count {
      guard i == bytes.count || bytes[i] == UInt8(ascii: "\n") else { continue }
      var end = i
      if end > start && bytes[end - 1] == UInt8(ascii: "\r") { end -= 1 }
      if end > start && !bytes[start..<end].allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { lines.append(start..<end) }
      start = i + 1
    }
    return lines
  }
}

extension FileManager {
  fileprivate func isDirectory(_ path: String) -> Bool {
    var isDirectory: ObjCBool = false
    return fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
  }
}

// MARK: - Reading and encoding

extension CorpusSources {
  /// The ids of one unit, with <|endoftext|> before each document the unit starts after its split's
  /// first, when the tokenizer has one.
  func encode(_ unit: SourceUnit, _ tokenizer: Tokenizer, threads: Int) throws -> [Int32] {
    var ids: [Int32] = []
    try forEachDocument(in: unit) { bytes, separated in
      if separated, let endOfText = tokenizer.endOfText { ids.append(endOfText) }
      switch tokenizer.kind {
      case .byte: ids += bytes.map { Int32($0) }
      case .bpe: ids += tokenizer.bytePairEncoding!.encode(bytes, threads: threads)
      case .char: ids += try tokenizer.encode(String(decoding: bytes, as: UTF8.self), source: files[unit.file].mapped.path)
      }
    }
    return ids
  }

  /// Every document (or the part a unit holds) in order, with whether a separator goes before it.
  func forEachDocument(in unit: SourceUnit, _ body: (UnsafeBufferPointer<UInt8>, Bool) throws -> Void) throws {
    let file = files[unit.file]
    let bytes = UnsafeBufferPointer(rebasing: file.mapped.bytes[unit.bytes])
    if format == .tsv || format == .csv {
      let rows = try ClassificationData.readExamples(
        file.mapped.path, field: file.field, format: format, textField: textField, labelField: "", labelled: false)
      for (n, row) in rows.enumerated() {
        var text = row.text
        try text.withUTF8 { try body($0, n == 0 ? unit.separated : true) }
      }
      return
    }
    guard format == .jsonl else { return try body(bytes, unit.separated) }
    var line = unit.firstLine
    var first = true
    var start = 0
    for i in 0...bytes.count {
      guard i == bytes.count || bytes[i] == UInt8(ascii: "\n") else { continue }
      defer {
        start = i + 1
        line += 1
      }
      var end = i
      if end > start && bytes[end - 1] == UInt8(ascii: "\r") { end -= 1 }
      guard end > start, !bytes[start..<end].allSatisfy({ $0 == 0x20 || $0 == 0x09 }) else { continue }
      var text = try documentText(UnsafeBufferPointer(rebasing: bytes[start..<end]), file: file, line: line)
      try text.withUTF8 { try body($0, first ? unit.separated : true) }
      first = false
    }
  }

  /// The text field of one JSONL line.
  private func documentText(_ line: UnsafeBufferPointer<UInt8>, file: File, line number: Int) throws -> String {
    func fail(_ problem: String) -> InputError {
      InputError(file: file.mapped.path, field: file.field, problem: "line \(number): \(problem)")
    }
    let value: JSONValue
    do {
      value = try JSONValue.parse(Data(line))
    } catch let error as JSONSyntaxError {
      throw fail("not a JSON object: \(error.message)")
    }
    guard case .object(let members) = value else { throw fail("expected a JSON object, found \(value.kindName)") }
    guard let field = members.first(where: { $0.key == textField })?.value else {
      throw fail("no \"\(textField)\" field (data.text_field names the field that holds the text)")
    }
    guard case .string(let text) = field else { throw fail("\"\(textField)\" is \(field.kindName), not a string") }
    return text
  }

  /// The texts of a split's documents (both splits when nil), as UTF-8, stopping after `limit`
  /// bytes: what a char vocabulary is built from and a BPE learns from.
  func forEachText(of split: Split?, limit: Int = .max, _ body: (UnsafeBufferPointer<UInt8>) throws -> Void) throws {
    var seen = 0
    for unit in units where split == nil || unit.split == split {
      try forEachDocument(in: unit) { bytes, _ in
        guard seen < limit else { return }
        try body(bytes)
        seen += bytes.count
      }
    }
  }

  /// The tokenizer `spec` names, built from these sources where it is made from the text.
  func makeTokenizer(_ spec: TokenizerSpec) throws -> Tokenizer {
    switch spec {
    case .byte: return .bytes
    case .bpe(let path): return Tokenizer(try BytePairEncoding.load(path: path, field: "data.tokenizer"))
    case .char:
      var seen = Set<Unicode.Scalar>()
      try forEachText(of: nil) { seen.formUnion(String(decoding: $0, as: UTF8.self).unicodeScalars) }
      return Tokenizer(characters: seen.sorted { $0.value < $1.value })
    case .trainedBPE(let size, let specials):
      var texts: [String] = []
      try forEachText(of: .train, limit: Self.learningLimit) { texts.append(String(decoding: $0, as: UTF8.self)) }
      return Tokenizer(try BytePairEncoding.train(on: texts, vocabularySize: size, specialTokens: specials))
    }
  }

  /// A BPE learns from at most this much of the training text (the first of it).
  static let learningLimit = 1 << 30
}

// MARK: - Fingerprint

extension CorpusSources {
  /// What prepared shards were made from, cheap to recompute at every start: the files the patterns
  /// name now with their sizes and modification times, and every setting that shapes the token
  /// streams. Prepared data whose fingerprint differs came from other sources.
  static func fingerprint(_ data: DataConfig, tokenizerFile: String?) throws -> JSONValue {
    func describe(_ paths: [String]) -> JSONValue {
      .array(paths.map { path in
        var info = stat()
        let ok = stat(path, &info) == 0
        let modified = ok ? Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec) : -1
        return .object([
          (key: "path", value: .string(path)), (key: "bytes", value: JSONValue(integer: ok ? Int(info.st_size) : -1)),
          (key: "modified_ns", value: .integer(String(modified))),
        ])
      })
    }
    var members: [(key: String, value: JSONValue)] = [
      (key: "train", value: describe(try expand(data.trainPaths, field: "data.train_path"))),
      (key: "dev", value: describe(try expand(data.devPaths, field: "data.dev_path"))),
      (key: "format", value: .string(data.format.rawValue)),
      (key: "text_field", value: .string(data.textField)),
      (key: "train_fraction", value: data.devPaths.isEmpty ? .number(data.trainFraction) : .null),
      (key: "shard_mb", value: .number(data.shardMB)),
    ]
    let tokenizer = ConfigSchema.data.fields.first { $0.key == "tokenizer" }!.encode(data)
    members.append((key: "tokenizer", value: tokenizer))
    if let tokenizerFile { members.append((key: "tokenizer_file", value: describe([tokenizerFile]))) }
    return .object(members)
  }
}
