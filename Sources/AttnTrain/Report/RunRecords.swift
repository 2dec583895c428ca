// What a run directory says about its run, read back for the report: the metrics records, plan.json,
// profile.json, the resolved config and the checkpoints. A run still going, or one that crashed,
// is read as far as it got: a torn last line of metrics.jsonl is counted, not fatal.

import AttnFormats
import Foundation

struct RunRecords {
  let run: RunDirectory
  /// metrics.jsonl, a dictionary of figures per record (step included), in file order.
  let metrics: [[String: Double]]
  /// Lines of metrics.jsonl that were not a JSON object with a step.
  let unreadableLines: Int
  let plan: JSONObject?
  let profile: JSONObject?
  /// The resolved config the run last started with (config.json), as written.
  let configText: String?
  let config: Config?
  let checkpoints: [CheckpointSummary]

  struct CheckpointSummary {
    let name: String
    let state: TrainerState?
    let bytes: Int
    let isLatest: Bool
    /// Why trainer.json could not be read; the report lists the checkpoint anyway.
    let problem: String?
  }

  init(run: RunDirectory) throws {
    self.run = run
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: run.path, isDirectory: &isDirectory), isDirectory.boolValue else {
      throw InputError(file: run.path, problem: "not a run directory (no such directory)")
    }
    let metricsData = FileManager.default.contents(atPath: run.metricsFile)
    let configData = FileManager.default.contents(atPath: run.file("config.json"))
    guard metricsData != nil || configData != nil else {
      throw InputError(
        file: run.path, problem: "not a run directory: it has neither metrics.jsonl nor config.json",
        hint: "give the directory a run writes to: its config's output.run_dir")
    }
    (metrics, unreadableLines) = Self.metrics(metricsData ?? Data())
    plan = Self.object(atPath: run.planFile)
    profile = Self.object(atPath: run.profileFile)
    configText = configData.map { String(decoding: $0, as: UTF8.self) }
    config = configData == nil ? nil : try? Config.load(path: run.file("config.json"))
    checkpoints = Self.checkpoints(in: run.checkpoints)
  }

  /// The records of a metrics.jsonl, and how many lines were not a record.
  static func metrics(_ data: Data) -> (records: [[String: Double]], unreadable: Int) {
    var records: [[String: Double]] = []
    var unreadable = 0
    for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
      guard let object = try? JSONObject(JSONValue.parse(Data(line.utf8))), object["step"]?.exactInt != nil else {
        unreadable += 1
        continue
      }
      var record: [String: Double] = [:]
      for member in object.members { if let value = member.value.doubleValue { record[member.key] = value } }
      records.append(record)
    }
    return (records, unreadable)
  }

  private static func object(atPath path: String) -> JSONObject? {
    guard let data = FileManager.default.contents(atPath: path) else { return nil }
    return try? JSONObject(JSONValue.parse(data))
  }

  private static func checkpoints(in directory: CheckpointDirectory) -> [CheckpointSummary] {
    let latest = directory.latestName()
    var names = directory.stepCheckpoints().map(\.name)
    if FileManager.default.fileExists(atPath: directory.path("best")) { names.insert("best", at: 0) }
    return names.map { name in
      let path = directory.path(name)
      var state: TrainerState?
      var problem: String?
      do {
        state = try TrainerState.read((path as NSString).appendingPathComponent(CheckpointDirectory.trainerFile))
      } catch {
        problem = "\(error)"
      }
      let files = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
      let bytes = files.reduce(0) { total, file in
        let attributes = try? FileManager.default.attributesOfItem(atPath: (path as NSString).appendingPathComponent(file))
        return total + ((attributes?[.size] as? NSNumber)?.intValue ?? 0)
      }
      return CheckpointSummary(name: name, state: state, bytes: bytes, isLatest: name == latest, problem: problem)
    }
  }

  /// The (x, y) pairs of the records that have both figures.
  func points(_ y: String, against x: String = "step") -> [(x: Double, y: Double)] {
    metrics.compactMap { record in
      guard let yValue = record[y], let xValue = xValue(record, x) else { return nil }
      return (x: xValue, y: yValue)
    }
  }

  /// Tokens come with every training record; a record that only carries an evaluation has them from
  /// the step and the plan's tokens per step.
  private func xValue(_ record: [String: Double], _ key: String) -> Double? {
    if let value = record[key] { return value }
    guard key == "tokens", let step = record["step"], let perStep = plan?["tokens_per_step"]?.doubleValue else { return nil }
    return step * perStep
  }
}
