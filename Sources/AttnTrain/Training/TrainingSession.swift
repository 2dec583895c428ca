// A training run from start to finish, on every rank alike: check the batch plan, decide where to
// start (rank 0, ResumePolicy) and tell the others, open the prepared token shards (preparing them
// when missing), save the resolved config, vocabulary and plan.json (what the run is sized to: the
// report reads it), measure the peak MFU divides by, build the trainer, train, and report memory
// against the plan (and the per-layer profile, when asked for), and write report.html. The command line only
// parses and calls this, so everything a run does before and after its steps is testable in-process.

import AttnCore
import AttnDist
import AttnFormats
import Foundation

public final class TrainingSession {
  public let config: Config
  public let run: RunDirectory
  private let communicator: Communicator
  private let log: RunLog
  private let faults: FaultInjection
  private let peakSource: MachinePeak.Source
  /// Time every kind of layer (Profiler) and write profile.json at the end.
  private let profile: Bool
  /// What this rank is doing, for the collective watchdog (multi-rank runs).
  private let activity: RankActivity?

  public init(
    config: Config, run: RunDirectory, communicator: Communicator, log: RunLog, faults: FaultInjection = .none,
    peak: MachinePeak.Source = .probeOnly, profile: Bool = false, activity: RankActivity? = nil
  ) {
    self.activity = activity
    self.config = config
    self.run = run
    self.communicator = communicator
    self.log = log
    self.faults = faults
    self.peakSource = peak
    self.profile = profile
  }

  /// How a run ended, for the command's last line.
  public struct Summary: Sendable {
    public let outcome: Trainer.Outcome
    public let state: TrainerState
  }

  /// Trains until max_steps, or until `stopRequested` answers true on any rank (then after a final
  /// checkpoint). Throws on the first problem; under MPI the caller ends the job.
  /// `allowDataChange`: resume even when the data differs from the checkpoint's (a dev set that
  /// changed restarts the best-checkpoint comparison).
  public func train(from start: StartPoint, allowDataChange: Bool = false, stopRequested: () -> Bool) throws -> Summary {
    let plan = try BatchPlan(config, ranks: communicator.size)
    // Held until the run ends: a second job on this run directory is refused.
    let lock: RunDirectoryLock? = communicator.rank == 0 ? try { try run.prepare(); return try run.lock() }() : nil
    defer { withExtendedLifetime(lock) {} }
    let checkpoint: LoadedCheckpoint? =
      communicator.rank == 0 ? try ResumePolicy(config: config, run: run, log: log).chooseCheckpoint(start) : nil
    // A fresh run's pretrained body (training.init_from), read by rank 0 as the checkpoint is.
    let pretrained =
      communicator.rank == 0 && checkpoint == nil && config.training.initFrom != nil ? try Pretrained(config, log: log) : nil
    if let pretrained { log.say("initialised from \(pretrained.checkpoint.path) (step \(pretrained.checkpoint.state.step))") }
    let (data, config) = try TrainingData.open(
      config, plan: plan, checkpoint: checkpoint, pretrained: pretrained, run: run, communicator: communicator, log: log)

    let fingerprint = try DataFingerprint(data)
    try Self.checkRanksAgree(on: fingerprint, config: config, communicator: communicator)
    if let recorded = checkpoint?.state.data, let difference = fingerprint.difference(from: recorded) {
      guard allowDataChange else {
        throw InputError(
          file: config.sourcePath, field: "data",
          problem: "cannot resume \(checkpoint!.path): the data differs from what it was trained on: \(difference)",
          hint: "restore the data, start over with --fresh, or resume anyway with --allow-data-change")
      }
      log.warn("resuming on changed data (--allow-data-change): \(difference)")
    }
    log.say("data: \(fingerprint.description)")
    log.say("config \(config.sourcePath), resolved:\n\(config.resolvedJSON())")
    if communicator.rank == 0 {
      try writeFileDurably(path: run.file("config.json"), contents: Data(config.resolvedJSON().utf8))
      try writeFileDurably(path: run.file("vocab.json"), contents: Data(data.tokenizer.vocabularyJSON().utf8))
      try log.openMetrics(path: run.metricsFile)
      try log.openTensorBoard(directory: run.tensorBoardDirectory, continuingFrom: checkpoint?.state.step ?? 0)
    }
    try Self.checkMemory(config: config, data: data, plan: plan, ranksOnNode: communicator.localSize)
    let residentAtStart = ResidentMemory.currentBytes
    // Only rank 0 reports MFU; the others wait for it in the trainer's first broadcast meanwhile.
    let peak =
      communicator.rank == 0
      ? MachinePeak(
        peakSource, threadsPerRank: ComputeThreads.current, ranks: communicator.size,
        ranksOnThisNode: communicator.localSize, coresOnThisNode: ProcessInfo.processInfo.activeProcessorCount) : nil
    if let peak { log.say(peak.line) }
    let trainer = try Trainer(
      config: config, plan: plan, data: data, communicator: communicator, log: log, run: run, faults: faults,
      resumeFrom: checkpoint, pretrained: pretrained, peak: peak, activity: activity, fingerprint: fingerprint)
    switch data {
    case .text(let text):
      log.say(
        "model: \(trainer.model.parameters.count) parameters, vocabulary \(text.tokenizer.vocabSize), train \(text.train.count) tokens, dev \(text.dev.count) tokens")
    case .labeled(let labeled):
      log.say(
        "model: \(trainer.model.parameters.count) parameters, vocabulary \(labeled.tokenizer.vocabSize), \(labeled.labels.count) labels, train \(labeled.train.count) examples, dev \(labeled.dev.count) examples, \(config.training.maxSteps) steps")
    }
    let memoryPlan = MemoryPlan(model: trainer.model, optimizer: trainer.optimizer)
    log.say("memory plan per rank: \(memoryPlan.summary)")
    if communicator.rank == 0 {
      let sizes = RunPlan(config: config, plan: plan, model: trainer.model, memory: memoryPlan, peak: peak)
      try writeFileDurably(path: run.planFile, contents: Data((sizes.json.description + "\n").utf8))
    }
    let firstStep = trainer.state.step
    Profiler.enabled = profile
    Profiler.reset()
    let outcome = try trainer.train(stopRequested: stopRequested)
    Profiler.enabled = false
    if profile && communicator.rank == 0 {
      let profileJSON = RunProfile.json(steps: trainer.state.step - firstStep)
      try writeFileDurably(path: run.profileFile, contents: Data((profileJSON.description + "\n").utf8))
      log.say("per-layer time profile of \(trainer.state.step - firstStep) steps written to \(run.profileFile)")
    }
    log.close()
    if let peak = ResidentMemory.peakBytes {
      let mib = { (bytes: Int) in String(format: "%.1f MiB", Double(bytes) / 1_048_576) }
      let start = residentAtStart.map { ", \(mib($0)) of it resident before the model was built" } ?? ""
      log.say(String(
        format: "peak resident memory on rank 0: %@, %.2fx the plan%@", mib(peak),
        Double(peak) / Double(memoryPlan.totalBytes), start))
    }
    if communicator.rank == 0 {
      // A report that cannot be written (a full disk) costs the run nothing: `attn-train report` redoes it.
      do {
        let report = try RunReport.write(run: run)
        log.say("report: \(report.path)")
      } catch {
        log.warn("report.html not written: \(error)")
      }
    }
    return Summary(outcome: outcome, state: trainer.state)
  }

  /// Every rank must train on the same data: each one's fingerprint goes to all (one broadcast per
  /// rank, at start), so every rank reaches the same verdict and the message names the odd ones.
  static func checkRanksAgree(on fingerprint: DataFingerprint, config: Config, communicator: Communicator) throws {
    guard communicator.size > 1 else { return }
    var all: [String] = []
    for root in 0..<communicator.size {
      all.append(try communicator.broadcast(fingerprint.json.description, root: root))
    }
    let reference = try DataFingerprint(json: JSONObject(JSONValue.parse(Data(all[0].utf8))))
    var differing: [String] = []
    for (rank, text) in all.enumerated().dropFirst() {
      let theirs = try DataFingerprint(json: JSONObject(JSONValue.parse(Data(text.utf8))))
      if let difference = theirs.difference(from: reference) { differing.append("rank \(rank): \(difference)") }
    }
    guard !differing.isEmpty else { return }
    let files = (config.data.trainPaths + config.data.devPaths).joined(separator: ", ")
    throw InputError(
      file: files, field: "data",
      problem: "the ranks loaded different data (\"then\" is rank 0's): " + differing.joined(separator: "; ")
        .replacingOccurrences(of: " then,", with: " on rank 0,").replacingOccurrences(of: " now)", with: " here)"),
      hint: "every node must read the same files: copy rank 0's, or put them on a shared filesystem")
  }

  /// The memory plan, computed from the shape before anything is allocated, against what this node
  /// has for its ranks: a model that cannot fit is refused with the figures, not met by a trap or
  /// the OOM killer minutes later.
  static func checkMemory(config: Config, data: TrainingData, plan: BatchPlan, ranksOnNode: Int) throws {
    let memory = MemoryPlan(
      shape: config.modelShape(vocabSize: data.tokenizer.vocabSize), maxBatch: plan.sequencesPerRank,
      optimizer: config.optimizer.settings, threads: ComputeThreads.current)
    guard let available = ResidentMemory.availableBytes else { return }
    let (need, have) = (Double(memory.totalBytes) * Double(ranksOnNode), Double(available))
    guard need > have else { return }
    let gib = { (bytes: Double) in String(format: "%.1f GiB", bytes / 1_073_741_824) }
    throw InputError(
      file: config.sourcePath, field: "model",
      problem: "the model does not fit: its memory plan is \(gib(Double(memory.totalBytes))) per rank (\(memory.summary)), x \(ranksOnNode) rank(s) on this node = \(gib(need)), but the node has \(gib(have)) available",
      hint: "make the model smaller (n_layer, n_embd, block_size) or training.batch_size, use grad_accum_steps for the same batch, or spread the ranks over more nodes")
  }
}
