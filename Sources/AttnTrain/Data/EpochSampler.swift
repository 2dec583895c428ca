// Which example each sample of a classification run reads: global sample g falls in epoch
// e = g / count at position g mod count of that epoch's shuffled order, a permutation drawn from
// (seed, e). Every epoch visits every example once, and the batch of step t is a pure function of
// (seed, t), so a resumed run and any rank count draw the same examples.

import AttnCore

public final class EpochSampler {
  public let seed: UInt64
  public let count: Int
  private var epoch = -1
  /// The current epoch's order, allocated once: a new epoch reshuffles it in place.
  private let order: UnsafeMutablePointer<Int32>

  public init(seed: UInt64, count: Int) {
    precondition(count >= 1, "an epoch of no examples")
    self.seed = seed
    self.count = count
    order = .allocate(capacity: count)
  }

  deinit { order.deallocate() }

  /// The example global sample g reads. Allocates nothing.
  public func example(globalSample g: Int) -> Int {
    let e = g / count
    if e != epoch { shuffle(e) }
    return Int(order[g % count])
  }

  /// Fisher-Yates, each swap's partner drawn from the epoch's key.
  private func shuffle(_ e: Int) {
    epoch = e
    for i in 0..<count { order[i] = Int32(i) }
    let key = RandomKey(seed: seed, purpose: .batch).then(e)
    for i in stride(from: count - 1, to: 0, by: -1) {
      let j = key.integer(i, below: i + 1)
      order.swapAt(i, j)
    }
  }
}

extension UnsafeMutablePointer {
  fileprivate func swapAt(_ i: Int, _ j: Int) {
    let kept = self[i]
    self[i] = self[j]
    self[j] = kept
  }
}
