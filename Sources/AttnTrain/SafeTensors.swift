// The safetensors format, so checkpoints open in Python with `safetensors.numpy.load_file`:
// an 8-byte little-endian header length N, N bytes of JSON (padded with spaces to a multiple of 8,
// as the reference writer does), then the raw tensor bytes; `data_offsets` count from the data start.
// The writer streams each tensor straight from its buffer (no file-sized copy) and fsyncs. The reader
// treats the file as hostile: every length, offset and product is checked before it is used, and each
// fault is a `SafeTensorsError` naming the file. AttnTrain builds with -Ounchecked, where overflow
// and bounds traps are gone, so the checks below use explicit overflow-reporting arithmetic.
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
    var json = "{"
    if !metadata.isEmpty {
      let pairs = metadata.sorted { $0.key < $1.key }.map { "\(JSONValue.quoted($0.key)):\(JSONValue.quoted($0.value))" }
      json += "\"__metadata__\":{\(pairs.joined(separator: ","))},"
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
      let shape = t.shape.map(String.init).joined(separator: ",")
      json += "\(JSONValue.quoted(t.name)):{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":[\(shape)],"
      json += "\"data_offsets\":[\(offset),\(end)]},"
      offset = end
    }
    if json.count > 1 { json.removeLast() }
    json += "}"
    var bytes = Array(json.utf8)
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

// MARK: - Reading

/// A safetensors file, header parsed and validated on open; tensor data is read on demand with
/// pread(2) from a descriptor held for the life of the value (so a rename over the path meanwhile
/// cannot mix two files).
public struct SafeTensorsFile: Sendable {
  public let path: String
  public let metadata: [String: String]
  /// Tensor names in the order their data appears in the file.
  public let names: [String]
  private let tensors: [String: Tensor]
  private let file: ReadOnlyDescriptor

  struct Tensor: Sendable {
    let dtype: SafeTensorsDType
    let shape: [Int]
    let count: Int
    let fileOffset: Int  // absolute: 8 + header length + begin
  }

  public init(path: String) throws {
    func fail(_ reason: String) -> SafeTensorsError { SafeTensorsError(path: path, reason: reason) }
    let file = try ReadOnlyDescriptor(path: path)
    let fileSize = file.size
    guard fileSize >= 8 else {
      throw fail("file is \(fileSize) bytes, too short for the 8-byte header length (not a safetensors file?)")
    }
    var rawLength: UInt64 = 0
    try withUnsafeMutableBytes(of: &rawLength) { try file.read(into: $0, at: 0, what: "header length") }
    let headerLength = UInt64(littleEndian: rawLength)
    guard headerLength <= UInt64(safeTensorsMaxHeaderBytes) else {
      throw fail("header length \(headerLength) is over the 100 MB limit (not a safetensors file?)")
    }
    let dataStart = 8 + Int(headerLength)
    guard dataStart <= fileSize else {
      throw fail("header length \(headerLength) exceeds the file size \(fileSize) (truncated file?)")
    }
    var headerBytes = [UInt8](repeating: 0, count: Int(headerLength))
    try headerBytes.withUnsafeMutableBytes { try file.read(into: $0, at: 8, what: "header") }
    guard String(bytes: headerBytes, encoding: .utf8) != nil else { throw fail("header is not valid UTF-8") }

    let raw: RawHeader
    do {
      raw = try JSONDecoder().decode(RawHeader.self, from: Data(headerBytes))
    } catch let fault as HeaderFault {
      throw fail(fault.reason)
    } catch {
      // Show how it starts: a file that is not safetensors at all is the usual cause.
      let start = String(decoding: headerBytes.prefix(40), as: UTF8.self).debugDescription
      if case DecodingError.typeMismatch = error { throw fail("header is not a JSON object (starts \(start))") }
      throw fail("header is not valid JSON (starts \(start))")
    }

    let dataSize = fileSize - dataStart
    var tensors: [String: Tensor] = [:]
    var spans: [(name: String, begin: Int, end: Int)] = []
    for (name, entry) in raw.tensors {
      guard let dtype = SafeTensorsDType(rawValue: entry.dtype) else {
        let known = SafeTensorsDType.allCases.map(\.rawValue).joined(separator: ", ")
        throw fail("tensor '\(name)': unknown dtype '\(entry.dtype)' (known: \(known))")
      }
      guard let count = elementCount(entry.shape) else {
        throw fail("tensor '\(name)': shape \(entry.shape) has a negative dimension or an overflowing product")
      }
      let (byteCount, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
      if overflow { throw fail("tensor '\(name)': shape \(entry.shape) of \(dtype.rawValue) overflows a byte count") }
      guard entry.offsets.count == 2 else {
        throw fail("tensor '\(name)': data_offsets must be [begin, end], got \(entry.offsets)")
      }
      let (begin, end) = (entry.offsets[0], entry.offsets[1])
      let span = "tensor '\(name)': data_offsets [\(begin), \(end)]"
      guard 0 <= begin, begin <= end else { throw fail("\(span) are not 0 <= begin <= end") }
      guard end <= dataSize else {
        throw fail("\(span) run past the \(dataSize)-byte data area (truncated file?)")
      }
      guard end - begin == byteCount else {
        throw fail("\(span) span \(end - begin) bytes but shape \(entry.shape) of \(dtype.rawValue) needs \(byteCount)")
      }
      tensors[name] = Tensor(dtype: dtype, shape: entry.shape, count: count, fileOffset: dataStart + begin)
      spans.append((name, begin, end))
    }

    spans.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
    var reachedBy: (name: String, end: Int)? = nil
    for s in spans {
      if let prev = reachedBy, s.begin < prev.end {
        throw fail("tensors '\(prev.name)' and '\(s.name)' overlap in the data area")
      }
      if s.end > (reachedBy?.end ?? 0) { reachedBy = (s.name, s.end) }
    }

    self.path = path
    self.metadata = raw.metadata
    self.names = spans.map(\.name)
    self.tensors = tensors
    self.file = file
  }

  public func shape(of name: String) -> [Int]? { tensors[name]?.shape }
  public func dtype(of name: String) -> SafeTensorsDType? { tensors[name]?.dtype }

  /// Reads an F32 tensor into `buffer`, which must hold exactly its element count.
  public func readFloats(_ name: String, into buffer: UnsafeMutableBufferPointer<Float>) throws {
    let t = try tensor(name, dtypes: [.f32])
    guard buffer.count == t.count else {
      throw SafeTensorsError(
        path: path, reason: "tensor '\(name)' has \(t.count) elements (shape \(t.shape)) but the destination holds \(buffer.count)")
    }
    try file.read(into: UnsafeMutableRawBufferPointer(buffer), at: t.fileOffset, what: "tensor '\(name)'")
  }

  public func floats(_ name: String) throws -> [Float] {
    let t = try tensor(name, dtypes: [.f32])
    return try [Float](unsafeUninitializedCapacity: t.count) { buffer, initialized in
      try file.read(into: UnsafeMutableRawBufferPointer(buffer), at: t.fileOffset, what: "tensor '\(name)'")
      initialized = t.count
    }
  }

  /// An integer tensor as Int32; I64 data is accepted (PyTorch's default) if every value fits.
  public func int32s(_ name: String) throws -> [Int32] {
    let t = try tensor(name, dtypes: [.i32, .i64])
    func load<T>(_: T.Type) throws -> [T] {
      try [T](unsafeUninitializedCapacity: t.count) { buffer, initialized in
        try file.read(into: UnsafeMutableRawBufferPointer(buffer), at: t.fileOffset, what: "tensor '\(name)'")
        initialized = t.count
      }
    }
    if t.dtype == .i32 { return try load(Int32.self) }
    let wide = try load(Int64.self)
    return try wide.enumerated().map { i, v in
      guard let narrow = Int32(exactly: v) else {
        throw SafeTensorsError(path: path, reason: "tensor '\(name)': I64 value \(v) at index \(i) does not fit in Int32")
      }
      return narrow
    }
  }

  private func tensor(_ name: String, dtypes: [SafeTensorsDType]) throws -> Tensor {
    guard let t = tensors[name] else {
      let some = names.prefix(8).map { "'\($0)'" }.joined(separator: ", ") + (names.count > 8 ? ", ..." : "")
      throw SafeTensorsError(path: path, reason: "no tensor named '\(name)' (the file has \(names.count): \(some))")
    }
    guard dtypes.contains(t.dtype) else {
      let wanted = dtypes.map(\.rawValue).joined(separator: " or ")
      throw SafeTensorsError(path: path, reason: "tensor '\(name)' has dtype \(t.dtype.rawValue), expected \(wanted)")
    }
    return t
  }
}

// MARK: - Header JSON

private struct HeaderFault: Error { let reason: String }

private struct AnyKey: CodingKey {
  let stringValue: String
  init(stringValue: String) { self.stringValue = stringValue }
  var intValue: Int? { nil }
  init?(intValue: Int) { nil }
}

/// The header decoded with exact types (an Int field rejects 1.5, "1" and true); any field-level
/// fault becomes a `HeaderFault` that names the tensor and field.
private struct RawHeader: Decodable {
  var tensors: [(name: String, entry: (dtype: String, shape: [Int], offsets: [Int]))] = []
  var metadata: [String: String] = [:]

  init(from decoder: Decoder) throws {
    let top = try decoder.container(keyedBy: AnyKey.self)
    for key in top.allKeys {
      let name = key.stringValue
      if name == "__metadata__" {
        guard let m = try? top.decode([String: String].self, forKey: key) else {
          throw HeaderFault(reason: "__metadata__ must be an object whose values are all strings")
        }
        metadata = m
        continue
      }
      guard let entry = try? top.nestedContainer(keyedBy: AnyKey.self, forKey: key) else {
        throw HeaderFault(reason: "tensor '\(name)': entry is not a JSON object")
      }
      func field<T: Decodable>(_ field: String, _: T.Type, _ expected: String) throws -> T {
        let k = AnyKey(stringValue: field)
        guard entry.contains(k) else { throw HeaderFault(reason: "tensor '\(name)': missing field \"\(field)\"") }
        guard let v = try? entry.decode(T.self, forKey: k) else {
          throw HeaderFault(reason: "tensor '\(name)': field \"\(field)\" must be \(expected)")
        }
        return v
      }
      let dtype = try field("dtype", String.self, "a string")
      let shape = try field("shape", [Int].self, "an array of integers")
      let offsets = try field("data_offsets", [Int].self, "an array of two integers")
      tensors.append((name, (dtype, shape, offsets)))
    }
  }
}

// MARK: - File access

/// An fd opened read-only, closed when the last SafeTensorsFile copy goes away.
final class ReadOnlyDescriptor: Sendable {
  let path: String
  let fd: Int32
  let size: Int

  init(path: String) throws {
    self.path = path
    fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { throw FileError(path: path, operation: "open for reading", errno: errno) }
    var info = stat()
    if fstat(fd, &info) != 0 {
      let code = errno
      close(fd)
      throw FileError(path: path, operation: "stat", errno: code)
    }
    size = Int(info.st_size)
  }

  deinit { close(fd) }

  /// Fills `buffer` from `offset`, looping over short reads; hitting the end early is an error.
  func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int, what: String) throws {
    guard let base = buffer.baseAddress else { return }
    var done = 0
    while done < buffer.count {
      let n = pread(fd, base + done, buffer.count - done, off_t(offset + done))
      if n < 0 {
        if errno == EINTR { continue }
        throw FileError(path: path, operation: "read \(what)", errno: errno)
      }
      if n == 0 {
        throw SafeTensorsError(
          path: path, reason: "file ended at byte \(offset + done) while reading \(what) (truncated since it was opened?)")
      }
      done += n
    }
  }
}
