// A Trainer built inside the test process, on the repository's Tiny Shakespeare unless the test names
// its own data section, its run directory in a fresh temporary directory that remove() deletes.
// With an InProcessCommunicator, one per rank.

import AttnDist
import AttnTrain
import Foundation

struct InProcessTrainer {
  let trainer: Trainer
  let config: Config
  let data: TrainingData
  private let directory: URL

  /// `sections`: the config's members other than "data" and "output", as JSON text
  /// (`"model": {...}, "training": {...}`); `dataSection` the "data" member's object, when not Tiny
  /// Shakespeare.
  init(_ sections: String, dataSection: String? = nil, communicator: Communicator = SingleProcessCommunicator()) throws {
    let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent()
    directory = FileManager.default.temporaryDirectory.appendingPathComponent("attn-train-test-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    do {
      let json = """
        {\(sections),
         "data": \(dataSection ?? #"{"train_path": "\#(repository.appendingPathComponent("data/tinyshakespeare/input.txt").path)"}"#),
         "output": {"run_dir": "\(directory.appendingPathComponent("run").path)"}}
        """
      let parsed = try Config.parse(json: Data(json.utf8), sourcePath: directory.appendingPathComponent("c.json").path)
      let plan = try BatchPlan(parsed, ranks: communicator.size)
      let run = RunDirectory(path: parsed.output.runDir, origin: "output.run_dir")
      let log = RunLog(isSpeaker: false)
      if parsed.task.kind == .classification {
        (data, config) = try TrainingData.open(
          parsed, plan: plan, checkpoint: nil, run: run, communicator: communicator, log: log)
      } else {
        (data, config) = (.text(try TextData.load(parsed)), parsed)
      }
      trainer = try Trainer(
        config: config, plan: plan, data: data, communicator: communicator, log: log, run: run, resumeFrom: nil)
    } catch {
      try? FileManager.default.removeItem(at: directory)
      throw error
    }
  }

  /// The text of a language-model config.
  var text: TextData {
    guard case .text(let text) = data else { fatalError("a classification config has no text") }
    return text
  }

  func remove() { try? FileManager.default.removeItem(at: directory) }
}
