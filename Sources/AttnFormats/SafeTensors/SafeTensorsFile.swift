// Reading a safetensors file (the format is described in SafeTensorsWriter.swift) as hostile input:
// every length, offset and product is checked before it is used, with explicit overflow-reporting
// arithmetic, and each fault is a `SafeTensorsError` naming the file.
import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

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

    let header: JSONValue
    do {
      header = try JSONValue.parse(Data(headerBytes))
    } catch let error as JSONSyntaxError {
      // Show how it starts: a file that is not safetensors at all is the usual cause.
      let start = String(decoding: headerBytes.prefix(40), as: UTF8.self).debugDescription
      throw fail("header is not valid JSON: \(error) (starts \(start))")
    }
    guard case .object(let members) = header else {
      let start = String(decoding: headerBytes.prefix(40), as: UTF8.self).debugDescription
      throw fail("header is not a JSON object (starts \(start))")
    }

    let dataSize = fileSize - dataStart
    var metadata: [String: String] = [:]
    var tensors: [String: Tensor] = [:]
    var spans: [(name: String, begin: Int, end: Int)] = []
    for (name, value) in members {
      if name == "__metadata__" {
        metadata = try Self.metadata(value, fail)
        continue
      }
      let entry = try Self.entry(name, value, fail)
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
    self.metadata = metadata
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

// MARK: - Header entries

extension SafeTensorsFile {
  private static func metadata(_ value: JSONValue, _ fail: (String) -> SafeTensorsError) throws -> [String: String] {
    guard case .object(let pairs) = value else {
      throw fail("__metadata__ must be an object whose values are all strings")
    }
    var metadata: [String: String] = [:]
    for (key, value) in pairs {
      guard case .string(let text) = value else {
        throw fail("__metadata__ must be an object whose values are all strings; \"\(key)\" is \(value.kindName)")
      }
      metadata[key] = text
    }
    return metadata
  }

  /// One tensor's entry with exact types: an integer field refuses 1.5, "1" and true.
  private static func entry(_ name: String, _ value: JSONValue, _ fail: (String) -> SafeTensorsError) throws
    -> (dtype: String, shape: [Int], offsets: [Int])
  {
    guard let entry = try? JSONObject(value) else {
      throw fail("tensor '\(name)': entry is not a JSON object")
    }
    func field(_ key: String) throws -> JSONValue {
      guard let value = entry[key] else { throw fail("tensor '\(name)': missing field \"\(key)\"") }
      return value
    }
    func integers(_ key: String, _ expected: String) throws -> [Int] {
      guard case .array(let elements) = try field(key) else {
        throw fail("tensor '\(name)': field \"\(key)\" must be \(expected)")
      }
      return try elements.map {
        guard let n = $0.exactInt else { throw fail("tensor '\(name)': field \"\(key)\" must be \(expected)") }
        return n
      }
    }
    guard case .string(let dtype) = try field("dtype") else {
      throw fail("tensor '\(name)': field \"dtype\" must be a string")
    }
    return (dtype, try integers("shape", "an array of integers"), try integers("data_offsets", "an array of two integers"))
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
