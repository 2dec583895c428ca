// The command line as a user meets it: training is deterministic given the config and seed, --help
// documents every subcommand, `eval` reports figures that agree with each other, with the data
// file and with the training log, `sample` prints what it was asked for and repeats itself for a
// fixed seed, and the run directory keeps a resolved config that parses back.
import AttnCore
import AttnTrain
import AttnFormats
import Foundation
import Testing

/// One small training run shared by the tests that only read it (eval, sample, saved config).
private struct TrainedRun: Sendable {
  let directory: URL
  let config: String
  let runDirectory: String
  let result: Harness.Result

  static let steps = 20
  static let blockSize = 32

  static let shared: Swift.Result<TrainedRun, any Error> = Swift.Result { try train(label: "cli-shared") }

  /// Trains the CLI test model (dropout on, so its randomness is covered by the determinism test).
  static func train(label: String, seed: Int = 1337, runDirectory: String? = nil) throws -> TrainedRun {
    let directory = try Harness.temporaryDirectory(label)
    let config = try Harness.writeConfig(
      in: directory,
      [
        "model": ["block_size": blockSize, "dropout": 0.1],
        "training": ["max_steps": steps, "seed": seed, "eval_interval": 10, "log_interval": 1],
      ])
    let run = runDirectory ?? directory.appendingPathComponent("run").path
    let result = try Harness.attnTrain([config] + (runDirectory.map { ["--run-dir", $0] } ?? []))
    #expect(result.status == 0, "training failed: \(result.output)")
    return TrainedRun(directory: directory, config: config, runDirectory: run, result: result)
  }

  var finalCheckpoint: String {
    (runDirectory as NSString).appendingPathComponent("checkpoints/" + CheckpointDirectory.name(forStep: Self.steps))
  }
}

/// The "loss X" figures of the progress lines on stdout, in order.
private func printedLosses(_ stdout: String) -> [String] {
  stdout.split(separator: "\n").compactMap { line -> String? in
    guard line.hasPrefix("step "), let range = line.range(of: "| loss ") else { return nil }
    return String(line[range.upperBound...].prefix { $0 != " " })
  }
}

/// Whether `option` appears in the help text followed by a description (on its line or the next).
private func documents(_ help: String, _ option: String) -> Bool {
  let lines = help.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
  guard let index = lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces).hasPrefix(option) }) else {
    return false
  }
  // "  --tokens <tokens>       How many tokens..." or the description alone on the next line.
  let afterOption = lines[index].trimmingCharacters(in: .whitespaces).dropFirst(option.count)
  let rest = afterOption.drop { $0 != " " }.trimmingCharacters(in: .whitespaces)
  let words = rest.hasPrefix("<") ? String(rest.drop { $0 != ">" }.dropFirst()) : rest
  // The parser adds "(default: ...)" by itself; that alone documents nothing.
  func describes(_ text: some StringProtocol) -> Bool {
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    return trimmed.count > 3 && !trimmed.hasPrefix("(default:")
  }
  if describes(words) { return true }
  return index + 1 < lines.count && lines[index + 1].hasPrefix("          ") && describes(lines[index + 1])
}

@Suite struct CLITests {
  // MARK: - Determinism

  @Test func sameConfigAndSeedGiveIdenticalRuns() throws {
    let first = try TrainedRun.shared.get()
    // The same config file, another run directory.
    let secondDirectory = first.directory.appendingPathComponent("second-run").path
    let second = try Harness.attnTrain([first.config, "--run-dir", secondDirectory])
    #expect(second.status == 0, "\(second.output)")

    let a = try Harness.losses(runDirectory: first.runDirectory)
    let b = try Harness.losses(runDirectory: secondDirectory)
    #expect(a.keys.sorted() == Array(1...TrainedRun.steps), "a loss logged at every step")
    for step in 1...TrainedRun.steps {
      #expect(a[step] != nil && a[step] == b[step], "train_loss at step \(step): \(a[step] ?? .nan) vs \(b[step] ?? .nan)")
    }
    // The progress lines print the same losses too.
    let printed = printedLosses(first.result.stdout)
    #expect(printed.count == TrainedRun.steps, "\(first.result.stdout)")
    #expect(printed == printedLosses(second.stdout))

    let modelA = try Data(contentsOf: URL(fileURLWithPath: first.finalCheckpoint + "/model.safetensors"))
    let checkpointB = (secondDirectory as NSString).appendingPathComponent(
      "checkpoints/" + CheckpointDirectory.name(forStep: TrainedRun.steps))
    let modelB = try Data(contentsOf: URL(fileURLWithPath: checkpointB + "/model.safetensors"))
    #expect(modelA.count > 0 && modelA == modelB, "final model.safetensors byte for byte")
  }

  @Test func anotherSeedGivesOtherLosses() throws {
    let first = try TrainedRun.shared.get()
    let other = try TrainedRun.train(label: "cli-seed", seed: 7)
    let a = try Harness.losses(runDirectory: first.runDirectory)
    let b = try Harness.losses(runDirectory: other.runDirectory)
    #expect(b.count == TrainedRun.steps)
    // Initialisation, batches and dropout all change with the seed: no step should coincide.
    let same = (1...TrainedRun.steps).filter { a[$0] == b[$0] }
    #expect(same.isEmpty, "steps with equal losses under different seeds: \(same)")
  }

  @Test func metricsHaveTheDocumentedKeys() throws {
    let run = try TrainedRun.shared.get()
    let records = try Harness.metrics(runDirectory: run.runDirectory)
    #expect(records.count == TrainedRun.steps, "one record per logged step (log_interval 1)")
    for record in records {
      for key in ["step", "train_loss", "lr", "tokens_per_s", "elapsed_s"] {
        #expect(record[key] != nil, "\(key) missing from \(record)")
      }
      let step = Int(record["step"] ?? 0)
      // eval_interval 10: dev loss at steps 10 and 20 only.
      #expect((record["dev_loss"] != nil) == (step % 10 == 0), "dev_loss at step \(step)")
    }
    let elapsed = records.compactMap { $0["elapsed_s"] }
    #expect(elapsed == elapsed.sorted(), "elapsed_s never decreases")
  }

  // MARK: - Help

  @Test func rootHelpListsTheSubcommands() throws {
    let result = try Harness.attnTrain(["--help"])
    #expect(result.status == 0)
    #expect(result.stdout.contains("USAGE: attn-train"))
    for word in ["train", "eval", "sample", "predict", "prepare", "tokenizer", "--help"] {
      #expect(result.stdout.contains(word), "root help lacks \(word)")
    }
    #expect(!result.stdout.contains("Error"))
  }

  @Test(arguments: [
    ("train", ["<config>", "--run-dir", "--fresh", "--from-checkpoint"]),
    ("eval", ["<config>", "--run-dir", "--checkpoint", "--json"]),
    ("sample", ["<config>", "--run-dir", "--prompt", "--tokens", "--temperature", "--top-k", "--seed", "--checkpoint"]),
    ("predict", ["<config>", "--run-dir", "--input", "--output", "--overwrite", "--checkpoint", "--batch-size"]),
    ("prepare", ["<config>", "--run-dir"]),
  ])
  func subcommandHelpDocumentsEveryOption(subcommand: String, options: [String]) throws {
    for invocation in [[subcommand, "--help"], ["help", subcommand]] {
      let result = try Harness.attnTrain(invocation)
      #expect(result.status == 0, "\(invocation): \(result.output)")
      #expect(result.stdout.contains("USAGE: attn-train \(subcommand)"), "\(invocation)")
      for option in options {
        #expect(documents(result.stdout, option), "\(invocation): \(option) is not documented:\n\(result.stdout)")
      }
    }
  }

  // MARK: - eval

  @Test func evalJSONIsOneConsistentObject() throws {
    let run = try TrainedRun.shared.get()
    let result = try Harness.attnTrain(["eval", run.config, "--json"])
    #expect(result.status == 0, "\(result.output)")
    let lines = result.stdout.split(separator: "\n")
    #expect(lines.count == 1, "stdout must be exactly one JSON object, got:\n\(result.stdout)")
    let object = try JSONObject(JSONValue.parse(Data(String(try #require(lines.last)).utf8)))
    let devLoss = try object.double("dev_loss")
    let perplexity = try object.double("perplexity")
    let bits = try object.double("bits_per_token")
    let bitsPerByte = try object.double("bits_per_byte")
    let bytes = try object.int("bytes")
    let tokens = try object.int("tokens")

    // Derived figures: 1e-12 relative allows for the last digit of a double printed as JSON text.
    #expect(abs(perplexity - exp(devLoss)) <= 1e-12 * perplexity, "perplexity == exp(dev_loss)")
    #expect(abs(bits - devLoss / log(2.0)) <= 1e-12 * bits, "bits_per_token == dev_loss / ln 2")
    // ASCII text and the char tokenizer: a byte per token, so bits per byte are bits per token.
    #expect(bytes == tokens)
    #expect(abs(bitsPerByte - bits) <= 1e-12 * bits, "bits_per_byte == bits_per_token for ASCII characters")
    #expect(devLoss > 0 && devLoss < log(65.0) + 0.5, "a loss for a 65-character vocabulary")

    // Every dev window once: the count follows from the file alone. Tiny Shakespeare is ASCII, so
    // one character per byte; the first 90% trains, windows of T inputs need T + 1 tokens.
    let characters = try Data(contentsOf: URL(fileURLWithPath: Harness.shakespeare)).count
    let devTokens = characters - Int(Double(characters) * 0.9)
    let windows = (devTokens - 1) / TrainedRun.blockSize
    #expect(tokens == windows * TrainedRun.blockSize)
  }

  @Test func evalMatchesTheLastDevLossOfTraining() throws {
    let run = try TrainedRun.shared.get()
    let logged = try Harness.metrics(runDirectory: run.runDirectory).last { $0["dev_loss"] != nil }
    #expect(logged?["step"] == Double(TrainedRun.steps))
    let result = try Harness.attnTrain(["eval", run.config, "--json"])
    #expect(result.status == 0, "\(result.output)")
    let line = try #require(result.stdout.split(separator: "\n").last, "\(result.output)")
    let object = try JSONObject(JSONValue.parse(Data(line.utf8)))
    // The same weights, windows, batch size and single BLAS thread: the same float operations, so
    // the same bits.
    #expect(try object.double("dev_loss") == logged?["dev_loss"], "eval \(line) vs logged \(logged ?? [:])")
    #expect(try object.int("step") == TrainedRun.steps)

    // The human-readable form states the same loss.
    let plain = try Harness.attnTrain(["eval", run.config])
    #expect(plain.status == 0)
    #expect(plain.stdout.contains(String(format: "dev loss %.4f", logged?["dev_loss"] ?? .nan)), "\(plain.stdout)")

    // `latest` is a pointer file; naming it evaluates the checkpoint it names.
    let latest = try Harness.attnTrain(["eval", run.config, "--checkpoint", "latest"])
    #expect(latest.status == 0, "\(latest.output)")
    #expect(latest.stdout.contains("checkpoints/step-\(String(format: "%07d", TrainedRun.steps)) (step \(TrainedRun.steps))"), "\(latest.output)")
  }

  // MARK: - sample

  private func sample(_ run: TrainedRun, _ extra: [String]) throws -> String {
    let result = try Harness.attnTrain(["sample", run.config] + extra)
    #expect(result.status == 0, "\(result.output)")
    return result.stdout
  }

  @Test func samplePrintsThePromptAndTheRequestedCharacters() throws {
    let run = try TrainedRun.shared.get()
    let prompt = "ROMEO:"
    let text = try sample(run, ["--prompt", prompt, "--tokens", "40", "--seed", "11"])
    #expect(text.hasPrefix(prompt), "stdout must start with the prompt: \(text.debugDescription)")
    #expect(text.hasSuffix("\n"))
    let generated = text.hasPrefix(prompt) ? String(text.dropFirst(prompt.count).dropLast()) : ""
    #expect(generated.unicodeScalars.count == 40, "\(generated.debugDescription)")
    let vocabulary = try Tokenizer.load(vocabularyFile: run.runDirectory + "/vocab.json")
    #expect(generated.unicodeScalars.allSatisfy { vocabulary.characters.contains($0) })
  }

  @Test func sampleIsDeterministicForAFixedSeed() throws {
    let run = try TrainedRun.shared.get()
    let options = ["--prompt", "ROMEO:", "--tokens", "40", "--temperature", "1"]
    let a = try sample(run, options + ["--seed", "11"])
    let b = try sample(run, options + ["--seed", "11"])
    let c = try sample(run, options + ["--seed", "12"])
    #expect(a == b, "same seed, same text")
    // 40 draws at temperature 1 from a barely trained model: equal texts would mean the seed is ignored.
    #expect(a != c, "another seed, other text")
  }

  @Test func temperatureZeroIsGreedy() throws {
    let run = try TrainedRun.shared.get()
    let prompt = "ROMEO:"
    let count = 40
    let options = ["--prompt", prompt, "--tokens", "\(count)", "--temperature", "0"]
    let a = try sample(run, options + ["--seed", "1"])
    let b = try sample(run, options + ["--seed", "2"])
    #expect(a == b, "temperature 0 ignores the seed")

    // The argmax continuation, computed here from the checkpoint's weights.
    let checkpoint = try LoadedCheckpoint(path: run.finalCheckpoint, name: "final")
    let tokenizer = checkpoint.tokenizer
    let model = GPT(shape: checkpoint.config.modelShape(vocabSize: tokenizer.vocabSize), maxBatch: 1)
    try checkpoint.restoreWeights(into: model)
    let V = tokenizer.vocabSize
    var context = try tokenizer.encode(prompt, source: "prompt")
    for _ in 0..<count {
      let window = Array(context.suffix(TrainedRun.blockSize))
      model.forward(tokens: window, targets: nil, B: 1, T: window.count)
      let last = model.logits + (window.count - 1) * V
      var best = 0
      for v in 1..<V where last[v] > last[best] { best = v }
      context.append(Int32(best))
    }
    #expect(a == tokenizer.decode(context) + "\n", "CLI: \(a.debugDescription)")
  }

  // MARK: - Saved config

  @Test func resolvedConfigIsSavedAndParsesBack() throws {
    let run = try TrainedRun.shared.get()
    let original = try Config.load(path: run.config)
    let savedPath = run.runDirectory + "/config.json"
    let saved = try Data(contentsOf: URL(fileURLWithPath: savedPath))
    // Parsed as if it were the original file, the saved config is the same config.
    #expect(try Config.parse(json: saved, sourcePath: run.config) == original)
    // And on its own it is a valid config file with every section and absolute paths.
    let reloaded = try Config.load(path: savedPath)
    #expect(reloaded.model == original.model && reloaded.optimizer == original.optimizer)
    #expect(reloaded.training == original.training && reloaded.data == original.data)
    let object = try #require(try JSONSerialization.jsonObject(with: saved) as? [String: [String: Any]])
    #expect(Set(object.keys) == ["task", "model", "optimizer", "schedule", "training", "data", "output"])
    #expect(object["task"]?["kind"] as? String == "language_model", "the default task is written out")
    #expect(object["training"]?["keep_checkpoints"] != nil, "defaults are written out too")
    #expect((object["data"]?["train_path"] as? String)?.hasPrefix("/") == true)
    // The checkpoint carries the same config, and the start of the run printed it.
    let inCheckpoint = try Config.load(path: run.finalCheckpoint + "/config.json")
    #expect(inCheckpoint.model == original.model && inCheckpoint.training == original.training)
    #expect(run.result.stdout.contains("\"keep_checkpoints\""), "the resolved config is printed at start")
  }
}
