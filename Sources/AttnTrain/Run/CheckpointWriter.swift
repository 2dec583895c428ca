// Writing a checkpoint so that a crash at any moment leaves only whole ones (see Checkpoint.swift for
// the layout and the order of operations).

import AttnCore
import AttnFormats
import Foundation

public struct CheckpointWriter {
  public let directory: CheckpointDirectory
  public let keep: Int
  /// A pause between files (FaultInjection), so a test can kill the process mid-write.
  let pauseBetweenFiles: Double

  public init(directory: CheckpointDirectory, keep: Int, faults: FaultInjection = .none) {
    self.directory = directory
    self.keep = keep
    pauseBetweenFiles = faults.pauseBetweenCheckpointFiles
  }

  /// Writes a complete checkpoint named `name` ("step-NNNNNNN" or "best"), replacing an older one of
  /// the same name only after the new one is whole.
  public func write(
    name: String, model: GPT, optimizer: Optimizer, state: TrainerState, configJSON: String,
    vocabularyJSON: String
  ) throws {
    let fm = FileManager.default
    try fm.createDirectory(atPath: directory.root, withIntermediateDirectories: true)
    let partial = directory.path(".partial-\(name)-\(getpid())")
    try removeTree(partial)
    try fm.createDirectory(atPath: partial, withIntermediateDirectories: false)
    do {
      try writeFiles(into: partial, name: name, model: model, optimizer: optimizer, state: state, configJSON: configJSON, vocabularyJSON: vocabularyJSON)
    } catch {
      // A failed write (a full disk) leaves nothing half-written behind to fill the disk further.
      try? removeTree(partial)
      throw error
    }
  }

  private func writeFiles(
    into partial: String, name: String, model: GPT, optimizer: Optimizer, state: TrainerState, configJSON: String,
    vocabularyJSON: String
  ) throws {
    let fm = FileManager.default
    func file(_ name: String) -> String { (partial as NSString).appendingPathComponent(name) }

    var weights = SafeTensorsWriter(metadata: ["format": "pt", "written_by": "attn-train", "step": "\(state.step)"])
    for tensor in model.layout.tensors {
      weights.add(tensor.name, shape: tensor.shape, UnsafeBufferPointer(start: model.parameters.pointer + tensor.offset, count: tensor.count))
    }
    try weights.write(to: file(CheckpointDirectory.modelFile))
    pause()

    var moments = SafeTensorsWriter(metadata: [
      "kind": optimizer.settings.kind.rawValue, "step_count": "\(optimizer.stepCount)",
    ])
    for (stateName, buffer) in optimizer.state {
      for tensor in model.layout.tensors {
        moments.add("\(stateName).\(tensor.name)", shape: tensor.shape, UnsafeBufferPointer(start: buffer.pointer + tensor.offset, count: tensor.count))
      }
    }
    try moments.write(to: file(CheckpointDirectory.optimizerFile))
    pause()

    try writeFileDurably(path: file(CheckpointDirectory.trainerFile), contents: Data(state.json.prettyPrinted().utf8))
    try writeFileDurably(path: file(CheckpointDirectory.configFile), contents: Data(configJSON.utf8))
    try writeFileDurably(path: file(CheckpointDirectory.vocabularyFile), contents: Data(vocabularyJSON.utf8))
    pause()

    let manifest = try CheckpointManifest(hashing: CheckpointDirectory.contentFiles, in: partial)
    try writeFileDurably(path: file(CheckpointDirectory.manifestFile), contents: Data(manifest.json.prettyPrinted().utf8))
    try fsyncDirectory(partial)

    let final = directory.path(name)
    if fm.fileExists(atPath: final) {
      // Only `best` is ever rewritten: move the old one aside first so a whole one always exists.
      let retired = directory.path(".partial-retired-\(name)-\(getpid())")
      try atomicRename(from: final, to: retired)
      try atomicRename(from: partial, to: final)
      try removeTree(retired)
    } else {
      try atomicRename(from: partial, to: final)
    }
  }

  /// Points `latest` at `name` and removes step checkpoints beyond the newest `keep`, except
  /// `protected` (the newest one known good while `name` is still on trial).
  public func publishLatest(_ name: String, protecting protected: String? = nil) throws {
    try replaceFileAtomically(path: directory.latestPointer, contents: Data((name + "\n").utf8))
    for old in directory.stepCheckpoints().dropFirst(keep) where old.name != name && old.name != protected {
      try removeTree(directory.path(old.name))
    }
  }

  /// Takes back a checkpoint whose weights made the steps after it fail: it is renamed out of the
  /// candidates first (kept for inspection), so that a crash before `latest` names `good` again
  /// still leaves `good` the newest step checkpoint, the one a resume takes.
  public func reject(_ name: String, returningTo good: String) throws -> String {
    let rejected = "rejected-" + name
    try atomicRename(from: directory.path(name), to: directory.path(rejected))
    try replaceFileAtomically(path: directory.latestPointer, contents: Data((good + "\n").utf8))
    return rejected
  }

  private func pause() {
    if pauseBetweenFiles > 0 { Thread.sleep(forTimeInterval: pauseBetweenFiles) }
  }
}
