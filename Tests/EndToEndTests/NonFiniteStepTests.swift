// Numerics that never poison a checkpoint, end to end under mpirun: a NaN in one rank's gradient is
// seen by every rank through the step's sums, and every rank skips that step (its update, not its
// place in the schedule); too many skipped in a row stop the run with the newest checkpoint as the
// last good state; an update that leaves a NaN or an infinity in the weights is never saved. Every
// checkpoint left on disk is read back and must be finite.

import AttnFormats
import AttnTrain
import Foundation
import Testing

extension MPIEndToEnd {
  @Suite(.enabled(if: Harness.mpirunAvailable, "mpirun is not installed (apt-get install openmpi-bin)"))
  struct NonFiniteStepTests {
    @Test(arguments: [2, 4])
    func aNaNGradientOnOneRankIsSkippedByEveryRank(ranks: Int) throws {
      let dir = try Harness.temporaryDirectory("nan-skip-\(ranks)")
      let run = dir.appendingPathComponent("run").path
      let config = try Harness.writeConfig(in: dir, [
        "training": ["max_steps": 8, "checkpoint_interval": 1, "keep_checkpoints": 100, "consistency_check_interval": 1]
      ])
      let result = try Harness.mpirun(
        ranks, [config], environment: ["ATTN_TRAIN_TEST_NAN_GRADIENT": "\(ranks - 1):5"], timeout: 120)
      #expect(result.status == 0, "\(result.output)")
      #expect(result.stderr.components(separatedBy: "step 5 skipped on every rank").count == 2, "\(result.output)")
      #expect(result.stderr.contains("checkpoint step-0000005 not written"), "\(result.output)")
      #expect(result.stdout.contains("step 8/8"), "\(result.output)")

      // The skipped step changed nothing: step 6 ran on step 4's weights and optimizer state.
      let checkpoints = RunFiles.checkpoints(run)
      #expect(!RunFiles.entries(run).contains("step-0000005"))
      let state = try JSONObject(JSONValue.parse(Data(contentsOf: URL(fileURLWithPath: checkpoints.path("step-0000008") + "/trainer.json"))))
      #expect(try state.int("skipped_steps") == 1 && state.int("skipped_in_a_row") == 0)
      let four = try SafeTensorsFile(path: checkpoints.path("step-0000004") + "/" + CheckpointDirectory.optimizerFile)
      let six = try SafeTensorsFile(path: checkpoints.path("step-0000006") + "/" + CheckpointDirectory.optimizerFile)
      #expect(four.metadata["step_count"] == "4" && six.metadata["step_count"] == "5", "\(four.metadata) \(six.metadata)")
      try expectEveryCheckpointFinite(run)
    }

    @Test func tooManySkippedStepsStopAndTheNewestCheckpointResumes() throws {
      let dir = try Harness.temporaryDirectory("nan-limit")
      let run = dir.appendingPathComponent("run").path
      let sections: [String: [String: Any]] = [
        "training": ["max_steps": 20, "checkpoint_interval": 3, "keep_checkpoints": 100, "max_skipped_steps": 2]
      ]
      let config = try Harness.writeConfig(in: dir, sections)
      let failed = try Harness.mpirun(2, [config], environment: ["ATTN_TRAIN_TEST_NAN_GRADIENT": "0:5-20"], timeout: 120)
      #expect(failed.status != 0)
      #expect(failed.stderr.contains("3 steps in a row up to step 7 had a non-finite loss or gradient"), "\(failed.output)")
      #expect(failed.stderr.contains("training.max_skipped_steps"), "\(failed.output)")
      #expect(failed.stderr.contains("checkpoint step-0000006 not written"), "\(failed.output)")
      #expect(RunFiles.latest(run) == "step-0000003", "\(RunFiles.entries(run))")
      try expectEveryCheckpointFinite(run)

      let resumed = try Harness.mpirun(2, [config], timeout: 120)
      #expect(resumed.status == 0, "\(resumed.output)")
      #expect(resumed.stdout.contains("resuming from \(RunFiles.checkpoints(run).path("step-0000003")) at step 3"), "\(resumed.output)")
      #expect(resumed.stdout.contains("step 20/20"), "\(resumed.output)")
      try expectEveryCheckpointFinite(run)
    }

    /// Saving every step and keeping one, on a run with a good checkpoint: an update that leaves a
    /// NaN in the weights (injected on every rank, as an overflowing update would) is not saved, and
    /// what is on disk stays the good checkpoint, which still evaluates and resumes.
    @Test func weightsWithANaNAreNeverSaved() throws {
      let dir = try Harness.temporaryDirectory("nan-update")
      let run = dir.appendingPathComponent("run").path
      let good = try Harness.writeConfig(in: dir, name: "good.json", ["training": ["max_steps": 6, "checkpoint_interval": 3]])
      #expect(try Harness.mpirun(2, [good], timeout: 120).status == 0)
      let every = try Harness.writeConfig(in: dir, name: "every.json", [
        "training": ["max_steps": 12, "checkpoint_interval": 1, "keep_checkpoints": 1]
      ])
      let result = try Harness.mpirun(2, [every], environment: ["ATTN_TRAIN_TEST_NAN_PARAMETER_AFTER_STEP": "9"], timeout: 120)
      #expect(result.status != 0, "\(result.output)")
      #expect(result.stderr.contains("training diverged: after step 9 wte holds a NaN or an infinity, so step-0000009 was not written"), "\(result.output)")
      #expect(RunFiles.latest(run) == "step-0000008", "\(RunFiles.entries(run))")
      try expectEveryCheckpointFinite(run)
      let eval = try Harness.attnTrain(["eval", good, "--json"], timeout: 60)
      #expect(eval.status == 0, "\(eval.output)")
      let line = try #require(eval.stdout.split(separator: "\n").last)
      #expect(try JSONObject(JSONValue.parse(Data(line.utf8))).double("dev_loss").isFinite)
      let resumed = try Harness.mpirun(2, [every], timeout: 120)
      #expect(resumed.status == 0 && resumed.stdout.contains("step 12/12"), "\(resumed.output)")
      try expectEveryCheckpointFinite(run)
    }

    /// The issue's case: an absurd learning rate on a run with a good checkpoint, saving every step
    /// and keeping one. The first wild update leaves huge but finite weights, saved as step 7; every
    /// step on them fails, so step 7 is set aside and `latest` is the good step 6 again, which was
    /// never pruned, still evaluates and resumes.
    @Test func aWildUpdateIsTakenBackAndTheGoodCheckpointKept() throws {
      let dir = try Harness.temporaryDirectory("wild-update")
      let run = dir.appendingPathComponent("run").path
      let good = try Harness.writeConfig(in: dir, name: "good.json", [
        "optimizer": ["kind": "sgd", "learning_rate": 0.1], "training": ["max_steps": 6, "checkpoint_interval": 3],
      ])
      #expect(try Harness.attnTrain([good], timeout: 120).status == 0)
      let wild = try Harness.writeConfig(in: dir, name: "wild.json", [
        "optimizer": ["kind": "sgd", "learning_rate": 1e38],
        "training": ["max_steps": 30, "checkpoint_interval": 1, "keep_checkpoints": 1],
      ])
      let result = try Harness.attnTrain([wild], timeout: 120)
      #expect(result.status != 0, "\(result.output)")
      #expect(result.stderr.contains("6 steps in a row up to step 13"), "\(result.output)")
      #expect(result.stderr.contains("step-0000007, whose weights every one of them ran on, is set aside as rejected-step-0000007"), "\(result.output)")
      #expect(RunFiles.latest(run) == "step-0000006", "\(RunFiles.entries(run))")
      #expect(RunFiles.entries(run).contains("rejected-step-0000007"), "\(RunFiles.entries(run))")
      // metrics.jsonl stays JSON: a non-finite loss is written as null.
      let lines = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
      let records = try lines.map { try JSONObject(JSONValue.parse(Data($0.utf8))) }
      let skipped = try zip(records, lines).filter { try $0.0.int("step") >= 8 }.map(\.1)
      #expect(skipped.count == 6 && skipped.allSatisfy { $0.contains(#""train_loss": null"#) }, "\(lines)")
      try expectEveryCheckpointFinite(run)
      let eval = try Harness.attnTrain(["eval", good, "--json"], timeout: 60)
      #expect(eval.status == 0, "\(eval.output)")
      let line = try #require(eval.stdout.split(separator: "\n").last)
      #expect(try JSONObject(JSONValue.parse(Data(line.utf8))).double("dev_loss").isFinite)
      let resumed = try Harness.attnTrain([good], timeout: 120)
      #expect(resumed.status == 0 && resumed.stdout.contains("nothing to do: the run is at step 6"), "\(resumed.output)")
    }

    private func expectEveryCheckpointFinite(_ run: String) throws {
      let checkpoints = RunFiles.checkpoints(run)
      let names = RunFiles.entries(run).filter { $0.hasPrefix("step-") || $0 == "best" }
      #expect(!names.isEmpty)
      for name in names {
        for file in [CheckpointDirectory.modelFile, CheckpointDirectory.optimizerFile] {
          let tensors = try SafeTensorsFile(path: checkpoints.path(name) + "/" + file)
          for tensor in tensors.names {
            #expect(try tensors.floats(tensor).allSatisfy(\.isFinite), "\(name)/\(file): \(tensor) is not finite")
          }
        }
      }
    }
  }
}
