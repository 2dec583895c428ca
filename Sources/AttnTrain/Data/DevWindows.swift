// The dev split cut into consecutive windows, each evaluated exactly once, shared among ranks.

/// The dev split as consecutive windows of T inputs (and T shifted targets): window k covers tokens
/// kT ..< kT + T + 1. Every window is evaluated once, in order; the < T leftover tokens at the end
/// are not predicted.
public struct DevWindows: Sendable {
  public let sequenceLength: Int
  public let count: Int

  public init(tokenCount: Int, sequenceLength: Int) {
    self.sequenceLength = sequenceLength
    count = (tokenCount - 1) / sequenceLength
  }

  /// The windows rank r of n evaluates: a contiguous share, sizes differing by at most one.
  public func share(rank: Int, of size: Int) -> Range<Int> {
    (count * rank / size)..<(count * (rank + 1) / size)
  }

  public func fill(
    tokens: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Int32>, from stream: TokenStream,
    vocabularySize: Int, windows: Range<Int>
  ) throws {
    let T = sequenceLength
    for (b, k) in windows.enumerated() {
      try stream.copyWindow(k * T, T, inputs: tokens + b * T, targets: targets + b * T, vocabularySize: vocabularySize)
    }
  }
}
