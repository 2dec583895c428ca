// `attn-train predict CONFIG --input FILE [--output FILE]`: a classifier's labels and class
// probabilities for new texts, one JSON line each, in input order.

import AttnFormats
import AttnTrain
import ArgumentParser
import Foundation

struct Predict: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Label texts with a trained classifier: JSON lines of label, score and class probabilities.",
    discussion: """
      The input is TSV, CSV (a header row naming data.text_field) or JSONL (data.text_field in each \
      object), by its extension (.tsv, .csv, .jsonl), else data.format; a label column may be \
      present and is ignored. Each output line: {"line": N, "label": L, "score": P(L), \
      "probabilities": {label: p, ...}}.
      """)

  @OptionGroup var options: RunOptions

  @Option(help: "The texts to label.")
  var input: String

  @Option(help: "Write the JSON lines here (a new file; see --overwrite) instead of to standard output.")
  var output: String?

  @Flag(help: "Replace --output if it exists.")
  var overwrite = false

  @Option(help: "The checkpoint to use (step-NNNNNNN, best, latest, or a path); default: the newest valid one.")
  var checkpoint: String?

  @Option(name: .customLong("batch-size"), parsing: .unconditional, help: "Texts per forward pass on each rank.")
  var batchSize = 64

  func validate() throws {
    guard batchSize >= 1 && batchSize <= 65536 else { throw ValidationError("--batch-size must be 1 to 65536 (got \(batchSize))") }
    if let output {
      let (a, b) = (URL(fileURLWithPath: output).standardizedFileURL, URL(fileURLWithPath: input).standardizedFileURL)
      guard a.resolvingSymlinksInPath() != b.resolvingSymlinksInPath() else {
        throw ValidationError("--output \(output) is the input file; name another")
      }
      if !overwrite && FileManager.default.fileExists(atPath: output) {
        throw ValidationError("--output \(output) exists; pass --overwrite to replace it")
      }
    }
  }

  func run() throws {
    Launch.run(options, threadsLine: .stderr) { l in
      let predictions = try Predictor.predict(
        config: l.config, run: l.run, communicator: l.communicator, log: l.log, checkpointName: checkpoint, inputPath: input,
        batch: batchSize)
      guard l.communicator.rank == 0 else { return }
      let lines = Data(predictions.jsonLines.utf8)
      if let output {
        try replaceFileAtomically(path: output, contents: lines)
        l.log.note("\(predictions.lines.count) predictions written to \(output)")
      } else {
        FileHandle.standardOutput.write(lines)
      }
    }
  }
}
