// Learning rate as a function of the step alone (no state to checkpoint), as nanoGPT's get_lr:
// linear warmup to the peak, then constant, cosine decay or linear decay to min_lr at decaySteps.

#if canImport(Glibc)
  import Glibc
#else
  import Darwin
#endif

public enum ScheduleKind: String, Sendable, CaseIterable {
  case constant, cosine, linear
}

public struct LearningRateSchedule: Equatable, Sendable {
  public var kind: ScheduleKind
  public var peak: Double
  public var warmupSteps: Int
  public var decaySteps: Int
  public var minimum: Double

  public init(kind: ScheduleKind, peak: Double, warmupSteps: Int = 0, decaySteps: Int = 0, minimum: Double = 0) {
    self.kind = kind
    self.peak = peak
    self.warmupSteps = warmupSteps
    self.decaySteps = decaySteps
    self.minimum = minimum
  }

  /// The rate for 0-based `step`.
  public func rate(at step: Int) -> Double {
    if step < warmupSteps { return peak * Double(step + 1) / Double(warmupSteps + 1) }
    if kind == .constant { return peak }
    if step >= decaySteps { return minimum }
    let ratio = Double(step - warmupSteps) / Double(max(1, decaySteps - warmupSteps))
    let coefficient = kind == .cosine ? 0.5 * (1 + cos(Double.pi * ratio)) : 1 - ratio
    return minimum + coefficient * (peak - minimum)
  }
}
