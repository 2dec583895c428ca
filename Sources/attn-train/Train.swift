// `attn-train CONFIG`: train, resuming from the newest valid checkpoint in the run directory.

import AttnCore
import AttnDist
import AttnTrain
import ArgumentParser
import Foundation

struct Train: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Train (the default): resumes from the run directory's newest valid checkpoint if there is one.")

  @OptionGroup var options: RunOptions

  @Flag(help: "Start from step 0 even if checkpoints exist (they are moved aside, not deleted).")
  var fresh = false

  @Option(name: .customLong("from-checkpoint"), help: "Resume from this checkpoint (a name such as step-0000500 or best, or a path).")
  var fromCheckpoint: String?

  func validate() throws {
    if fresh && fromCheckpoint != nil {
      throw ValidationError("--fresh and --from-checkpoint contradict each other; give one")
    }
  }

  func run() throws {
    StopSignals.install()
    reportingErrors { launch in
      let l = try Launch(options)
      launch = l
      let config = l.config
      let comm = l.communicator
      guard config.training.batchSize % comm.size == 0 else {
        throw InputError(
          file: config.sourcePath, field: "training.batch_size",
          problem: "the global batch of \(config.training.batchSize) does not divide among \(comm.size) ranks",
          hint: "use a batch_size that is a multiple of the number of ranks")
      }
      try l.configureThreads()

      // Rank 0 owns the run directory and decides where training starts; the others learn it by
      // broadcast, so the job needs no shared filesystem for checkpoints.
      var checkpoint: LoadedCheckpoint?
      if comm.rank == 0 {
        try l.run.prepare()
        if fresh, let aside = try l.run.setAsideCheckpoints() {
          l.log.say("--fresh: previous checkpoints moved to \(aside)")
        }
        try l.run.removePartialCheckpoints()
        checkpoint = try chooseCheckpoint(l)
        if let checkpoint {
          let changes = config.changedFields(comparedTo: checkpoint.config)
          guard changes.unsafe.isEmpty else {
            throw InputError(
              file: config.sourcePath,
              problem: "cannot resume \(checkpoint.path): these settings differ from the checkpoint's and change the model, data or batches: \(changes.unsafe.joined(separator: ", "))",
              hint: "restore them, use another --run-dir, or start over with --fresh")
          }
          if fromCheckpoint != nil, let aside = try l.run.setAsideCheckpoints(newerThan: checkpoint.state.step) {
            l.log.say("--from-checkpoint: the newer checkpoints of the abandoned run moved to \(aside)")
          }
          let note = changes.safe.isEmpty ? "" : " (changed: \(changes.safe.joined(separator: ", ")))"
          l.log.say("resuming from \(checkpoint.path) at step \(checkpoint.state.step)\(note)")
        } else {
          l.log.say("starting fresh in \(l.run.path)")
        }
      }
      let vocabulary = try comm.broadcast(checkpoint?.tokenizer.vocabularyJSON() ?? "", root: 0)
      let tokenizer = vocabulary.isEmpty ? nil : try Tokenizer(vocabularyJSON: vocabulary, source: "checkpoint vocab.json")
      let data = try TextData.load(config, vocabulary: tokenizer)

      l.log.say("config \(config.sourcePath), resolved:\n\(config.resolvedJSON())")
      if comm.rank == 0 {
        try writeFileDurably(path: l.run.file("config.json"), contents: Data(config.resolvedJSON().utf8))
        try writeFileDurably(path: l.run.file("vocab.json"), contents: Data(data.tokenizer.vocabularyJSON().utf8))
        try l.log.openMetrics(path: l.run.metricsFile)
      }
      let residentAtStart = ResidentMemory.currentBytes
      let trainer = try Trainer(
        config: config, data: data, communicator: comm, log: l.log, run: l.run, resumeFrom: checkpoint)
      let parameterCount = trainer.model.parameters.count
      l.log.say(
        "model: \(parameterCount) parameters, vocabulary \(data.tokenizer.vocabSize), train \(data.train.count) tokens, dev \(data.dev.count) tokens")
      let plan = MemoryPlan(model: trainer.model, optimizer: trainer.optimizer)
      l.log.say("memory plan per rank: \(plan.summary)")
      let outcome = try trainer.train(stopRequested: { StopSignals.requested })
      l.log.close()
      if let peak = ResidentMemory.peakBytes {
        let mib = { (bytes: Int) in String(format: "%.1f MiB", Double(bytes) / 1_048_576) }
        let start = residentAtStart.map { ", \(mib($0)) of it resident before the model was built" } ?? ""
        l.log.say(String(
          format: "peak resident memory on rank 0: %@, %.2fx the plan%@", mib(peak),
          Double(peak) / Double(plan.totalBytes), start))
      }
      switch outcome {
      case .finished:
        if let best = trainer.state.bestDevLoss {
          l.log.say(String(format: "done: step %d, best dev loss %.4f at step %d", trainer.state.step, best, trainer.state.bestStep ?? 0))
        }
      case .stoppedBySignal(let step):
        let cause = StopSignals.received ?? "a signal to another rank"
        l.log.say("stopped by \(cause) after step \(step), checkpoint written; the same command resumes from it")
      }
    }
  }

  private func chooseCheckpoint(_ l: Launch) throws -> LoadedCheckpoint? {
    let directory = l.run.checkpoints
    if let name = fromCheckpoint {
      let path = name.contains("/") ? name : directory.path(name)
      return try LoadedCheckpoint(path: path, name: name)
    }
    if fresh { return nil }
    return try directory.newestValid(warn: l.log.warn)
  }
}
