// Loss on the whole dev split: every window once, in order, shared contiguously between ranks and
// summed with one allreduce, so the figure is the same at any number of processes (up to float
// rounding of the final sum).

import AttnCore
import AttnDist
import Foundation

public struct EvaluationResult: Sendable, Equatable {
  public let loss: Double
  public let tokens: Int
  public var perplexity: Double { exp(loss) }
  /// Bits per token; for the char and byte tokenizers, bits per character and per byte.
  public var bitsPerChar: Double { loss / log(2) }
}

public final class Evaluator {
  private let model: GPT
  private let windows: DevWindows
  private let stream: [Int32]
  private let tokens: UnsafeMutablePointer<Int32>
  private let targets: UnsafeMutablePointer<Int32>
  private let sums = UnsafeMutableBufferPointer<Double>.allocate(capacity: 2)

  public init(model: GPT, dev: [Int32]) {
    self.model = model
    let T = model.shape.blockSize
    windows = DevWindows(tokenCount: dev.count, sequenceLength: T)
    stream = dev
    tokens = .allocate(capacity: model.maxBatch * T)
    targets = .allocate(capacity: model.maxBatch * T)
  }

  deinit {
    tokens.deallocate()
    targets.deallocate()
    sums.deallocate()
  }

  public func evaluate(_ communicator: Communicator) throws -> EvaluationResult {
    let T = windows.sequenceLength
    let mine = windows.share(rank: communicator.rank, of: communicator.size)
    var lossSum = 0.0
    var start = mine.lowerBound
    while start < mine.upperBound {
      let batch = start..<min(start + model.maxBatch, mine.upperBound)
      windows.fill(tokens: tokens, targets: targets, from: stream, windows: batch)
      lossSum += model.forward(tokens: tokens, targets: targets, B: batch.count, T: T)
      start = batch.upperBound
    }
    sums[0] = lossSum
    sums[1] = Double(mine.count * T)
    try communicator.allreduceSum(sums)
    return EvaluationResult(loss: sums[0] / sums[1], tokens: Int(sums[1]))
  }
}
