// Wall time per kind of layer, summed over forward and backward, for `--profile`. Off by default;
// when off, a measured section costs one branch. Timing is per process and not thread-safe: the
// model runs one step at a time.

#if canImport(Glibc)
  import Glibc
#else
  import Darwin
#endif

public enum ProfiledSection: Int, CaseIterable, Sendable {
  case embedding, layerNorm, matmul, attention, gelu, residual, dropout, rotary, crossEntropy
  case gradientSync, clipping, optimizer
  case lossHead  // the output projection to the vocabulary (a matmul, reported apart: V can be large)
  case pooling  // a classifier's pooling of each sequence's real tokens
}

public enum Profiler {
  nonisolated(unsafe) public static var enabled = false
  nonisolated(unsafe) private static var forward = [Double](repeating: 0, count: ProfiledSection.allCases.count)
  nonisolated(unsafe) private static var backward = [Double](repeating: 0, count: ProfiledSection.allCases.count)

  @inline(__always)
  public static func now() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
  }

  /// Runs `body`, charging its time to `section` (forward or backward).
  @inline(__always)
  public static func measure<R>(_ section: ProfiledSection, backward isBackward: Bool = false, _ body: () throws -> R) rethrows -> R {
    guard enabled else { return try body() }
    let start = now()
    let result = try body()
    let elapsed = now() - start
    if isBackward { backward[section.rawValue] += elapsed } else { forward[section.rawValue] += elapsed }
    return result
  }

  public static func reset() {
    for i in forward.indices {
      forward[i] = 0
      backward[i] = 0
    }
  }

  /// (section, forward seconds, backward seconds), largest total first, sections never timed left out.
  public static func report() -> [(section: ProfiledSection, forward: Double, backward: Double)] {
    ProfiledSection.allCases.map { ($0, forward[$0.rawValue], backward[$0.rawValue]) }
      .filter { $0.1 + $0.2 > 0 }
      .sorted { $0.1 + $0.2 > $1.1 + $1.2 }
  }
}
