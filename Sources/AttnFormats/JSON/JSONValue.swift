// A JSON value that keeps what Foundation's decoders blur: integers apart from other numbers (so 4.5
// or 4.0 is never taken for an integer, nor 1 for a bool), object keys in file order, and duplicate
// keys as errors, each with a line and column. Every JSON file read from outside goes through
// `parse` (the config, a safetensors header, a checkpoint's manifest, trainer state and vocabulary;
// JSONObject gives typed access to them), and every JSON file attn-train writes is built as a
// JSONValue: one reader and one writer.
import Foundation

public enum JSONValue: Equatable, Sendable {
  case null
  case bool(Bool)
  /// An integer literal as written, so one beyond Int64 (a seed up to UInt64.max) stays exact.
  case integer(String)
  /// A number written with a fraction or an exponent; always finite.
  case number(Double)
  case string(String)
  case array([JSONValue])
  /// Members in file order; `JSONValue.parse` rejects duplicate keys.
  case object([(key: String, value: JSONValue)])

  public static func == (a: JSONValue, b: JSONValue) -> Bool {
    switch (a, b) {
    case (.null, .null): return true
    case (.bool(let x), .bool(let y)): return x == y
    case (.integer(let x), .integer(let y)): return x == y
    case (.number(let x), .number(let y)): return x == y
    case (.string(let x), .string(let y)): return x == y
    case (.array(let x), .array(let y)): return x == y
    case (.object(let x), .object(let y)):
      return x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    default: return false
    }
  }

  /// What kind of value this is, worded for error messages ("expected an integer, found a string").
  public var kindName: String {
    switch self {
    case .null: return "null"
    case .bool: return "a boolean"
    case .integer: return "an integer"
    case .number: return "a number with a fraction or exponent"
    case .string: return "a string"
    case .array: return "an array"
    case .object: return "an object"
    }
  }
}

public struct JSONSyntaxError: Error, CustomStringConvertible {
  public let message: String
  public let line: Int
  public let column: Int
  public var description: String { "\(message) at line \(line), column \(column)" }
}

// MARK: - Reading

extension JSONValue {
  /// Parses RFC 8259 JSON: no comments, no trailing commas, no duplicate keys.
  public static func parse(_ data: Data) throws -> JSONValue {
    var reader = JSONReader(bytes: Array(data))
    if reader.bytes.starts(with: [0xEF, 0xBB, 0xBF]) { reader.i = 3 }  // some editors write a BOM
    reader.skipWhitespace()
    let value = try reader.value(depth: 0)
    reader.skipWhitespace()
    guard reader.i == reader.bytes.count else {
      throw reader.error("unexpected text after the end of the JSON value")
    }
    return value
  }
}

private struct JSONReader {
  let bytes: [UInt8]
  var i = 0

  var peek: UInt8? { i < bytes.count ? bytes[i] : nil }

  func error(_ message: String, at offset: Int? = nil) -> JSONSyntaxError {
    let end = min(offset ?? i, bytes.count)
    let lineStart = bytes[..<end].lastIndex(of: 0x0A).map { $0 + 1 } ?? 0
    let line = bytes[..<end].reduce(1) { $0 + ($1 == 0x0A ? 1 : 0) }
    return JSONSyntaxError(message: message, line: line, column: end - lineStart + 1)
  }

  func unexpected(expecting: String) -> JSONSyntaxError {
    guard let byte = peek else { return error("unexpected end of input, expected \(expecting)") }
    let found = byte >= 0x20 && byte < 0x7F ? "'\(Character(Unicode.Scalar(byte)))'" : "byte \(byte)"
    var hint = ""
    if byte == UInt8(ascii: "/") { hint = " (JSON does not allow comments)" }
    if byte == UInt8(ascii: "'") { hint = " (JSON strings need double quotes)" }
    return error("unexpected \(found), expected \(expecting)\(hint)")
  }

  mutating func skipWhitespace() {
    while let b = peek, b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 { i += 1 }
  }

  mutating func value(depth: Int) throws -> JSONValue {
    guard depth < 256 else { throw error("nesting deeper than 256 levels") }
    switch peek ?? 0 {  // 0 never starts a value, so the end of input falls to `default`
    case UInt8(ascii: "{"): return try object(depth: depth)
    case UInt8(ascii: "["): return try array(depth: depth)
    case UInt8(ascii: "\""): return .string(try string())
    case UInt8(ascii: "t"): return try literal("true", .bool(true))
    case UInt8(ascii: "f"): return try literal("false", .bool(false))
    case UInt8(ascii: "n"): return try literal("null", .null)
    case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
    default: throw unexpected(expecting: "a value")
    }
  }

  mutating func literal(_ word: String, _ value: JSONValue) throws -> JSONValue {
    guard bytes[i...].starts(with: word.utf8) else { throw unexpected(expecting: "a value") }
    i += word.utf8.count
    return value
  }

  mutating func object(depth: Int) throws -> JSONValue {
    i += 1
    var members: [(key: String, value: JSONValue)] = []
    var seen = Set<String>()
    skipWhitespace()
    if peek == UInt8(ascii: "}") {
      i += 1
      return .object([])
    }
    while true {
      skipWhitespace()
      if peek == UInt8(ascii: "}") { throw error("trailing comma before '}'") }
      guard peek == UInt8(ascii: "\"") else { throw unexpected(expecting: "a double-quoted key") }
      let keyStart = i
      let key = try string()
      guard seen.insert(key).inserted else { throw error("duplicate key \"\(key)\"", at: keyStart) }
      skipWhitespace()
      guard peek == UInt8(ascii: ":") else { throw unexpected(expecting: "':' after the key") }
      i += 1
      skipWhitespace()
      members.append((key, try value(depth: depth + 1)))
      skipWhitespace()
      switch peek {
      case UInt8(ascii: ","): i += 1
      case UInt8(ascii: "}"):
        i += 1
        return .object(members)
      default: throw unexpected(expecting: "',' or '}'")
      }
    }
  }

  mutating func array(depth: Int) throws -> JSONValue {
    i += 1
    var elements: [JSONValue] = []
    skipWhitespace()
    if peek == UInt8(ascii: "]") {
      i += 1
      return .array([])
    }
    while true {
      skipWhitespace()
      if peek == UInt8(ascii: "]") { throw error("trailing comma before ']'") }
      elements.append(try value(depth: depth + 1))
      skipWhitespace()
      switch peek {
      case UInt8(ascii: ","): i += 1
      case UInt8(ascii: "]"):
        i += 1
        return .array(elements)
      default: throw unexpected(expecting: "',' or ']'")
      }
    }
  }

  mutating func string() throws -> String {
    let start = i
    i += 1
    var utf8: [UInt8] = []
    while true {
      guard let b = peek else { throw error("unterminated string", at: start) }
      i += 1
      switch b {
      case UInt8(ascii: "\""):
        guard let s = String(bytes: utf8, encoding: .utf8) else {
          throw error("string is not valid UTF-8", at: start)
        }
        return s
      case UInt8(ascii: "\\"): try escape(into: &utf8)
      case 0..<0x20: throw error("control character in a string (write it as an escape)", at: i - 1)
      default: utf8.append(b)
      }
    }
  }

  mutating func escape(into utf8: inout [UInt8]) throws {
    let simple: [UInt8: UInt8] = [
      UInt8(ascii: "\""): 0x22, UInt8(ascii: "\\"): 0x5C, UInt8(ascii: "/"): 0x2F,
      UInt8(ascii: "b"): 0x08, UInt8(ascii: "f"): 0x0C, UInt8(ascii: "n"): 0x0A,
      UInt8(ascii: "r"): 0x0D, UInt8(ascii: "t"): 0x09,
    ]
    guard let b = peek else { throw error("unterminated string") }
    i += 1
    if let byte = simple[b] {
      utf8.append(byte)
      return
    }
    guard b == UInt8(ascii: "u") else { throw error("invalid escape in a string", at: i - 2) }
    var code = try hex4()
    if (0xD800..<0xDC00).contains(code) {
      // A character outside the basic plane is written as a surrogate pair: \uD83D\uDE00.
      guard bytes[i...].starts(with: "\\u".utf8) else { throw error("unpaired surrogate in \\u escape") }
      i += 2
      let low = try hex4()
      guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate in \\u escape") }
      code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
    }
    guard let scalar = Unicode.Scalar(code) else { throw error("unpaired surrogate in \\u escape") }
    utf8.append(contentsOf: String(Character(scalar)).utf8)
  }

  mutating func hex4() throws -> UInt32 {
    guard i + 4 <= bytes.count,
      let code = UInt32(String(decoding: bytes[i..<i + 4], as: UTF8.self), radix: 16)
    else { throw error("\\u must be followed by four hex digits") }
    i += 4
    return code
  }

  mutating func number() throws -> JSONValue {
    let start = i
    func digits() -> Int {
      let from = i
      while let b = peek, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) { i += 1 }
      return i - from
    }
    if peek == UInt8(ascii: "-") { i += 1 }
    let intStart = i
    guard digits() > 0 else { throw unexpected(expecting: "a digit") }
    if bytes[intStart] == UInt8(ascii: "0") && i - intStart > 1 {
      throw error("numbers must not have leading zeros", at: start)
    }
    var isInteger = true
    if peek == UInt8(ascii: ".") {
      i += 1
      isInteger = false
      guard digits() > 0 else { throw unexpected(expecting: "a digit after '.'") }
    }
    if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
      i += 1
      isInteger = false
      if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { i += 1 }
      guard digits() > 0 else { throw unexpected(expecting: "a digit in the exponent") }
    }
    let text = String(decoding: bytes[start..<i], as: UTF8.self)
    if isInteger { return .integer(text) }
    guard let value = Double(text), value.isFinite else {
      throw error("number \(text) is too large for a 64-bit float", at: start)
    }
    return .number(value)
  }
}

// MARK: - Writing

extension JSONValue: CustomStringConvertible {
  /// One line, keys in file order: how a value is quoted in error messages.
  public var description: String {
    var out = ""
    write(to: &out, indent: nil)
    return out
  }

  /// Two-space indented, keys sorted, so two resolved configs can be compared with `diff`.
  public func prettyPrinted() -> String {
    var out = ""
    write(to: &out, indent: "")
    return out
  }

  private func write(to out: inout String, indent: String?) {
    switch self {
    case .null: out += "null"
    case .bool(let b): out += b ? "true" : "false"
    case .integer(let text): out += text
    // Swift prints the shortest text that reads back as the same Double, in JSON's syntax.
    case .number(let x): out += "\(x)"
    case .string(let s): JSONValue.writeString(s, to: &out)
    case .array(let elements):
      writeList(elements.map { (nil, $0) }, open: "[", close: "]", to: &out, indent: indent)
    case .object(let members):
      let ordered = indent == nil ? members : members.sorted { $0.key < $1.key }
      writeList(ordered.map { ($0.key, $0.value) }, open: "{", close: "}", to: &out, indent: indent)
    }
  }

  private func writeList(
    _ items: [(String?, JSONValue)], open: String, close: String, to out: inout String, indent: String?
  ) {
    guard !items.isEmpty else {
      out += open + close
      return
    }
    let inner = indent.map { $0 + "  " }
    out += open
    for (n, (key, value)) in items.enumerated() {
      if n > 0 { out += inner == nil ? ", " : "," }
      if let inner { out += "\n" + inner }
      if let key {
        JSONValue.writeString(key, to: &out)
        out += ": "
      }
      value.write(to: &out, indent: inner)
    }
    if let indent { out += "\n" + indent }
    out += close
  }

  private static func writeString(_ s: String, to out: inout String) {
    out += "\""
    for scalar in s.unicodeScalars {
      switch scalar {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      case _ where scalar.value < 0x20:
        let hex = String(scalar.value, radix: 16)
        out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
      default: out.unicodeScalars.append(scalar)
      }
    }
    out += "\""
  }
}
