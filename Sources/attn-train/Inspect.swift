// `attn-train inspect PATH` and `attn-train report RUN_DIR`: reading what a run left on disk. Neither
// needs the config or joins an MPI job.

import ArgumentParser
import AttnFormats
import AttnTrain
import Foundation

struct Inspect: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Show what a checkpoint holds and whether every file verifies; exits 1 when one is damaged.",
    discussion: """
      PATH is a checkpoint directory (step-NNNNNNN, best), a run directory or its checkpoints/
      directory. For a run directory every checkpoint is verified and the one `latest` names is
      shown: step, tokens seen, best dev figures, config, tokenizer, and each tensor's shape, count,
      mean, std, min, max and non-finite values.
      """)

  @Argument(help: "A checkpoint directory, or a run directory.")
  var path: String

  @Flag(help: "Print one JSON object instead of the table.")
  var json = false

  func run() throws {
    Standalone.run {
      let target = try InspectionTarget(path: path)
      print(json ? target.json.prettyPrinted() : target.text)
      if let damaged = target.firstDamaged {
        throw InputError(file: damaged.path, problem: "damaged checkpoint: " + damaged.faults.joined(separator: "; "))
      }
    }
  }
}

struct Report: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Write a run's report: one self-contained HTML file with its plots, checkpoints and config.",
    discussion: "Training writes <run_dir>/report.html at the end of every run; this writes it for any run, also one still going.")

  @Argument(help: "The run directory.")
  var runDirectory: String

  @Option(help: "Where to write the HTML (default: report.html in the run directory).")
  var output: String?

  func run() throws {
    Standalone.run {
      let run = RunDirectory(path: runDirectory, origin: "RUN_DIR")
      let written = try RunReport.write(run: run, to: output)
      print("report written to \(written.path) (\(written.plots.count) plots: \(written.plots.joined(separator: ", ")))")
    }
  }
}

/// Commands that read files only: the error once on stderr and status 1, as Launch does for the rest.
enum Standalone {
  static func run(_ body: () throws -> Void) -> Never {
    do {
      try body()
      exit(0)
    } catch {
      FileHandle.standardError.write(Data("attn-train: error: \(error)\n".utf8))
      exit(1)
    }
  }
}
