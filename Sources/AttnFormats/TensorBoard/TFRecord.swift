// TFRecord framing, the container of TensorBoard event files: each record is
//   uint64 length (little-endian) | uint32 masked CRC-32C of those 8 bytes | data | uint32 masked CRC-32C of data.
// A writer that crashes mid-record leaves a cut-short last record; the reader tells that apart from
// damage (a checksum that does not match), so a caller resuming after a crash can drop the tail
// while anything else stays an error naming the file and the byte offset.

public enum TFRecord {
  /// Bytes of framing around each record's data.
  public static let overhead = 16

  /// Appends one framed record holding `data` to `buffer`.
  public static func append(_ data: UnsafeRawBufferPointer, to buffer: inout [UInt8]) {
    var length = UInt64(data.count).littleEndian
    withUnsafeBytes(of: &length) { lengthBytes in
      buffer.append(contentsOf: lengthBytes)
      appendLittleEndian(maskedCRC32C(lengthBytes), to: &buffer)
    }
    buffer.append(contentsOf: data)
    appendLittleEndian(maskedCRC32C(data), to: &buffer)
  }

  public static func append(_ data: [UInt8], to buffer: inout [UInt8]) {
    data.withUnsafeBytes { append($0, to: &buffer) }
  }

  private static func appendLittleEndian(_ value: UInt32, to buffer: inout [UInt8]) {
    withUnsafeBytes(of: value.littleEndian) { buffer.append(contentsOf: $0) }
  }
}

/// The part of a record a crash left behind at the end of a file.
public struct TruncatedRecord: Equatable, Sendable, CustomStringConvertible {
  /// Where the record starts in the file.
  public let offset: Int
  /// Bytes of it present, to the end of the file.
  public let bytesPresent: Int
  /// Bytes the whole record would take; nil when even its length field is incomplete.
  public let bytesExpected: Int?

  public var description: String {
    let expected = bytesExpected.map { " of \($0)" } ?? " (its length field is incomplete)"
    return "the last record, at byte \(offset), is cut short: \(bytesPresent)\(expected) bytes present"
  }
}

/// The records of one TFRecord file, in order.
public struct TFRecords {
  /// Each record's data and the byte offset of its data in the file.
  public var records: [(offset: Int, data: ArraySlice<UInt8>)]
  /// A cut-short record at the end (a write interrupted by a crash), not included in `records`.
  public var truncatedTail: TruncatedRecord?

  /// Splits `bytes` into records, checking both checksums of each. `file` names the source in errors.
  public init(parsing bytes: [UInt8], file: String) throws {
    records = []
    truncatedTail = nil
    var offset = 0
    while offset < bytes.count {
      let left = bytes.count - offset
      guard left >= 12 else {
        truncatedTail = TruncatedRecord(offset: offset, bytesPresent: left, bytesExpected: nil)
        return
      }
      let (length, lengthCRC, computedLengthCRC) = bytes.withUnsafeBytes { raw in
        let lengthBytes = UnsafeRawBufferPointer(rebasing: raw[offset..<offset + 8])
        return (
          UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)),
          UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self)),
          maskedCRC32C(lengthBytes)
        )
      }
      guard lengthCRC == computedLengthCRC else {
        throw InputError(
          file: file,
          problem: "record at byte \(offset): the checksum of its length field does not match (stored "
            + "\(hex(lengthCRC)), computed \(hex(computedLengthCRC))): the file is damaged")
      }
      // The length's checksum holds, so a length past the end means the data was never all written.
      guard length <= UInt64(left - 12), Int(length) + 4 <= left - 12 else {
        let expected = length > UInt64(Int.max - 16) ? Int.max : Int(length) + TFRecord.overhead
        truncatedTail = TruncatedRecord(offset: offset, bytesPresent: left, bytesExpected: expected)
        return
      }
      let dataStart = offset + 12
      let dataEnd = dataStart + Int(length)
      let (dataCRC, computedDataCRC) = bytes.withUnsafeBytes { raw in
        (
          UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: dataEnd, as: UInt32.self)),
          maskedCRC32C(UnsafeRawBufferPointer(rebasing: raw[dataStart..<dataEnd]))
        )
      }
      guard dataCRC == computedDataCRC else {
        throw InputError(
          file: file,
          problem: "record at byte \(offset): the checksum of its \(length) data bytes (from byte \(dataStart)) "
            + "does not match (stored \(hex(dataCRC)), computed \(hex(computedDataCRC))): the file is damaged")
      }
      records.append((dataStart, bytes[dataStart..<dataEnd]))
      offset = dataEnd + 4
    }
  }

  /// Reads and splits the file at `path` (a `FileError` when it cannot be read).
  public init(path: String) throws {
    let file = try MappedFile(path: path)
    let bytes = withExtendedLifetime(file) { Array(file.bytes) }  // copied before the mapping goes
    try self.init(parsing: bytes, file: path)
  }
}

private func hex(_ value: UInt32) -> String {
  "0x" + String(value, radix: 16)
}
