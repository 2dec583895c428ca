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
      guard let value = Int(override), (1...Self.maximum).contains(value) else {
        throw InputError(
          file: "environment", field: "ATTN_TRAIN_THREADS",
          problem: "\"\(override.prefix(40))\" is not a whole number from 1 to \(Self.maximum) (training.threads has the same bound)")
      }
      (threads, source) = (value, "ATTN_TRAIN_THREADS")
    } else if let fromConfig = config.training.threads {
      (threads, source) = (fromConfig, "training.threads")
    } else {
      (threads, source) = (max(1, cores / communicator.localSize), "\(cores) cores / \(communicator.localSize) ranks on this node")
    }
    (localRanks, self.cores) = (communicator.localSize, cores)
  }

  /// The most threads a rank may run, from any source.
  public static let maximum = 4096
  private let localRanks: Int
  private let cores: Int

  /// Said when the node's ranks run more threads than it has cores: they then take turns on the
  /// cores and every step waits for the slowest turn (4096 threads on 2 cores ran at 0.2% speed).
  public var oversubscription: String? {
    guard threads * localRanks > cores else { return nil }
    return "\(localRanks) rank(s) x \(threads) threads on this node exceed its \(cores) cores (\(source)); threads will take turns and run slower than \(max(1, cores / localRanks)) per rank would"
  }

  /// Sizes the worker pool that models built from now on compute with.
  public func apply() { ComputeThreads.set(threads) }

  public var line: String { "ranks: \(ranks), threads per rank: \(threads) (\(source))" }
}
