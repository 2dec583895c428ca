// What a hostile environment or a careless user does to a run, each found by trying it (issue
// "Trust at cluster scale", "Found so far"): two jobs on one run directory, a run directory that
// holds someone else's files, a thread count from the environment without bound, a config file of
// 50 MB, a closed ssh session (SIGHUP), a full disk at start and during a run, and command-line
// slips. Each must end in a clear message (or a clean stop) and lose nothing on disk.

import AttnFormats
import AttnTrain
import Foundation
import TestProcesses
import Testing

@Suite(.serialized) struct HostileEnvironmentTests {
  private func longConfig(_ dir: URL, _ extra: [String: Any] = [:]) throws -> String {
    var training: [String: Any] = ["max_steps": 100_000, "checkpoint_interval": 50, "log_interval": 50]
    training.merge(extra) { $1 }
    return try Harness.writeConfig(in: dir, name: "long.json", ["schedule": ["decay_steps": 200], "training": training])
  }

  @Test func aSecondJobOnTheSameRunDirectoryIsRefusedAndACrashLeavesNoStuckLock() throws {
    let dir = try Harness.temporaryDirectory("two-jobs")
    defer { try? FileManager.default.removeItem(at: dir) }
    let config = try longConfig(dir)
    let first = try BackgroundJob.start(Harness.binary, [config])
    #expect(first.waitFor("checkpoint step-0000050 written"), "\(first.output)")
    let second = try Harness.attnTrain([config], timeout: 60)
    #expect(second.status == 1, "\(second.output)")
    #expect(second.stderr.contains("another job is using this run directory") && second.stderr.contains("pid \(first.pid)"), "\(second.stderr)")
    #expect(first.isRunning, "the second job disturbed the first:\n\(first.output)")

    // SIGKILL leaves no chance to clean up; the kernel drops the lock with the process.
    first.signal(SIGKILL)
    _ = first.waitForExit(timeout: 30)
    let short = try Harness.writeConfig(in: dir, name: "short.json", [
      "schedule": ["decay_steps": 200], "training": ["max_steps": 60, "checkpoint_interval": 50, "log_interval": 50],
    ])
    let third = try Harness.attnTrain([short], timeout: 120)
    #expect(third.status == 0, "\(third.output)")
    #expect(third.stdout.contains("resuming from"), "\(third.stdout)")
  }

  @Test func aDirectoryHoldingOtherFilesIsNotTakenAsARunDirectory() throws {
    let dir = try Harness.temporaryDirectory("foreign-dir")
    defer { try? FileManager.default.removeItem(at: dir) }
    let foreign = dir.appendingPathComponent("project")
    try FileManager.default.createDirectory(at: foreign, withIntermediateDirectories: true)
    let files = ["config.json": "{\"mine\": true}\n", "vocab.json": "[\"not ours\"]\n", "notes.txt": "keep me\n"]
    for (name, text) in files { try Data(text.utf8).write(to: foreign.appendingPathComponent(name)) }
    let config = try Harness.writeConfig(in: dir, ["output": ["run_dir": foreign.path]])
    let result = try Harness.attnTrain([config])
    #expect(result.status == 1, "\(result.output)")
    #expect(result.stderr.contains("holds files attn-train did not create") && result.stderr.contains("vocab.json"), "\(result.stderr)")
    for (name, text) in files {
      #expect(try String(contentsOf: foreign.appendingPathComponent(name), encoding: .utf8) == text, "\(name) changed")
    }
    // An empty directory, or one an earlier run made, is fine.
    let empty = dir.appendingPathComponent("empty")
    try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
    #expect(try Harness.attnTrain([config, "--run-dir", empty.path]).status == 0)
    #expect(try Harness.attnTrain([config, "--run-dir", empty.path]).status == 0)
  }

  @Test func threadCountsAreBoundedAndOversubscriptionIsSaid() throws {
    let dir = try Harness.temporaryDirectory("threads")
    defer { try? FileManager.default.removeItem(at: dir) }
    let config = try Harness.writeConfig(in: dir, ["schedule": ["warmup_steps": 1], "training": ["max_steps": 2]])
    let huge = try Harness.attnTrain([config], environment: ["ATTN_TRAIN_THREADS": "100000"], timeout: 30)
    #expect(huge.status == 1 && huge.stderr.contains("ATTN_TRAIN_THREADS") && huge.stderr.contains("1 to 4096"), "\(huge.output)")
    let cores = ProcessInfo.processInfo.activeProcessorCount
    let many = try Harness.attnTrain([config], environment: ["ATTN_TRAIN_THREADS": "\(2 * cores + 1)"], timeout: 60)
    #expect(many.status == 0, "\(many.output)")
    #expect(many.stderr.contains("exceed its \(cores) cores"), "\(many.stderr)")
    let fits = try Harness.attnTrain([config], environment: ["ATTN_TRAIN_THREADS": "1"], timeout: 60)
    #expect(!fits.stderr.contains("exceed its"), "\(fits.stderr)")
  }

  @Test func aHugeConfigFileIsRefusedAtOnce() throws {
    let dir = try Harness.temporaryDirectory("huge-config")
    defer { try? FileManager.default.removeItem(at: dir) }
    let path = dir.appendingPathComponent("huge.json").path
    let value = String(repeating: "x", count: 50_000_000)
    try Data("{\"data\": {\"train_path\": \"\(value)\"}}".utf8).write(to: URL(fileURLWithPath: path))
    let result = try Harness.attnTrain([path], timeout: 20)
    #expect(result.status == 1, "\(result.stderr.prefix(500))")
    #expect(result.stderr.contains("a config is a few kilobytes"), "\(result.stderr.prefix(500))")
    #expect(result.stderr.utf8.count < 2000, "a \(result.stderr.utf8.count)-byte error message")
    #expect(result.seconds < 10)
  }

  @Test func sighupStopsWithACheckpointLikeSigterm() throws {
    let dir = try Harness.temporaryDirectory("sighup")
    defer { try? FileManager.default.removeItem(at: dir) }
    let job = try BackgroundJob.start(Harness.binary, [try longConfig(dir)])
    #expect(job.waitFor("checkpoint step-0000050 written"), "\(job.output)")
    job.signal(SIGHUP)
    let status = job.waitForExit(timeout: 60)
    #expect(status == 0, "status \(String(describing: status)):\n\(job.output)")
    #expect(job.stdout.contains("stopped by SIGHUP"), "\(job.stdout)")
  }

  @Test func commandLineSlipsGetClearMessages() throws {
    let dir = try Harness.temporaryDirectory("cli-slips")
    defer { try? FileManager.default.removeItem(at: dir) }
    let config = try Harness.writeConfig(in: dir, [:])
    let negative = try Harness.attnTrain(["sample", config, "--tokens", "-5"])
    #expect(negative.status != 0 && negative.stderr.contains("--tokens must be at least 1 (got -5)"), "\(negative.stderr)")
    let misspelt = try Harness.attnTrain(["evl", config])
    #expect(misspelt.status != 0 && misspelt.stderr.contains("unknown subcommand 'evl'") && misspelt.stderr.contains("did you mean 'eval'?"), "\(misspelt.stderr)")
    let stray = try Harness.attnTrain([config, "extra"])
    #expect(stray.status != 0 && stray.stderr.contains("unexpected argument 'extra'"), "\(stray.stderr)")
  }
}

/// A small tmpfs, mounted for one test and always unmounted: a disk that really fills.
struct SmallDisk {
  let path: String

  init(_ label: String, kilobytes: Int) throws {
    path = try Harness.temporaryDirectory(label).path
    let result = try ChildProcess.run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(kilobytes)k", "tmpfs", path], environment: [:], timeout: 10)
    guard result.status == 0 else { throw InputError(file: path, problem: "cannot mount a tmpfs here: \(result.output)") }
  }

  func unmount() {
    _ = try? ChildProcess.run("/bin/umount", ["-l", path], environment: [:], timeout: 10)
    try? FileManager.default.removeItem(atPath: path)
  }
}

extension HostileEnvironmentTests {
  @Test func aFullDiskAtStartSaysSo() throws {
    let disk = try SmallDisk("full-at-start", kilobytes: 64)
    defer { disk.unmount() }
    // Fill it up.
    try? Data(count: 64 * 1024).write(to: URL(fileURLWithPath: disk.path + "/filler"))
    let dir = try Harness.temporaryDirectory("full-at-start-config")
    defer { try? FileManager.default.removeItem(at: dir) }
    let config = try Harness.writeConfig(in: dir, ["schedule": ["warmup_steps": 1], "training": ["max_steps": 2]])
    let result = try Harness.attnTrain([config, "--run-dir", disk.path + "/run"])
    #expect(result.status == 1, "\(result.output)")
    #expect(result.stderr.contains("No space left on device"), "\(result.stderr)")
  }
}

extension HostileEnvironmentTests {
  /// A disk with room for one checkpoint: the next ones fail, training goes on past them, the last
  /// one's failure ends the run with the reason, and the first checkpoint stays whole and resumes.
  @Test func aFullDiskDuringCheckpointsKeepsThePreviousOneWhole() throws {
    let disk = try SmallDisk("full-later", kilobytes: 2000)
    defer { disk.unmount() }
    let dir = try Harness.temporaryDirectory("full-later-config")
    defer { try? FileManager.default.removeItem(at: dir) }
    let run = disk.path + "/run"
    let config = try Harness.writeConfig(in: dir, [
      "model": ["n_embd": 64, "block_size": 64],
      "training": ["max_steps": 60, "checkpoint_interval": 20, "log_interval": 20],
      "data": ["prepared_dir": dir.appendingPathComponent("prepared").path],
      "output": ["run_dir": run],
    ])
    let result = try Harness.attnTrain([config])
    #expect(result.status == 1, "\(result.output)")
    #expect(result.stdout.contains("checkpoint step-0000020 written"), "\(result.stdout)")
    #expect(result.stderr.contains("checkpoint step-0000040 not written") && result.stderr.contains("No space left on device"), "\(result.stderr)")
    #expect(result.stderr.contains("training goes on"), "\(result.stderr)")
    #expect(result.stdout.contains("step 60/60"), "training did not go on to the end:\n\(result.stdout)")
    #expect(result.stderr.contains("error:") && result.stderr.contains("No space left on device"), "\(result.stderr)")
    #expect(RunFiles.partials(run).isEmpty, "partial checkpoints left: \(RunFiles.partials(run))")
    #expect(RunFiles.latest(run) == "step-0000020")
    let kept = try LoadedCheckpoint(path: RunFiles.checkpoints(run).path("step-0000020"), name: "step-0000020")
    #expect(kept.state.step == 20)

    // Moved to a disk with room, the run resumes from it and finishes.
    let roomy = dir.appendingPathComponent("moved").path
    try FileManager.default.copyItem(atPath: run, toPath: roomy)
    let resumed = try Harness.attnTrain([config, "--run-dir", roomy])
    #expect(resumed.status == 0, "\(resumed.output)")
    #expect(resumed.stdout.contains("at step 20") && resumed.stdout.contains("checkpoint step-0000060 written"), "\(resumed.stdout)")
  }
}

extension HostileEnvironmentTests {
  /// A model far beyond the node's memory is refused with the figures before anything is allocated
  /// (it once ended in a Swift trap, "failed to allocate 844438923116544 bytes", or the OOM killer).
  @Test(arguments: [(65536, 4096), (8192, 64)])
  func aModelThatCannotFitIsRefusedBeforeAllocating(width: Int, layers: Int) throws {
    let dir = try Harness.temporaryDirectory("too-big")
    defer { try? FileManager.default.removeItem(at: dir) }
    let config = try Harness.writeConfig(in: dir, [
      "model": ["n_embd": width, "n_head": 8, "n_layer": layers], "schedule": ["warmup_steps": 1], "training": ["max_steps": 2],
    ])
    let result = try Harness.attnTrain([config], timeout: 60)
    #expect(result.status == 1, "\(result.output)")
    #expect(result.stderr.contains("the model does not fit") && result.stderr.contains("GiB available"), "\(result.stderr)")
    #expect(!result.output.contains("Fatal error"), "\(result.output)")
    #expect(result.seconds < 30)
  }
}

extension HostileEnvironmentTests {
  /// metrics.jsonl on a disk that fills up while the run goes on (the file bind-mounted from a full
  /// tmpfs, so the kernel's own ENOSPC comes back): the run warns once and finishes, checkpoints and
  /// all; the records it could write before are intact.
  @Test func aFullDiskUnderTheMetricsDoesNotStopAHealthyRun() throws {
    let dir = try Harness.temporaryDirectory("metrics-full")
    defer { try? FileManager.default.removeItem(at: dir) }
    let run = dir.appendingPathComponent("run").path
    let config = try Harness.writeConfig(in: dir, ["training": ["max_steps": 40, "checkpoint_interval": 10]])
    let started = try Harness.attnTrain([config], environment: ["ATTN_TRAIN_TEST_KILL_AFTER_STEP": "10"])
    #expect(started.status == 128 + SIGKILL && started.stdout.contains("checkpoint step-0000010 written"), "\(started.output)")

    let disk = try SmallDisk("metrics-disk", kilobytes: 64)
    defer { disk.unmount() }
    let metrics = (run as NSString).appendingPathComponent("metrics.jsonl")
    let onDisk = disk.path + "/metrics.jsonl"
    try FileManager.default.copyItem(atPath: metrics, toPath: onDisk)
    let before = try String(contentsOfFile: metrics, encoding: .utf8)
    try? Data(count: 64 * 1024).write(to: URL(fileURLWithPath: disk.path + "/filler"))
    let bound = try ChildProcess.run("/bin/mount", ["--bind", onDisk, metrics], environment: [:], timeout: 10)
    try #require(bound.status == 0, "cannot bind-mount here: \(bound.output)")
    defer { _ = try? ChildProcess.run("/bin/umount", ["-l", metrics], environment: [:], timeout: 10) }

    let resumed = try Harness.attnTrain([config])
    #expect(resumed.status == 0, "\(resumed.output)")
    #expect(resumed.stdout.contains("step 40/40") && resumed.stdout.contains("checkpoint step-0000040 written"), "\(resumed.stdout)")
    let warnings = resumed.stderr.components(separatedBy: "metrics.jsonl could not be written").count - 1
    #expect(warnings == 1, "\(resumed.stderr)")
    #expect(resumed.stderr.contains("No space left on device"), "\(resumed.stderr)")
    #expect(try String(contentsOfFile: metrics, encoding: .utf8).hasPrefix(before))
  }
}
