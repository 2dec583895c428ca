// `attn-train sample CONFIG`: generate text from saved weights.

import AttnFormats
import AttnTrain
import ArgumentParser
import Foundation

struct Sample: ParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Generate text from saved weights.")

  @OptionGroup var options: RunOptions

  @Option(help: "Text to continue (default: a newline).")
  var prompt = "\n"

  @Option(parsing: .unconditional, help: "How many tokens to generate.")
  var tokens = 200

  // Unconditional parsing, so "--temperature -1" reaches validate() instead of reading as an option.
  @Option(parsing: .unconditional, help: "Softmax temperature; 0 always picks the most likely token.")
  var temperature = 0.8

  @Option(name: .customLong("top-k"), parsing: .unconditional, help: "Sample only among the k most likely tokens (default: all).")
  var topK: Int?

  @Option(help: "Seed for the draws: the same seed gives the same text.")
  var seed: UInt64 = 1337

  @Option(help: "The checkpoint to use (step-NNNNNNN, best, latest, or a path); default: the newest valid one.")
  var checkpoint: String?

  func validate() throws {
    guard tokens >= 1 else { throw ValidationError("--tokens must be at least 1 (got \(tokens))") }
    guard temperature >= 0, temperature.isFinite else {
      throw ValidationError("--temperature must be a finite number >= 0 (got \(temperature))")
    }
    if let topK, topK < 1 { throw ValidationError("--top-k must be at least 1 (got \(topK))") }
    guard !prompt.isEmpty else { throw ValidationError("--prompt must not be empty") }
  }

  func run() throws {
    Launch.run(options, threadsLine: .stderr) { l in
      guard l.config.task.kind == .languageModel else {
        let classifier = l.config.task.kind == .classification
        throw InputError(
          file: l.config.sourcePath, field: "task.kind",
          problem: "sample generates text token by token with a (causal) language model; this run is a \(classifier ? "classifier" : "masked language model")",
          hint: classifier ? "use attn-train eval (and predict) for a classifier" : "use attn-train eval for its dev loss, or fine-tune a classifier from it (training.init_from)")
      }
      let loaded = try CheckpointedModel(
        config: l.config, run: l.run, log: l.log, checkpointName: checkpoint, maxBatch: 1)
      let tokenizer = loaded.checkpoint.tokenizer
      let context = try tokenizer.encode(prompt, source: "--prompt")
      let generator = TextGenerator(model: loaded.model, tokenizer: tokenizer)
      guard l.communicator.rank == 0 else { return }
      FileHandle.standardOutput.write(Data(prompt.utf8))
      generator.generate(prompt: context, count: tokens, temperature: temperature, topK: topK, seed: seed) {
        FileHandle.standardOutput.write(Data($0.utf8))
      }
      FileHandle.standardOutput.write(Data("\n".utf8))
    }
  }
}
