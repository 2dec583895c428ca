// `attn-train CONFIG`: train, resuming from the newest valid checkpoint in the run directory.

import AttnTrain
import ArgumentParser

struct Train: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Train (the default): resumes from the run directory's newest valid checkpoint if there is one.")

  @OptionGroup var options: RunOptions

  @Flag(help: "Start from step 0 even if checkpoints exist (they are moved aside, not deleted).")
  var fresh = false

  @Option(name: .customLong("from-checkpoint"), help: "Resume from this checkpoint (a name such as step-0000500 or best, or a path).")
  var fromCheckpoint: String?

  @Flag(name: .customLong("allow-data-change"), help: "Resume even if the data differs from what the checkpoint was trained on (a changed dev set restarts the best-checkpoint comparison).")
  var allowDataChange = false

  @Flag(help: "Time every kind of layer (forward and backward) and write profile.json to the run directory; costs a little speed.")
  var profile = false

  /// Anything after the config: only there to say what went wrong ("attn-train evl cfg.json" is a
  /// misspelt subcommand, not a config named "evl" with a stray argument).
  @Argument(help: .hidden)
  var unexpected: [String] = []

  func validate() throws {
    if let first = unexpected.first {
      let names = AttnTrainCommand.configuration.subcommands.map { $0._commandName }
      if !options.config.contains("."), !options.config.contains("/") {
        let near = nearestMatch(to: options.config, in: names)
        throw ValidationError(
          "unknown subcommand '\(options.config)' (the subcommands are \(names.joined(separator: ", ")))\(near.map { "; did you mean '\($0)'?" } ?? "")")
      }
      throw ValidationError("unexpected argument '\(first)' after the config \(options.config)")
    }
    if fresh && fromCheckpoint != nil {
      throw ValidationError("--fresh and --from-checkpoint contradict each other; give one")
    }
  }

  func run() throws {
    StopSignals.install()
    Launch.run(options) { l in
      let session = TrainingSession(
        config: l.config, run: l.run, communicator: l.communicator, log: l.log, faults: l.faults, peak: l.peak,
        profile: profile, activity: l.activity)
      let start: StartPoint = fresh ? .fresh : fromCheckpoint.map { .checkpoint($0) } ?? .newest
      let summary = try session.train(from: start, allowDataChange: allowDataChange, stopRequested: { StopSignals.requested })
      switch summary.outcome {
      case .finished, .stoppedEarly:
        let state = summary.state
        let figure =
          state.bestDevAccuracy.map { String(format: "best dev accuracy %.4f", $0) }
          ?? state.bestDevLoss.map { String(format: "best dev loss %.4f", $0) }
        if let figure { l.log.say("done: step \(state.step), \(figure) at step \(state.bestStep ?? 0) (checkpoint best)") }
      case .stoppedBySignal(let step):
        let cause = StopSignals.received ?? "a signal to another rank"
        l.log.say("stopped by \(cause) after step \(step), checkpoint written; the same command resumes from it")
      }
    }
  }
}

