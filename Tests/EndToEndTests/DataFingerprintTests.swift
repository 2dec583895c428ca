// Every rank must train on the same data, and a run must know its data. Under real mpirun, two ranks
// given different copies (MPMD: one config per rank, their prepared token shards made from texts
// with different character sets, the case that once corrupted the heap) stop at start with the rank
// and the difference named. A resume whose data differs from the checkpoint's is refused with the
// difference named, and goes ahead only with --allow-data-change.

import AttnFormats
import AttnTrain
import Foundation
import Testing

extension MPIEndToEnd {
  @Suite(.enabled(if: Harness.mpirunAvailable, "mpirun is not installed (apt-get install openmpi-bin)"))
  struct DataFingerprintTests {
    private func text(_ dir: URL, _ name: String, _ body: String) throws -> String {
      let path = dir.appendingPathComponent(name).path
      try Data(body.utf8).write(to: URL(fileURLWithPath: path))
      return path
    }

    private func shakespeare(_ bytes: Int, uppercased: Bool = false) throws -> String {
      let text = String(decoding: try Data(contentsOf: URL(fileURLWithPath: Harness.shakespeare)).prefix(bytes), as: UTF8.self)
      return uppercased ? text.uppercased() : text
    }

    @Test func ranksWithDifferentCopiesOfTheDataStopNamingTheRank() throws {
      let dir = try Harness.temporaryDirectory("rank-data")
      defer { try? FileManager.default.removeItem(at: dir) }
      // Rank 1's node has another copy: the same text upper-cased, a smaller character set.
      var configs: [String] = []
      for (rank, body) in [try shakespeare(60_000), try shakespeare(60_000, uppercased: true)].enumerated() {
        let input = try text(dir, "input-\(rank).txt", body)
        let config = try Harness.writeConfig(in: dir, name: "rank\(rank).json", [
          "training": ["max_steps": 4], "schedule": ["warmup_steps": 1],
          "data": ["train_path": input, "prepared_dir": dir.appendingPathComponent("prepared-\(rank)").path],
          "output": ["run_dir": dir.appendingPathComponent("run").path],
        ])
        let prepared = try Harness.attnTrain(["prepare", config])
        #expect(prepared.status == 0, "\(prepared.output)")
        configs.append(config)
      }
      let result = try Harness.run(
        Harness.mpirunPath,
        ["--allow-run-as-root", "--oversubscribe", "-np", "1", Harness.binary, configs[0], ":", "-np", "1", Harness.binary, configs[1]],
        timeout: 120)
      #expect(result.status != 0, "\(result.output)")
      #expect(result.stderr.contains("the ranks loaded different data") && result.stderr.contains("rank 1:"), "\(result.output)")
      #expect(result.stderr.contains("the tokenizer"), "\(result.stderr)")
      #expect(!result.stdout.contains("step 1/"), "training started:\n\(result.stdout)")
      #expect(!result.output.contains("double free") && !result.output.contains("Fatal error"), "\(result.output)")

      // The same copy on both: the fingerprints agree and the job trains.
      let same = try Harness.run(
        Harness.mpirunPath,
        ["--allow-run-as-root", "--oversubscribe", "-np", "1", Harness.binary, configs[0], ":", "-np", "1", Harness.binary, configs[0], "--fresh"],
        timeout: 120)
      #expect(same.status == 0, "\(same.output)")
    }

    /// A classifier reads its example files at every start: a dev file edited between two starts of
    /// a run must not pass unnoticed, nor have `best` compared across the two dev sets.
    @Test func aResumeOnChangedDataIsRefusedUnlessAllowed() throws {
      let dir = try Harness.temporaryDirectory("resume-data")
      defer { try? FileManager.default.removeItem(at: dir) }
      let run = dir.appendingPathComponent("run").path
      let train = try SST2.head(SST2.train, 400, in: dir, name: "train.tsv")
      let dev = try SST2.head(SST2.dev, 120, in: dir, name: "dev.tsv")
      func config(steps: Int) throws -> String {
        try SST2.config(in: dir, name: "c\(steps).json", train: train, dev: dev, [
          "model": ["n_layer": 1, "n_embd": 32, "block_size": 48],
          "training": ["max_steps": steps, "checkpoint_interval": 4, "eval_interval": 4, "batch_size": 8],
          "schedule": ["warmup_steps": 1], "output": ["run_dir": run],
        ])
      }
      let first = try Harness.attnTrain([try config(steps: 4)])
      #expect(first.status == 0, "\(first.output)")
      let checkpoint = try LoadedCheckpoint(path: RunFiles.checkpoints(run).path("step-0000004"), name: "step-0000004")
      #expect(checkpoint.state.data?.dev.count == 120, "the checkpoint records no data fingerprint")
      #expect(checkpoint.state.bestStep == 4)

      // The same dev file, 30 examples shorter.
      _ = try SST2.head(SST2.dev, 90, in: dir, name: "dev.tsv")
      let refused = try Harness.attnTrain([try config(steps: 8)])
      #expect(refused.status == 1, "\(refused.output)")
      #expect(refused.stderr.contains("differs from what it was trained on") && refused.stderr.contains("the dev split (120 examples then, 90 examples now)"), "\(refused.stderr)")
      #expect(refused.stderr.contains("--allow-data-change"), "\(refused.stderr)")
      #expect(RunFiles.latest(run) == "step-0000004")

      let allowed = try Harness.attnTrain([try config(steps: 8), "--allow-data-change"])
      #expect(allowed.status == 0, "\(allowed.output)")
      #expect(allowed.stderr.contains("resuming on changed data"), "\(allowed.stderr)")
      #expect(allowed.stderr.contains("the best-checkpoint comparison starts over"), "\(allowed.stderr)")
      let resumed = try LoadedCheckpoint(path: RunFiles.checkpoints(run).path("step-0000008"), name: "step-0000008")
      #expect(resumed.state.data?.dev.count == 90)
      #expect(resumed.state.bestStep == 8, "best was compared across two dev sets: best step \(String(describing: resumed.state.bestStep))")
    }
  }
}
