// What a run shows while it trains, as a user sees it: on a terminal (a real pseudo-terminal, from
// util-linux's `script`) one line redrawn in place with a bar and an ETA; in a pipe the plain lines
// of before, one per record, with no control characters. And the figures behind them in
// metrics.jsonl: MFU is tokens/s x the model's FLOPs per token over the peak of the cores in use,
// the gradient norm and clip fraction are there, and --profile leaves profile.json.

import AttnCore
import AttnFormats
import Foundation
import Testing

@Suite struct RunFiguresTests {
  private static let steps = 30

  private func config(in directory: URL, _ extra: [String: [String: Any]] = [:]) throws -> String {
    var sections: [String: [String: Any]] = [
      "training": ["max_steps": Self.steps, "log_interval": 5, "eval_interval": 15, "checkpoint_interval": 15]
    ]
    for (section, values) in extra { sections[section, default: [:]].merge(values) { $1 } }
    return try Harness.writeConfig(in: directory, sections)
  }

  @Test func terminalGetsOneUpdatingLinePipeGetsPlainLines() throws {
    let directory = try Harness.temporaryDirectory("progress")
    defer { try? FileManager.default.removeItem(at: directory) }
    let path = try config(in: directory)

    // `script` gives the binary a pseudo-terminal for stdout and copies what it draws to ours.
    let command = ([Harness.binary, path, "--run-dir", directory.appendingPathComponent("tty").path])
      .map { "'\($0)'" }.joined(separator: " ")
    let terminal = try Harness.run("/usr/bin/script", ["-qfec", command, "/dev/null"])
    #expect(terminal.status == 0, "\(terminal.output)")
    let redraws = terminal.stdout.components(separatedBy: "\r\u{1B}[K").dropFirst()
    let barLines = redraws.filter { $0.hasPrefix("step ") && $0.contains("] ") }
    #expect(barLines.count >= 2, "no updating progress line in: \(terminal.stdout.debugDescription)")
    #expect(barLines.contains { $0.contains("ETA ") }, "\(barLines)")
    #expect(barLines.last?.contains("step \(Self.steps)/\(Self.steps) [####################] 100%") == true, "\(barLines)")
    // Plain records (no dev figures) are not printed as lines of their own on a terminal...
    #expect(!terminal.stdout.contains("step 5/\(Self.steps) | loss"), "\(terminal.stdout.debugDescription)")
    // ...but evaluations and checkpoints are, each on its own line.
    #expect(terminal.stdout.contains("dev loss"))
    #expect(terminal.stdout.contains("checkpoint step-0000015 written"))

    let piped = try Harness.attnTrain([path, "--run-dir", directory.appendingPathComponent("pipe").path])
    #expect(piped.status == 0, "\(piped.output)")
    #expect(!piped.stdout.contains("\r") && !piped.stdout.contains("\u{1B}"), "control characters in a pipe")
    #expect(!piped.stdout.contains("] "))
    for step in stride(from: 5, through: Self.steps, by: 5) {
      #expect(piped.stdout.contains("\nstep \(step)/\(Self.steps) | loss "), "no plain line for step \(step)")
    }
  }

  @Test func metricsCarryMFUGradientNormAndClipFraction() throws {
    let directory = try Harness.temporaryDirectory("mfu")
    defer { try? FileManager.default.removeItem(at: directory) }
    // A clip far below any real gradient norm: every step is clipped.
    let path = try config(in: directory, ["optimizer": ["grad_clip": 1e-4]])
    let perCore = 2.5e9
    let run = directory.appendingPathComponent("run").path
    let result = try Harness.attnTrain(
      [path, "--profile"], environment: ["ATTN_TRAIN_PEAK_FLOPS_PER_CORE": "\(perCore)", "ATTN_TRAIN_THREADS": "1"])
    #expect(result.status == 0, "\(result.output)")

    let plan = try JSONObject(JSONValue.parse(Data(contentsOf: URL(fileURLWithPath: run + "/plan.json"))))
    // The FLOPs per token of the model the config describes (vocabulary: Tiny Shakespeare's 65 characters).
    let shape = ModelShape(vocabSize: 65, blockSize: 32, layers: 2, heads: 2, channels: 32)
    #expect(try plan.double("flops_per_token") == shape.trainingFLOPsPerToken)
    #expect(try plan.double("peak_flops") == perCore)  // one rank, one thread: one core
    #expect(try plan.int("tokens_per_step") == 8 * 32)

    let records = try Harness.metrics(runDirectory: run).filter { $0["tokens_per_s"] != nil }
    #expect(records.count == Self.steps / 5)
    for record in records {
      let step = Int(record["step"]!)
      let mfu = try #require(record["mfu"], "step \(step)")
      let expected = record["tokens_per_s"]! * shape.trainingFLOPsPerToken / perCore
      #expect(abs(mfu - expected) <= 1e-9 * expected, "step \(step): mfu \(mfu), expected \(expected)")
      #expect(record["tokens"] == Double(step * 8 * 32))
      #expect(record["clip_fraction"] == 1)
      #expect((record["grad_norm"] ?? 0) > 1e-4)
      #expect((record["step_s"] ?? 0) > 0)
      #expect((record["rss_mib"] ?? 0) > 1)
    }
    #expect(result.stdout.contains("| mfu "))

    let profile = try JSONObject(JSONValue.parse(Data(contentsOf: URL(fileURLWithPath: run + "/profile.json"))))
    #expect(try profile.int("steps") == Self.steps)
    guard case .array(let sections) = try profile.value("sections") else {
      Issue.record("profile.json has no sections array")
      return
    }
    let names = try sections.map { try JSONObject($0).string("name") }
    #expect(names.contains("matmul") && names.contains("attention"), "\(names)")
  }

  @Test func badPeakOverrideIsNamed() throws {
    let directory = try Harness.temporaryDirectory("peak-override")
    defer { try? FileManager.default.removeItem(at: directory) }
    let result = try Harness.attnTrain(
      [try config(in: directory)], environment: ["ATTN_TRAIN_PEAK_FLOPS_PER_CORE": "-3"])
    #expect(result.status == 1)
    #expect(result.stderr.contains("ATTN_TRAIN_PEAK_FLOPS_PER_CORE") && result.stderr.contains("positive"), "\(result.stderr)")
  }
}
