// TensorBoard as a user opens it: the event files a run writes are read by TensorBoard's own Python
// reader (EventAccumulator, from PyPI), which must find every scalar at every logged step. A run
// killed after its step-10 checkpoint has logged steps 11-15, which no checkpoint kept; the resumed
// run logs them again, so the reader (and the raw files) must show each step once, with the values
// of the uninterrupted run, and metrics.jsonl likewise. The superseded records are kept aside.

import AttnFormats
import Foundation
import TestProcesses
import Testing

@Suite struct TensorBoardEndToEndTests {
  private static let steps = 30

  /// tag -> [(step, value)] as EventAccumulator reports them, and the steps of every event file read raw.
  private func readWithTensorBoard(_ directory: String) throws -> (scalars: [String: [(Int, Double)]], rawSteps: [String: [Int]]) {
    let script = """
      import json, sys, glob, os
      try:
          from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
          from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader
      except ImportError as e:
          sys.exit("python3 cannot import tensorboard (%s): run launch/setup.sh --python" % e)
      ea = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
      ea.Reload()
      scalars = {t: [[e.step, e.value] for e in ea.Scalars(t)] for t in ea.Tags()["scalars"]}
      raw = {}
      for path in sorted(glob.glob(os.path.join(sys.argv[1], "*tfevents*"))):
          for event in LegacyEventFileLoader(path).Load():
              for value in event.summary.value:
                  raw.setdefault(value.tag, []).append(event.step)
      print(json.dumps({"scalars": scalars, "raw": raw}))
      """
    let output = try python3(script, [directory])
    let json = try JSONObject(JSONValue.parse(Data(output.utf8)))
    var scalars: [String: [(Int, Double)]] = [:]
    var raw: [String: [Int]] = [:]
    guard case .object(let tags) = try json.value("scalars"), case .object(let rawTags) = try json.value("raw") else {
      throw InputError(file: directory, problem: "unexpected reader output: \(output)")
    }
    for (tag, value) in tags {
      guard case .array(let points) = value else { continue }
      scalars[tag] = points.compactMap { point in
        guard case .array(let pair) = point, pair.count == 2, case .integer(let step) = pair[0] else { return nil }
        switch pair[1] {
        case .number(let x): return (Int(step)!, x)
        case .integer(let x): return (Int(step)!, Double(x)!)
        default: return nil
        }
      }
    }
    for (tag, value) in rawTags {
      guard case .array(let steps) = value else { continue }
      raw[tag] = steps.compactMap { if case .integer(let s) = $0 { return Int(s) } else { return nil } }
    }
    return (scalars, raw)
  }

  @Test func everyScalarAtEveryLoggedStepOnceAcrossAResume() throws {
    let directory = try Harness.temporaryDirectory("tensorboard")
    defer { try? FileManager.default.removeItem(at: directory) }
    func config(_ name: String) throws -> (path: String, run: String) {
      let run = directory.appendingPathComponent(name).path
      let path = try Harness.writeConfig(in: directory, name: "\(name).json", [
        "training": ["max_steps": Self.steps, "log_interval": 1, "eval_interval": 10, "checkpoint_interval": 10],
        "output": ["run_dir": run],
      ])
      return (path, run)
    }
    let straight = try config("straight")
    let uninterrupted = try Harness.attnTrain([straight.path])
    #expect(uninterrupted.status == 0, "\(uninterrupted.output)")

    let broken = try config("broken")
    let killed = try Harness.attnTrain([broken.path], environment: ["ATTN_TRAIN_TEST_KILL_AFTER_STEP": "15"])
    #expect(killed.status == 128 + SIGKILL, "\(killed.output)")
    let beforeResume = try readWithTensorBoard(broken.run + "/tensorboard")
    #expect(beforeResume.scalars["train/loss"]?.map(\.0) == Array(1...15))
    let resumed = try Harness.attnTrain([broken.path])
    #expect(resumed.status == 0, "\(resumed.output)")
    #expect(resumed.stdout.contains("resuming from") && resumed.stdout.contains("at step 10"), "\(resumed.stdout)")

    let expected = try Harness.metrics(runDirectory: straight.run)
    let (scalars, raw) = try readWithTensorBoard(broken.run + "/tensorboard")
    let perStep: [(tag: String, key: String, steps: [Int])] = [
      ("train/loss", "train_loss", Array(1...Self.steps)), ("train/learning_rate", "lr", Array(1...Self.steps)),
      ("train/grad_norm", "grad_norm", Array(1...Self.steps)), ("train/clip_fraction", "clip_fraction", Array(1...Self.steps)),
      ("system/tokens_per_s", "tokens_per_s", Array(1...Self.steps)), ("system/mfu", "mfu", Array(1...Self.steps)),
      ("system/step_s", "step_s", Array(1...Self.steps)), ("system/rss_mib", "rss_mib", Array(1...Self.steps)),
      ("dev/loss", "dev_loss", [10, 20, 30]),
    ]
    for (tag, key, steps) in perStep {
      let points = try #require(scalars[tag], "TensorBoard finds no \(tag); it has \(scalars.keys.sorted())")
      #expect(points.map(\.0) == steps, "\(tag): steps \(points.map(\.0))")
      #expect(raw[tag]?.sorted() == steps, "\(tag) in the event files: \(raw[tag] ?? [])")
      // Deterministic figures equal the uninterrupted run's (as float32, TensorBoard's type).
      guard ["train_loss", "lr", "grad_norm", "clip_fraction", "dev_loss"].contains(key) else { continue }
      for (step, value) in points {
        let reference = try #require(expected.first { $0["step"] == Double(step) }?[key], "\(key) at step \(step)")
        #expect(Float(value) == Float(reference), "\(tag) at step \(step): \(value) vs \(reference)")
      }
    }

    // metrics.jsonl tells the same single trajectory; the records the resume replaced are kept aside.
    let records = try Harness.metrics(runDirectory: broken.run)
    #expect(records.compactMap { $0["step"].map(Int.init) } == Array(1...Self.steps))
    let aside = try FileManager.default.contentsOfDirectory(atPath: broken.run).filter { $0.hasPrefix("logs-after-step-10-") }
    #expect(aside.count == 1, "\(aside)")
    if let folder = aside.first {
      let kept = try Harness.metrics(runDirectory: broken.run + "/" + folder)
      #expect(kept.compactMap { $0["step"].map(Int.init) } == Array(1...15))
      #expect(!(try TensorBoardEventFile.list(in: broken.run + "/" + folder + "/tensorboard")).isEmpty)
    }
  }

  @Test func aFreshStartMovesTheEarlierLogsAside() throws {
    let directory = try Harness.temporaryDirectory("tensorboard-fresh")
    defer { try? FileManager.default.removeItem(at: directory) }
    let path = try Harness.writeConfig(in: directory, ["training": ["max_steps": 5, "checkpoint_interval": 5]])
    let run = directory.appendingPathComponent("run").path
    #expect(try Harness.attnTrain([path]).status == 0)
    let again = try Harness.attnTrain([path, "--fresh"])
    #expect(again.status == 0, "\(again.output)")
    #expect(again.stdout.contains("logs-replaced-"), "\(again.stdout)")
    let (scalars, _) = try readWithTensorBoard(run + "/tensorboard")
    #expect(scalars["train/loss"]?.map(\.0) == Array(1...5))
    #expect(try Harness.metrics(runDirectory: run).compactMap { $0["step"].map(Int.init) } == Array(1...5))
  }
}
