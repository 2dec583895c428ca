// Faults the end-to-end tests inject into a real run of the binary, to prove that crashes, damaged
// checkpoints and diverged replicas are caught. A real run has none. The library never reads the
// environment: the command line program builds this from ATTN_TRAIN_TEST_* variables, once.

public struct FaultInjection: Equatable, Sendable {
  /// Every rank sends itself SIGKILL right after this step (after its checkpoint, if one is due, is
  /// published): a hard crash at a known step.
  public var killAfterStep: Int?
  /// This rank moves one parameter by one ulp just before the first consistency check, so the
  /// tests can prove the check catches the smallest divergence. (Earlier would not do: every step's
  /// gather hands each parameter to every rank from the rank that owns it.)
  public var perturbRank: Int?
  /// Seconds of sleep between a checkpoint's files, so a test can kill the process mid-write.
  public var pauseBetweenCheckpointFiles: Double
  /// This rank writes a NaN into its first announced gradient range in these steps (1-based, as
  /// logged): a non-finite gradient on one rank only, which every rank must agree to skip.
  public var nanGradientRank: Int?
  public var nanGradientSteps: ClosedRange<Int>?
  /// Every rank writes a NaN into the first parameter right after this step's update, as an
  /// overflowing update would: the checkpoint of that step must not be written.
  public var nanParameterAfterStep: Int?
  /// This rank sleeps this long in every micro-step's compute: a straggler, slow but alive, which
  /// the watchdog must name without stopping the job.
  public var slowRank: Int?
  public var slowRankSeconds = 0.0
  /// This rank's main thread blocks for ever in this step's forward pass (1-based), as a read from a
  /// hung NFS server would, while its other threads (the watchdog's) run on.
  public var hangRank: Int?
  public var hangStep: Int?

  public static let none = FaultInjection(killAfterStep: nil, perturbRank: nil, pauseBetweenCheckpointFiles: 0)

  public init(killAfterStep: Int?, perturbRank: Int?, pauseBetweenCheckpointFiles: Double) {
    self.killAfterStep = killAfterStep
    self.perturbRank = perturbRank
    self.pauseBetweenCheckpointFiles = pauseBetweenCheckpointFiles
  }

  /// The variables the tests set: ATTN_TRAIN_TEST_KILL_AFTER_STEP, ATTN_TRAIN_TEST_PERTURB_RANK,
  /// ATTN_TRAIN_TEST_CHECKPOINT_PAUSE_S, ATTN_TRAIN_TEST_NAN_GRADIENT ("RANK:STEP" or
  /// "RANK:FIRST-LAST"), ATTN_TRAIN_TEST_NAN_PARAMETER_AFTER_STEP and ATTN_TRAIN_TEST_SLOW_RANK
  /// ("RANK:SECONDS") and ATTN_TRAIN_TEST_HANG_RANK ("RANK:STEP").
  public init(environment: [String: String]) {
    self.init(
      killAfterStep: environment["ATTN_TRAIN_TEST_KILL_AFTER_STEP"].flatMap { Int($0) },
      perturbRank: environment["ATTN_TRAIN_TEST_PERTURB_RANK"].flatMap { Int($0) },
      pauseBetweenCheckpointFiles: environment["ATTN_TRAIN_TEST_CHECKPOINT_PAUSE_S"].flatMap { Double($0) } ?? 0)
    nanParameterAfterStep = environment["ATTN_TRAIN_TEST_NAN_PARAMETER_AFTER_STEP"].flatMap { Int($0) }
    if let spec = environment["ATTN_TRAIN_TEST_SLOW_RANK"]?.split(separator: ":"), spec.count == 2,
      let rank = Int(spec[0]), let seconds = Double(spec[1])
    {
      (slowRank, slowRankSeconds) = (rank, seconds)
    }
    if let spec = environment["ATTN_TRAIN_TEST_HANG_RANK"]?.split(separator: ":"), spec.count == 2,
      let rank = Int(spec[0]), let step = Int(spec[1])
    {
      (hangRank, hangStep) = (rank, step)
    }
    if let spec = environment["ATTN_TRAIN_TEST_NAN_GRADIENT"] {
      let parts = spec.split(separator: ":")
      let steps = parts.count == 2 ? parts[1].split(separator: "-").compactMap { Int($0) } : []
      if parts.count == 2, let rank = Int(parts[0]), let first = steps.first, steps.count <= 2, first <= steps.last! {
        nanGradientRank = rank
        nanGradientSteps = first...steps.last!
      }
    }
  }

  func poisonsGradient(rank: Int, step: Int) -> Bool {
    nanGradientRank == rank && nanGradientSteps?.contains(step) == true
  }
}
