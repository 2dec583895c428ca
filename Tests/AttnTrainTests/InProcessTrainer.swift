// A Trainer built inside the test process on the repository's Tiny Shakespeare, its run directory
// in a fresh temporary directory that remove() deletes. With an InProcessCommunicator, one per rank.

import AttnDist
import AttnTrain
import Foundation

struct InProcessTrainer {
  let trainer: Trainer
  let config: Config
  let data: TextData
  private let directory: URL

  /// `sections`: the config's members other than "data" and "output", as JSON text
  /// (`"model": {...}, "training": {...}`).
  init(_ sections: String, communicator: Communicator = SingleProcessCommunicator()) throws {
    let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent()
    directory = FileManager.default.temporaryDirectory.appendingPathComponent("attn-train-test-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    do {
      let json = """
        {\(sections),
         "data": {"train_path": "\(repository.appendingPathComponent("data/tinyshakespeare/input.txt").path)"},
         "output": {"run_dir": "\(directory.appendingPathComponent("run").path)"}}
        """
      config = try Config.parse(json: Data(json.utf8), sourcePath: directory.appendingPathComponent("c.json").path)
      data = try TextData.load(config)
      trainer = try Trainer(
        config: config, plan: BatchPlan(config, ranks: communicator.size), data: data, communicator: communicator,
        log: RunLog(isSpeaker: false), run: RunDirectory(path: config.output.runDir, origin: "output.run_dir"),
        resumeFrom: nil)
    } catch {
      try? FileManager.default.removeItem(at: directory)
      throw error
    }
  }

  func remove() { try? FileManager.default.removeItem(at: directory) }
}
