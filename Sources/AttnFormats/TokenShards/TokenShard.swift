// A token shard: the token ids of part of a corpus, written once by `attn-train prepare` and then
// memory-mapped, so training and evaluation read only the windows they use and a corpus may be far
// larger than memory. The layout is little-endian throughout:
//
//   offset  size  field
//        0     8  magic "ATTNTOKS"
//        8     4  format version, 1 (uint32)
//       12     4  bytes per token id: 2 (uint16 ids, vocabularies up to 65,536) or 4 (uint32)
//       16     8  token count (uint64)
//       24    32  SHA-256 of the tokenizer that made the ids (its vocab.json), so ids are never read
//                 with another tokenizer
//       56     8  zero
//       64        the ids
//
// numpy reads one in three lines:
//   header = np.fromfile(path, dtype=np.uint8, count=64)
//   width, count = int(header[12:16].view("<u4")[0]), int(header[16:24].view("<u8")[0])
//   ids = np.memmap(path, dtype="<u2" if width == 2 else "<u4", mode="r", offset=64, shape=(count,))
// A reader checks every field against the file before it maps a byte; each fault names the file.

import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

public enum TokenShardFormat {
  public static let magic = Array("ATTNTOKS".utf8)
  public static let version: UInt32 = 1
  public static let headerBytes = 64

  /// The narrowest id width that holds every id of a vocabulary.
  public static func width(vocabularySize: Int) -> Int { vocabularySize <= 65536 ? 2 : 4 }
}

// MARK: - Writing

/// Streams ids into a new shard: the header first with a zero count, the ids in order, then the
/// count and an fsync. The caller writes to a temporary name and renames it into place afterwards.
public final class TokenShardWriter {
  public let path: String
  public let width: Int
  public private(set) var count = 0
  private let file: DurableFileWriter
  private var buffer: [UInt8] = []

  public init(path: String, width: Int, tokenizerSHA256: [UInt8]) throws {
    precondition(width == 2 || width == 4, "token width must be 2 or 4 bytes")
    precondition(tokenizerSHA256.count == 32, "a SHA-256 digest has 32 bytes")
    self.path = path
    self.width = width
    file = try DurableFileWriter(path: path)
    var header = TokenShardFormat.magic
    header += littleEndianBytes(TokenShardFormat.version) + littleEndianBytes(UInt32(width)) + littleEndianBytes(UInt64(0))
    header += tokenizerSHA256 + [UInt8](repeating: 0, count: 8)
    try header.withUnsafeBytes { try file.write($0) }
  }

  /// Appends ids, each of which must fit the width (the caller's tokenizer guarantees it).
  public func append(_ ids: UnsafeBufferPointer<Int32>) throws {
    buffer.removeAll(keepingCapacity: true)
    buffer.reserveCapacity(ids.count * width)
    for id in ids {
      let value = UInt32(bitPattern: id)
      precondition(width == 4 || value < 65536, "token id \(id) does not fit in \(width) bytes")
      buffer.append(UInt8(truncatingIfNeeded: value))
      buffer.append(UInt8(truncatingIfNeeded: value >> 8))
      if width == 4 {
        buffer.append(UInt8(truncatingIfNeeded: value >> 16))
        buffer.append(UInt8(truncatingIfNeeded: value >> 24))
      }
    }
    try buffer.withUnsafeBytes { try file.write($0) }
    count += ids.count
  }

  /// Writes the count into the header, fsyncs and closes.
  public func finish() throws {
    try file.write(littleEndianBytes(UInt64(count)), at: 16)
    try file.close()
  }
}

private func littleEndianBytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
  withUnsafeBytes(of: value.littleEndian) { Array($0) }
}

// MARK: - Reading

public struct TokenShardError: Error, CustomStringConvertible {
  public let path: String
  public let reason: String
  public var description: String { "\(path): \(reason)" }
}

/// A shard mapped read-only. Pages are read when touched (advised random: no read-ahead), and a
/// reader gives the ones it has used back with `release(_:)`, so a rank holds only the windows it is
/// reading: on this machine's kernel a fault maps the page cache's whole large folio (measured: a
/// training run's resident memory grew by about 350 KB per window read, 5.5 MB per tiny step, until
/// windows were released; nanoGPT re-creates its memmap every batch for the same reason).
public final class MappedTokenShard: @unchecked Sendable {
  public let path: String
  public let width: Int
  public let count: Int
  public let tokenizerSHA256: [UInt8]
  /// The first id; `width` bytes each.
  public let ids: UnsafeRawPointer
  private let mapping: UnsafeMutableRawPointer?
  private let mappedBytes: Int

  public init(path: String) throws {
    func fail(_ reason: String) -> TokenShardError { TokenShardError(path: path, reason: reason) }
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { throw FileError(path: path, operation: "open for reading", errno: errno) }
    defer { close(fd) }
    var info = stat()
    if fstat(fd, &info) != 0 { throw FileError(path: path, operation: "stat", errno: errno) }
    let size = Int(info.st_size)
    guard size >= TokenShardFormat.headerBytes else {
      throw fail("\(size) bytes, shorter than the 64-byte header of a token shard (truncated, or not a shard)")
    }
    var header = [UInt8](repeating: 0, count: TokenShardFormat.headerBytes)
    let got = header.withUnsafeMutableBytes { pread(fd, $0.baseAddress, TokenShardFormat.headerBytes, 0) }
    guard got == TokenShardFormat.headerBytes else { throw FileError(path: path, operation: "read the header", errno: errno) }
    guard Array(header[0..<8]) == TokenShardFormat.magic else {
      throw fail("does not start with \"ATTNTOKS\": not a token shard")
    }
    func integer<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
      header.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
    }
    let version = integer(8, UInt32.self)
    guard version == TokenShardFormat.version else {
      throw fail("format version \(version); this attn-train reads version \(TokenShardFormat.version)")
    }
    let width = Int(integer(12, UInt32.self))
    guard width == 2 || width == 4 else { throw fail("token width \(width) bytes; expected 2 or 4") }
    let count = integer(16, UInt64.self)
    let (bytes, overflow) = count.multipliedReportingOverflow(by: UInt64(width))
    guard !overflow, bytes <= UInt64(Int.max - TokenShardFormat.headerBytes),
      Int(bytes) + TokenShardFormat.headerBytes == size
    else {
      throw fail("the header says \(count) ids of \(width) bytes, but the file holds \(size - TokenShardFormat.headerBytes) bytes of ids (truncated or damaged)")
    }
    self.path = path
    self.width = width
    self.count = Int(count)
    tokenizerSHA256 = Array(header[24..<56])
    mappedBytes = size
    if size > TokenShardFormat.headerBytes {
      guard let base = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), base != MAP_FAILED else {
        throw FileError(path: path, operation: "map into memory", errno: errno)
      }
      _ = madvise(base, size, MADV_RANDOM)
      mapping = base
      ids = UnsafeRawPointer(base) + TokenShardFormat.headerBytes
    } else {
      mapping = nil
      ids = UnsafeRawPointer(bitPattern: 0x40)!  // never read: no ids
    }
  }

  deinit { if let mapping { munmap(mapping, mappedBytes) } }

  /// Unmaps the pages around ids `range` (whole 2 MiB blocks, the largest folio a fault maps); the
  /// file's data stays in the page cache and maps again when read. Allocates nothing.
  @inline(__always) public func release(_ range: Range<Int>) {
    guard let mapping, !range.isEmpty else { return }
    let block = 2 << 20
    let base = UInt(bitPattern: mapping)
    let first = UInt(bitPattern: ids + range.lowerBound * width)
    let last = UInt(bitPattern: ids + range.upperBound * width)
    let start = max(base, first & ~UInt(block - 1))
    let end = min(base + UInt(mappedBytes), (last + UInt(block - 1)) & ~UInt(block - 1))
    if end > start { _ = madvise(UnsafeMutableRawPointer(bitPattern: start), Int(end - start), MADV_DONTNEED) }
  }

  @inline(__always) public func id(at index: Int) -> Int32 {
    width == 2
      ? Int32(UInt16(littleEndian: ids.loadUnaligned(fromByteOffset: 2 * index, as: UInt16.self)))
      : Int32(bitPattern: UInt32(littleEndian: ids.loadUnaligned(fromByteOffset: 4 * index, as: UInt32.self)))
  }
}
