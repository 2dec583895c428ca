// attn-train across hosts that share no memory: NamespaceHosts makes 2 or 4 of them on this machine
// (network namespaces on a bridge), and mpirun runs over TCP between them. The N-ranks-equal-one-rank
// curve, kill -9 of a rank on another host, a stalled rank on another host, and resuming from the
// checkpoint all hold there as on one host.

import AttnTrain
import Foundation
import TestProcesses
import Testing

extension MPIEndToEnd {
  @Suite(.enabled(if: Harness.mpirunAvailable && NamespaceHosts.unavailable == nil, "\(NamespaceHosts.unavailable ?? "mpirun is not installed")"))
  struct MultiHostTests {
    private func job(_ hosts: NamespaceHosts, ranks: Int, _ arguments: [String], environment: [String: String] = [:]) throws -> ChildProcess {
      try BackgroundJob.start(
        "/usr/sbin/ip", hosts.mpirunArguments(ranks: ranks, arguments, exported: ["ATTN_TRAIN_THREADS"] + environment.keys.sorted()),
        environment: environment)
    }

    @Test func fourHostsTrainWhatOneProcessTrains() throws {
      let dir = try Harness.temporaryDirectory("hosts-curve")
      let hosts = try NamespaceHosts(4, directory: dir)
      defer { hosts.remove() }
      func config(_ name: String) throws -> (String, String) {
        let run = dir.appendingPathComponent(name).path
        return (try Harness.writeConfig(in: dir, name: "\(name).json", [
          "model": ["dropout": 0.1], "optimizer": ["learning_rate": 1e-3],
          "training": ["max_steps": 30, "consistency_check_interval": 1], "output": ["run_dir": run],
        ]), run)
      }
      let (single, singleRun) = try config("single")
      #expect(try Harness.attnTrain([single]).status == 0)
      let (spread, spreadRun) = try config("four-hosts")
      let four = try job(hosts, ranks: 4, [spread])
      let status = four.waitForExit(timeout: 180)
      #expect(status == 0, "\(four.output)")
      #expect(four.stdout.contains("ranks: 4,") && four.stdout.contains("step 30/30"), "\(four.output)")
      // One rank per host: each node counts one local rank, so four nodes' cores are in use.
      #expect(four.stdout.contains("x 4 cores"), "\(four.stdout)")
      let worst = RunFiles.largestRelativeDifference(
        try Harness.losses(runDirectory: singleRun), try Harness.losses(runDirectory: spreadRun), steps: 1...30)
      #expect(worst <= 1e-5, "largest relative loss difference \(worst) across hosts")
    }

    @Test func aRankKilledOrStoppedOnAnotherHostEndsTheJobAndTheRunResumes() throws {
      let dir = try Harness.temporaryDirectory("hosts-faults")
      let hosts = try NamespaceHosts(2, directory: dir)
      defer { hosts.remove() }
      let run = dir.appendingPathComponent("run").path
      let long = try Harness.writeConfig(in: dir, name: "long.json", [
        "schedule": ["decay_steps": 200],
        "training": ["max_steps": 100_000, "checkpoint_interval": 20, "log_interval": 10, "deadline_s": 4],
      ])
      for (signal, words) in [(SIGKILL, "signal 9"), (SIGSTOP, "rank 1 last seen in")] {
        let running = try job(hosts, ranks: 2, [long])
        #expect(running.waitFor("checkpoint step-00000", timeout: 120), "\(running.output)")
        let ranks = MPIProcesses.ranks(under: running.pid)
        try #require(ranks.count == 2, "ranks \(ranks) under \(running.pid)")
        let hit = Date()
        kill(ranks[1]!, signal)
        let status = running.waitForExit(timeout: 60)
        let seconds = Date().timeIntervalSince(hit)
        for pid in ranks.values where ProcessTree.isRunning(pid) {
          kill(pid, SIGKILL)
          kill(pid, SIGCONT)
        }
        #expect(status != nil && status != 0, "signal \(signal): \(running.output)")
        #expect(seconds < 30, "signal \(signal): the job took \(seconds) s to end")
        #expect(running.output.contains(words), "signal \(signal): \(running.output)")
      }

      let latest = try #require(RunFiles.latest(run))
      let step = try LoadedCheckpoint(path: RunFiles.checkpoints(run).path(latest), name: latest).state.step
      let resume = try Harness.writeConfig(in: dir, name: "resume.json", [
        "schedule": ["decay_steps": 200], "training": ["max_steps": step + 5, "log_interval": 1],
      ])
      let resumed = try job(hosts, ranks: 2, [resume])
      #expect(resumed.waitForExit(timeout: 120) == 0, "\(resumed.output)")
      #expect(resumed.stdout.contains("at step \(step)") && resumed.stdout.contains("step \(step + 5)/\(step + 5)"), "\(resumed.output)")
    }
  }
}
