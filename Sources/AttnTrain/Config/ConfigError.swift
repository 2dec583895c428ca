// How a config problem reaches the user: always the file, the field path, the value found and what
// is allowed, in one line the CLI prints as is. Unknown names get the nearest valid one, because a
// typo that silently fell back to a default would cost a whole training run.
import AttnFormats
import Foundation

public struct ConfigError: Error, CustomStringConvertible, LocalizedError {
  /// The config file's path as the user gave it.
  public let file: String
  /// The dotted field path ("model.n_head"), a section name, or nil when the problem is the file
  /// as a whole (unreadable, malformed JSON, not an object).
  public let field: String?
  /// The offending value as JSON text; nil when there is none (a missing key).
  public let value: String?
  /// What is wrong and what is allowed.
  public let message: String

  init(file: String, field: String? = nil, found: JSONValue? = nil, _ message: String) {
    self.file = file
    self.field = field
    let text = found?.description
    self.value = text.map { $0.count > 60 ? String($0.prefix(57)) + "..." : $0 }
    self.message = message
  }

  public var description: String {
    guard let field else { return "\(file): \(message)" }
    return "\(file): \(field)\(value.map { " = \($0)" } ?? ""): \(message)"
  }

  public var errorDescription: String? { description }
}

// MARK: - Unknown names

extension Config {
  static func unknownSection(_ name: String, _ value: JSONValue, file: String) -> ConfigError {
    let names = ConfigSchema.sections.map(\.name)
    let owners = ConfigSchema.sections.filter { $0.keys.contains(name) }.map(\.name)
    let hint: String
    if !owners.isEmpty {
      hint = "settings go inside their section: put \"\(name)\" inside \(quotedList(owners, "or"))"
    } else if let near = nearestMatch(to: name, in: names) {
      hint = "unknown section; did you mean \"\(near)\"?"
    } else {
      hint = "unknown section; the sections are \(quotedList(names, "and"))"
    }
    return ConfigError(file: file, field: name, found: value, hint)
  }

  static func unknownKey(_ key: String, _ value: JSONValue, in section: AnyConfigSection, file: String) -> ConfigError {
    let others = ConfigSchema.sections.filter { $0.name != section.name }
    let owners = others.filter { $0.keys.contains(key) }.map(\.name)
    let hint: String
    if !owners.isEmpty {
      hint = "\"\(key)\" belongs in section \(quotedList(owners, "or")), not \"\(section.name)\""
    } else if let near = nearestMatch(to: key, in: section.keys) {
      hint = "unknown key; did you mean \"\(near)\"?"
    } else if let owner = others.first(where: { nearestMatch(to: key, in: $0.keys) != nil }),
      let near = nearestMatch(to: key, in: owner.keys)
    {
      hint = "unknown key; did you mean \"\(near)\" in section \"\(owner.name)\"?"
    } else {
      hint = "unknown key; the keys of \"\(section.name)\" are \(section.keys.joined(separator: ", "))"
    }
    return ConfigError(file: file, field: "\(section.name).\(key)", found: value, hint)
  }
}

private func quotedList(_ names: [String], _ conjunction: String) -> String {
  let quoted = names.map { "\"\($0)\"" }
  guard quoted.count > 1 else { return quoted.first ?? "" }
  return quoted.dropLast().joined(separator: ", ") + " \(conjunction) " + quoted.last!
}

/// The candidate `word` was most likely meant to be, if any is close enough to be a typo: the same
/// name in another spelling (learningRate, Learning-Rate), else the nearest by edit distance, with
/// a tolerance that grows with the length of the word.
public func nearestMatch(to word: String, in candidates: [String]) -> String? {
  func folded(_ s: String) -> String { s.lowercased().filter { $0 != "_" && $0 != "-" } }
  if let same = candidates.first(where: { folded($0) == folded(word) }) { return same }
  let tolerance = max(1, min(3, word.count / 4))
  let scored = candidates.map { (name: $0, distance: editDistance(word.lowercased(), $0)) }
  guard let best = scored.min(by: { $0.distance < $1.distance }), best.distance <= tolerance else { return nil }
  return best.name
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
/// neighbouring characters ("lerning", "n_haed") each cost 1.
func editDistance(_ a: String, _ b: String) -> Int {
  let a = Array(a)
  let b = Array(b)
  guard !a.isEmpty, !b.isEmpty else { return max(a.count, b.count) }
  var previous2 = [Int](repeating: 0, count: b.count + 1)
  var previous = Array(0...b.count)
  for i in 1...a.count {
    var current = [i] + [Int](repeating: 0, count: b.count)
    for j in 1...b.count {
      let cost = a[i - 1] == b[j - 1] ? 0 : 1
      current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
      if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
        current[j] = min(current[j], previous2[j - 2] + 1)
      }
    }
    previous2 = previous
    previous = current
  }
  return previous[b.count]
}
