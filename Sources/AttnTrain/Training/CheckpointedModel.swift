// eval and sample work on saved weights: the run directory's newest valid checkpoint, or a named one.
// The model's shape comes from the checkpoint, which must agree with the config's model section.

import AttnCore
import AttnFormats
import Foundation

public struct CheckpointedModel {
  public let checkpoint: LoadedCheckpoint
  public let model: GPT

  /// `name`: "step-NNNNNNN", "best" or a path; nil for the newest checkpoint that verifies (damaged
  /// ones are reported through `log` and skipped).
  public init(config: Config, run: RunDirectory, log: RunLog, checkpointName name: String?, maxBatch: Int) throws {
    let directory = run.checkpoints
    if let name {
      checkpoint = try LoadedCheckpoint(path: directory.resolve(name), name: name)
    } else {
      guard let newest = try directory.newestValid(warn: log.warn) else {
        throw InputError(
          file: run.path, field: run.origin, problem: "no checkpoint to load",
          hint: "train first: attn-train \(config.sourcePath)")
      }
      checkpoint = newest
    }
    let changed = config.changedFields(comparedTo: checkpoint.config).unsafe.filter { $0.hasPrefix("model.") || $0.hasPrefix("task.") }
    guard changed.isEmpty else {
      throw InputError(
        file: config.sourcePath,
        problem: "the config's model differs from the checkpoint's in \(changed.joined(separator: ", "))",
        hint: "evaluate with the config the run was trained with")
    }
    let shape = checkpoint.config.modelShape(vocabSize: checkpoint.tokenizer.vocabSize)
    model = GPT(shape: shape, maxBatch: maxBatch)
    try checkpoint.restoreWeights(into: model)
  }
}
