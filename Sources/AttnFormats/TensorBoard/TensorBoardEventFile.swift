// Reading back the event files we write, listing a log directory the way TensorBoard does (names
// holding "tfevents", in name order), and rewriting a file to keep only some of its events: on
// resume the trainer drops the steps of a trajectory that was lost, so the curve does not carry
// two histories. A rewrite replaces the file atomically: a crash leaves the old file or the new.

import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

public struct TensorBoardEventFile {
  public let path: String
  public var events: [TensorBoardEvent]
  /// A last record cut short by a crash mid-write; only with `allowTruncatedTail`, and not in `events`.
  public var truncatedTail: TruncatedRecord?

  /// Reads every event, checking each record's checksums. A damaged record throws `InputError`
  /// naming the file and byte offset; so does a cut-short last record unless `allowTruncatedTail`,
  /// which reports it in `truncatedTail` instead, for a caller that knows a crash may have left it.
  public init(path: String, allowTruncatedTail: Bool = false) throws {
    let records = try TFRecords(path: path)
    if let tail = records.truncatedTail, !allowTruncatedTail {
      throw InputError(
        file: path, problem: "\(tail) (a write interrupted by a crash?)",
        hint: "a reader that may drop it passes allowTruncatedTail")
    }
    self.path = path
    events = try records.records.map { try TensorBoardEvent(decoding: $0.data, file: path) }
    truncatedTail = records.truncatedTail
  }

  /// Full paths of the event files in `directory`, sorted by name as TensorBoard reads them (byte
  /// order, which for UTF-8 is Python's code point order); none when the directory does not exist.
  public static func list(in directory: String) throws -> [String] {
    let names: [String]
    do {
      names = try FileManager.default.contentsOfDirectory(atPath: directory)
    } catch let error as CocoaError where error.code == .fileReadNoSuchFile {
      return []
    } catch {
      throw FileError(path: directory, operation: "list directory", message: error.localizedDescription)
    }
    // TensorBoard takes any name containing "tfevents" (event_accumulator.IsTensorFlowEventsFile).
    return names.filter { $0.contains("tfevents") }
      .sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
      .map { directory + "/" + $0 }
  }

  public struct RewriteOutcome: Equatable, Sendable {
    public var kept: Int
    public var dropped: Int
    public var droppedTruncatedTail: Bool
  }

  /// Rewrites the file at `path` with only the events `keep` accepts, each record's bytes unchanged
  /// and in order, and without a cut-short last record (what a crash leaves; the caller is
  /// recovering from one). Damage elsewhere throws, leaving the file as it was. The file is left
  /// untouched when nothing is dropped.
  @discardableResult
  public static func rewrite(path: String, keeping keep: (TensorBoardEvent) -> Bool) throws -> RewriteOutcome {
    let records = try TFRecords(path: path)
    var kept: [UInt8] = []
    var outcome = RewriteOutcome(kept: 0, dropped: 0, droppedTruncatedTail: records.truncatedTail != nil)
    for record in records.records {
      if keep(try TensorBoardEvent(decoding: record.data, file: path)) {
        TFRecord.append(Array(record.data), to: &kept)
        outcome.kept += 1
      } else {
        outcome.dropped += 1
      }
    }
    if outcome.dropped == 0 && !outcome.droppedTruncatedTail { return outcome }

    // Beside the file, under a name without "tfevents", so TensorBoard never reads a leftover one.
    let temp = parentDirectory(of: path) + "/.rewrite-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).tmp"
    do {
      try writeFileDurably(path: temp, bytes: kept)
      try atomicRename(from: temp, to: path)
    } catch {
      unlink(temp)
      throw error
    }
    return outcome
  }

  /// Keeps the events up to and including step `lastStep`: what survives of a run resumed from the
  /// checkpoint at `lastStep`. The file's first event (its version, at step 0) stays for `lastStep` >= 0.
  @discardableResult
  public static func rewrite(path: String, keepingStepsThrough lastStep: Int) throws -> RewriteOutcome {
    try rewrite(path: path) { $0.step <= lastStep }
  }
}
