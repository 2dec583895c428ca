// `attn-train prepare CONFIG`: tokenize the train and dev sources once into token shards, which
// training and eval then memory-map (they prepare them first themselves when they are missing).

import ArgumentParser
import AttnTrain

struct Prepare: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Tokenize the data into token shards in data.prepared_dir (default <run_dir>/data).",
    discussion: """
      Under mpirun the ranks tokenize disjoint shards; the shards are the same for any number of ranks
      and threads. Data already prepared from the same sources and tokenizer is kept as it is.
      """)

  @OptionGroup var options: RunOptions

  func run() throws {
    Launch.run(options) { l in
      let directory = l.run.preparedDirectory(for: l.config)
      let data = try PreparedData.open(
        l.config, directory: directory, tokenizer: nil, learnedTokenizerFile: l.run.learnedTokenizerFile,
        communicator: l.communicator, log: l.log)
      l.log.say(
        "prepared data in \(directory): \(data.train.count) train tokens, \(data.dev.count) dev tokens, \(data.tokenizer.kind.rawValue) tokenizer of \(data.tokenizer.vocabSize) ids")
    }
  }
}
