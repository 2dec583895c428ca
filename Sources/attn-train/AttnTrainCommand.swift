// attn-train: train, evaluate, predict with and sample a Transformer (language model or text classifier) from one JSON config.
// Running `attn-train CONFIG` trains (the default subcommand); under `mpirun -np N` every rank runs
// this same program and they train one model together.

import ArgumentParser
import AttnTrain

@main
struct AttnTrainCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "attn-train",
    abstract: "Train a Transformer language model or text classifier on CPUs, alone or data-parallel under mpirun.",
    discussion: """
      The config file (JSON) sets the model, optimizer, schedule, training, data and output; the
      README documents every field. Examples:
        attn-train Configs/shakespeare-char.json
        attn-train prepare Configs/shakespeare-gpt2.json
        mpirun -np 4 attn-train Configs/shakespeare-char.json
        attn-train eval Configs/shakespeare-char.json --json
        attn-train predict Configs/sst2.json --input reviews.tsv --output labels.jsonl
        attn-train sample Configs/shakespeare-char.json --prompt "ROMEO:" --tokens 200
        attn-train tokenizer train Configs/shakespeare-bpe.json
        attn-train inspect runs/shakespeare-char/checkpoints/best
        attn-train report runs/shakespeare-char
      """,
    subcommands: [Train.self, Prepare.self, Eval.self, Predict.self, Sample.self, TokenizerCommand.self, Inspect.self, Report.self, PrintConfigReference.self],
    defaultSubcommand: Train.self)
}

/// The arguments every subcommand shares.
struct RunOptions: ParsableArguments {
  @Argument(help: "The JSON config file.")
  var config: String

  @Option(name: .customLong("run-dir"), help: "Use this run directory instead of the config's output.run_dir.")
  var runDirectory: String?
}

/// `attn-train config-reference`: the README's config reference, generated from the schema. For
/// whoever changes a key: paste its output between the README's markers (a test checks them).
struct PrintConfigReference: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "config-reference", abstract: "Print the config reference (markdown) that the README carries.",
    shouldDisplay: false)

  func run() throws { print(Config.referenceMarkdown(), terminator: "") }
}
