// Resume under real mpirun: a run killed with SIGKILL and resumed repeats the uninterrupted run bit
// for bit; a checkpoint moves between rank counts; and a config change on resume is refused when it
// would not continue the saved run, accepted when it is safe.

import AttnTrain
import AttnFormats
import Foundation
import Testing

extension MPIEndToEnd {
  @Suite(.enabled(if: Harness.mpirunAvailable, "mpirun is not installed (apt-get install openmpi-bin)"))
  struct ResumeTests {
    @Test func aKilledAndResumedRunRepeatsTheUninterruptedOneExactly() throws {
      let dir = try Harness.temporaryDirectory("resume-exact")
      func config(_ name: String) throws -> (path: String, run: String) {
        let run = dir.appendingPathComponent(name).path
        let path = try Harness.writeConfig(in: dir, name: "\(name).json", [
          "model": ["dropout": 0.1],
          "training": ["max_steps": 60, "checkpoint_interval": 10],
          "output": ["run_dir": run],
        ])
        return (path, run)
      }
      let straight = try config("straight")
      let straightResult = try Harness.mpirun(2, [straight.path], timeout: 120)
      #expect(straightResult.status == 0, "\(straightResult.output)")

      // Every rank sends itself SIGKILL right after step 30's checkpoint is published.
      let broken = try config("broken")
      let killed = try Harness.mpirun(2, [broken.path], environment: ["ATTN_TRAIN_TEST_KILL_AFTER_STEP": "30"], timeout: 120)
      #expect(killed.status != 0, "\(killed.output)")
      #expect(killed.stdout.contains("checkpoint step-0000030 written"), "\(killed.output)")
      #expect(!killed.stdout.contains("step 31/"), "\(killed.output)")
      #expect(RunFiles.latest(broken.run) == "step-0000030")

      let resumed = try Harness.mpirun(2, [broken.path], timeout: 120)
      #expect(resumed.status == 0, "\(resumed.output)")
      #expect(resumed.stdout.contains("at step 30"), "\(resumed.output)")

      let expected = try Harness.losses(runDirectory: straight.run)
      let after = try Harness.losses(runDirectory: broken.run)
      for step in 31...60 {
        #expect(after[step] != nil && after[step] == expected[step], "step \(step): \(String(describing: after[step])) vs \(String(describing: expected[step]))")
      }
      for file in [CheckpointDirectory.modelFile, CheckpointDirectory.optimizerFile] {
        let a = try #require(RunFiles.bytes(straight.run, "step-0000060", file))
        let b = try #require(RunFiles.bytes(broken.run, "step-0000060", file))
        #expect(a == b, "\(file) at step 60 differs between the straight and the resumed run")
      }
    }

    @Test func aCheckpointFromTwoRanksResumesAtFourAndOne() throws {
      let dir = try Harness.temporaryDirectory("resume-ranks")
      let base = dir.appendingPathComponent("base").path
      func config(_ name: String, steps: Int, run: String) throws -> String {
        try Harness.writeConfig(in: dir, name: "\(name).json", [
          "schedule": ["decay_steps": 50],
          "training": ["max_steps": steps],
          "output": ["run_dir": run],
        ])
      }
      let first = try Harness.mpirun(2, [try config("base", steps: 30, run: base)], timeout: 120)
      #expect(first.status == 0, "\(first.output)")
      #expect(RunFiles.latest(base) == "step-0000030")

      var devLoss: [Int: Double] = [:]
      for ranks in [2, 4, 1] {
        let run = dir.appendingPathComponent("continued-\(ranks)").path
        try RunFiles.copy(base, to: run)
        // max_steps is a safe change: the run continues from step 30 to 50.
        let result = try Harness.mpirun(ranks, [try config("continue-\(ranks)", steps: 50, run: run)], timeout: 120)
        #expect(result.status == 0, "np \(ranks): \(result.output)")
        #expect(result.stdout.contains("at step 30 (changed: training.max_steps, output.run_dir)"), "np \(ranks): \(result.output)")
        devLoss[ranks] = try RunFiles.devLosses(run)[50]
      }
      // The state is replicated and the batch is global, so the only difference is the order in
      // which the ranks' gradient shares are summed: rounding of ~1e-7 per step that 20 AdamW steps
      // carry into the dev loss far below 1e-4.
      let reference = try #require(devLoss[2])
      for ranks in [4, 1] {
        let loss = try #require(devLoss[ranks])
        #expect(abs(loss - reference) <= 1e-4, "dev loss at step 50: np \(ranks) \(loss), np 2 \(reference)")
      }
    }

    @Test func anUnsafeConfigChangeIsRefusedAndASafeOneAccepted() throws {
      let dir = try Harness.temporaryDirectory("resume-config")
      let run = dir.appendingPathComponent("run").path
      let original = try Harness.writeConfig(in: dir, name: "original.json", ["training": ["max_steps": 10]])
      #expect(try Harness.mpirun(2, [original], timeout: 120).status == 0)

      let unsafe = try Harness.writeConfig(in: dir, name: "unsafe.json", [
        "model": ["n_embd": 64],
        "training": ["max_steps": 10, "seed": 7, "batch_size": 16],
      ])
      let refused = try Harness.mpirun(2, [unsafe], timeout: 60)
      #expect(refused.status != 0)
      #expect(refused.stderr.contains("cannot resume"), "\(refused.output)")
      for field in ["model.n_embd", "training.batch_size", "training.seed"] {
        #expect(refused.stderr.contains(field), "\(field) not listed:\n\(refused.output)")
      }
      #expect(RunFiles.latest(run) == "step-0000010")

      let safe = try Harness.writeConfig(in: dir, name: "safe.json", ["training": ["max_steps": 15]])
      let accepted = try Harness.mpirun(2, [safe], timeout: 120)
      #expect(accepted.status == 0, "\(accepted.output)")
      #expect(accepted.stdout.contains("at step 10 (changed: training.max_steps)"), "\(accepted.output)")
      #expect(accepted.stdout.contains("step 15/15"), "\(accepted.output)")
    }
  }
}
