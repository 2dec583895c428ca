// The few pieces of the protocol buffer wire format that event files need, written by hand so the
// trainer does not depend on protobuf: varints (an int64 is its two's complement, so a negative
// one takes ten bytes), little-endian fixed32/fixed64, and length-delimited strings and messages.
// The reader skips fields it does not know by their wire type, as any protobuf parser must.

import Foundation

enum WireType: UInt8 {
  case varint = 0
  case fixed64 = 1
  case lengthDelimited = 2
  case fixed32 = 5
}

/// Appends fields to a reusable byte buffer; keep one and `removeAll(keepingCapacity:)` between
/// messages so encoding allocates nothing once the buffer has grown.
struct ProtobufEncoder {
  var bytes: [UInt8] = []

  mutating func varint(_ value: UInt64) {
    var rest = value
    while rest >= 0x80 {
      bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
      rest >>= 7
    }
    bytes.append(UInt8(rest))
  }

  mutating func key(_ field: Int, _ type: WireType) {
    varint(UInt64(field) << 3 | UInt64(type.rawValue))
  }

  mutating func int64(_ field: Int, _ value: Int64) {
    key(field, .varint)
    varint(UInt64(bitPattern: value))
  }

  mutating func double(_ field: Int, _ value: Double) {
    key(field, .fixed64)
    withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
  }

  mutating func float(_ field: Int, _ value: Float) {
    key(field, .fixed32)
    withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
  }

  mutating func string(_ field: Int, _ value: String) {
    key(field, .lengthDelimited)
    varint(UInt64(value.utf8.count))
    bytes.append(contentsOf: value.utf8)
  }

  /// A nested message: `body` appends its fields, then its length is put in front of them.
  mutating func message(_ field: Int, _ body: (inout ProtobufEncoder) -> Void) {
    key(field, .lengthDelimited)
    let lengthAt = bytes.count
    bytes.append(0)  // one byte holds lengths under 128; a longer one widens it below
    body(&self)
    let length = bytes.count - lengthAt - 1
    var width = 1
    while length >> (7 * width) > 0 { width += 1 }
    if width > 1 { bytes.insert(contentsOf: repeatElement(0, count: width - 1), at: lengthAt) }
    var rest = length
    for i in 0..<width {
      bytes[lengthAt + i] = UInt8(truncatingIfNeeded: rest) & 0x7F | (i + 1 < width ? 0x80 : 0)
      rest >>= 7
    }
  }
}

/// What went wrong at `offset`: an index into the array the reader's slice was cut from, so a byte
/// offset in the file when that array is the whole file.
struct ProtobufError: Error {
  let offset: Int
  let problem: String
}

/// Reads one message's fields in order from `bytes`.
struct ProtobufReader {
  let bytes: ArraySlice<UInt8>
  private(set) var position: Int

  init(_ bytes: ArraySlice<UInt8>) {
    self.bytes = bytes
    position = bytes.startIndex
  }

  var atEnd: Bool { position >= bytes.endIndex }

  /// The next field's number and wire type; nil at the end of the message.
  mutating func nextKey() throws -> (field: Int, type: WireType)? {
    if atEnd { return nil }
    let start = position
    let key = try varint()
    guard let type = WireType(rawValue: UInt8(key & 7)) else {
      throw ProtobufError(offset: start, problem: "unsupported wire type \(key & 7) (groups are not used here)")
    }
    guard key >> 3 > 0, key >> 3 <= 0x1FFF_FFFF else {
      throw ProtobufError(offset: start, problem: "invalid field number \(key >> 3)")
    }
    return (Int(key >> 3), type)
  }

  mutating func varint() throws -> UInt64 {
    let start = position
    var value: UInt64 = 0
    for i in 0..<10 {
      guard position < bytes.endIndex else {
        throw ProtobufError(offset: start, problem: "varint runs past the end of the message")
      }
      let byte = bytes[position]
      position += 1
      // The tenth byte may carry only the top bit of 64.
      guard i < 9 || byte <= 1 else { break }
      value |= UInt64(byte & 0x7F) << (7 * UInt64(i))
      if byte < 0x80 { return value }
    }
    throw ProtobufError(offset: start, problem: "varint longer than 64 bits")
  }

  mutating func fixed64() throws -> UInt64 {
    let raw = try take(8, what: "fixed64")
    return raw.reversed().reduce(0) { $0 << 8 | UInt64($1) }
  }

  mutating func fixed32() throws -> UInt32 {
    let raw = try take(4, what: "fixed32")
    return raw.reversed().reduce(0) { $0 << 8 | UInt32($1) }
  }

  /// A length-delimited field's contents (a string, bytes or a nested message).
  mutating func lengthDelimited() throws -> ArraySlice<UInt8> {
    let length = try varint()
    guard length <= UInt64(bytes.endIndex - position) else {
      throw ProtobufError(offset: position, problem: "field of \(length) bytes runs past the end of the message")
    }
    return try take(Int(length), what: "length-delimited field")
  }

  mutating func string() throws -> String {
    let start = position
    guard let text = String(bytes: try lengthDelimited(), encoding: .utf8) else {
      throw ProtobufError(offset: start, problem: "string is not valid UTF-8")
    }
    return text
  }

  /// Skips a field this reader does not interpret.
  mutating func skip(_ type: WireType) throws {
    switch type {
    case .varint: _ = try varint()
    case .fixed64: _ = try take(8, what: "fixed64")
    case .lengthDelimited: _ = try lengthDelimited()
    case .fixed32: _ = try take(4, what: "fixed32")
    }
  }

  /// Checks that a known field arrived with the wire type its schema gives it.
  func expect(_ type: WireType, _ expected: WireType, field: String) throws {
    guard type == expected else {
      throw ProtobufError(
        offset: position, problem: "\(field) has wire type \(type.rawValue), expected \(expected.rawValue)")
    }
  }

  private mutating func take(_ count: Int, what: String) throws -> ArraySlice<UInt8> {
    guard bytes.endIndex - position >= count else {
      throw ProtobufError(offset: position, problem: "\(what) runs past the end of the message")
    }
    defer { position += count }
    return bytes[position..<position + count]
  }
}
