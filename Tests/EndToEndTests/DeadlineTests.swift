// A rank that is alive but stalled (SIGSTOP: what a hung NFS read or a swapped-out node looks like
// to the others) must not hang the job: under real mpirun, the other ranks' watchdogs see it make no
// progress past the deadline, and the lowest waiting rank ends the job naming it and what each rank
// was doing; no rank is left running (the stopped one included), and the last checkpoint resumes.
// A rank that is only slow is named in the log and the job goes on.

import AttnTrain
import Foundation
import TestProcesses
import Testing

extension MPIEndToEnd {
  @Suite(.enabled(if: Harness.mpirunAvailable, "mpirun is not installed (apt-get install openmpi-bin)"))
  struct DeadlineTests {
    /// Stops `stalled` once the job has checkpointed, and returns the job's status, how long it took
    /// to end after the stop, and its output.
    private func stallRank(
      _ stalled: Int, of ranks: Int, training: [String: Any], in dir: URL
    ) throws -> (status: Int32?, seconds: Double, output: String, stderr: String, run: String) {
      let run = dir.appendingPathComponent("run").path
      var settings: [String: Any] = ["max_steps": 100_000, "checkpoint_interval": 20, "log_interval": 10]
      settings.merge(training) { $1 }
      let long = try Harness.writeConfig(in: dir, name: "long.json", [
        "schedule": ["decay_steps": 200], "training": settings,
      ])
      let job = try BackgroundJob.mpirun(ranks, [long])
      #expect(job.waitFor("checkpoint step-0000040 written", timeout: 120), "\(job.output)")
      let pids = MPIProcesses.ranks(under: job.pid)
      try #require(pids.count == ranks, "found ranks \(pids) under mpirun \(job.pid)")
      let stopped = Date()
      kill(pids[stalled]!, SIGSTOP)
      let status = job.waitForExit(timeout: 120)
      let seconds = Date().timeIntervalSince(stopped)
      // Whatever happened, leave nothing stopped or running behind.
      let deadline = Date().addingTimeInterval(5)
      while pids.values.contains(where: ProcessTree.isRunning) && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
      let alive = pids.filter { ProcessTree.isRunning($0.value) }
      #expect(alive.isEmpty, "ranks still running after mpirun ended: \(alive)")
      for pid in alive.values {
        kill(pid, SIGKILL)
        kill(pid, SIGCONT)
      }
      return (status, seconds, job.output, job.stderr, run)
    }

    @Test func aStoppedRankEndsATwoRankJobWithinTheDefaultDeadline() throws {
      let dir = try Harness.temporaryDirectory("stall-2")
      let result = try stallRank(1, of: 2, training: [:], in: dir)
      #expect(result.status != nil && result.status != 0, "status \(String(describing: result.status)):\n\(result.output)")
      // The default deadline is 30 s for tiny's steps: the job ends within 60 s of the stop.
      #expect(result.seconds < 60, "the job took \(result.seconds) s to end")
      #expect(result.seconds > 25, "the job ended \(result.seconds) s after the stop, before the 30 s deadline")
      #expect(result.stderr.contains("collective deadline passed: 1 of 2 ranks waiting in"), "\(result.stderr)")
      #expect(result.stderr.contains("rank 1 last seen in"), "\(result.stderr)")

      // The last checkpoint resumes.
      let latest = try #require(RunFiles.latest(result.run))
      let step = try LoadedCheckpoint(path: RunFiles.checkpoints(result.run).path(latest), name: latest).state.step
      let resume = try Harness.writeConfig(in: dir, name: "resume.json", [
        "schedule": ["decay_steps": 200], "training": ["max_steps": step + 5, "log_interval": 1],
      ])
      let resumed = try Harness.mpirun(2, [resume], timeout: 120)
      #expect(resumed.status == 0, "\(resumed.output)")
      #expect(resumed.stdout.contains("at step \(step)") && resumed.stdout.contains("step \(step + 5)/\(step + 5)"), "\(resumed.output)")
    }

    @Test func aStoppedRankOfFourIsNamedAndTheDeadlineIsConfigurable() throws {
      let dir = try Harness.temporaryDirectory("stall-4")
      let result = try stallRank(2, of: 4, training: ["deadline_s": 4], in: dir)
      #expect(result.status != nil && result.status != 0, "\(result.output)")
      #expect(result.seconds < 20, "the job took \(result.seconds) s to end with a 4 s deadline")
      #expect(result.stderr.contains("3 of 4 ranks waiting in"), "\(result.stderr)")
      #expect(result.stderr.contains("rank 2 last seen in"), "\(result.stderr)")
      for other in [0, 1, 3] { #expect(!result.stderr.contains("rank \(other) last seen"), "\(result.stderr)") }
    }

    /// The main thread blocked (a read from a hung NFS server) while the process lives on: its
    /// heartbeats keep coming, but its progress stops.
    @Test func aRankBlockedInForwardIsNamedThoughItStillAnswers() throws {
      let dir = try Harness.temporaryDirectory("hang")
      let config = try Harness.writeConfig(in: dir, [
        "schedule": ["decay_steps": 200], "training": ["max_steps": 1000, "deadline_s": 4, "log_interval": 10],
      ])
      let result = try Harness.mpirun(2, [config], environment: ["ATTN_TRAIN_TEST_HANG_RANK": "1:30"], timeout: 90)
      #expect(result.status != 0, "\(result.output)")
      #expect(result.seconds < 40, "the job took \(result.seconds) s")
      #expect(result.stderr.contains("rank 1 last seen in forward at step 30, no progress for"), "\(result.stderr)")
    }

    @Test func aSlowRankIsReportedAndTheJobGoesOn() throws {
      let dir = try Harness.temporaryDirectory("straggler")
      let config = try Harness.writeConfig(in: dir, ["training": ["max_steps": 40, "log_interval": 10]])
      let result = try Harness.mpirun(2, [config], environment: ["ATTN_TRAIN_TEST_SLOW_RANK": "1:0.05"], timeout: 120)
      #expect(result.status == 0, "\(result.output)")
      #expect(result.stdout.contains("step 40/40"))
      #expect(result.stderr.contains("straggler: rank 1 computed its share"), "\(result.stderr)")
      #expect(!result.stderr.contains("straggler: rank 0"), "\(result.stderr)")
    }
  }
}
