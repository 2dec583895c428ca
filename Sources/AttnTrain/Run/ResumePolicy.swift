// Where a training run starts, decided by rank 0 alone (the others learn it by broadcast, so the job
// needs no shared filesystem for checkpoints). A run resumes from the run directory's newest
// checkpoint that verifies, unless told to start fresh or from a named one; nothing on disk is ever
// deleted to make room: checkpoints that would mix two trajectories are moved aside.

import AttnFormats
import Foundation

public enum StartPoint: Equatable, Sendable {
  /// The newest valid checkpoint, or step 0 when there is none.
  case newest
  /// Step 0; existing checkpoints move to checkpoints-replaced-<time>/.
  case fresh
  /// A named checkpoint ("step-0000500", "best", or a path); the newer ones of the abandoned run move
  /// to checkpoints-abandoned-<time>/.
  case checkpoint(String)
}

struct ResumePolicy {
  let config: Config
  let run: RunDirectory
  let log: RunLog

  /// Prepares the run directory and returns the checkpoint to resume from, nil to start at step 0.
  /// A checkpoint whose settings would change the model, the data or the batches is refused.
  func chooseCheckpoint(_ start: StartPoint) throws -> LoadedCheckpoint? {
    try run.prepare()
    try run.claim()
    if start == .fresh, let aside = try run.setAsideCheckpoints() {
      log.say("--fresh: previous checkpoints moved to \(aside)")
    }
    try run.removePartialCheckpoints()
    let checkpoint: LoadedCheckpoint?
    switch start {
    case .fresh: checkpoint = nil
    case .newest: checkpoint = try run.checkpoints.newestValid(warn: log.warn)
    case .checkpoint(let name): checkpoint = try LoadedCheckpoint(path: run.checkpoints.resolve(name), name: name)
    }
    guard let checkpoint else {
      log.say("starting fresh in \(run.path)")
      if let aside = try LogsOnResume(run: run).continueFrom(step: 0) {
        log.say("the logs of the earlier start (metrics.jsonl, tensorboard/) moved to \(aside)")
      }
      return nil
    }
    let changes = config.changedFields(comparedTo: checkpoint.config)
    guard changes.unsafe.isEmpty else {
      throw InputError(
        file: config.sourcePath,
        problem: "cannot resume \(checkpoint.path): these settings differ from the checkpoint's and change the model, data or batches: \(changes.unsafe.joined(separator: ", "))",
        hint: "restore them, use another --run-dir, or start over with --fresh")
    }
    if case .checkpoint = start, let aside = try run.setAsideCheckpoints(newerThan: checkpoint.state.step) {
      log.say("--from-checkpoint: the newer checkpoints of the abandoned run moved to \(aside)")
    }
    let note = changes.safe.isEmpty ? "" : " (changed: \(changes.safe.joined(separator: ", ")))"
    log.say("resuming from \(checkpoint.path) at step \(checkpoint.state.step)\(note)")
    if let aside = try LogsOnResume(run: run).continueFrom(step: checkpoint.state.step) {
      log.say("records after step \(checkpoint.state.step), which no checkpoint kept, left metrics.jsonl and tensorboard/; the files as they were are in \(aside)")
    }
    return checkpoint
  }
}
