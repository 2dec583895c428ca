// How a row of the schema (ConfigSchema.swift) reads, checks, writes and documents one key. A row
// knows its key, where the value lives, its default, the range allowed for that key alone, and its
// meaning; everything that walks the config (parsing, validate(), resolvedJSON(), changedFields(),
// the unknown-key suggestions, the README reference) goes through the rows.

import AttnFormats
import Foundation

struct ConfigField<Section> {
  let key: String
  /// The JSON type, as the reference names it ("integer or null").
  let type: String
  /// What the key does, then the range sentence derived from its range check.
  let meaning: String
  /// The default as the reference shows it, when writing the default value would not say it.
  var defaultText: String?
  /// Older names still read, with a warning.
  var deprecatedNames: [String] = []
  /// Whether a resumed run must keep the checkpoint's value; nil: the section's rule.
  var fixedOnResume: Bool?
  let encode: (Section) -> JSONValue
  /// Type and range checks; a relative path is resolved against `base`, the config's directory.
  let decode: (inout Section, JSONValue, _ base: URL) throws -> Void
  let setDefault: (inout Section) -> Void

  /// Reads `old` too, warning that it is deprecated.
  func renamed(from old: String) -> Self {
    var field = self
    field.deprecatedNames.append(old)
    return field
  }

  /// A resumed run must keep the checkpoint's value (it changes the model, data or batches).
  func fixedOnResume(_ fixed: Bool = true) -> Self {
    var field = self
    field.fixedOnResume = fixed
    return field
  }
}

struct ConfigSection<Section> {
  let name: String
  let fields: [ConfigField<Section>]
  /// The rule for the section's fields that do not set their own.
  let fixedOnResume: Bool

  init(_ name: String, fixedOnResume: Bool = false, _ fields: [ConfigField<Section>]) {
    self.name = name
    self.fixedOnResume = fixedOnResume
    self.fields = fields
  }

  func setDefaults(_ section: inout Section) {
    for field in fields { field.setDefault(&section) }
  }
}

/// A section with its field type erased and bound to its place in Config, so that all sections fit
/// in one list.
struct AnyConfigSection {
  struct Row {
    let key: String
    let type: String
    let defaultText: String
    let meaning: String
    let deprecatedNames: [String]
    let fixedOnResume: Bool
  }

  let name: String
  let rows: [Row]
  var keys: [String] { rows.map(\.key) }
  let encode: (Config) -> [(key: String, value: JSONValue)]
  let decode: (inout Config, _ key: String, JSONValue, _ base: URL) throws -> Void

  init<S>(_ section: ConfigSection<S>, _ path: WritableKeyPath<Config, S>, defaults: S) {
    name = section.name
    rows = section.fields.map {
      Row(
        key: $0.key, type: $0.type, defaultText: $0.defaultText ?? "`\($0.encode(defaults).description)`",
        meaning: $0.meaning, deprecatedNames: $0.deprecatedNames, fixedOnResume: $0.fixedOnResume ?? section.fixedOnResume)
    }
    let fields = section.fields
    encode = { config in fields.map { (key: $0.key, value: $0.encode(config[keyPath: path])) } }
    decode = { config, key, value, base in
      guard let field = fields.first(where: { $0.key == key }) else {
        preconditionFailure("\(section.name).\(key) is not in the table; look keys up in `keys` first")
      }
      try field.decode(&config[keyPath: path], value, base)
    }
  }

  /// The current key a name in a file stands for, and whether that name is a deprecated one.
  func key(named name: String) -> (key: String, deprecated: Bool)? {
    if keys.contains(name) { return (name, false) }
    return rows.first { $0.deprecatedNames.contains(name) }.map { ($0.key, true) }
  }
}

/// Why one value was refused; the caller adds the file, the field path and the value.
struct FieldProblem: Error {
  let message: String
  init(_ message: String) { self.message = message }
}

/// The ranges a number key can be restricted to, named by the rule a user reads in an error.
enum NumberRange {
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

  var sentence: String {
    switch self {
    case .positive: return "Above 0."
    case .nonNegative: return "At least 0."
    case .zeroToBelowOne: return "At least 0 and below 1."
    case .openUnitInterval: return "Above 0 and below 1."
    }
  }
}

private func sentence(_ range: ClosedRange<Int>) -> String {
  range.upperBound == Int.max ? "At least \(range.lowerBound)." : "\(range.lowerBound) to \(range.upperBound)."
}

// MARK: - Field kinds

extension ConfigField {
  // The upper limits on sizes catch typos and keep buffer-size arithmetic far from overflow.
  static func int(
    _ key: String, _ path: WritableKeyPath<Section, Int>, default value: Int, _ range: ClosedRange<Int>, _ meaning: String
  ) -> Self {
    Self(
      key: key, type: "integer", meaning: "\(meaning) \(sentence(range))",
      encode: { JSONValue(integer: $0[keyPath: path]) },
      decode: { section, json, _ in section[keyPath: path] = try readInt(json, range, orNull: false) },
      setDefault: { $0[keyPath: path] = value })
  }

  /// null (the default, written back for nil) means what `null` says: a value derived elsewhere.
  static func optionalInt(
    _ key: String, _ path: WritableKeyPath<Section, Int?>, _ range: ClosedRange<Int>, _ meaning: String, null: String
  ) -> Self {
    Self(
      key: key, type: "integer or null", meaning: "\(meaning) \(sentence(range)) `null`: \(null)",
      encode: { $0[keyPath: path].map(JSONValue.init(integer:)) ?? .null },
      decode: { section, json, _ in
        section[keyPath: path] = json == .null ? nil : try readInt(json, range, orNull: true)
      },
      setDefault: { $0[keyPath: path] = nil })
  }

  /// A choice whose null (the default) means one derived from other keys, as `null` says.
  static func optionalChoice<E: RawRepresentable & CaseIterable>(
    _ key: String, _ path: WritableKeyPath<Section, E?>, _ meaning: String, null: String
  ) -> Self where E.RawValue == String {
    let names = E.allCases.map(\.rawValue)
    return Self(
      key: key, type: "string or null", meaning: "\(meaning) `null`: \(null)",
      encode: { $0[keyPath: path].map { .string($0.rawValue) } ?? .null },
      decode: { section, json, _ in
        let allowed = "expected one of " + names.map { "\"\($0)\"" }.joined(separator: ", ") + " or null"
        if json == .null { return section[keyPath: path] = nil }
        guard case .string(let name) = json else { throw FieldProblem("\(allowed), found \(json.kindName)") }
        guard let choice = E(rawValue: name) else {
          throw FieldProblem(allowed + (nearestMatch(to: name, in: names).map { "; did you mean \"\($0)\"?" } ?? ""))
        }
        section[keyPath: path] = choice
      },
      setDefault: { $0[keyPath: path] = nil })
  }

  static func optionalNumber(
    _ key: String, _ path: WritableKeyPath<Section, Double?>, _ range: NumberRange, _ meaning: String, null: String
  ) -> Self {
    Self(
      key: key, type: "number or null", meaning: "\(meaning) \(range.sentence) `null`: \(null)",
      encode: { $0[keyPath: path].map { .number($0) } ?? .null },
      decode: { section, json, _ in section[keyPath: path] = json == .null ? nil : try readNumber(json, range) },
      setDefault: { $0[keyPath: path] = nil })
  }

  /// A list of distinct, non-empty strings, or null.
  static func optionalStrings(_ key: String, _ path: WritableKeyPath<Section, [String]?>, _ meaning: String, null: String) -> Self {
    Self(
      key: key, type: "list of strings or null", meaning: "\(meaning) `null`: \(null)",
      encode: { $0[keyPath: path].map { .array($0.map { .string($0) }) } ?? .null },
      decode: { section, json, _ in
        if json == .null { return section[keyPath: path] = nil }
        guard case .array(let items) = json else { throw FieldProblem("expected a list of strings or null, found \(json.kindName)") }
        let strings = try items.map { item -> String in
          guard case .string(let text) = item, !text.isEmpty else { throw FieldProblem("every entry must be a non-empty string") }
          return text
        }
        guard Set(strings).count == strings.count else { throw FieldProblem("lists a label twice") }
        guard strings.count >= 2 else { throw FieldProblem("needs at least two labels") }
        section[keyPath: path] = strings
      },
      setDefault: { $0[keyPath: path] = nil })
  }

  static func classWeights(_ key: String, _ path: WritableKeyPath<Section, ClassWeights?>, _ meaning: String) -> Self {
    Self(
      key: key, type: "\"balanced\", object or null", meaning: "\(meaning) `null`: every label weighs 1.",
      encode: {
        switch $0[keyPath: path] {
        case nil: return .null
        case .balanced: return .string("balanced")
        case .byLabel(let weights): return .object(weights.map { (key: $0.label, value: .number($0.weight)) })
        }
      },
      decode: { section, json, _ in
        let expected = "expected \"balanced\", an object of label: weight, or null"
        switch json {
        case .null: section[keyPath: path] = nil
        case .string("balanced"): section[keyPath: path] = .balanced
        case .object(let members):
          guard !members.isEmpty else { throw FieldProblem("\(expected), found an empty object") }
          section[keyPath: path] = .byLabel(try members.map { member in
            do { return (member.key, try readNumber(member.value, .positive)) } catch let problem as FieldProblem {
              throw FieldProblem("the weight of label \"\(member.key)\": \(problem.message)")
            }
          })
        default: throw FieldProblem("\(expected), found \(json.kindName)")
        }
      },
      setDefault: { $0[keyPath: path] = nil })
  }

  static func seed(_ key: String, _ path: WritableKeyPath<Section, UInt64>, default value: UInt64, _ meaning: String) -> Self {
    Self(
      key: key, type: "integer", meaning: "\(meaning) 0 to \(UInt64.max).",
      encode: { .integer(String($0[keyPath: path])) },
      decode: { section, json, _ in
        guard case .integer(let text) = json else { throw FieldProblem("expected an integer, found \(json.kindName)") }
        guard let seed = UInt64(text) else { throw FieldProblem("must be an integer in 0...\(UInt64.max)") }
        section[keyPath: path] = seed
      },
      setDefault: { $0[keyPath: path] = value })
  }

  static func double(
    _ key: String, _ path: WritableKeyPath<Section, Double>, default value: Double, _ range: NumberRange,
    _ meaning: String
  ) -> Self {
    Self(
      key: key, type: "number", meaning: "\(meaning) \(range.sentence)",
      encode: { .number($0[keyPath: path]) },
      decode: { section, json, _ in section[keyPath: path] = try readNumber(json, range) },
      setDefault: { $0[keyPath: path] = value })
  }

  /// A number the numerics take as Float (AttnCore's OptimizerSettings): read as a Double, as
  /// written, then rounded once; written back as the shortest text that reads back as that Float.
  static func float(
    _ key: String, _ path: WritableKeyPath<Section, Float>, default value: Double, _ range: NumberRange,
    _ meaning: String
  ) -> Self {
    Self(
      key: key, type: "number", meaning: "\(meaning) \(range.sentence)",
      encode: { .number(Double("\($0[keyPath: path])")!) },
      decode: { section, json, _ in
        let x = Float(try readNumber(json, range))
        guard x.isFinite else { throw FieldProblem("is too large for a 32-bit float") }
        // Training computes in Float: 0.99999999999 becomes 1 and 1e-50 becomes 0, which would
        // divide by zero in Adam's bias correction or denominator a step later.
        guard range.contains(Double(x)) else {
          throw FieldProblem("becomes \(x) as the 32-bit float training computes with, and \(range.rule)")
        }
        guard x == 0 || x.isNormal else {
          throw FieldProblem("is below the smallest normal 32-bit float (\(Float.leastNormalMagnitude)) that training computes with")
        }
        section[keyPath: path] = x
      },
      setDefault: { $0[keyPath: path] = Float(value) })
  }

  static func bool(_ key: String, _ path: WritableKeyPath<Section, Bool>, default value: Bool, _ meaning: String) -> Self {
    Self(
      key: key, type: "boolean", meaning: meaning,
      encode: { .bool($0[keyPath: path]) },
      decode: { section, json, _ in
        guard case .bool(let b) = json else { throw FieldProblem("expected true or false, found \(json.kindName)") }
        section[keyPath: path] = b
      },
      setDefault: { $0[keyPath: path] = value })
  }

  static func choice<E: RawRepresentable & CaseIterable>(
    _ key: String, _ path: WritableKeyPath<Section, E>, default value: E, _ meaning: String
  ) -> Self where E.RawValue == String {
    Self(
      key: key, type: "string", meaning: meaning,
      encode: { .string($0[keyPath: path].rawValue) },
      decode: { section, json, _ in
        let names = E.allCases.map(\.rawValue)
        let allowed = "expected one of " + names.map { "\"\($0)\"" }.joined(separator: ", ")
        guard case .string(let name) = json else { throw FieldProblem("\(allowed), found \(json.kindName)") }
        guard let choice = E(rawValue: name) else {
          let hint = nearestMatch(to: name, in: names).map { "; did you mean \"\($0)\"?" } ?? ""
          throw FieldProblem(allowed + hint)
        }
        section[keyPath: path] = choice
      },
      setDefault: { $0[keyPath: path] = value })
  }

  /// data.tokenizer: a name ("char", "byte") or, for a tokenizer read from a file, an object
  /// {"kind": "bpe", "path": FILE} whose path is resolved like any other.
  static func tokenizer(_ key: String, _ path: WritableKeyPath<Section, TokenizerSpec>, _ meaning: String) -> Self {
    Self(
      key: key, type: "string or object", meaning: meaning,
      encode: { $0[keyPath: path].json },
      decode: { section, json, base in section[keyPath: path] = try readTokenizer(json, base) },
      setDefault: { $0[keyPath: path] = .char })
  }

  /// A path with no default value of its own: required, or derived as `defaultText` says.
  static func path(_ key: String, _ path: WritableKeyPath<Section, String>, defaultText: String, _ meaning: String) -> Self {
    Self(
      key: key, type: "path", meaning: meaning, defaultText: defaultText,
      encode: { .string($0[keyPath: path]) },
      decode: { section, json, base in section[keyPath: path] = try readPath(json, base, orNull: false) },
      setDefault: { $0[keyPath: path] = "" })
  }

  /// One path or glob pattern, or a list of them; an empty list is written as null when `required` is
  /// false (null: none) and is the "missing" state of a required key.
  static func paths(_ key: String, _ path: WritableKeyPath<Section, [String]>, required: Bool, _ meaning: String) -> Self {
    Self(
      key: key, type: required ? "path or list of paths" : "path, list of paths, or null", meaning: meaning,
      defaultText: required ? "required" : nil,
      encode: { section in
        let paths = section[keyPath: path]
        if paths.isEmpty { return required ? .string("") : .null }
        return paths.count == 1 ? .string(paths[0]) : .array(paths.map { .string($0) })
      },
      decode: { section, json, base in
        switch json {
        case .null where !required: section[keyPath: path] = []
        case .array(let items):
          guard !items.isEmpty else { throw FieldProblem("an empty list names no file") }
          section[keyPath: path] = try items.map { try readPath($0, base, orNull: false) }
        default: section[keyPath: path] = [try readPath(json, base, orNull: !required)]
        }
      },
      setDefault: { $0[keyPath: path] = [] })
  }

  /// A non-empty string.
  static func string(_ key: String, _ path: WritableKeyPath<Section, String>, default value: String, _ meaning: String) -> Self {
    Self(
      key: key, type: "string", meaning: meaning,
      encode: { .string($0[keyPath: path]) },
      decode: { section, json, _ in
        guard case .string(let text) = json else { throw FieldProblem("expected a string, found \(json.kindName)") }
        guard !text.isEmpty else { throw FieldProblem("must not be empty") }
        section[keyPath: path] = text
      },
      setDefault: { $0[keyPath: path] = value })
  }

  static func optionalPath(_ key: String, _ path: WritableKeyPath<Section, String?>, _ meaning: String) -> Self {
    Self(
      key: key, type: "path or null", meaning: meaning,
      encode: { $0[keyPath: path].map { .string($0) } ?? .null },
      decode: { section, json, base in
        section[keyPath: path] = json == .null ? nil : try readPath(json, base, orNull: true)
      },
      setDefault: { $0[keyPath: path] = nil })
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

private func readNumber(_ value: JSONValue, _ range: NumberRange) throws -> Double {
  let x: Double
  switch value {
  case .number(let n): x = n
  case .integer(let text): x = Double(text) ?? .infinity
  default: throw FieldProblem("expected a number, found \(value.kindName)")
  }
  guard x.isFinite else { throw FieldProblem("is too large for a 64-bit float") }
  guard range.contains(x) else { throw FieldProblem(range.rule) }
  return x
}

extension TokenizerSpec {
  /// As the config writes it (what readTokenizer reads back).
  var json: JSONValue {
    switch self {
    case .char: return .string("char")
    case .byte: return .string("byte")
    case .bpe(let file): return .object([(key: "kind", value: .string("bpe")), (key: "path", value: .string(file))])
    case .trainedBPE(let size, let specials):
      var members: [(key: String, value: JSONValue)] = [
        (key: "kind", value: .string("bpe")), (key: "vocab_size", value: JSONValue(integer: size)),
      ]
      if !specials.isEmpty { members.append((key: "special_tokens", value: .array(specials.map { .string($0) }))) }
      return .object(members)
    }
  }
}

private func readTokenizer(_ value: JSONValue, _ base: URL) throws -> TokenizerSpec {
  let expected = #"expected "char", "byte", {"kind": "bpe", "path": "<tokenizer file>"} or {"kind": "bpe", "vocab_size": N} (with an optional "special_tokens": ["[MASK]", ...])"#
  switch value {
  case .string("char"): return .char
  case .string("byte"): return .byte
  case .string("bpe"):
    throw FieldProblem(#"a BPE tokenizer is read from a file or learned from the text: write {"kind": "bpe", "path": "<tokenizer file>"} or {"kind": "bpe", "vocab_size": N}"#)
  case .string(let name):
    let hint = nearestMatch(to: name, in: ["char", "byte"]).map { #"; did you mean ""# + $0 + #""?"# } ?? ""
    throw FieldProblem(expected + hint)
  case .object(let members):
    if let unknown = members.first(where: { !["kind", "path", "vocab_size", "special_tokens"].contains($0.key) }) {
      throw FieldProblem(#"unknown key ""# + unknown.key + #"": "# + expected)
    }
    guard members.first(where: { $0.key == "kind" })?.value == .string("bpe") else {
      throw FieldProblem(#"the object form needs "kind": "bpe""#)
    }
    let file = members.first { $0.key == "path" }?.value
    let size = members.first { $0.key == "vocab_size" }?.value
    let specials = try members.first { $0.key == "special_tokens" }.map { try readSpecialTokens($0.value) }
    switch (file, size) {
    case (let file?, nil):
      guard specials == nil else {
        throw FieldProblem(#""special_tokens" names the extra tokens of a BPE learned from the text ("vocab_size"); a tokenizer file brings its own"#)
      }
      return .bpe(path: try readPath(file, base, orNull: false))
    case (nil, let size?):
      let specials = specials ?? []
      let least = 257 + specials.count
      guard let n = size.exactInt, (least...16_777_216).contains(n) else {
        throw FieldProblem(#""vocab_size" must be an integer in "# + "\(least)...16777216 (256 bytes, merges, <|endoftext|>"
          + (specials.isEmpty ? ")" : " and the \(specials.count) special tokens)"))
      }
      return .trainedBPE(vocabularySize: n, specialTokens: specials)
    case (nil, nil):
      throw FieldProblem(#"needs "path" (a tokenizer file: .tiktoken, tokenizer.json, or vocab.json with merges.txt beside it) or "vocab_size" (to learn one from the training text)"#)
    case (_?, _?):
      throw FieldProblem(#"give "path" (read a tokenizer) or "vocab_size" (learn one), not both"#)
    }
  default:
    throw FieldProblem("\(expected), found \(value.kindName)")
  }
}

/// A learned BPE's extra special tokens: distinct, non-empty strings other than <|endoftext|>.
private func readSpecialTokens(_ value: JSONValue) throws -> [String] {
  guard case .array(let items) = value else {
    throw FieldProblem(#""special_tokens" must be a list of strings such as ["[MASK]"], found "# + value.kindName)
  }
  var texts: [String] = []
  for item in items {
    guard case .string(let text) = item, !text.isEmpty else {
      throw FieldProblem(#""special_tokens" must hold non-empty strings, found "# + item.description)
    }
    guard text != "<|endoftext|>", !texts.contains(text) else {
      throw FieldProblem(#""special_tokens" lists "# + text.debugDescription + (text == "<|endoftext|>" ? ", which every learned BPE has already" : " twice"))
    }
    texts.append(text)
  }
  return texts
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
