// Classification on the binary: a small SST-2 classifier learns (dev accuracy far above the majority
// class), eval reports it as a table and as JSON, early stopping stops; and under mpirun, 2 and 4
// ranks train what one process trains, and a killed run resumes bit for bit.

import AttnFormats
import Foundation
import Testing

enum SST2 {
  static let train = Harness.repository.appendingPathComponent("data/sst2/train.tsv").path
  static let dev = Harness.repository.appendingPathComponent("data/sst2/dev.tsv").path

  /// The labels of a TSV file's rows, its last column (SST-2's sentences hold no tab).
  static func labels(_ path: String) throws -> [String] {
    let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").dropFirst()
    return lines.map { String($0.split(separator: "\t").last!) }
  }

  /// The first `count` examples of a file, header included, in `directory`.
  static func head(_ path: String, _ count: Int, in directory: URL, name: String) throws -> String {
    let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
    let destination = directory.appendingPathComponent(name).path
    try (lines.prefix(count + 1).joined(separator: "\n") + "\n").write(toFile: destination, atomically: true, encoding: .utf8)
    return destination
  }

  /// The classifier checkpoint `tuned` carries `pretrained`'s body (every tensor outside the head)
  /// unchanged; returns the tuned checkpoint's model file.
  @discardableResult
  static func expectBodyCopied(from pretrained: String, to tuned: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> SafeTensorsFile {
    let before = try SafeTensorsFile(path: "\(pretrained)/model.safetensors")
    let after = try SafeTensorsFile(path: "\(tuned)/model.safetensors")
    for name in after.names where !name.hasPrefix("classifier.") {
      let (a, b) = (try before.floats(name), try after.floats(name))
      #expect(a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= 1e-6 }, "\(name) is not the pretrained one", sourceLocation: sourceLocation)
    }
    return after
  }

  /// A classification config over the given files, merged with `sections`.
  static func config(
    in directory: URL, name: String, train: String, dev: String, tokenizer: Any = "byte", _ sections: [String: [String: Any]] = [:]
  ) throws -> String {
    var merged: [String: [String: Any]] = [
      "data": ["train_path": train, "dev_path": dev, "format": "tsv", "text_field": "sentence", "tokenizer": tokenizer],
      "task": ["kind": "classification"],
    ]
    for (section, values) in sections {
      for (key, value) in values { merged[section, default: [:]][key] = value }
    }
    return try Harness.writeConfig(in: directory, name: name, merged)
  }
}

/// predict's JSON lines, read back.
struct Predictions {
  let line: Int
  let label: String
  let score: Double
  let probabilities: [String: Double]

  static func read(_ path: String) throws -> [Predictions] {
    try parse(String(contentsOfFile: path, encoding: .utf8))
  }

  static func parse(_ text: String) throws -> [Predictions] {
    try text.split(separator: "\n").map { line in
      let object = try JSONObject(JSONValue.parse(Data(line.utf8)))
      let probabilities = try object.object("probabilities")
      return Predictions(
        line: try object.int("line"), label: try object.string("label"), score: try object.double("score"),
        probabilities: Dictionary(uniqueKeysWithValues: try probabilities.keys.map { ($0, try probabilities.double($0)) }))
    }
  }
}

@Suite struct ClassificationTests {
  /// About 15 seconds: 400 steps of a 1-layer, 64-wide encoder with a learned 1024-token BPE.
  @Test func aSmallSST2ClassifierBeatsTheMajorityClassByFar() throws {
    let dir = try Harness.temporaryDirectory("classify")
    let run = dir.appendingPathComponent("run").path
    let config = try SST2.config(
      in: dir, name: "sst2-small.json", train: SST2.train, dev: SST2.dev, tokenizer: ["kind": "bpe", "vocab_size": 1024], [
        "model": ["n_layer": 1, "n_head": 2, "n_embd": 64, "block_size": 48, "dropout": 0.1],
        "optimizer": ["learning_rate": 2e-3],
        "schedule": ["warmup_steps": 20],
        "training": ["batch_size": 32, "max_steps": 400, "log_interval": 50],
        "output": ["run_dir": run],
      ])
    let trained = try Harness.attnTrain([config], timeout: 300)
    #expect(trained.status == 0, "\(trained.output)")

    let devLabels = try SST2.labels(SST2.dev)
    let majority = Dictionary(grouping: devLabels, by: { $0 }).values.map(\.count).max()!
    let majorityShare = Double(majority) / Double(devLabels.count)

    let json = try Harness.attnTrain(["eval", config, "--json"], timeout: 120)
    #expect(json.status == 0, "\(json.output)")
    let report = try JSONObject(JSONValue.parse(Data(json.stdout.utf8)))
    let accuracy = try report.double("accuracy")
    // Learning, by a margin no luck gives: 872 examples put the majority-class guess within 0.02.
    #expect(accuracy >= majorityShare + 0.12, "dev accuracy \(accuracy), majority class \(majorityShare)")
    // Every dev example exactly once, and the same figure the run logged at its last step.
    #expect(try report.int("examples") == devLabels.count)
    let logged = try #require(try Harness.metrics(runDirectory: run).last?["dev_accuracy"])
    #expect(logged == accuracy)
    // The run's report plots the dev accuracy it logged, against step and against tokens.
    let html = try String(contentsOfFile: (run as NSString).appendingPathComponent("report.html"), encoding: .utf8)
    for plot in ["dev-metrics-by-step", "dev-metrics-by-tokens"] {
      let svg = try #require(ReportTests.element("svg", id: plot, in: html), "no \(plot) plot")
      #expect(ReportTests.attribute("d", ofPathNamed: "dev accuracy", in: svg) != nil && ReportTests.attribute("d", ofPathNamed: "dev macro-F1", in: svg) != nil)
    }
    guard case .array(let rows) = try report.value("confusion") else { Issue.record("confusion is not a list"); return }
    let confusion = rows.map { row -> [Int] in
      guard case .array(let cells) = row else { return [] }
      return cells.map { cell in if case .integer(let text) = cell { Int(text) ?? -1 } else { -1 } }
    }
    #expect(confusion.count == 2 && confusion.allSatisfy { $0.count == 2 })
    #expect(confusion.joined().reduce(0, +) == devLabels.count)
    #expect(confusion.map { $0.reduce(0, +) } == ["0", "1"].map { label in devLabels.filter { $0 == label }.count })
    #expect(try report.strings("labels") == ["0", "1"])

    let table = try Harness.attnTrain(["eval", config], timeout: 120)
    #expect(table.status == 0, "\(table.output)")
    #expect(table.stdout.contains(String(format: "accuracy %.4f (%d of %d)", accuracy, Int((accuracy * Double(devLabels.count)).rounded()), devLabels.count)), "\(table.output)")
    #expect(table.stdout.contains("confusion (rows: true label, columns: predicted)"), "\(table.output)")

    // predict over the dev file labels it as eval scored it: the same number right.
    let output = dir.appendingPathComponent("predicted.jsonl").path
    let predicted = try Harness.attnTrain(["predict", config, "--input", SST2.dev, "--output", output], timeout: 120)
    #expect(predicted.status == 0, "\(predicted.output)")
    let predictions = try Predictions.read(output)
    #expect(predictions.map(\.line) == Array(2...(devLabels.count + 1)))
    let right = zip(predictions, devLabels).filter { $0.label == $1 }.count
    #expect(Double(right) / Double(devLabels.count) == accuracy)
    for p in predictions {
      #expect(abs(p.probabilities.values.reduce(0, +) - 1) < 1e-9 && p.probabilities[p.label] == p.score)
      #expect(p.probabilities.values.allSatisfy { $0 <= p.score })
    }
    let refused = try Harness.attnTrain(["predict", config, "--input", SST2.dev, "--output", output], timeout: 60)
    #expect(refused.status != 0 && refused.stderr.contains("exists; pass --overwrite"), "\(refused.output)")
    try? FileManager.default.removeItem(at: dir)
  }

  /// With a learning rate too small to change a prediction, no evaluation after the first is better,
  /// so patience 1 stops the run at the second; run again, it has nothing to do.
  @Test func patienceStopsARunThatNoLongerImproves() throws {
    let dir = try Harness.temporaryDirectory("patience")
    let run = dir.appendingPathComponent("run").path
    let train = try SST2.head(SST2.train, 400, in: dir, name: "train.tsv")
    let dev = try SST2.head(SST2.dev, 100, in: dir, name: "dev.tsv")
    let config = try SST2.config(in: dir, name: "patience.json", train: train, dev: dev, [
      "optimizer": ["learning_rate": 1e-9],
      "schedule": ["min_lr": 0],
      "training": ["max_steps": 40, "eval_interval": 5, "patience": 1],
      "output": ["run_dir": run],
    ])
    let first = try Harness.attnTrain([config], timeout: 120)
    #expect(first.status == 0, "\(first.output)")
    #expect(first.stdout.contains("stopping early: 1 evaluations without a better dev accuracy since step 5"), "\(first.output)")
    #expect(!first.stdout.contains("step 11/"), "\(first.output)")
    #expect(RunFiles.latest(run) == "step-0000010")
    #expect(RunFiles.entries(run).contains("best"))
    let again = try Harness.attnTrain([config], timeout: 120)
    #expect(again.status == 0, "\(again.output)")
    #expect(again.stdout.contains("nothing to do: the run stopped early at step 10"), "\(again.output)")
  }

  /// A language model pretrained on the training sentences (their TSV's text column), then a
  /// classifier fine-tuned from it: the body starts as the checkpoint's, the head new; another width
  /// or tokenizer is refused before anything is written.
  @Test func fineTuningStartsFromALanguageModelsBody() throws {
    let dir = try Harness.temporaryDirectory("init-from")
    let train = try SST2.head(SST2.train, 600, in: dir, name: "train.tsv")
    let dev = try SST2.head(SST2.dev, 60, in: dir, name: "dev.tsv")
    let pretrainRun = dir.appendingPathComponent("pretrain").path
    let pretrain = try SST2.config(in: dir, name: "pretrain.json", train: train, dev: dev, [
      "training": ["max_steps": 10], "task": ["kind": "language_model"], "output": ["run_dir": pretrainRun],
    ])
    let pretrained = try Harness.attnTrain([pretrain], timeout: 120)
    #expect(pretrained.status == 0, "\(pretrained.output)")

    func finetune(_ name: String, _ extra: [String: [String: Any]]) throws -> (Harness.Result, run: String) {
      let run = dir.appendingPathComponent(name).path
      var sections: [String: [String: Any]] = [
        // Too small a rate to move a weight by more than rounding.
        "optimizer": ["learning_rate": 1e-9], "schedule": ["min_lr": 0, "warmup_steps": 1],
        "training": ["max_steps": 2, "init_from": pretrainRun], "output": ["run_dir": run],
      ]
      for (section, values) in extra {
        for (key, value) in values { sections[section, default: [:]][key] = value }
      }
      let config = try SST2.config(in: dir, name: "\(name).json", train: train, dev: dev, sections)
      return (try Harness.attnTrain([config], timeout: 120), run)
    }
    let (tuned, run) = try finetune("finetune", [:])
    #expect(tuned.status == 0, "\(tuned.output)")
    #expect(tuned.stdout.contains("initialised from \(pretrainRun)/checkpoints/step-0000010 (step 10)"), "\(tuned.output)")
    let before = try SafeTensorsFile(path: "\(pretrainRun)/checkpoints/step-0000010/model.safetensors")
    let after = try SST2.expectBodyCopied(
      from: "\(pretrainRun)/checkpoints/step-0000010", to: "\(run)/checkpoints/step-0000002")
    #expect(after.names.contains { $0.hasPrefix("classifier.") })
    // The run's checkpoints folder, or its latest pointer (a file naming the checkpoint), mean the same.
    for (name, named) in [("via-folder", "\(pretrainRun)/checkpoints"), ("via-latest", "\(pretrainRun)/checkpoints/latest")] {
      let (result, _) = try finetune(name, ["training": ["init_from": named]])
      #expect(result.status == 0, "\(result.output)")
      #expect(result.stdout.contains("initialised from \(pretrainRun)/checkpoints/step-0000010 (step 10)"), "\(result.output)")
    }
    // Without init_from the body is random: far from the pretrained one.
    let (fresh, freshRun) = try finetune("fresh", ["training": ["init_from": NSNull()]])
    #expect(fresh.status == 0, "\(fresh.output)")
    let random = try SafeTensorsFile(path: "\(freshRun)/checkpoints/step-0000002/model.safetensors")
    #expect(zip(try before.floats("wte"), try random.floats("wte")).contains { abs($0 - $1) > 1e-3 })

    let (wider, widerRun) = try finetune("wider", ["model": ["n_embd": 64]])
    #expect(wider.status != 0)
    #expect(wider.stderr.contains("model.n_embd") && wider.stderr.contains("is 64, but the init_from checkpoint"), "\(wider.output)")
    let (otherTokenizer, otherRun) = try finetune("char", ["data": ["tokenizer": "char"]])
    #expect(otherTokenizer.status != 0)
    #expect(otherTokenizer.stderr.contains("data.tokenizer") && otherTokenizer.stderr.contains("trained with a byte tokenizer of 256 ids"), "\(otherTokenizer.output)")
    for refusedRun in [widerRun, otherRun] { #expect(RunFiles.entries(refusedRun).isEmpty) }
    try? FileManager.default.removeItem(at: dir)
  }

  /// A dev file whose label the checkpoint's label list lacks: eval names the file and line.
  @Test func evalRefusesALabelTheCheckpointDoesNotKnow() throws {
    let dir = try Harness.temporaryDirectory("eval-label")
    let train = try SST2.head(SST2.train, 200, in: dir, name: "train.tsv")
    let dev = try SST2.head(SST2.dev, 20, in: dir, name: "dev.tsv")
    let config = try SST2.config(in: dir, name: "c.json", train: train, dev: dev, ["training": ["max_steps": 6]])
    #expect(try Harness.attnTrain([config], timeout: 120).status == 0)
    var rows = try String(contentsOfFile: dev, encoding: .utf8).split(separator: "\n").map(String.init)
    rows[7] = "a third opinion\t2"
    try (rows.joined(separator: "\n") + "\n").write(toFile: dev, atomically: true, encoding: .utf8)
    let refused = try Harness.attnTrain(["eval", config], timeout: 120)
    #expect(refused.status != 0)
    #expect(refused.stderr.contains("\(dev)"), "\(refused.output)")
    #expect(refused.stderr.contains("line 8: label \"2\" is not among the labels (0, 1)"), "\(refused.output)")
    #expect(!refused.stderr.contains("Fatal error"), "\(refused.output)")
  }
}

extension MPIEndToEnd {
  @Suite(.enabled(if: Harness.mpirunAvailable, "mpirun is not installed (apt-get install openmpi-bin)"))
  struct ClassificationRanksTests {
    static func setup(_ label: String) throws -> (URL, train: String, dev: String) {
      let dir = try Harness.temporaryDirectory(label)
      return (
        dir, try SST2.head(SST2.train, 1500, in: dir, name: "train.tsv"), try SST2.head(SST2.dev, 200, in: dir, name: "dev.tsv")
      )
    }

    /// Dropout, a hidden layer and label smoothing on, and batch 8 over 1, 2 and 4 ranks.
    static var sections: [String: [String: Any]] { [
      "model": ["dropout": 0.1],
      "training": ["max_steps": 20, "eval_interval": 10],
      "task": ["hidden_size": 16, "label_smoothing": 0.1],
    ] }

    @Test func twoAndFourRanksTrainWhatOneProcessTrains() throws {
      let (dir, train, dev) = try Self.setup("classify-ranks")
      var losses: [Int: [Int: Double]] = [:]
      var accuracy: [Int: [Double]] = [:]
      var predictions: [Int: [Predictions]] = [:]
      for ranks in [1, 2, 4] {
        let run = dir.appendingPathComponent("np\(ranks)").path
        var sections = Self.sections
        sections["output"] = ["run_dir": run]
        let config = try SST2.config(in: dir, name: "np\(ranks).json", train: train, dev: dev, sections)
        let result = ranks == 1 ? try Harness.attnTrain([config], timeout: 120) : try Harness.mpirun(ranks, [config], timeout: 180)
        #expect(result.status == 0, "np \(ranks): \(result.output)")
        losses[ranks] = try Harness.losses(runDirectory: run)
        accuracy[ranks] = try Harness.metrics(runDirectory: run).compactMap { $0["dev_accuracy"] }
        // predict under mpirun: each rank labels its share, rank 0 prints them all in order.
        let jsonl = dir.appendingPathComponent("texts.jsonl").path
        let texts = try SST2.labels(dev).indices.map { #"{"sentence": "text number \#($0) is \#($0 % 3 == 0 ? "great" : "dull")"}"# }
        try (texts.joined(separator: "\n") + "\n").write(toFile: jsonl, atomically: true, encoding: .utf8)
        let arguments = ["predict", config, "--input", jsonl, "--batch-size", "7"]
        let labelled = ranks == 1 ? try Harness.attnTrain(arguments, timeout: 60) : try Harness.mpirun(ranks, arguments, timeout: 60)
        #expect(labelled.status == 0, "np \(ranks): \(labelled.output)")
        predictions[ranks] = try Predictions.parse(labelled.stdout)
      }
      #expect(predictions[1]?.map(\.line) == Array(1...200))
      let one = try #require(losses[1])
      #expect(one.count == 20)
      for ranks in [2, 4] {
        // The same sums grouped by rank: rounding only (see InProcessRanksTests).
        for step in 1...20 {
          let (a, b) = (one[step] ?? .nan, losses[ranks]?[step] ?? .nan)
          #expect(abs(a - b) <= 1e-5 * abs(a), "step \(step): 1 process \(a), \(ranks) ranks \(b)")
        }
        #expect(accuracy[ranks] == accuracy[1], "dev accuracy at steps 10 and 20")
        // Weights within rounding of each other: the same labels, probabilities within 1e-4.
        for (a, b) in zip(predictions[1] ?? [], predictions[ranks] ?? []) {
          #expect(a.line == b.line && a.label == b.label && abs(a.score - b.score) < 1e-4, "\(a) vs \(b)")
        }
        #expect(predictions[ranks]?.count == 200)
      }
      #expect(accuracy[1]?.count == 2)
      try? FileManager.default.removeItem(at: dir)
    }

    @Test func aKilledClassifierRunResumesBitForBit() throws {
      let (dir, train, dev) = try Self.setup("classify-resume")
      func config(_ name: String) throws -> (path: String, run: String) {
        let run = dir.appendingPathComponent(name).path
        var sections = Self.sections
        sections["training"]!["checkpoint_interval"] = 5
        // 20 steps of 8 over 100 examples: the kill falls inside the second epoch.
        sections["training"]!["eval_each_epoch"] = true
        sections["output"] = ["run_dir": run]
        let trainSubset = try SST2.head(train, 100, in: dir, name: "train-100.tsv")
        return (try SST2.config(in: dir, name: "\(name).json", train: trainSubset, dev: dev, sections), run)
      }
      let straight = try config("straight")
      #expect(try Harness.mpirun(2, [straight.path], timeout: 120).status == 0)
      let broken = try config("broken")
      let killed = try Harness.mpirun(2, [broken.path], environment: ["ATTN_TRAIN_TEST_KILL_AFTER_STEP": "15"], timeout: 120)
      #expect(killed.status != 0, "\(killed.output)")
      #expect(RunFiles.latest(broken.run) == "step-0000015")
      let resumed = try Harness.mpirun(2, [broken.path], timeout: 120)
      #expect(resumed.status == 0, "\(resumed.output)")
      #expect(resumed.stdout.contains("at step 15"), "\(resumed.output)")

      // Everything but the timings.
      func figures(_ run: String) throws -> [[String: Double]] {
        try Harness.metrics(runDirectory: run).filter { $0["step"]! > 15 }.map { record in
          record.filter { ["step", "train_loss", "dev_loss", "dev_accuracy", "dev_macro_f1", "lr"].contains($0.key) }
        }
      }
      let expected = try figures(straight.run)
      #expect(expected.count == 5 && expected.last?["dev_accuracy"] != nil)
      #expect(try figures(broken.run) == expected)
      // Epoch ends (every 12.5 steps) were evaluated, besides eval_interval's steps 10 and 20.
      let evaluated = try Harness.metrics(runDirectory: straight.run).filter { $0["dev_accuracy"] != nil }.map { Int($0["step"]!) }
      #expect(evaluated == [10, 13, 20])
      for name in ["step-0000020", "best"] {
        for file in ["model.safetensors", "optimizer.safetensors"] {
          let a = try #require(RunFiles.bytes(straight.run, name, file))
          let b = try #require(RunFiles.bytes(broken.run, name, file))
          #expect(a == b, "\(name)/\(file) differs between the straight and the resumed run")
        }
      }
      try? FileManager.default.removeItem(at: dir)
    }
  }
}
