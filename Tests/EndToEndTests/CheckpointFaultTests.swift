// Damaged and interrupted checkpoints, end to end: a SIGKILL in the middle of a checkpoint write
// leaves the previous checkpoint in charge and a partial directory that is never taken for a
// checkpoint; one flipped byte is found, named, and the previous checkpoint used; and when no
// checkpoint is whole the run stops with an error that lists each fault.

import AttnTrain
import AttnFormats
import Foundation
import Testing

extension MPIEndToEnd {
  @Suite(.enabled(if: Harness.mpirunAvailable, "mpirun is not installed (apt-get install openmpi-bin)"))
  struct CheckpointFaultTests {
    @Test func aKillDuringACheckpointWriteLeavesThePreviousOneInCharge() throws {
      let dir = try Harness.temporaryDirectory("kill-write")
      let run = dir.appendingPathComponent("run").path
      let config = try Harness.writeConfig(in: dir, [
        "training": ["max_steps": 30, "checkpoint_interval": 10]
      ])
      // The hook sleeps between the checkpoint's files, so the kill lands inside step 20's write.
      let job = try BackgroundJob.mpirun(2, [config], environment: ["ATTN_TRAIN_TEST_CHECKPOINT_PAUSE_S": "0.5"])
      #expect(job.waitFor("checkpoint step-0000010 written"), "\(job.output)")
      let inside = job.waitUntil {
        RunFiles.partials(run).contains { partial in
          partial.hasPrefix(".partial-step-0000020-")
            && FileManager.default.fileExists(atPath: RunFiles.checkpoints(run).path(partial) + "/model.safetensors")
        }
      }
      try #require(inside, "never saw step 20's partial directory: \(RunFiles.entries(run))\n\(job.output)")
      let ranks = MPIProcesses.ranks(under: job.pid)
      try #require(ranks[0] != nil, "no rank 0 under mpirun \(job.pid)")
      kill(ranks[0]!, SIGKILL)  // rank 0 is the writer
      let status = job.waitForExit(timeout: 30)
      #expect(status != nil && status != 0)
      #expect(!RunFiles.entries(run).contains("step-0000020"), "\(RunFiles.entries(run))")
      #expect(RunFiles.latest(run) == "step-0000010")
      #expect(!RunFiles.partials(run).isEmpty, "the kill did not interrupt a write: \(RunFiles.entries(run))")

      // A whole, valid checkpoint under a partial name, newer than any other, must not be taken either.
      let planted = RunFiles.checkpoints(run).path(".partial-step-0000099-424242")
      try FileManager.default.copyItem(atPath: RunFiles.checkpoints(run).path("step-0000010"), toPath: planted)

      let resumed = try Harness.mpirun(2, [config], timeout: 120)
      #expect(resumed.status == 0, "\(resumed.output)")
      #expect(resumed.stdout.contains("resuming from \(RunFiles.checkpoints(run).path("step-0000010")) at step 10"), "\(resumed.output)")
      #expect(resumed.stdout.contains("step 30/30"), "\(resumed.output)")
      #expect(RunFiles.partials(run).isEmpty, "partial directories left: \(RunFiles.entries(run))")
    }

    @Test func aFlippedByteIsNamedAndThePreviousCheckpointUsed() throws {
      let dir = try Harness.temporaryDirectory("flip")
      let run = dir.appendingPathComponent("run").path
      let first = try Harness.writeConfig(in: dir, name: "first.json", [
        "training": ["max_steps": 20, "checkpoint_interval": 10]
      ])
      #expect(try Harness.mpirun(2, [first], timeout: 120).status == 0)
      let weights = RunFiles.checkpoints(run).path("step-0000020") + "/" + CheckpointDirectory.modelFile
      try flipByte(weights, at: 4000)

      let resume = try Harness.writeConfig(in: dir, name: "resume.json", [
        "training": ["max_steps": 25, "checkpoint_interval": 10]
      ])
      let result = try Harness.mpirun(2, [resume], timeout: 120)
      #expect(result.status == 0, "\(result.output)")
      #expect(result.stderr.contains("skipping damaged checkpoint step-0000020"), "\(result.output)")
      #expect(result.stderr.contains("\(weights): checksum mismatch"), "\(result.output)")
      #expect(result.stdout.contains("resuming from \(RunFiles.checkpoints(run).path("step-0000010")) at step 10"), "\(result.output)")
      #expect(result.stdout.contains("step 25/25"), "\(result.output)")
    }

    @Test func noValidCheckpointIsAClearErrorNotAFreshStart() throws {
      let dir = try Harness.temporaryDirectory("none-valid")
      let run = dir.appendingPathComponent("run").path
      let config = try Harness.writeConfig(in: dir, [
        "training": ["max_steps": 20, "checkpoint_interval": 10]
      ])
      #expect(try Harness.attnTrain([config], timeout: 120).status == 0)
      let checkpoints = RunFiles.checkpoints(run)
      // step 20: weights cut short; step 10: optimizer state gone.
      let weights = checkpoints.path("step-0000020") + "/" + CheckpointDirectory.modelFile
      let handle = try #require(FileHandle(forWritingAtPath: weights))
      try handle.truncate(atOffset: 100)
      try handle.close()
      let optimizer = checkpoints.path("step-0000010") + "/" + CheckpointDirectory.optimizerFile
      try FileManager.default.removeItem(atPath: optimizer)

      let result = try Harness.mpirun(2, [config], timeout: 60)
      #expect(result.status != 0)
      #expect(result.stderr.contains("no valid checkpoint"), "\(result.output)")
      #expect(result.stderr.contains(weights), "\(result.output)")
      #expect(result.stderr.contains("\(optimizer): missing"), "\(result.output)")
      #expect(result.stderr.contains("--fresh"), "the error should say how to start over:\n\(result.output)")
      #expect(!result.stdout.contains("step 1/"), "it trained anyway:\n\(result.output)")
    }

    private func flipByte(_ path: String, at offset: Int) throws {
      var data = try Data(contentsOf: URL(fileURLWithPath: path))
      try #require(data.count > offset)
      data[offset] ^= 0x01
      try data.write(to: URL(fileURLWithPath: path))
    }
  }
}
