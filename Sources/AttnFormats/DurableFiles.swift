// Crash-safe file primitives for checkpoints. A checkpoint survives power loss only if its bytes
// reach the disk before anything points at it: write + fsync the file, rename(2) it into place, then
// fsync the directory so the rename itself is on disk. Every failure becomes a `FileError` carrying
// the path, the operation and strerror(errno), so the one place that reports errors can print it.
import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

public struct FileError: Error, CustomStringConvertible {
  public let path: String
  public let operation: String
  public let errno: Int32
  public let message: String

  public init(path: String, operation: String, errno code: Int32) {
    self.init(path: path, operation: operation, errno: code, message: String(cString: strerror(code)))
  }

  public init(path: String, operation: String, errno code: Int32 = 0, message: String) {
    self.path = path
    self.operation = operation
    self.errno = code
    self.message = message
  }

  public var description: String { "\(path): \(operation) failed: \(message)" }
}

/// A file opened for writing from the start, written sequentially, fsynced and closed.
/// Streaming writers (safetensors) hand it raw buffers so no giant copy is ever built.
/// The descriptor is closed on deinit if `close()` was never reached (an error path).
public final class DurableFileWriter {
  public let path: String
  private var fd: Int32

  /// `exclusive`: the file must not exist yet (EEXIST otherwise), so a new log never replaces another.
  public init(path: String, permissions: mode_t = 0o644, exclusive: Bool = false) throws {
    self.path = path
    fd = open(path, O_WRONLY | O_CREAT | (exclusive ? O_EXCL : O_TRUNC) | O_CLOEXEC, permissions)
    if fd < 0 { throw FileError(path: path, operation: "open for writing", errno: errno) }
  }

  deinit { if fd >= 0 { _ = closeDescriptor(fd) } }

  /// Writes all of `bytes`, looping over short writes and EINTR (write(2) may stop early, and
  /// Linux moves at most ~2 GiB per call).
  public func write(_ bytes: UnsafeRawBufferPointer) throws {
    guard var next = bytes.baseAddress, bytes.count > 0 else { return }
    var left = bytes.count
    while left > 0 {
      let n = writeDescriptor(fd, next, left)
      if n < 0 {
        if errno == EINTR { continue }
        throw FileError(path: path, operation: "write", errno: errno)
      }
      next += n
      left -= n
    }
  }

  public func write(_ data: Data) throws {
    try data.withUnsafeBytes { try write($0) }
  }

  /// Overwrites bytes already written, at `offset` from the start (a header field filled in last).
  public func write(_ bytes: [UInt8], at offset: Int) throws {
    let written = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
    if written != bytes.count { throw FileError(path: path, operation: "write at offset \(offset)", errno: errno) }
  }

  /// fsync then close; after this returns the contents are on disk (the name is not, until the
  /// parent directory is fsynced).
  public func close() throws {
    if fsync(fd) != 0 { throw FileError(path: path, operation: "fsync", errno: errno) }
    let rc = closeDescriptor(fd)
    fd = -1
    // close(2) can report a deferred write error (e.g. NFS, quota); the fd is gone either way.
    if rc != 0 { throw FileError(path: path, operation: "close", errno: errno) }
  }
}

/// Writes `contents` to `path` (created or truncated) and fsyncs it.
public func writeFileDurably(path: String, contents: Data) throws {
  let file = try DurableFileWriter(path: path)
  try file.write(contents)
  try file.close()
}

public func writeFileDurably(path: String, bytes: [UInt8]) throws {
  let file = try DurableFileWriter(path: path)
  try bytes.withUnsafeBytes { try file.write($0) }
  try file.close()
}

/// Makes the directory's entries (new, renamed or removed names) durable.
public func fsyncDirectory(_ path: String) throws {
  let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
  if fd < 0 { throw FileError(path: path, operation: "open directory for fsync", errno: errno) }
  defer { _ = closeDescriptor(fd) }
  if fsync(fd) != 0 { throw FileError(path: path, operation: "fsync directory", errno: errno) }
}

/// rename(2) `from` onto `to` (atomic: readers see the old or the new, never a mix), then fsyncs
/// the parent directory of each so the move survives a crash.
public func atomicRename(from: String, to: String) throws {
  if rename(from, to) != 0 {
    throw FileError(path: from, operation: "rename to \(to)", errno: errno)
  }
  let toParent = parentDirectory(of: to)
  try fsyncDirectory(toParent)
  let fromParent = parentDirectory(of: from)
  if fromParent != toParent { try fsyncDirectory(fromParent) }
}

/// Replaces the file at `path` so that a crash leaves either the old contents or the new, never a
/// torn file: write a temporary beside it, fsync, rename over, fsync the directory. Meant for small
/// pointer files such as `latest`.
public func replaceFileAtomically(path: String, contents: Data) throws {
  // Same directory, so rename(2) never crosses a filesystem; pid + random keeps concurrent writers apart.
  let temp = "\(path).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
  do {
    try writeFileDurably(path: temp, contents: contents)
    try atomicRename(from: temp, to: path)
  } catch {
    unlink(temp)
    guard let e = error as? FileError else { throw error }
    // Name the file the caller asked for; the temporary is detail.
    let tempName = temp.split(separator: "/").last.map(String.init) ?? temp
    throw FileError(path: path, operation: "replace (\(e.operation) of \(tempName))", errno: e.errno, message: e.message)
  }
}

/// Removes `path` and everything under it, like `rm -rf`: a missing path is not an error, and a
/// symlink is removed, never followed.
public func removeTree(_ path: String) throws {
  var info = stat()
  if lstat(path, &info) != 0 {
    if errno == ENOENT { return }
    throw FileError(path: path, operation: "stat before removal", errno: errno)
  }
  if (info.st_mode & S_IFMT) == S_IFDIR {
    for name in try directoryEntries(path) { try removeTree(path + "/" + name) }
    if rmdir(path) != 0 { throw FileError(path: path, operation: "remove directory", errno: errno) }
  } else if unlink(path) != 0 {
    throw FileError(path: path, operation: "remove file", errno: errno)
  }
}

private func directoryEntries(_ path: String) throws -> [String] {
  guard let dir = opendir(path) else {
    throw FileError(path: path, operation: "open directory for removal", errno: errno)
  }
  defer { closedir(dir) }
  var names: [String] = []
  while true {
    errno = 0  // readdir returns nil both at the end and on error; only errno tells them apart
    guard let entry = readdir(dir) else { break }
    let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
      String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
    }
    if name != "." && name != ".." { names.append(name) }
  }
  if errno != 0 { throw FileError(path: path, operation: "read directory for removal", errno: errno) }
  return names
}

// Free-function spellings, because inside `DurableFileWriter` the bare names `close`/`write`
// resolve to its own methods.
private func closeDescriptor(_ fd: Int32) -> Int32 { close(fd) }
private func writeDescriptor(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int { write(fd, p, n) }

/// The directory holding `path` ("." for a bare name), for fsyncing after a rename.
func parentDirectory(of path: String) -> String {
  guard let slash = path.lastIndex(of: "/") else { return "." }
  let parent = path[..<slash]
  return parent.isEmpty ? "/" : String(parent)
}
