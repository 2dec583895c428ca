// How many compute threads each rank runs: the override (the CLI passes ATTN_TRAIN_THREADS), else
// training.threads, else the node's cores shared evenly among the ranks on the node, at least one.
// Ranks x threads above the cores would make the ranks' threads take turns on them.

import AttnCore
import AttnDist
import AttnFormats

public struct ThreadChoice: Equatable, Sendable {
  public let threads: Int
  /// What decided it, for the line that says so.
  public let source: String
  public let ranks: Int

  public init(config: Config, communicator: Communicator, cores: Int, override: String?) throws {
    ranks = communicator.size
    if let override {
      guard let value = Int(override), value >= 1 else {
        throw InputError(file: "environment", field: "ATTN_TRAIN_THREADS", problem: "\"\(override)\" is not a whole number >= 1")
      }
      (threads, source) = (value, "ATTN_TRAIN_THREADS")
    } else if let fromConfig = config.training.threads {
      (threads, source) = (fromConfig, "training.threads")
    } else {
      (threads, source) = (max(1, cores / communicator.localSize), "\(cores) cores / \(communicator.localSize) ranks on this node")
    }
  }

  /// Sizes the worker pool that models built from now on compute with.
  public func apply() { ComputeThreads.set(threads) }

  public var line: String { "ranks: \(ranks), threads per rank: \(threads) (\(source))" }
}
