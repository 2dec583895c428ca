// What a run has logged (metrics.jsonl, tensorboard/) must tell one trajectory: the one its
// checkpoints hold. A resume from step S continues from S, so the records a crashed or stopped
// start wrote after S describe steps that no checkpoint kept and that are about to be run again;
// a start from step 0 begins a new trajectory. Either way the live logs lose those records, so a
// plot shows each step once; nothing is deleted: the files as they were move to
// logs-after-step-S-<time>/ (or logs-replaced-<time>/ for a start from step 0), as superseded
// checkpoints move to checkpoints-*-<time>/.

import AttnFormats
import Foundation

struct LogsOnResume {
  let run: RunDirectory

  /// Rank 0, before the first record of this start: keeps in the live logs only what a start at
  /// `step` (0 for a fresh start) continues.
  /// Returns where the superseded files went, if anything was superseded.
  func continueFrom(step: Int) throws -> String? {
    let metrics = try metricsLines()
    let kept = metrics.filter { $0.step <= step }
    let eventFiles = try TensorBoardEventFile.list(in: run.tensorBoardDirectory)
    let eventsBeyond = try eventFiles.contains { try Self.holdsStep(after: step, $0) }
    guard kept.count < metrics.count || eventsBeyond else { return nil }

    let aside = run.file(step == 0 ? "logs-replaced-\(RunDirectory.timestamp())" : "logs-after-step-\(step)-\(RunDirectory.timestamp())")
    try FileManager.default.createDirectory(atPath: aside, withIntermediateDirectories: true)
    if FileManager.default.fileExists(atPath: run.metricsFile) {
      let original = (aside as NSString).appendingPathComponent("metrics.jsonl")
      try FileManager.default.copyItem(atPath: run.metricsFile, toPath: original)
      let text = kept.map { $0.line + "\n" }.joined()
      try replaceFileAtomically(path: run.metricsFile, contents: Data(text.utf8))
    }
    if !eventFiles.isEmpty {
      let originals = (aside as NSString).appendingPathComponent("tensorboard")
      try FileManager.default.createDirectory(atPath: originals, withIntermediateDirectories: true)
      for file in eventFiles {
        try FileManager.default.copyItem(
          atPath: file, toPath: (originals as NSString).appendingPathComponent((file as NSString).lastPathComponent))
        try TensorBoardEventFile.rewrite(path: file, keepingStepsThrough: step)
      }
    }
    return aside
  }

  /// An event after `step`, or a record cut short by a crash (which the rewrite drops).
  private static func holdsStep(after step: Int, _ path: String) throws -> Bool {
    let file = try TensorBoardEventFile(path: path, allowTruncatedTail: true)
    return file.truncatedTail != nil || file.events.contains { $0.step > step }
  }

  private struct Line {
    let line: Substring
    let step: Int
  }

  /// metrics.jsonl's records with their steps; a line that is not a record (a torn last line after a
  /// crash) counts as beyond any step, so it leaves the live file.
  private func metricsLines() throws -> [Line] {
    guard let data = FileManager.default.contents(atPath: run.metricsFile) else { return [] }
    let text = String(decoding: data, as: UTF8.self)
    return text.split(separator: "\n", omittingEmptySubsequences: true).map { line in
      let step = (try? JSONObject(JSONValue.parse(Data(line.utf8))).int("step")) ?? Int.max
      return Line(line: line, step: step)
    }
  }
}
