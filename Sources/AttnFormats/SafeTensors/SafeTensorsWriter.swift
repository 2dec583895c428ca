// The safetensors format, so checkpoints open in Python with `safetensors.numpy.load_file`:
// an 8-byte little-endian header length N, N bytes of JSON (padded with spaces to a multiple of 8,
// as the reference writer does), then the raw tensor bytes; `data_offsets` count from the data start.
// The writer streams each tensor straight from its buffer (no file-sized copy) and fsyncs. The reader
// treats the file as hostile: every length, offset and product is checked before it is used, and each
// fault is a `SafeTensorsError` naming the file (SafeTensorsFile.swift). The header is JSON read by the
// strict reader every hostile file goes through (duplicate keys refused, integers exact).
import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

#if _endian(big)
  #error("safetensors data is little-endian; this code copies host memory as-is")
#endif

public struct SafeTensorsError: Error, CustomStringConvertible {
  public let path: String
  public let reason: String
  public var description: String { "\(path): \(reason)" }
}

public enum SafeTensorsDType: String, Sendable, CaseIterable {
  case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
  case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"

  public var byteSize: Int {
    switch self {
    case .f64, .i64: 8
    case .f32, .i32: 4
    case .f16, .bf16, .i16: 2
    case .i8, .u8, .bool: 1
    }
  }
}

/// Element types the writer can take a buffer of.
public protocol SafeTensorsElement { static var safeTensorsDType: SafeTensorsDType { get } }
extension Float: SafeTensorsElement { public static var safeTensorsDType: SafeTensorsDType { .f32 } }
extension Int32: SafeTensorsElement { public static var safeTensorsDType: SafeTensorsDType { .i32 } }
extension Int64: SafeTensorsElement { public static var safeTensorsDType: SafeTensorsDType { .i64 } }

/// The reference reader's cap; a larger "header length" means this is not a safetensors file.
let safeTensorsMaxHeaderBytes = 100_000_000

// MARK: - Writing

/// Collects named tensors in file order, then `write(to:)` streams them out and fsyncs.
/// A tensor added from an `UnsafeBufferPointer` is not copied: the memory must stay valid until
/// `write(to:)` returns (meant for slices of the long-lived flat parameter/optimizer buffers).
public struct SafeTensorsWriter {
  public var metadata: [String: String]
  private var tensors: [(name: String, dtype: SafeTensorsDType, shape: [Int], count: Int, bytes: ByteSource)] = []
  private typealias ByteSource = ((UnsafeRawBufferPointer) throws -> Void) throws -> Void

  public init(metadata: [String: String] = [:]) { self.metadata = metadata }

  public mutating func add<T: SafeTensorsElement>(_ name: String, shape: [Int], _ data: UnsafeBufferPointer<T>) {
    tensors.append((name, T.safeTensorsDType, shape, data.count, { try $0(UnsafeRawBufferPointer(data)) }))
  }

  /// The array is retained (not copied) until the writer is gone.
  public mutating func add<T: SafeTensorsElement>(_ name: String, shape: [Int], _ values: [T]) {
    tensors.append((name, T.safeTensorsDType, shape, values.count, { try values.withUnsafeBytes($0) }))
  }

  public func write(to path: String) throws {
    let header = try headerBytes(path: path)  // validate before truncating anything on disk
    let file = try DurableFileWriter(path: path)
    do {
      try withUnsafeBytes(of: UInt64(header.count).littleEndian) { try file.write($0) }
      try header.withUnsafeBytes { try file.write($0) }
      for t in tensors { try t.bytes { try file.write($0) } }
      try file.close()
    } catch {
      unlink(path)  // never leave a half-written file that looks like a checkpoint
      throw error
    }
  }

  private func headerBytes(path: String) throws -> [UInt8] {
    func fail(_ reason: String) -> SafeTensorsError { SafeTensorsError(path: path, reason: reason) }
    var members: [(key: String, value: JSONValue)] = []
    if !metadata.isEmpty {
      let pairs = metadata.sorted { $0.key < $1.key }.map { (key: $0.key, value: JSONValue.string($0.value)) }
      members.append((key: "__metadata__", value: .object(pairs)))
    }
    var seen = Set<String>()
    var offset = 0
    for t in tensors {
      if t.name.isEmpty || t.name == "__metadata__" { throw fail("invalid tensor name '\(t.name)'") }
      if !seen.insert(t.name).inserted { throw fail("tensor '\(t.name)' added twice") }
      guard let count = elementCount(t.shape), count == t.count else {
        throw fail("tensor '\(t.name)': shape \(t.shape) does not hold the \(t.count) elements given")
      }
      let end = offset + count * t.dtype.byteSize
      let entry: JSONValue = .object([
        (key: "dtype", value: .string(t.dtype.rawValue)),
        (key: "shape", value: .array(t.shape.map(JSONValue.init(integer:)))),
        (key: "data_offsets", value: .array([JSONValue(integer: offset), JSONValue(integer: end)])),
      ])
      members.append((key: t.name, value: entry))
      offset = end
    }
    var bytes = Array(JSONValue.object(members).description.utf8)
    bytes += [UInt8](repeating: UInt8(ascii: " "), count: (8 - bytes.count % 8) % 8)
    if bytes.count > safeTensorsMaxHeaderBytes { throw fail("header of \(bytes.count) bytes is over the 100 MB limit") }
    return bytes
  }
}

/// The product of `shape`, or nil if a dimension is negative or the product overflows.
func elementCount(_ shape: [Int]) -> Int? {
  var count = 1
  for d in shape {
    guard d >= 0 else { return nil }
    let (p, overflow) = count.multipliedReportingOverflow(by: d)
    if overflow { return nil }
    count = p
  }
  return count
}

