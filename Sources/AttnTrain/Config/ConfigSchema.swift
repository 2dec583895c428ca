// The one table of config keys: for each section its JSON name, and for each field its snake_case
// key, how it is read (JSON type and the range allowed for that key alone) and how it is written
// back. Parsing, validate(), resolvedJSON(), changedFields() and the unknown-key suggestions all walk
// this table, so a new setting is one line here, its default in Config.swift and a row in
// dev/config-reference.md (a test checks the document against this table).
import AttnCore
import AttnFormats
import Foundation

extension Config {
  // One line per key, so the table reads as one (hence no reformatting).
  // swift-format-ignore
  static var sections: [ConfigSection] {
    [
      ConfigSection("model", \.model, [
        .int("n_layer", \.nLayer, 1...4096),
        .int("n_head", \.nHead, 1...4096),
        .int("n_embd", \.nEmbd, 1...65536),
        .int("block_size", \.blockSize, 1...1_048_576),
        .double("dropout", \.dropout, .zeroToBelowOne),
        .choice("position_encoding", \.positionEncoding),
        .bool("tie_embeddings", \.tieEmbeddings),
        .optionalInt("vocab_size", \.vocabSize, 1...16_777_216),
      ]),
      ConfigSection("optimizer", \.optimizer, [
        .choice("kind", \.kind),
        .double("learning_rate", \.learningRate, .positive),
        .double("weight_decay", \.weightDecay, .nonNegative),
        .double("beta1", \.beta1, .zeroToBelowOne),
        .double("beta2", \.beta2, .zeroToBelowOne),
        .double("eps", \.eps, .positive),
        .double("momentum", \.momentum, .zeroToBelowOne),
        .bool("nesterov", \.nesterov),
        .double("alpha", \.alpha, .zeroToBelowOne),
        .double("grad_clip", \.gradClip, .nonNegative),
        .bool("decay_embeddings", \.decayEmbeddings),
      ]),
      ConfigSection("schedule", \.schedule, [
        .choice("kind", \.kind),
        .int("warmup_steps", \.warmupSteps, 0...Int.max),
        .optionalInt("decay_steps", \.decaySteps, 1...Int.max),
        .double("min_lr", \.minLR, .nonNegative),
      ]),
      ConfigSection("training", \.training, [
        .int("batch_size", \.batchSize, 1...1_048_576),
        .int("grad_accum_steps", \.gradAccumSteps, 1...1_048_576),
        .int("max_steps", \.maxSteps, 1...Int.max),
        .seed("seed", \.seed),
        .int("eval_interval", \.evalInterval, 0...Int.max),
        .int("log_interval", \.logInterval, 1...Int.max),
        .int("checkpoint_interval", \.checkpointInterval, 0...Int.max),
        .int("keep_checkpoints", \.keepCheckpoints, 1...Int.max),
        .int("consistency_check_interval", \.consistencyCheckInterval, 0...Int.max),
        .optionalInt("threads", \.threads, 1...4096),
        .double("gradient_bucket_mb", \.gradientBucketMB, .positive),
        .bool("reduce_during_backward", \.reduceDuringBackward),
      ]),
      ConfigSection("data", \.data, [
        .path("train_path", \.trainPath),
        .optionalPath("dev_path", \.devPath),
        .double("train_fraction", \.trainFraction, .openUnitInterval),
        .choice("tokenizer", \.tokenizer),
      ]),
      ConfigSection("output", \.output, [
        .path("run_dir", \.runDir)
      ]),
    ]
  }
}

// MARK: - Sections and fields

/// Why one value was refused; the caller adds the file, the field path and the value.
struct FieldProblem: Error {
  let message: String
  init(_ message: String) { self.message = message }
}

struct ConfigField<Section> {
  let key: String
  let encode: (Section) -> JSONValue
  /// Type and range checks; a relative path is resolved against `base`, the config's directory.
  let decode: (inout Section, JSONValue, _ base: URL) throws -> Void
}

/// A section with its field type erased, so that all sections fit in one list.
struct ConfigSection {
  let name: String
  let keys: [String]
  let encode: (Config) -> [(key: String, value: JSONValue)]
  let decode: (inout Config, _ key: String, JSONValue, _ base: URL) throws -> Void

  init<S>(_ name: String, _ section: WritableKeyPath<Config, S>, _ fields: [ConfigField<S>]) {
    self.name = name
    keys = fields.map(\.key)
    encode = { config in fields.map { (key: $0.key, value: $0.encode(config[keyPath: section])) } }
    decode = { config, key, value, base in
      guard let field = fields.first(where: { $0.key == key }) else {
        preconditionFailure("\(name).\(key) is not in the table; look keys up in `keys` first")
      }
      try field.decode(&config[keyPath: section], value, base)
    }
  }
}

/// The ranges a Double key can be restricted to, named by the rule a user reads in an error.
enum DoubleRange {
  case positive, nonNegative, zeroToBelowOne, openUnitInterval

  func contains(_ x: Double) -> Bool {
    switch self {
    case .positive: return x > 0
    case .nonNegative: return x >= 0
    case .zeroToBelowOne: return x >= 0 && x < 1
    case .openUnitInterval: return x > 0 && x < 1
    }
  }

  var rule: String {
    switch self {
    case .positive: return "must be > 0"
    case .nonNegative: return "must be >= 0"
    case .zeroToBelowOne: return "must be in [0, 1): at least 0 and below 1"
    case .openUnitInterval: return "must be in (0, 1): above 0 and below 1"
    }
  }
}

// MARK: - Field kinds

extension ConfigField {
  // The upper limits on sizes catch typos and keep buffer-size arithmetic far from overflow.
  static func int(_ key: String, _ path: WritableKeyPath<Section, Int>, _ range: ClosedRange<Int>) -> Self {
    Self(
      key: key, encode: { .integer(String($0[keyPath: path])) },
      decode: { section, value, _ in section[keyPath: path] = try readInt(value, range, orNull: false) })
  }

  /// null (written back for nil) means "use the derived default".
  static func optionalInt(_ key: String, _ path: WritableKeyPath<Section, Int?>, _ range: ClosedRange<Int>) -> Self {
    Self(
      key: key, encode: { $0[keyPath: path].map { .integer(String($0)) } ?? .null },
      decode: { section, value, _ in
        section[keyPath: path] = value == .null ? nil : try readInt(value, range, orNull: true)
      })
  }

  static func seed(_ key: String, _ path: WritableKeyPath<Section, UInt64>) -> Self {
    Self(
      key: key, encode: { .integer(String($0[keyPath: path])) },
      decode: { section, value, _ in
        guard case .integer(let text) = value else {
          throw FieldProblem("expected an integer, found \(value.kindName)")
        }
        guard let seed = UInt64(text) else { throw FieldProblem("must be an integer in 0...\(UInt64.max)") }
        section[keyPath: path] = seed
      })
  }

  static func double(_ key: String, _ path: WritableKeyPath<Section, Double>, _ range: DoubleRange) -> Self {
    Self(
      key: key, encode: { .number($0[keyPath: path]) },
      decode: { section, value, _ in
        let x: Double
        switch value {
        case .number(let n): x = n
        case .integer(let text): x = Double(text) ?? .infinity
        default: throw FieldProblem("expected a number, found \(value.kindName)")
        }
        guard x.isFinite else { throw FieldProblem("is too large for a 64-bit float") }
        guard range.contains(x) else { throw FieldProblem(range.rule) }
        section[keyPath: path] = x
      })
  }

  static func bool(_ key: String, _ path: WritableKeyPath<Section, Bool>) -> Self {
    Self(
      key: key, encode: { .bool($0[keyPath: path]) },
      decode: { section, value, _ in
        guard case .bool(let b) = value else { throw FieldProblem("expected true or false, found \(value.kindName)") }
        section[keyPath: path] = b
      })
  }

  static func choice<E: RawRepresentable & CaseIterable>(_ key: String, _ path: WritableKeyPath<Section, E>) -> Self
  where E.RawValue == String {
    Self(
      key: key, encode: { .string($0[keyPath: path].rawValue) },
      decode: { section, value, _ in
        let names = E.allCases.map(\.rawValue)
        let allowed = "expected one of " + names.map { "\"\($0)\"" }.joined(separator: ", ")
        guard case .string(let name) = value else { throw FieldProblem("\(allowed), found \(value.kindName)") }
        guard let choice = E(rawValue: name) else {
          let hint = nearestMatch(to: name, in: names).map { "; did you mean \"\($0)\"?" } ?? ""
          throw FieldProblem(allowed + hint)
        }
        section[keyPath: path] = choice
      })
  }

  static func path(_ key: String, _ path: WritableKeyPath<Section, String>) -> Self {
    Self(
      key: key, encode: { .string($0[keyPath: path]) },
      decode: { section, value, base in section[keyPath: path] = try readPath(value, base, orNull: false) })
  }

  static func optionalPath(_ key: String, _ path: WritableKeyPath<Section, String?>) -> Self {
    Self(
      key: key, encode: { $0[keyPath: path].map { .string($0) } ?? .null },
      decode: { section, value, base in
        section[keyPath: path] = value == .null ? nil : try readPath(value, base, orNull: true)
      })
  }
}

private func readInt(_ value: JSONValue, _ range: ClosedRange<Int>, orNull: Bool) throws -> Int {
  guard case .integer(let text) = value else {
    let expected = orNull ? "an integer or null" : "an integer"
    if case .number = value { throw FieldProblem("expected \(expected), written without a decimal point or exponent") }
    throw FieldProblem("expected \(expected), found \(value.kindName)")
  }
  guard let n = Int(text), range.contains(n) else {
    if range.upperBound == Int.max { throw FieldProblem("must be an integer >= \(range.lowerBound)") }
    throw FieldProblem("must be an integer in \(range.lowerBound)...\(range.upperBound)")
  }
  return n
}

private func readPath(_ value: JSONValue, _ base: URL, orNull: Bool) throws -> String {
  guard case .string(let path) = value else {
    throw FieldProblem("expected a path string\(orNull ? " or null" : ""), found \(value.kindName)")
  }
  guard !path.isEmpty else { throw FieldProblem("must not be empty") }
  return resolvePath(path, against: base)
}

/// An absolute, normalised path: `~` expands to the home directory, and a relative path is taken
/// from the config's directory so the same config works from any working directory.
func resolvePath(_ path: String, against base: URL) -> String {
  let expanded = path.hasPrefix("~") ? NSString(string: path).expandingTildeInPath : path
  return URL(fileURLWithPath: expanded, relativeTo: base).standardizedFileURL.path
}
