// `attn-train eval CONFIG`: loss, perplexity and bits per character over the whole dev split.

import AttnCore
import AttnTrain
import ArgumentParser
import Foundation

struct Eval: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Evaluate saved weights on the whole dev split: loss, perplexity, bits per character.")

  @OptionGroup var options: RunOptions

  @Option(help: "The checkpoint to evaluate (step-NNNNNNN, best, or a path); default: the newest valid one.")
  var checkpoint: String?

  @Flag(help: "Print one JSON object (dev_loss, perplexity, bits_per_char, tokens, step, checkpoint).")
  var json = false

  func run() throws {
    reportingErrors { launch in
      let l = try Launch(options)
      launch = l
      try l.configureThreads(announce: l.log.note)
      let maxBatch = max(1, l.config.training.batchSize / l.communicator.size)
      let loaded = try CheckpointedModel(l, checkpointName: checkpoint, maxBatch: maxBatch)
      let data = try TextData.load(l.config, vocabulary: loaded.checkpoint.tokenizer)
      let result = try Evaluator(model: loaded.model, dev: data.dev).evaluate(l.communicator)
      if json {
        let object: [String: Any] = [
          "dev_loss": result.loss, "perplexity": result.perplexity, "bits_per_char": result.bitsPerChar,
          "tokens": result.tokens, "step": loaded.checkpoint.state.step, "checkpoint": loaded.checkpoint.path,
        ]
        let text = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        l.log.say(String(decoding: text, as: UTF8.self))
      } else {
        l.log.say("checkpoint \(loaded.checkpoint.path) (step \(loaded.checkpoint.state.step))")
        l.log.say(String(
          format: "dev loss %.4f | perplexity %.3f | bits/char %.4f | %d tokens", result.loss,
          result.perplexity, result.bitsPerChar, result.tokens))
      }
    }
  }
}
