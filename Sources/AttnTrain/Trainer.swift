// The training loop, a plain loop as in nanoGPT's train.py. Each optimizer step: every micro-step
// draws its global batch from (seed, step, micro-step), this rank runs forward/backward on its
// contiguous share, gradients (already scaled by 1 / tokens of the whole global batch) are summed
// over ranks, clipped, and applied, each rank updating its shares of the buffer and gathering the
// others' (GradientReducer). Every rank then holds the same weights, so evaluation and checkpoints
// need no further agreement (a checkpoint gathers the optimizer state first). trainStep allocates
// nothing (AllocationTests); logging, evaluation and checkpoints, between steps, may.

import AttnCore
import AttnDist
import Foundation

public final class Trainer {
  public let config: Config
  public let model: GPT
  public let optimizer: Optimizer
  public private(set) var state: TrainerState
  private let communicator: Communicator
  private let log: RunLog
  private let data: TextData
  private let run: RunDirectory
  private let schedule: LearningRateSchedule
  private let sampler: BatchSampler
  private let evaluator: Evaluator
  private let writer: CheckpointWriter
  private let reducer: GradientReducer
  private let localBatch: Int
  private let hooks = TestHooks.fromEnvironment()
  private var perturbed = false
  private let tokens: UnsafeMutablePointer<Int32>
  private let targets: UnsafeMutablePointer<Int32>
  /// [loss sum, stop requested, gradients' sum of squares]: one allreduce per step carries all three.
  private let stepSums = UnsafeMutableBufferPointer<Double>.allocate(capacity: 3)
  private let checksum = UnsafeMutableBufferPointer<Double>.allocate(capacity: 2)

  public init(
    config: Config, data: TextData, communicator: Communicator, log: RunLog, run: RunDirectory,
    resumeFrom checkpoint: LoadedCheckpoint?
  ) throws {
    self.config = config
    self.data = data
    self.communicator = communicator
    self.log = log
    self.run = run
    let training = config.training
    localBatch = training.batchSize / communicator.size
    let shape = config.modelShape(vocabSize: data.tokenizer.vocabSize)
    model = GPT(shape: shape, maxBatch: localBatch)
    optimizer = Optimizer(settings: config.optimizerSettings, layout: model.layout)
    schedule = config.learningRateSchedule
    sampler = BatchSampler(seed: training.seed, sequenceLength: shape.blockSize, tokenCount: data.train.count)
    evaluator = Evaluator(model: model, dev: data.dev)
    writer = CheckpointWriter(directory: run.checkpoints, keep: training.keepCheckpoints)
    reducer = GradientReducer(
      communicator: communicator, gradients: model.gradients, layout: model.layout,
      bucketElements: Int(training.allreduceBucketMB * 1_048_576 / 4), overlap: training.overlapAllreduce)
    tokens = .allocate(capacity: localBatch * shape.blockSize)
    targets = .allocate(capacity: localBatch * shape.blockSize)
    state = TrainerState(step: 0, tokensSeen: 0, elapsedSeconds: 0, worldSize: communicator.size)

    // Rank 0 is the source of truth for the starting state; the broadcasts make every replica
    // bit-identical even if ranks ran on machines whose libm rounds differently.
    if let checkpoint {
      try checkpoint.restoreWeights(into: model)
      try checkpoint.restoreOptimizer(optimizer, layout: model.layout)
      state = checkpoint.state
    } else {
      model.initializeParameters(seed: training.seed)
    }
    try communicator.broadcast(model.parameters.buffer, root: 0)
    for (_, buffer) in optimizer.state { try communicator.broadcast(buffer.buffer, root: 0) }
    var stepCount = optimizer.stepCount
    try communicator.broadcast(&stepCount, root: 0)
    optimizer.stepCount = stepCount
    var stateBytes = Array(try JSONEncoder().encode(state))
    try communicator.broadcast(&stateBytes, root: 0)
    state = try JSONDecoder().decode(TrainerState.self, from: Data(stateBytes))
    state.worldSize = communicator.size
  }

  deinit {
    tokens.deallocate()
    targets.deallocate()
    stepSums.deallocate()
    checksum.deallocate()
  }

  public enum Outcome: Equatable { case finished, stoppedBySignal(step: Int) }

  public func train(stopRequested: () -> Bool) throws -> Outcome {
    let training = config.training
    let clock = Stopwatch()
    let startElapsed = state.elapsedSeconds
    var windowStart = clock.seconds
    var windowTokens = 0
    var pausedSeconds = 0.0  // evaluation and checkpoint time, excluded from tokens/s

    if state.step >= training.maxSteps {
      log.say("nothing to do: the run is at step \(state.step), max_steps is \(training.maxSteps)")
      return .finished
    }

    while state.step < training.maxSteps {
      let step = state.step
      let lr = schedule.rate(at: step)
      let (trainLoss, stop) = try trainStep(step, learningRate: lr, stopRequested: stopRequested())

      state.step += 1
      state.tokensSeen += tokensPerStep
      windowTokens += tokensPerStep
      state.elapsedSeconds = startElapsed + clock.seconds
      let done = state.step == training.maxSteps

      // Also before the last checkpoint, which only rank 0's copy goes into.
      let interval = training.consistencyCheckInterval
      if interval > 0 && (state.step % interval == 0 || done || stop) {
        if hooks.perturbRank == communicator.rank && !perturbed {
          model.parameters.pointer[0] = model.parameters.pointer[0].nextUp
          perturbed = true
        }
        try checkReplicasAgree()
      }

      var fields: [(String, Double)] = []
      if state.step % training.logInterval == 0 || done || stop {
        let seconds = clock.seconds - windowStart - pausedSeconds
        let rate = seconds > 0 ? Double(windowTokens) / seconds : 0
        fields = [("step", Double(state.step)), ("train_loss", trainLoss), ("lr", lr), ("tokens_per_s", rate)]
        windowStart = clock.seconds
        windowTokens = 0
        pausedSeconds = 0
      }
      let evaluate = (training.evalInterval > 0 && state.step % training.evalInterval == 0) || done
      if evaluate {
        let pauseStart = clock.seconds
        let result = try evaluator.evaluate(communicator)
        if fields.isEmpty { fields = [("step", Double(state.step)), ("train_loss", trainLoss), ("lr", lr)] }
        fields.append(("dev_loss", result.loss))
        if result.loss < (state.bestDevLoss ?? .infinity) {
          state.bestDevLoss = result.loss
          state.bestStep = state.step
          try saveCheckpoint(named: "best")
        }
        pausedSeconds += clock.seconds - pauseStart
      }
      if !fields.isEmpty {
        fields.append(("elapsed_s", state.elapsedSeconds))
        report(fields, maxSteps: training.maxSteps)
      }
      let checkpointDue = training.checkpointInterval > 0 && state.step % training.checkpointInterval == 0
      if checkpointDue || done || stop {
        let pauseStart = clock.seconds
        let name = CheckpointDirectory.name(forStep: state.step)
        try saveCheckpoint(named: name)
        if communicator.rank == 0 { try writer.publishLatest(name) }
        try communicator.barrier()
        pausedSeconds += clock.seconds - pauseStart
        log.say("checkpoint \(name) written")
      }
      if hooks.killAfterStep == state.step { kill(getpid(), SIGKILL) }
      if stop && !done { return .stoppedBySignal(step: state.step) }
    }
    return .finished
  }

  /// One optimizer step: every micro-step's forward and backward on this rank's share, gradients
  /// summed over ranks (bucket by bucket during the last backward), clipped, applied. Returns the
  /// mean loss over the global batch and whether any rank was asked to stop. Allocates nothing.
  public func trainStep(_ step: Int, learningRate: Double, stopRequested: Bool) throws -> (loss: Double, stop: Bool) {
    let training = config.training
    let T = model.shape.blockSize
    let lossScale = Float(1.0 / Double(tokensPerStep))
    let firstSample = communicator.rank * localBatch
    let dropoutKey = RandomKey(seed: training.seed, purpose: .dropout)
    reducer.begin(count: model.gradients.count)
    var lossSum = 0.0
    for micro in 0..<training.gradAccumSteps {
      sampler.fill(
        tokens: tokens, targets: targets, from: data.train, step: step, microStep: micro,
        firstSample: firstSample, count: localBatch)
      let context = DropoutContext(
        probability: model.shape.dropout, stepKey: dropoutKey.then(step).then(micro), firstGlobalSample: firstSample)
      lossSum += model.forward(tokens: tokens, targets: targets, B: localBatch, T: T, dropout: context)
      // The first micro-step writes the gradients and later ones add to them; they are summed over
      // ranks once, after the last micro-step's backward.
      let last = micro == training.gradAccumSteps - 1
      model.backward(
        tokens: tokens, targets: targets, B: localBatch, T: T, lossScale: lossScale, dropout: context,
        accumulate: micro > 0
      ) {
        if last { self.reducer.gradientsReady($0) }
      }
    }
    // This rank holds the summed gradients of its shares only: it clips by the norm the ranks add
    // up, updates those parameters, and gathers the rest from the ranks that updated them.
    try reducer.finish()
    let shares = reducer.shares
    stepSums[0] = lossSum
    stepSums[1] = stopRequested ? 1 : 0
    stepSums[2] = reducer.sumOfSquaresOfShares
    try communicator.allreduceSum(stepSums)
    let trainLoss = stepSums[0] / Double(tokensPerStep)
    guard trainLoss.isFinite else { throw TrainingError.diverged(step: step + 1, loss: trainLoss) }
    let clipping = gradientClipping(sumOfSquares: stepSums[2], maxNorm: Float(config.optimizer.gradClip))
    optimizer.step(
      parameters: model.parameters, gradients: model.gradients, learningRate: Float(learningRate),
      gradientScale: clipping.scale, over: shares)
    try reducer.gatherShards(of: model.parameters)
    return (trainLoss, stepSums[1] > 0)
  }

  /// Tokens of the global batch: every rank's share of every micro-step.
  private var tokensPerStep: Int {
    config.training.batchSize * config.training.gradAccumSteps * model.shape.blockSize
  }

  private func saveCheckpoint(named name: String) throws {
    // Each rank's optimizer state is current only in its shares.
    for (_, buffer) in optimizer.state { try reducer.gatherShards(of: buffer) }
    if communicator.rank == 0 {
      try writer.write(
        name: name, model: model, optimizer: optimizer, state: state, configJSON: config.resolvedJSON(),
        vocabularyJSON: data.tokenizer.vocabularyJSON())
    }
    try communicator.barrier()
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

  private func report(_ fields: [(String, Double)], maxSteps: Int) {
    var parts: [String] = []
    for (key, value) in fields {
      switch key {
      case "step": parts.append("step \(Int(value))/\(maxSteps)")
      case "train_loss": parts.append(String(format: "loss %.4f", value))
      case "dev_loss": parts.append(String(format: "dev loss %.4f", value))
      case "lr": parts.append(String(format: "lr %.2e", value))
      case "tokens_per_s": parts.append(String(format: "%.0f tok/s", value))
      case "elapsed_s": parts.append(String(format: "%.1fs", value))
      default: break
      }
    }
    log.say(parts.joined(separator: " | "))
    log.record(fields)
  }
}

public enum TrainingError: Error, CustomStringConvertible {
  case diverged(step: Int, loss: Double)
  case replicasDiverged(step: Int, rank: Int)

  public var description: String {
    switch self {
    case .diverged(let step, let loss):
      return "training diverged at step \(step): the loss is \(loss) (try a lower optimizer.learning_rate or set optimizer.grad_clip)"
    case .replicasDiverged(let step, let rank):
      return "the ranks' parameters differ at step \(step) (seen on rank \(rank)): the replicas diverged, which points at a bug or faulty hardware; the job stops rather than train inconsistent models"
    }
  }
}

/// Fault injection for the end-to-end tests, read once from the environment; real runs set none.
struct TestHooks {
  /// ATTN_TRAIN_TEST_KILL_AFTER_STEP=N: every rank sends itself SIGKILL right after step N (after
  /// its checkpoint, if one is due, is published): a hard crash at a known step.
  var killAfterStep: Int?
  /// ATTN_TRAIN_TEST_PERTURB_RANK=r: rank r moves one parameter by one ulp just before the first
  /// consistency check, so the tests can prove the check catches the smallest divergence. (Earlier
  /// would not do: every step's gather hands each parameter to every rank from the rank that owns it.)
  var perturbRank: Int?

  static func fromEnvironment() -> TestHooks {
    let environment = ProcessInfo.processInfo.environment
    return TestHooks(
      killAfterStep: environment["ATTN_TRAIN_TEST_KILL_AFTER_STEP"].flatMap { Int($0) },
      perturbRank: environment["ATTN_TRAIN_TEST_PERTURB_RANK"].flatMap { Int($0) })
  }
}

/// Monotonic seconds since creation.
struct Stopwatch {
  private let start = DispatchTime.now().uptimeNanoseconds
  var seconds: Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
}
