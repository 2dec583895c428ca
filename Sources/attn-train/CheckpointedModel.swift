// eval and sample work on saved weights: the run directory's newest valid checkpoint, or the one
// named with --checkpoint. The model's shape comes from the checkpoint, which must agree with the
// config's model section.

import AttnCore
import AttnTrain
import Foundation

struct CheckpointedModel {
  let checkpoint: LoadedCheckpoint
  let model: GPT

  init(_ launch: Launch, checkpointName: String?, maxBatch: Int) throws {
    let directory = launch.run.checkpoints
    if let name = checkpointName {
      checkpoint = try LoadedCheckpoint(path: name.contains("/") ? name : directory.path(name), name: name)
    } else {
      guard let newest = try directory.newestValid(warn: launch.log.warn) else {
        throw InputError(
          file: launch.run.path, field: launch.run.origin, problem: "no checkpoint to load",
          hint: "train first: attn-train \(launch.config.sourcePath)")
      }
      checkpoint = newest
    }
    let changed = launch.config.changedFields(comparedTo: checkpoint.config).unsafe.filter { $0.hasPrefix("model.") }
    guard changed.isEmpty else {
      throw InputError(
        file: launch.config.sourcePath,
        problem: "the config's model differs from the checkpoint's in \(changed.joined(separator: ", "))",
        hint: "evaluate with the config the run was trained with")
    }
    let shape = checkpoint.config.modelShape(vocabSize: checkpoint.tokenizer.vocabSize)
    model = GPT(shape: shape, maxBatch: maxBatch)
    try checkpoint.restoreWeights(into: model)
  }
}
