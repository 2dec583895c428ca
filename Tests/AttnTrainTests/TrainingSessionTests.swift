// The session each `attn-train` command calls, driven in-process: what a run does before and after
// its steps (where it starts, what it refuses, what it leaves on disk) is testable without the binary.

import AttnDist
import AttnFormats
import Foundation
import Testing

@testable import AttnTrain

@Suite struct TrainingSessionTests {
  static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

  static func config(runDir: String, maxSteps: Int) throws -> Config {
    let json = """
      {"model": {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 32, "dropout": 0.1},
       "schedule": {"warmup_steps": 2},
       "training": {"batch_size": 12, "max_steps": \(maxSteps), "eval_interval": 0, "checkpoint_interval": 0},
       "data": {"train_path": "\(repository.appendingPathComponent("data/tinyshakespeare/input.txt").path)"},
       "output": {"run_dir": "\(runDir)"}}
      """
    return try Config.parse(json: Data(json.utf8), sourcePath: runDir + ".json")
  }

  static func session(runDir: String, maxSteps: Int, communicator: Communicator = SingleProcessCommunicator()) throws
    -> TrainingSession
  {
    let config = try config(runDir: runDir, maxSteps: maxSteps)
    return TrainingSession(
      config: config, run: RunDirectory(path: runDir, origin: "output.run_dir"), communicator: communicator,
      log: RunLog(isSpeaker: false))
  }

  /// A run stopped after step 6 and resumed to step 10 ends with the weights and optimizer state of
  /// an uninterrupted 10-step run, bit for bit.
  @Test func aStoppedAndResumedSessionEndsWithTheBitsOfAnUninterruptedOne() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attn-session-\(UUID().uuidString.prefix(8))").path
    defer { try? removeTree(dir) }
    var calls = 0
    let stopped = try Self.session(runDir: dir + "/resumed", maxSteps: 10).train(from: .newest) {
      calls += 1
      return calls == 6
    }
    #expect(stopped.outcome == .stoppedBySignal(step: 6))
    let resumed = try Self.session(runDir: dir + "/resumed", maxSteps: 10).train(from: .newest) { false }
    #expect(resumed.outcome == .finished)
    #expect(resumed.state.step == 10)
    let straight = try Self.session(runDir: dir + "/straight", maxSteps: 10).train(from: .newest) { false }
    #expect(straight.state.tokensSeen == resumed.state.tokensSeen)

    for file in [CheckpointDirectory.modelFile, CheckpointDirectory.optimizerFile] {
      let a = try SafeTensorsFile(path: "\(dir)/resumed/checkpoints/step-0000010/\(file)")
      let b = try SafeTensorsFile(path: "\(dir)/straight/checkpoints/step-0000010/\(file)")
      #expect(a.names == b.names)
      for name in a.names {
        #expect(try a.floats(name).map(\.bitPattern) == b.floats(name).map(\.bitPattern), "\(file): \(name)")
      }
    }
  }

  /// 5 ranks cannot share a global batch of 12: refused on every rank, naming the field, before the
  /// run directory is touched.
  @Test func aBatchTheRanksCannotSplitIsRefusedBeforeAnythingIsWritten() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attn-session-\(UUID().uuidString.prefix(8))").path
    defer { try? removeTree(dir) }
    let error = try #require(throws: InputError.self) {
      _ = try InProcessCommunicator.run(ranks: 5) { communicator in
        try Self.session(runDir: dir, maxSteps: 3, communicator: communicator).train(from: .newest) { false }
      }
    }
    #expect(error.field == "training.batch_size")
    #expect(error.description.contains("does not divide among 5 ranks"))
    #expect(!FileManager.default.fileExists(atPath: dir))
  }
}
