// `attn-train tokenizer train CONFIG`: learn the byte-level BPE that data.tokenizer
// {"kind": "bpe", "vocab_size": N} asks for, ahead of training (training learns it on first use too).

import ArgumentParser
import AttnFormats
import AttnTrain
import Foundation

struct TokenizerCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "tokenizer", abstract: "Work with the run's tokenizer.", subcommands: [LearnTokenizer.self])
}

struct LearnTokenizer: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "train",
    abstract: "Learn a byte-level BPE from the training text and save it as a Hugging Face tokenizer.json.",
    discussion: """
      The config's data.tokenizer must be {"kind": "bpe", "vocab_size": N}. The tokenizer goes to the
      run directory's tokenizer.json (or --output), where training finds it; an existing file is
      never overwritten.
      """)

  @OptionGroup var options: RunOptions

  @Option(help: "Write the tokenizer here instead of <run_dir>/tokenizer.json.")
  var output: String?

  func run() throws {
    Launch.run(options, threadsLine: .stderr) { l in
      guard l.communicator.rank == 0 else { return }
      guard case .trainedBPE = l.config.data.tokenizer else {
        throw InputError(
          file: l.config.sourcePath, field: "data.tokenizer",
          problem: "does not ask for a learned tokenizer", hint: #"set it to {"kind": "bpe", "vocab_size": N}"#)
      }
      let file = output.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? l.run.file("tokenizer.json")
      guard !FileManager.default.fileExists(atPath: file) else {
        throw InputError(file: file, problem: "already exists; a tokenizer is never overwritten", hint: "move it away, or name another --output")
      }
      if output == nil { try l.run.prepare() }
      _ = try Tokenizer.learned(for: l.config, file: file, log: l.log)
    }
  }
}
