// The training loop, a plain loop as in nanoGPT's train.py. Each optimizer step: every micro-step
// draws its global batch from (seed, step, micro-step) (BatchPlan, BatchSampler), this rank runs
// forward/backward on its contiguous share, and the gradients (already scaled by 1 / tokens of the
// whole global batch) are summed over ranks, clipped and applied by ShardedDataParallel: each rank
// updates its shares of the buffer and gathers the others'. Every rank then holds the same weights,
// so evaluation and checkpoints need no further agreement (a checkpoint gathers the optimizer state
// first). trainStep allocates nothing (TrainerAllocationTests); logging, evaluation and checkpoints,
// between steps, may.

import AttnCore
import AttnDist
import AttnFormats
import Foundation

public final class Trainer {
  public let config: Config
  public let plan: BatchPlan
  public let model: GPT
  public let optimizer: Optimizer
  public private(set) var state: TrainerState
  private let communicator: Communicator
  private let log: RunLog
  private let data: TrainingData
  private let task: TrainingTask
  private let schedule: LearningRateSchedule
  private let writer: CheckpointWriter
  private let dataParallel: ShardedDataParallel
  private let faults: FaultInjection
  /// What MFU divides by; nil leaves MFU out of the metrics.
  private let peak: MachinePeak?
  /// What this rank is doing, for the collective watchdog; nil when nothing watches.
  private let activity: RankActivity?
  private var perturbed = false
  /// A checkpoint this process wrote, whose weights no step has yet run on successfully; and the
  /// newest one whose weights a step has. Pruning spares the second while the first is on trial.
  private var checkpointOnTrial: String?
  private var lastGoodCheckpoint: String?
  private let totals = StepTotals()
  private let checksum = UnsafeMutableBufferPointer<Double>.allocate(capacity: 2)

  public init(
    config: Config, plan: BatchPlan, data: TrainingData, communicator: Communicator, log: RunLog, run: RunDirectory,
    faults: FaultInjection = .none, resumeFrom checkpoint: LoadedCheckpoint?, pretrained: Pretrained? = nil,
    peak: MachinePeak? = nil, activity: RankActivity? = nil, fingerprint: DataFingerprint? = nil
  ) throws {
    precondition(plan.ranks == communicator.size, "the batch plan is for \(plan.ranks) ranks, the job has \(communicator.size)")
    self.config = config
    self.plan = plan
    self.data = data
    self.communicator = communicator
    self.log = log
    self.faults = faults
    self.peak = peak
    self.activity = activity
    let training = config.training
    let shape = config.modelShape(vocabSize: data.tokenizer.vocabSize)
    model = GPT(shape: shape, maxBatch: plan.sequencesPerRank)
    optimizer = Optimizer(settings: config.optimizer.settings, layout: model.layout)
    schedule = config.learningRateSchedule
    switch data {
    case .text(let text):
      task = try LanguageModelTask(model: model, data: text, plan: plan, config: config, activity: activity)
    case .labeled(let labeled):
      task = try ClassificationTask(model: model, data: labeled, plan: plan, config: config, activity: activity)
    }
    writer = CheckpointWriter(directory: run.checkpoints, keep: training.keepCheckpoints, faults: faults)
    dataParallel = ShardedDataParallel(
      communicator: communicator, gradients: model.gradients, layout: model.layout,
      bucketElements: Int(training.gradientBucketMB * 1_048_576 / 4), reduceDuringBackward: training.reduceDuringBackward)
    state = TrainerState(step: 0, tokensSeen: 0, elapsedSeconds: 0, worldSize: communicator.size)
    state.data = fingerprint

    // Rank 0 is the source of truth for the starting state; the broadcasts make every replica
    // bit-identical even if ranks ran on machines whose libm rounds differently.
    if let checkpoint {
      if checkpoint.name.hasPrefix("step-") { checkpointOnTrial = checkpoint.name }
      try checkpoint.restoreWeights(into: model)
      try checkpoint.restoreOptimizer(optimizer, layout: model.layout)
      state = checkpoint.state
      // A resume allowed onto another dev set (--allow-data-change) cannot compare against the
      // best figures of the old one.
      if let recorded = state.data, let fingerprint, recorded.dev != fingerprint.dev || recorded.tokenizer != fingerprint.tokenizer {
        (state.bestDevLoss, state.bestDevAccuracy, state.bestDevMacroF1, state.bestStep) = (nil, nil, nil, nil)
        state.evaluationsSinceBest = 0
        log.warn("the dev set changed since \(checkpoint.name): the best-checkpoint comparison starts over")
      }
    } else {
      model.initializeParameters(seed: training.seed)
      // Rank 0's copy; the broadcast below gives it to every rank.
      try pretrained?.loadBody(into: model)
    }
    try communicator.broadcast(model.parameters.buffer, root: 0)
    for (_, buffer) in optimizer.state { try communicator.broadcast(buffer.buffer, root: 0) }
    var stepCount = optimizer.stepCount
    try communicator.broadcast(&stepCount, root: 0)
    optimizer.stepCount = stepCount
    let stateJSON = try communicator.broadcast(state.json.description, root: 0)
    state = try TrainerState(json: JSONValue.parse(Data(stateJSON.utf8)))
    state.worldSize = communicator.size
    if let fingerprint { state.data = fingerprint }
  }

  deinit {
    totals.deallocate()
    checksum.deallocate()
  }

  public enum Outcome: Equatable, Sendable {
    case finished
    case stoppedBySignal(step: Int)
    /// training.patience evaluations in a row brought no better best_metric.
    case stoppedEarly(step: Int)
  }

  /// The figure that picks the best checkpoint and that patience watches.
  public var bestMetric: BestMetric {
    config.training.bestMetric ?? (config.task.kind == .classification ? .accuracy : .loss)
  }

  private var patienceRanOut: Bool {
    config.training.patience.map { state.evaluationsSinceBest >= $0 } ?? false
  }

  public func train(stopRequested: () -> Bool) throws -> Outcome {
    let training = config.training
    let clock = Stopwatch()
    let startElapsed = state.elapsedSeconds
    var window = LogWindow(start: clock.seconds)
    var bar = ProgressBar(totalSteps: training.maxSteps, firstStep: state.step, start: clock.seconds)

    if state.step >= training.maxSteps {
      log.say("nothing to do: the run is at step \(state.step), max_steps is \(training.maxSteps)")
      return .finished
    }
    if patienceRanOut {
      log.say("nothing to do: the run stopped early at step \(state.step) (training.patience)")
      return .stoppedEarly(step: state.step)
    }

    activity?.trainingStarts(at: state.step)
    defer { activity?.begin(.finished, step: state.step) }
    while state.step < training.maxSteps {
      let step = state.step
      let lr = schedule.rate(at: step)
      let stepStart = clock.seconds
      let result = try trainStep(step, learningRate: lr, stopRequested: stopRequested())
      activity?.stepTook(seconds: clock.seconds - stepStart, computing: result.computeSeconds)
      let (trainLoss, stop) = (result.loss, result.stop)
      if result.applied {
        state.skippedInARow = 0
        if let trial = checkpointOnTrial { (lastGoodCheckpoint, checkpointOnTrial) = (trial, nil) }
      } else {
        state.skippedSteps += 1
        state.skippedInARow += 1
        log.warn(
          "step \(step + 1) skipped on every rank: the loss (\(trainLoss)) or the gradient is not finite; "
            + "\(state.skippedInARow) in a row, \(state.skippedSteps) in all (training.max_skipped_steps \(training.maxSkippedSteps))")
      }

      state.step += 1
      if faults.nanParameterAfterStep == state.step { model.parameters.pointer[0] = .nan }
      state.tokensSeen += plan.tokensPerStep
      window.add(result, tokens: plan.tokensPerStep)
      state.elapsedSeconds = startElapsed + clock.seconds
      let done = state.step == training.maxSteps

      // Also before the last checkpoint, which only rank 0's copy goes into.
      let interval = training.consistencyCheckInterval
      if interval > 0 && (state.step % interval == 0 || done || stop) {
        if faults.perturbRank == communicator.rank && !perturbed {
          model.parameters.pointer[0] = model.parameters.pointer[0].nextUp
          perturbed = true
        }
        try checkReplicasAgree()
      }

      var record: MetricsRecord?
      if state.step % training.logInterval == 0 || done || stop {
        record = window.record(
          step: state.step, trainLoss: trainLoss, gradientNorm: result.gradientNorm, learningRate: lr,
          tokensSeen: state.tokensSeen, flopsPerToken: model.shape.trainingFLOPsPerToken, peak: peak, now: clock.seconds)
        window = LogWindow(start: clock.seconds)
      }
      let evaluate =
        (training.evalInterval > 0 && state.step % training.evalInterval == 0) || done
        || (training.evalEachEpoch && task.endsEpoch(step: state.step))
      var stoppedEarly = false
      if evaluate {
        let pauseStart = clock.seconds
        activity?.begin(.evaluation, step: state.step)
        let showProgress = log.progressReporter("evaluating dev")
        let result = try task.evaluate(communicator) { [activity] done, total in
          activity?.advance()
          showProgress(done, total)
        }
        if record == nil { record = MetricsRecord(step: state.step, trainLoss: trainLoss, learningRate: lr, elapsedSeconds: 0) }
        record?.devLoss = result.loss
        record?.devAccuracy = result.accuracy
        record?.devMacroF1 = result.macroF1
        if result.isBetter(than: state, by: bestMetric) {
          state.bestDevLoss = result.loss
          state.bestDevAccuracy = result.accuracy
          state.bestDevMacroF1 = result.macroF1
          state.bestStep = state.step
          state.evaluationsSinceBest = 0
          if let failure = try saveCheckpoint(named: "best", mayFail: true) {
            log.warn("checkpoint best not updated to step \(state.step): \(failure); the previous best checkpoint is kept, training goes on")
          }
        } else {
          state.evaluationsSinceBest += 1
          stoppedEarly = patienceRanOut && !done
        }
        window.pausedSeconds += clock.seconds - pauseStart
        bar.pause(clock.seconds - pauseStart)
      }
      if var record {
        record.elapsedSeconds = state.elapsedSeconds
        log.record(record, maxSteps: training.maxSteps)
      }
      let checkpointDue = training.checkpointInterval > 0 && state.step % training.checkpointInterval == 0
      // Weights that a skipped step ran on may be what made it fail: they are known good only once a
      // step on them succeeds, so none is saved until then, and the newest checkpoint stays the last
      // good state.
      if (checkpointDue || done || stop || stoppedEarly) && state.skippedInARow > 0 {
        log.warn("checkpoint \(CheckpointDirectory.name(forStep: state.step)) not written: step \(state.step) was skipped, so these weights are not known to be good")
      } else if checkpointDue || done || stop || stoppedEarly {
        let pauseStart = clock.seconds
        let name = CheckpointDirectory.name(forStep: state.step)
        // The rule for a write that fails (a full disk, an I/O error): a checkpoint along the way is
        // tried again at the next interval while training goes on; the last one of a run must exist,
        // so its failure ends the run. Either way the checkpoints already on disk stay whole.
        let last = done || stop || stoppedEarly
        if let failure = try saveCheckpoint(named: name, mayFail: !last) {
          log.warn("checkpoint \(name) not written: \(failure); the earlier checkpoints are intact and `latest` still names the newest of them; training goes on and tries again at step \(state.step + training.checkpointInterval)")
        } else {
          if communicator.rank == 0 { try writer.publishLatest(name, protecting: lastGoodCheckpoint) }
          try communicator.barrier()
          checkpointOnTrial = name
          log.say("checkpoint \(name) written")
        }
        window.pausedSeconds += clock.seconds - pauseStart
        bar.pause(clock.seconds - pauseStart)
      }
      if log.isTerminal && log.isSpeaker {
        bar.update(step: state.step, loss: trainLoss, now: clock.seconds, latest: record)
        if let line = bar.lineIfDue(now: clock.seconds, force: done) { log.progress(line, final: false) }
      }
      if faults.killAfterStep == state.step { kill(getpid(), SIGKILL) }
      if state.skippedInARow > training.maxSkippedSteps {
        // The steps failed from the start on the weights of the checkpoint on trial (huge but finite
        // after a wild update, say): the one before it is the last good state.
        var rejected: (name: String, as: String, good: String)?
        if let trial = checkpointOnTrial, let good = lastGoodCheckpoint {
          if communicator.rank == 0 { rejected = (trial, try writer.reject(trial, returningTo: good), good) }
          try communicator.barrier()
        }
        throw TrainingError.tooManySkippedSteps(
          step: state.step, inARow: state.skippedInARow,
          rejected: rejected.map { "; \($0.name), whose weights every one of them ran on, is set aside as \($0.as) and `latest` is \($0.good) again" } ?? "")
      }
      if stop && !done { return .stoppedBySignal(step: state.step) }
      if stoppedEarly {
        log.say("stopping early: \(training.patience!) evaluations without a better dev \(bestMetric.rawValue) since step \(state.bestStep ?? 0)")
        return .stoppedEarly(step: state.step)
      }
    }
    return .finished
  }

  /// What one optimizer step did, the same on every rank.
  public struct StepResult: Sendable {
    /// Mean loss over the global batch.
    public let loss: Double
    /// Whether any rank was asked to stop.
    public let stop: Bool
    /// False when the loss or gradient was not finite on some rank: then nothing changed, anywhere.
    public let applied: Bool
    /// The global gradient norm before clipping, and whether clipping scaled the step down.
    public let gradientNorm: Double
    public let clipped: Bool
    /// This rank's forward and backward time: what shows a straggler.
    public let computeSeconds: Double
  }

  /// One optimizer step: every micro-step's forward and backward on this rank's share, gradients
  /// summed over ranks (bucket by bucket during the last backward), clipped, applied. A step whose
  /// loss or gradient is not finite on any rank changes nothing, on every rank (the sums every rank
  /// receives carry the NaN, so no rank decides alone). Allocates nothing.
  public func trainStep(_ step: Int, learningRate: Double, stopRequested: Bool) throws -> StepResult {
    let units = task.unitsPerStep
    let lossScale = Float(1.0 / Double(units))
    let firstSample = plan.firstSample(rank: communicator.rank)
    let dropoutKey = RandomKey(seed: config.training.seed, purpose: .dropout)
    dataParallel.beginStep()
    let poison = faults.poisonsGradient(rank: communicator.rank, step: step + 1)
    var lossSum = 0.0
    var computeSeconds = 0.0
    for micro in 0..<plan.microSteps {
      let microStart = Profiler.now()
      defer { computeSeconds += Profiler.now() - microStart }
      if faults.slowRank == communicator.rank { usleep(UInt32(faults.slowRankSeconds * 1e6)) }
      if faults.hangRank == communicator.rank && faults.hangStep == step + 1 {
        activity?.begin(.forward, step: step + 1)
        while true { sleep(60) }
      }
      let context = DropoutContext(
        probability: model.shape.dropout, stepKey: dropoutKey.then(step).then(micro), firstGlobalSample: firstSample)
      // The first micro-step writes the gradients and later ones add to them; they are summed over
      // ranks once, after the last micro-step's backward.
      let last = micro == plan.microSteps - 1
      lossSum += try task.microStep(
        step, micro, firstSample: firstSample, lossScale: lossScale, dropout: context, accumulate: micro > 0
      ) {
        if last {
          if poison { self.model.gradients.pointer[$0.lowerBound] = .nan }
          self.dataParallel.gradientsReady($0)
        }
      }
    }
    // This rank holds the summed gradients of its shares only: it clips by the norm the ranks add
    // up, updates those parameters, and gathers the rest from the ranks that updated them.
    try dataParallel.finish()
    activity?.begin(.optimizer, step: step + 1)
    totals.lossSum = lossSum
    totals.stopVotes = stopRequested ? 1 : 0
    totals.gradientSumOfSquares = dataParallel.ownedSumOfSquares
    try totals.sumOverRanks(communicator)
    let trainLoss = totals.lossSum / Double(units)
    let norm = totals.gradientSumOfSquares.squareRoot()
    guard trainLoss.isFinite && norm.isFinite else {
      return StepResult(
        loss: trainLoss, stop: totals.stopVotes > 0, applied: false, gradientNorm: norm, clipped: false,
        computeSeconds: computeSeconds)
    }
    let clipping = gradientClipping(sumOfSquares: totals.gradientSumOfSquares, maxNorm: Float(config.optimizer.gradClip))
    optimizer.step(
      parameters: model.parameters, gradients: model.gradients, learningRate: Float(learningRate),
      gradientScale: clipping.scale, over: dataParallel.ownedShares)
    try dataParallel.allgatherShares(of: model.parameters)
    return StepResult(
      loss: trainLoss, stop: totals.stopVotes > 0, applied: true, gradientNorm: norm, clipped: clipping.scale < 1,
      computeSeconds: computeSeconds)
  }

  /// Writes the checkpoint on rank 0. When `mayFail`, a failed write is returned (the same on every
  /// rank) rather than thrown; the partial files are gone either way.
  private func saveCheckpoint(named name: String, mayFail: Bool = false) throws -> String? {
    activity?.begin(.checkpoint, step: state.step)
    // Each rank's optimizer state is current only in its shares.
    for (_, buffer) in optimizer.state { try dataParallel.allgatherShares(of: buffer) }
    // Every rank holds the same bits, so every rank reaches the same verdict without a message.
    if let tensor = firstNonFiniteTensor() {
      throw TrainingError.nonFiniteParameters(step: state.step, tensor: tensor, checkpoint: name)
    }
    var failure = ""
    if communicator.rank == 0 {
      do {
        try writer.write(
          name: name, model: model, optimizer: optimizer, state: state, configJSON: config.resolvedJSON(),
          vocabularyJSON: data.tokenizer.vocabularyJSON())
      } catch {
        if !mayFail { throw error }
        failure = "\(error)"
      }
    }
    failure = try communicator.broadcast(failure, root: 0)
    return failure.isEmpty ? nil : failure
  }

  /// The name of the first parameter (or "<state>.<parameter>" of the optimizer) holding a NaN or an
  /// infinity: such a state is never saved, so no checkpoint can poison a resume.
  private func firstNonFiniteTensor() -> String? {
    let buffers = [(prefix: "", buffer: model.parameters)] + optimizer.state.map { (prefix: $0.0 + ".", buffer: $0.1) }
    for (prefix, buffer) in buffers {
      for tensor in model.layout.tensors {
        let values = UnsafeBufferPointer(start: buffer.pointer + tensor.offset, count: tensor.count)
        if !values.allSatisfy(\.isFinite) { return prefix + tensor.name }
      }
    }
    return nil
  }

  /// Every replica must hold the same bits. Each step's gather hands every rank each parameter from
  /// the one rank that updated it, so a difference means a faulty exchange or memory. A 52-bit hash
  /// of the parameter bytes, compared through max(h) and max(-h), catches any without moving them.
  private func checkReplicasAgree() throws {
    guard communicator.size > 1 else { return }
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    let raw = UnsafeRawPointer(model.parameters.pointer).assumingMemoryBound(to: UInt32.self)
    for i in 0..<model.parameters.count { hash = mix64(hash ^ UInt64(raw[i])) }
    let value = Double(hash >> 12)
    checksum[0] = value
    checksum[1] = -value
    try communicator.allreduceMax(checksum)
    if checksum[0] != -checksum[1] {
      throw TrainingError.replicasDiverged(step: state.step, rank: communicator.rank)
    }
  }
}

/// What every step sums over ranks, in one allreduce of three doubles.
private struct StepTotals {
  private let values = UnsafeMutableBufferPointer<Double>.allocate(capacity: 3)

  /// The sum of this step's token losses (each rank's own before the sum).
  var lossSum: Double {
    get { values[0] }
    nonmutating set { values[0] = newValue }
  }
  /// How many ranks were asked to stop: a signal to any rank stops all of them after the same step.
  var stopVotes: Double {
    get { values[1] }
    nonmutating set { values[1] = newValue }
  }
  /// Σ g² of the summed gradients (each rank's owned shares before the sum), for clipping.
  var gradientSumOfSquares: Double {
    get { values[2] }
    nonmutating set { values[2] = newValue }
  }

  func sumOverRanks(_ communicator: Communicator) throws { try communicator.allreduceSum(values) }

  func deallocate() { values.deallocate() }
}

/// What a run trains on: token streams (a language model) or labelled examples (a classifier).
public enum TrainingError: Error, CustomStringConvertible {
  case replicasDiverged(step: Int, rank: Int)
  case tooManySkippedSteps(step: Int, inARow: Int, rejected: String)
  case nonFiniteParameters(step: Int, tensor: String, checkpoint: String)

  public var description: String {
    switch self {
    case .tooManySkippedSteps(let step, let inARow, let rejected):
      return "training diverged: \(inARow) steps in a row up to step \(step) had a non-finite loss or gradient and were skipped "
        + "(training.max_skipped_steps); no checkpoint was written since the first of them\(rejected), so `latest` is "
        + "the last state known good. Try a lower optimizer.learning_rate or set optimizer.grad_clip, then resume"
    case .nonFiniteParameters(let step, let tensor, let checkpoint):
      return "training diverged: after step \(step) \(tensor) holds a NaN or an infinity, so \(checkpoint) was not written "
        + "and the checkpoints on disk are kept as they are; the newest one is the last good state. "
        + "Try a lower optimizer.learning_rate or set optimizer.grad_clip"
    case .replicasDiverged(let step, let rank):
      return "the ranks' parameters differ at step \(step) (seen on rank \(rank)): the replicas diverged, which points at a bug or faulty hardware; the job stops rather than train inconsistent models"
    }
  }
}

/// Monotonic seconds since creation.
struct Stopwatch {
  private let start = DispatchTime.now().uptimeNanoseconds
  var seconds: Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
}
