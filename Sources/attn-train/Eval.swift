// `attn-train eval CONFIG`: loss, perplexity and bits per character over the whole dev split.

import AttnTrain
import ArgumentParser

struct Eval: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Evaluate saved weights on the whole dev split: loss, perplexity, bits per byte of text.")

  @OptionGroup var options: RunOptions

  @Option(help: "The checkpoint to evaluate (step-NNNNNNN, best, latest, or a path); default: the newest valid one.")
  var checkpoint: String?

  @Flag(help: "Print one JSON object: a language model's dev_loss, perplexity, bits_per_token, bits_per_byte, tokens, bytes; a classifier's accuracy, macro_f1, dev_loss, examples, labels, per_label, confusion; and step, checkpoint.")
  var json = false

  func run() throws {
    Launch.run(options, threadsLine: .stderr) { l in
      let evaluation = try CheckpointEvaluation(
        config: l.config, run: l.run, communicator: l.communicator, log: l.log, checkpointName: checkpoint)
      if json {
        l.log.say(evaluation.json.description)
      } else {
        l.log.say("checkpoint \(evaluation.checkpoint.path) (step \(evaluation.checkpoint.state.step))")
        l.log.say(evaluation.summary)
      }
    }
  }
}
