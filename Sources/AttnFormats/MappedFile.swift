// A file mapped read-only into memory: source texts and token shards are read in place, so a corpus
// may be larger than memory and only the pages touched are ever loaded.

import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

public final class MappedFile: @unchecked Sendable {
  public let path: String
  public let count: Int
  /// The file's bytes (an empty buffer for an empty file); valid while this object lives.
  public let bytes: UnsafeBufferPointer<UInt8>
  /// The file's size and modification time in nanoseconds, when it was opened: what a fingerprint of
  /// the sources records.
  public let modificationNanoseconds: Int64
  private let mapping: UnsafeMutableRawPointer?

  /// `randomAccess`: no read-ahead (sampling windows); otherwise sequential (a pass over the text).
  public init(path: String, randomAccess: Bool = false) throws {
    self.path = path
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { throw FileError(path: path, operation: "open for reading", errno: errno) }
    defer { close(fd) }
    var info = stat()
    if fstat(fd, &info) != 0 { throw FileError(path: path, operation: "stat", errno: errno) }
    guard (info.st_mode & S_IFMT) == S_IFREG else {
      throw FileError(path: path, operation: "map", message: "not a regular file")
    }
    count = Int(info.st_size)
    modificationNanoseconds = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
    guard count > 0 else {
      mapping = nil
      bytes = UnsafeBufferPointer(start: nil, count: 0)
      return
    }
    guard let base = mmap(nil, count, PROT_READ, MAP_SHARED, fd, 0), base != MAP_FAILED else {
      throw FileError(path: path, operation: "map into memory", errno: errno)
    }
    _ = madvise(base, count, randomAccess ? MADV_RANDOM : MADV_SEQUENTIAL)
    mapping = base
    bytes = UnsafeBufferPointer(start: base.assumingMemoryBound(to: UInt8.self), count: count)
  }

  deinit { if let mapping { munmap(mapping, count) } }
}
