// What a training process will hold, computed from the buffers it allocated: printed at start, and
// the reference that peak resident memory is compared against.

public struct MemoryPlan: Sendable, Equatable {
  public let parameterBytes: Int
  public let gradientBytes: Int
  public let optimizerBytes: Int
  public let activationBytes: Int

  public init(model: GPT, optimizer: Optimizer) {
    parameterBytes = model.parameters.count * 4
    gradientBytes = model.gradients.count * 4
    optimizerBytes = optimizer.state.reduce(0) { $0 + $1.buffer.count * 4 }
    activationBytes = model.activationBytes
  }

  /// The same plan before anything is built, from the shape alone: what a run checks against the
  /// memory it has before it allocates.
  public init(shape: ModelShape, maxBatch: Int, optimizer: OptimizerSettings, threads: Int) {
    let parameters = ParameterLayout(shape).count
    parameterBytes = parameters * 4
    gradientBytes = parameters * 4
    optimizerBytes = Optimizer.stateNames(optimizer).count * parameters * 4
    activationBytes = plannedActivationFloats(shape, maxBatch, threads: threads) * 4
  }

  public var totalBytes: Int { parameterBytes + gradientBytes + optimizerBytes + activationBytes }

  /// "parameters 0.4 MiB, gradients 0.4 MiB, optimizer state 0.9 MiB, activations 9.8 MiB: 11.5 MiB"
  public var summary: String {
    func mb(_ bytes: Int) -> String {
      let value = Double(bytes) / 1_048_576
      let rounded = (value * 10).rounded() / 10
      return "\(rounded) MiB"
    }
    return "parameters \(mb(parameterBytes)), gradients \(mb(gradientBytes)), optimizer state \(mb(optimizerBytes)), activations \(mb(activationBytes)): \(mb(totalBytes))"
  }
}
