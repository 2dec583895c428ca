// What this rank is doing, where its watchdog thread (and through heartbeats, the other ranks') can
// read it without a lock: the work it is in (forward at step 1200) and, separately, the collective
// it waits in, since the data-parallel step's communication thread waits in reduce-scatter while the
// main thread computes backward. Writing is a few relaxed atomic stores: the training step pays
// nothing measurable for it.

import Synchronization

/// What a rank can be doing, as the roll call names it.
public enum Activity: Int, Sendable, CaseIterable {
  case starting, forward, backward, optimizer, evaluation, checkpoint, finished
  case allreduce, reduceScatter, allgather, broadcast, barrier
  case unknown

  public var name: String {
    switch self {
    case .reduceScatter: return "reduce_scatter"
    default: return "\(self)"
    }
  }

  /// Work that may rightly take far longer than a training step.
  public var isSlowWork: Bool { self == .starting || self == .evaluation || self == .checkpoint || self == .finished }
}

public final class RankActivity: Sendable {
  private let work = Atomic<Int>(Activity.starting.rawValue)
  private let workStep = Atomic<Int>(0)
  private let collective = Atomic<Int>(-1)
  private let collectiveSince = Atomic<UInt64>(0)
  /// Bumped at every change of work or collective, and by long work as it goes (evaluation batches):
  /// a counter that stops moving is a rank that stopped.
  private let progress = Atomic<Int>(0)
  /// The last training step's wall time (the deadline scales with it) and the part of it spent
  /// computing rather than waiting for other ranks (what shows a straggler), in microseconds.
  private let stepMicroseconds = Atomic<Int>(0)
  private let computeMicroseconds = Atomic<Int>(0)
  /// The step this start began at: the first steps get the start-up allowance.
  private let firstStep = Atomic<Int>(0)

  public init() {}

  public func begin(_ activity: Activity, step: Int) {
    work.store(activity.rawValue, ordering: .relaxed)
    workStep.store(step, ordering: .relaxed)
    progress.add(1, ordering: .relaxed)
  }

  /// Long work that is still moving (one more evaluation batch, say).
  public func advance() { progress.add(1, ordering: .relaxed) }

  public func enter(_ collective: Activity) {
    collectiveSince.store(monotonicNanoseconds(), ordering: .relaxed)
    self.collective.store(collective.rawValue, ordering: .relaxed)
    progress.add(1, ordering: .relaxed)
  }

  public func leave() {
    collective.store(-1, ordering: .relaxed)
    progress.add(1, ordering: .relaxed)
  }

  public func trainingStarts(at step: Int) { firstStep.store(step, ordering: .relaxed) }

  /// The last training step's wall time and its computing part (the trainer reports each step).
  public func stepTook(seconds: Double, computing: Double) {
    stepMicroseconds.store(Int(seconds * 1e6), ordering: .relaxed)
    computeMicroseconds.store(Int(computing * 1e6), ordering: .relaxed)
  }

  public struct Snapshot: Equatable, Sendable {
    public var work: Activity
    public var step: Int
    /// The collective being waited in, and for how long; nil when in none.
    public var collective: Activity?
    public var collectiveSeconds: Double
    public var progress: Int
    public var stepSeconds: Double
    public var computeSeconds: Double
    public var firstStep: Int
  }

  public func snapshot() -> Snapshot {
    let c = collective.load(ordering: .relaxed)
    let since = collectiveSince.load(ordering: .relaxed)
    let now = monotonicNanoseconds()
    return Snapshot(
      work: Activity(rawValue: work.load(ordering: .relaxed)) ?? .unknown, step: workStep.load(ordering: .relaxed),
      collective: c < 0 ? nil : Activity(rawValue: c) ?? .unknown,
      collectiveSeconds: c < 0 || now < since ? 0 : Double(now - since) / 1e9, progress: progress.load(ordering: .relaxed),
      stepSeconds: Double(stepMicroseconds.load(ordering: .relaxed)) / 1e6,
      computeSeconds: Double(computeMicroseconds.load(ordering: .relaxed)) / 1e6, firstStep: firstStep.load(ordering: .relaxed))
  }
}

#if canImport(Glibc)
  import Glibc
#endif

func monotonicNanoseconds() -> UInt64 {
  var time = timespec()
  clock_gettime(CLOCK_MONOTONIC, &time)
  return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}
