// Scalars for TensorBoard, written as TensorFlow writes them: a new file per writer named
// events.out.tfevents.<seconds>.<host>.<pid>.<n>, its first event the file version, then one event
// per logging step. Events collect in memory and each flush writes them with one write(2), so a
// reader sees them while training goes on; close() also fsyncs. TensorBoard reads a directory's
// files in name order, so a new file's name must sort after every file already there.

import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

public final class TensorBoardWriter {
  public static let fileVersion = "brain.Event:2"

  public let directory: String
  public let path: String
  private let file: DurableFileWriter
  /// Framed records not yet written; kept, with its capacity, across flushes.
  private var pending: [UInt8] = []
  /// One event's protobuf bytes, reused for every event.
  private var event = ProtobufEncoder()
  private var closed = false

  /// Creates `directory` when missing and starts a new event file in it. `now` (Unix seconds) names
  /// the file and stamps its version event.
  public init(
    directory: String, hostname: String = TensorBoardWriter.hostname(),
    now: Double = Date().timeIntervalSince1970
  ) throws {
    do {
      try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    } catch {
      throw FileError(path: directory, operation: "create directory", message: error.localizedDescription)
    }
    self.directory = directory
    file = try Self.createFile(in: directory, hostname: hostname, now: now)
    path = file.path
    pending.reserveCapacity(4096)
    event.bytes.reserveCapacity(1024)

    event.event(wallTime: now, step: 0)
    event.string(EventField.fileVersion, Self.fileVersion)
    TFRecord.append(event.bytes, to: &pending)
    try flush()
  }

  /// An error path that never reached close(): keep what was logged (the descriptor closes itself).
  deinit { if !closed { try? flush() } }

  /// One event at `step` holding every scalar, in the order given (as float32, TensorBoard's type).
  public func add(scalars: [(tag: String, value: Double)], step: Int, wallTime: Double) {
    precondition(!closed, "TensorBoardWriter used after close()")
    event.bytes.removeAll(keepingCapacity: true)
    event.event(wallTime: wallTime, step: step)
    event.summary(scalars.lazy.map { ($0.tag, Float($0.value)) })
    TFRecord.append(event.bytes, to: &pending)
  }

  /// Tells TensorBoard the run restarted at `step` (SessionLog START): it discards every event it
  /// has already read with a step at or after it, from this file and earlier ones.
  public func markRestart(atStep step: Int, wallTime: Double) {
    precondition(!closed, "TensorBoardWriter used after close()")
    event.bytes.removeAll(keepingCapacity: true)
    event.event(wallTime: wallTime, step: step)
    event.sessionLog(.start)
    TFRecord.append(event.bytes, to: &pending)
  }

  /// Writes the events added so far (one write(2); no fsync).
  public func flush() throws {
    guard !pending.isEmpty else { return }
    try pending.withUnsafeBytes { try file.write($0) }
    pending.removeAll(keepingCapacity: true)
  }

  /// Flushes, fsyncs and closes the file, and fsyncs the directory so its name survives a crash too.
  public func close() throws {
    guard !closed else { return }
    try flush()
    closed = true
    try file.close()
    try fsyncDirectory(directory)
  }

  /// This machine's name, with anything that cannot sit in a file name replaced by "_".
  public static func hostname() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
    let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return name.isEmpty ? "localhost" : name
  }

  // MARK: - Naming

  /// Opens a new file whose name sorts after every event file already in `directory`: the seconds
  /// field starts at `now`, or at the newest file's seconds when the clock is behind it, and moves
  /// one second on when the rest of the name would still sort too early (same second, larger pid).
  private static func createFile(in directory: String, hostname: String, now: Double) throws -> DurableFileWriter {
    let host = String(hostname.map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" ? $0 : "_" })
    let newest = try TensorBoardEventFile.list(in: directory).last.map { String($0.dropFirst(directory.count + 1)) }
    // Ten digits, as TensorFlow pads them (until the year 2286); clamped so nothing here can overflow.
    let clock = now.isFinite ? Int(min(max(now, 0), 9_999_999_999)) : 0
    var seconds = max(clock, min(newest.flatMap(Self.seconds(inName:)) ?? 0, 9_999_999_999))
    for _ in 0..<100 {
      let name = "events.out.tfevents.\(paddedTo10(seconds)).\(host).\(getpid()).\(writerNumbers.next())"
      if let newest, !newest.utf8.lexicographicallyPrecedes(name.utf8) {
        seconds += 1
        continue
      }
      do {
        return try DurableFileWriter(path: directory + "/" + name, exclusive: true)
      } catch let error as FileError where error.errno == EEXIST {
        continue  // another writer took this name between our listing and our open
      }
    }
    throw InputError(
      file: directory + "/" + (newest ?? ""),
      problem: "no new event file name sorts after this one, and TensorBoard reads files in name order",
      hint: "move it out of the log directory")
  }

  /// The seconds field of a name in TensorFlow's pattern, events.out.tfevents.<seconds>.<...>.
  private static func seconds(inName name: String) -> Int? {
    let prefix = "events.out.tfevents."
    guard name.hasPrefix(prefix) else { return nil }
    return Int(name.dropFirst(prefix.count).prefix { $0 != "." })
  }
}

private func paddedTo10(_ seconds: Int) -> String {
  let digits = String(seconds)
  return String(repeating: "0", count: max(0, 10 - digits.count)) + digits
}

/// The <n> of a file name: counts writers started by this process, as TensorFlow's global uid does.
private let writerNumbers = WriterNumbers()

private final class WriterNumbers: @unchecked Sendable {
  private let lock = NSLock()
  private var count = 0

  func next() -> Int {
    lock.lock()
    defer { lock.unlock() }
    count += 1
    return count - 1
  }
}
