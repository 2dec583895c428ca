// Rank 0 speaks: one line per event on stdout, and for progress and evaluation the same figures as
// one JSON object per line in <run_dir>/metrics.jsonl. Other ranks compute the same numbers and stay
// quiet, except for errors, which every rank reports on stderr.

import Foundation

public final class RunLog {
  public let isSpeaker: Bool
  private var metrics: FileHandle?

  public init(isSpeaker: Bool) {
    self.isSpeaker = isSpeaker
  }

  /// Starts appending to metrics.jsonl (rank 0 only).
  public func openMetrics(path: String) throws {
    guard isSpeaker else { return }
    if !FileManager.default.fileExists(atPath: path) {
      guard FileManager.default.createFile(atPath: path, contents: nil) else {
        throw InputError(file: path, problem: "cannot create the metrics file")
      }
    }
    guard let handle = FileHandle(forWritingAtPath: path) else {
      throw InputError(file: path, problem: "cannot open the metrics file for writing")
    }
    handle.seekToEndOfFile()
    metrics = handle
  }

  public func say(_ line: String) {
    guard isSpeaker else { return }
    // Unbuffered: under mpirun, stdout is a pipe and buffered lines would arrive late or be lost.
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
  }

  /// Information that must not mix with a command's results on stdout.
  public func note(_ line: String) {
    guard isSpeaker else { return }
    FileHandle.standardError.write(Data((line + "\n").utf8))
  }

  public func warn(_ line: String) {
    guard isSpeaker else { return }
    FileHandle.standardError.write(Data("warning: \(line)\n".utf8))
  }

  /// One metrics record: keys in a fixed order so the file diffs cleanly between runs.
  public func record(_ fields: [(String, Double)]) {
    guard isSpeaker, let metrics else { return }
    let body = fields.map { key, value in
      let number = value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : "\(value)"
      return "\"\(key)\": \(number)"
    }
    metrics.write(Data(("{" + body.joined(separator: ", ") + "}\n").utf8))
  }

  public func close() {
    try? metrics?.synchronize()
    try? metrics?.close()
    metrics = nil
  }
}
