// What `attn-train inspect PATH` was pointed at: a checkpoint directory, a run directory, its
// checkpoints/ directory, or a `latest` pointer; and how the result reads, as text and JSON.

import AttnFormats
import Foundation

/// What `inspect` was pointed at: one checkpoint, or a run directory's checkpoints (each verified,
/// the newest shown in full).
public struct InspectionTarget {
  /// The checkpoint shown in full: the one given, or the one a run directory's `latest` names.
  public let shown: CheckpointInspection
  /// The run directory's other checkpoints, each verified.
  public let others: [CheckpointInspection]
  /// The first checkpoint that would not load, if any.
  public var firstDamaged: CheckpointInspection? { ([shown] + others).first { !$0.faults.isEmpty } }

  public init(path: String) throws {
    let fm = FileManager.default
    let resolved = CheckpointDirectory.followingLatestPointer(path)
    var isDirectory: ObjCBool = false
    guard fm.fileExists(atPath: resolved, isDirectory: &isDirectory) else {
      throw InputError(file: path, problem: "no such file or directory")
    }
    guard isDirectory.boolValue else {
      throw InputError(file: path, problem: "not a checkpoint or run directory (a file)", hint: "give a checkpoint directory (step-NNNNNNN, best) or a run directory")
    }
    func has(_ name: String) -> Bool { fm.fileExists(atPath: (resolved as NSString).appendingPathComponent(name)) }
    // A run directory holds config.json and vocab.json too: checkpoints/ is what tells them apart.
    let isRunDirectory = has("checkpoints")
    if !isRunDirectory && [CheckpointDirectory.manifestFile, CheckpointDirectory.modelFile, CheckpointDirectory.trainerFile].contains(where: has) {
      shown = CheckpointInspection(checkpoint: resolved)
      others = []
      return
    }
    let directory = isRunDirectory ? CheckpointDirectory(runDirectory: resolved) : CheckpointDirectory(root: resolved)
    var names = directory.stepCheckpoints().map(\.name)
    if fm.fileExists(atPath: directory.path("best")) { names.append("best") }
    guard !names.isEmpty else {
      throw InputError(file: path, problem: "holds no checkpoint (no manifest.json here, no step-* or best under checkpoints/)")
    }
    let shown = directory.latestName().flatMap { names.contains($0) ? $0 : nil } ?? names[0]
    self.shown = CheckpointInspection(checkpoint: directory.path(shown), name: shown)
    others = names.filter { $0 != shown }.map { CheckpointInspection(checkpoint: directory.path($0), name: $0, detailed: false) }
  }

  public var text: String {
    var out = ""
    if !others.isEmpty {
      out += "checkpoints:\n"
      for inspection in [shown] + others {
        let verdict = inspection.faults.isEmpty ? "ok" : "DAMAGED: " + inspection.faults.joined(separator: "; ")
        out += "  \(inspection.name) (step \(inspection.state.map { "\($0.step)" } ?? "?")): \(verdict)\n"
      }
      out += "\n"
    }
    return out + shown.text
  }

  public var json: JSONValue {
    guard !others.isEmpty else { return shown.json }
    return .object([
      (key: "shown", value: shown.json),
      (
        key: "checkpoints",
        value: .array(
          ([shown] + others).map {
            .object([
              (key: "name", value: .string($0.name)), (key: "path", value: .string($0.path)),
              (key: "step", value: $0.state.map { JSONValue(integer: $0.step) } ?? .null),
              (key: "valid", value: .bool($0.faults.isEmpty)), (key: "faults", value: .array($0.faults.map { .string($0) })),
            ])
          })
      ),
    ])
  }
}
