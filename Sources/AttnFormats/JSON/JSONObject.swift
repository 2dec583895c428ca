// Typed access to the JSON of files we do not trust (a checkpoint's trainer state and manifest, a
// vocabulary): every value is checked for its exact kind (an integer field refuses 1.5, "1" and
// true) and a refusal names the field's path. Documents reach here through JSONValue.parse, which
// has already refused duplicate keys, so a key names one value.

/// A field of a JSON document that was missing or of the wrong kind.
public struct JSONFieldError: Error, CustomStringConvertible {
  /// The dotted path of the field ("sha256.model.safetensors"); empty for the document itself.
  public let field: String
  public let message: String

  public init(field: String, _ message: String) {
    self.field = field
    self.message = message
  }

  public var description: String { field.isEmpty ? message : "\(field): \(message)" }
}

public struct JSONObject {
  public let members: [(key: String, value: JSONValue)]
  /// This object's path in the document, for messages; empty at the top level.
  public let path: String

  public init(_ value: JSONValue, path: String = "") throws {
    guard case .object(let members) = value else {
      throw JSONFieldError(field: path, "expected an object, found \(value.kindName)")
    }
    self.members = members
    self.path = path
  }

  public var keys: [String] { members.map(\.key) }

  public subscript(key: String) -> JSONValue? { members.first { $0.key == key }?.value }

  /// The path of a member, for messages: "model.vocab".
  public func path(of key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

  public func value(_ key: String) throws -> JSONValue {
    guard let value = self[key] else { throw JSONFieldError(field: path(of: key), "missing") }
    return value
  }

  public func string(_ key: String) throws -> String {
    let value = try value(key)
    guard case .string(let s) = value else { throw mismatch(key, "a string", value) }
    return s
  }

  public func int(_ key: String) throws -> Int {
    let value = try value(key)
    guard let n = value.exactInt else { throw mismatch(key, "an integer", value) }
    return n
  }

  public func double(_ key: String) throws -> Double {
    let value = try value(key)
    guard let x = value.doubleValue else { throw mismatch(key, "a number", value) }
    return x
  }

  /// nil when the key is absent or null.
  public func optionalInt(_ key: String) throws -> Int? {
    guard let value = self[key], value != .null else { return nil }
    guard let n = value.exactInt else { throw mismatch(key, "an integer or null", value) }
    return n
  }

  /// nil when the key is absent or null.
  public func optionalDouble(_ key: String) throws -> Double? {
    guard let value = self[key], value != .null else { return nil }
    guard let x = value.doubleValue else { throw mismatch(key, "a number or null", value) }
    return x
  }

  public func object(_ key: String) throws -> JSONObject { try JSONObject(value(key), path: path(of: key)) }

  public func strings(_ key: String) throws -> [String] {
    let value = try value(key)
    guard case .array(let elements) = value else { throw mismatch(key, "an array of strings", value) }
    return try elements.map {
      guard case .string(let s) = $0 else { throw mismatch(key, "an array of strings", value) }
      return s
    }
  }

  /// A JSON array of strings.
  public static func strings(_ value: JSONValue) throws -> [String] {
    guard case .array(let items) = value else { throw JSONFieldError(field: "", "expected an array of strings") }
    return try items.map {
      guard case .string(let s) = $0 else { throw JSONFieldError(field: "", "expected an array of strings") }
      return s
    }
  }

  private func mismatch(_ key: String, _ expected: String, _ found: JSONValue) -> JSONFieldError {
    let text = found.description
    let shown = text.count > 40 ? String(text.prefix(37)) + "..." : text
    return JSONFieldError(field: path(of: key), "expected \(expected), found \(found.kindName) (\(shown))")
  }
}

extension JSONValue {
  /// The value of an integer literal that fits in Int; nil for anything else, 1.0 included.
  public var exactInt: Int? {
    guard case .integer(let text) = self else { return nil }
    return Int(text)
  }

  /// A number of either kind as a Double (an integer literal too large for a Double is refused).
  public var doubleValue: Double? {
    switch self {
    case .number(let x): return x
    case .integer(let text): return Double(text).flatMap { $0.isFinite ? $0 : nil }
    default: return nil
    }
  }

  public init(integer: Int) { self = .integer(String(integer)) }

  /// A finite number; JSON has no NaN or infinity, so those are written as null.
  public init(number: Double) { self = number.isFinite ? .number(number) : .null }
}
