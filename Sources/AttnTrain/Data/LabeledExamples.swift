// Labelled examples for classification: TSV or CSV with a header row, or JSONL, the text and label
// named by data.text_field and task.label_field. Labels (strings or integers) map to ids through an
// ordered label list that is saved with the run (task.labels in the resolved config), so eval and
// predict read ids the way training wrote them. Each example becomes at most block_size token ids
// (cut at the end or the start, task.truncate), padded after its length, which the model masks.

import AttnCore
import AttnFormats
import Foundation

/// One example as read: its text, its label as written, and where it came from.
struct RawExample {
  let text: String
  let label: String
  let file: String
  let line: Int
}

/// A split's examples, tokenized: ids [count, T] padded, real lengths, label ids.
public final class LabeledExamples: @unchecked Sendable {
  public let count: Int
  public let sequenceLength: Int
  private let ids: UnsafeMutableBufferPointer<Int32>
  private let lengthList: UnsafeMutableBufferPointer<Int32>
  private let labelList: UnsafeMutableBufferPointer<Int32>

  init(sequenceLength T: Int, examples: [(ids: [Int32], label: Int32)]) {
    count = examples.count
    sequenceLength = T
    ids = .allocate(capacity: max(1, count * T))
    ids.initialize(repeating: 0)
    lengthList = .allocate(capacity: max(1, count))
    labelList = .allocate(capacity: max(1, count))
    for (n, example) in examples.enumerated() {
      precondition(!example.ids.isEmpty && example.ids.count <= T, "an example is 1...T ids")
      for (t, id) in example.ids.enumerated() { ids[n * T + t] = id }
      lengthList[n] = Int32(example.ids.count)
      labelList[n] = example.label
    }
  }

  deinit {
    ids.deallocate()
    lengthList.deallocate()
    labelList.deallocate()
  }

  public func label(_ n: Int) -> Int32 { labelList[n] }

  /// The first 16 hex digits of the SHA-256 of every example's ids, length and label.
  public func digest() -> String {
    var hash = SHA256()
    hash.update(UnsafeRawBufferPointer(start: ids.baseAddress, count: count * sequenceLength * 4))
    hash.update(UnsafeRawBufferPointer(start: lengthList.baseAddress, count: count * 4))
    hash.update(UnsafeRawBufferPointer(start: labelList.baseAddress, count: count * 4))
    return String(hash.hexDigest().prefix(16))
  }
  public func length(_ n: Int) -> Int32 { lengthList[n] }

  /// Copies example n into batch row `row`. Allocates nothing.
  @inline(__always)
  public func copy(
    _ n: Int, toRow row: Int, tokens: UnsafeMutablePointer<Int32>, lengths: UnsafeMutablePointer<Int32>,
    labels: UnsafeMutablePointer<Int32>
  ) {
    let T = sequenceLength
    (tokens + row * T).update(from: ids.baseAddress! + n * T, count: T)
    lengths[row] = lengthList[n]
    labels[row] = labelList[n]
  }
}

public struct ClassificationData: Sendable {
  public let tokenizer: Tokenizer
  /// The labels in id order.
  public let labels: [String]
  public let train: LabeledExamples
  public let dev: LabeledExamples

  /// Reads, checks and tokenizes the config's labelled examples. `vocabulary` and `labels` (a
  /// checkpoint's) are used when given, so a resumed or evaluated run keeps its ids. `warn` hears
  /// about a training set with a single label.
  public static func load(
    _ config: Config, vocabulary: Tokenizer? = nil, labels known: [String]? = nil, learnedTokenizerFile: String? = nil,
    log: RunLog? = nil
  ) throws -> ClassificationData {
    let data = config.data
    let trainFiles = try CorpusSources.expand(data.trainPaths, field: "data.train_path")
    let devFiles = try CorpusSources.expand(data.devPaths, field: "data.dev_path")
    var train = try trainFiles.flatMap { try readExamples($0, field: "data.train_path", config) }
    var dev = try devFiles.flatMap { try readExamples($0, field: "data.dev_path", config) }
    let trainSource = data.trainPaths.joined(separator: ", ")
    guard !train.isEmpty else { throw InputError(file: trainSource, field: "data.train_path", problem: "holds no examples") }
    if devFiles.isEmpty {
      let cut = Int(Double(train.count) * data.trainFraction)
      guard cut > 0 && cut < train.count else {
        throw InputError(
          file: trainSource, field: "data.train_fraction",
          problem: "leaves \(cut == 0 ? "no training" : "no dev") example of the \(train.count)", hint: "use more examples or another fraction")
      }
      dev = Array(train[cut...])
      train = Array(train[..<cut])
    }
    guard !dev.isEmpty else {
      throw InputError(file: data.devPaths.joined(separator: ", "), field: "data.dev_path", problem: "holds no examples")
    }

    let labels = try known ?? config.task.labels ?? sortedLabels(train.map(\.label))
    if let count = config.task.numClasses, count != labels.count {
      throw InputError(
        file: config.sourcePath, field: "task.num_classes",
        problem: "is \(count), but the labels are \(labels.count): \(labels.prefix(10).joined(separator: ", "))\(labels.count > 10 ? ", ..." : "")",
        hint: "remove num_classes, or list the labels in task.labels")
    }
    guard labels.count >= 2 else {
      throw InputError(file: trainSource, field: "task.label_field", problem: "every training example has the label \(labels.first ?? "?"); a classifier needs two labels at least")
    }
    let trainLabels = Set(train.map(\.label))
    if trainLabels.count == 1, let log {
      log.warn("\(trainSource): every training example has the label \(trainLabels.first!); the classifier can learn nothing else")
    }
    let ids = Dictionary(uniqueKeysWithValues: labels.enumerated().map { ($1, Int32($0)) })

    let tokenizer = try vocabulary ?? makeTokenizer(config, train: train, dev: dev, learnedTokenizerFile: learnedTokenizerFile, log: log)
    try TextData.check(tokenizer, against: config)
    let encoder = try ExampleEncoder(config, tokenizer: tokenizer)
    func tokenize(_ examples: [RawExample]) throws -> LabeledExamples {
      let encoded = try examples.map { example -> (ids: [Int32], label: Int32) in
        guard let label = ids[example.label] else {
          throw InputError(
            file: example.file, problem: "line \(example.line): label \(example.label.debugDescription) is not among the labels (\(labels.joined(separator: ", ")))",
            hint: "the labels come from the training data or task.labels")
        }
        return (try encoder.encode(example), label)
      }
      return LabeledExamples(sequenceLength: encoder.sequenceLength, examples: encoded)
    }
    return ClassificationData(tokenizer: tokenizer, labels: labels, train: try tokenize(train), dev: try tokenize(dev))
  }

  /// The training loss the config asks for, its class weights in label-id order.
  public func loss(_ config: Config) throws -> ClassificationLoss {
    let smoothing = Float(config.task.labelSmoothing)
    switch config.task.classWeights {
    case nil:
      return ClassificationLoss(labelSmoothing: smoothing)
    case .balanced:
      var counts = [Int](repeating: 0, count: labels.count)
      for n in 0..<train.count { counts[Int(train.label(n))] += 1 }
      // A label the training set lacks never weighs an example; 1 keeps the list finite.
      let weights = counts.map { $0 == 0 ? 1 : Float(Double(train.count) / Double(labels.count * $0)) }
      return ClassificationLoss(labelSmoothing: smoothing, classWeights: weights)
    case .byLabel(let given):
      var weights = [Float](repeating: 1, count: labels.count)
      for (label, weight) in given {
        guard let id = labels.firstIndex(of: label) else {
          throw InputError(
            file: config.sourcePath, field: "task.class_weights",
            problem: "names label \(label.debugDescription), which is not among the labels (\(labels.joined(separator: ", ")))")
        }
        weights[id] = Float(weight)
      }
      return ClassificationLoss(labelSmoothing: smoothing, classWeights: weights)
    }
  }

  /// Distinct labels, as numbers when every one is an integer, else as strings.
  static func sortedLabels(_ labels: [String]) -> [String] {
    let distinct = Array(Set(labels))
    if distinct.allSatisfy({ Int($0) != nil }) { return distinct.sorted { Int($0)! < Int($1)! } }
    return distinct.sorted()
  }

  private static func makeTokenizer(
    _ config: Config, train: [RawExample], dev: [RawExample], learnedTokenizerFile: String?, log: RunLog?
  ) throws -> Tokenizer {
    switch config.data.tokenizer {
    case .byte: return .bytes
    case .bpe(let path): return Tokenizer(try BytePairEncoding.load(path: path, field: "data.tokenizer"))
    case .char: return .characters(of: (train + dev).map(\.text))
    case .trainedBPE:
      return try Tokenizer.learned(
        for: config, file: learnedTokenizerFile ?? "", log: log ?? RunLog(isSpeaker: false),
        trainingTexts: { train.map(\.text) })!
    }
  }
}

/// An example's text as the model reads it: at most block_size ids, cut at the configured end, with
/// the [CLS] id first when pooling "first" needs it.
struct ExampleEncoder {
  let tokenizer: Tokenizer
  let sequenceLength: Int
  let truncate: TruncationSide
  let cls: Int32?
  let configPath: String

  init(_ config: Config, tokenizer: Tokenizer) throws {
    self.tokenizer = tokenizer
    sequenceLength = config.model.blockSize
    truncate = config.task.truncate
    configPath = config.sourcePath
    guard config.pooling == .first else {
      cls = nil
      return
    }
    guard let id = tokenizer.specialID("[CLS]") else {
      throw InputError(
        file: config.sourcePath, field: "task.pooling",
        problem: "\"first\" pools a [CLS] token the tokenizer puts first, and this \(tokenizer.kind.rawValue) tokenizer has none",
        hint: "use \"mean\" or \"last\", or a tokenizer.json with a [CLS] special token")
    }
    cls = id
  }

  func encode(_ example: RawExample) throws -> [Int32] {
    var tokens = try tokenizer.encode(example.text, source: "\(example.file) line \(example.line)")
    let room = sequenceLength - (cls == nil ? 0 : 1)
    if tokens.count > room {
      tokens = truncate == .end ? Array(tokens.prefix(room)) : Array(tokens.suffix(room))
    }
    if let cls { tokens.insert(cls, at: 0) }
    guard !tokens.isEmpty else {
      throw InputError(file: example.file, problem: "line \(example.line): the text is empty", hint: "remove the row")
    }
    return tokens
  }
}

// MARK: - Reading files

extension ClassificationData {
  /// The config's examples in one file.
  static func readExamples(_ path: String, field: String, _ config: Config) throws -> [RawExample] {
    try readExamples(path, field: field, format: config.data.format, textField: config.data.textField, labelField: config.task.labelField)
  }

  /// `labelled`: false reads texts whose label may be missing (predict's input, a language model's
  /// text); their label is "".
  static func readExamples(
    _ path: String, field: String, format: SourceFormat, textField: String, labelField: String, labelled: Bool = true
  ) throws -> [RawExample] {
    let file = try MappedFile(path: path)
    guard file.count > 0 else { throw InputError(file: path, field: field, problem: "the file is empty") }
    switch format {
    case .jsonl:
      return try CorpusSources.documentLinesWithNumbers(file.bytes).map { range, line in
        func fail(_ problem: String) -> InputError { InputError(file: path, field: field, problem: "line \(line): \(problem)") }
        let value: JSONValue
        do {
          value = try JSONValue.parse(Data(UnsafeBufferPointer(rebasing: file.bytes[range])))
        } catch let error as JSONSyntaxError {
          throw fail("not a JSON object: \(error.message)")
        }
        guard case .object(let members) = value else { throw fail("expected a JSON object, found \(value.kindName)") }
        guard case .string(let text)? = members.first(where: { $0.key == textField })?.value else {
          throw fail("no \"\(textField)\" string (data.text_field names the text)")
        }
        let label: String
        switch members.first(where: { $0.key == labelField })?.value {
        case .string(let name)?: label = name
        case .integer(let number)?: label = number
        case nil where !labelled: label = ""
        default: throw fail("no \"\(labelField)\" label, a string or an integer (task.label_field names it)")
        }
        return RawExample(text: text, label: label, file: path, line: line)
      }
    case .tsv, .csv:
      guard let text = String(validatingUTF8: file.bytes) else {
        throw InputError(file: path, field: field, problem: "not valid UTF-8 at byte \(firstInvalidUTF8Offset(file.bytes))")
      }
      let rows = try DelimitedRows(text, separator: format == .tsv ? "\t" : ",", path: path)
      guard let header = rows.first else { throw InputError(file: path, field: field, problem: "has no header row") }
      func column(_ name: String, _ key: String) throws -> Int {
        guard let index = header.fields.firstIndex(of: name) else {
          throw InputError(
            file: path, field: key, problem: "line 1: no column \"\(name)\"; the header has \(header.fields.map { "\"\($0)\"" }.joined(separator: ", "))")
        }
        return index
      }
      let textColumn = try column(textField, "data.text_field")
      let labelColumn = labelled || header.fields.contains(labelField) ? try column(labelField, "task.label_field") : nil
      return try rows.dropFirst().map { row in
        guard row.fields.count == header.fields.count else {
          throw InputError(
            file: path, field: field, problem: "line \(row.line): \(row.fields.count) fields where the header has \(header.fields.count) (a ragged row)")
        }
        return RawExample(text: row.fields[textColumn], label: labelColumn.map { row.fields[$0] } ?? "", file: path, line: row.line)
      }
    case .text:
      preconditionFailure("examples come from TSV, CSV or JSONL; validate() and predict keep text files out")
    }
  }
}

/// The rows of a TSV or CSV file: fields split at the separator; a field that starts with a double
/// quote runs to its closing quote (separators and newlines inside it are text, "" is a quote), as
/// RFC 4180 has it; a quote anywhere else is an ordinary character (GLUE's TSV files hold PTB quotes).
struct DelimitedRows: Collection {
  struct Row {
    let fields: [String]
    /// The 1-based line the row starts on.
    let line: Int
  }

  private let rows: [Row]

  init(_ text: String, separator: Character, path: String) throws {
    var rows: [Row] = []
    var fields: [String] = []
    var field = ""
    var line = 1
    var rowLine = 1
    var quoted = false
    var atFieldStart = true
    var iterator = text.makeIterator()
    var pending: Character?
    func next() -> Character? {
      if let p = pending {
        pending = nil
        return p
      }
      return iterator.next()
    }
    while let c = next() {
      if quoted {
        if c == "\"" {
          if let following = next() {
            if following == "\"" { field.append("\"") } else {
              quoted = false
              pending = following
            }
          } else { quoted = false }
        } else {
          if c == "\n" || c == "\r\n" { line += 1 }
          field.append(c)
        }
        continue
      }
      if atFieldStart && c == "\"" {
        quoted = true
        atFieldStart = false
        continue
      }
      atFieldStart = false
      if c == separator {
        fields.append(field)
        field = ""
        atFieldStart = true
      } else if c == "\n" || c == "\r\n" {
        fields.append(field)
        if !(fields.count == 1 && fields[0].isEmpty) { rows.append(Row(fields: fields, line: rowLine)) }
        fields = []
        field = ""
        atFieldStart = true
        line += 1
        rowLine = line
      } else {
        field.append(c)
      }
    }
    if quoted { throw InputError(file: path, problem: "line \(rowLine): a quoted field is never closed") }
    if !field.isEmpty || !fields.isEmpty {
      fields.append(field)
      rows.append(Row(fields: fields, line: rowLine))
    }
    self.rows = rows
  }

  var startIndex: Int { rows.startIndex }
  var endIndex: Int { rows.endIndex }
  subscript(i: Int) -> Row { rows[i] }
  func index(after i: Int) -> Int { i + 1 }
}
