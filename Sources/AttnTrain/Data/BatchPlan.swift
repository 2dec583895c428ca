// The batch rule, in one place: a step is `grad_accum_steps` micro-steps; each micro-step's global
// batch is `batch_size` sequences of `block_size` tokens, summed over all ranks; rank r of N takes
// the contiguous samples r*B/N ..< (r+1)*B/N. Training refuses a batch the ranks cannot split evenly,
// because uneven shares would weigh some samples' gradients differently from a single process's.
// The trainer, evaluation and the commands all ask this type.

import AttnFormats

public struct BatchPlan: Equatable, Sendable {
  /// Sequences per micro-step, all ranks together.
  public let globalBatch: Int
  public let microSteps: Int
  public let sequenceLength: Int
  public let ranks: Int
  /// Sequences per micro-step on each rank; also the most one forward takes during evaluation.
  public let sequencesPerRank: Int

  /// The training plan; throws when `ranks` does not divide the global batch.
  public init(_ config: Config, ranks: Int) throws {
    let batch = config.training.batchSize
    guard batch % ranks == 0 else {
      throw InputError(
        file: config.sourcePath, field: "training.batch_size",
        problem: "the global batch of \(batch) does not divide among \(ranks) ranks",
        hint: "use a batch_size that is a multiple of the number of ranks")
    }
    self.init(config, ranks: ranks, sequencesPerRank: batch / ranks)
  }

  /// Evaluation at any rank count: the dev windows are shared among ranks, each forward taking at
  /// most the training plan's per-rank batch (so evaluation fits in the memory training needs).
  public static func evaluation(_ config: Config, ranks: Int) -> BatchPlan {
    BatchPlan(config, ranks: ranks, sequencesPerRank: max(1, config.training.batchSize / ranks))
  }

  private init(_ config: Config, ranks: Int, sequencesPerRank: Int) {
    globalBatch = config.training.batchSize
    microSteps = config.training.gradAccumSteps
    sequenceLength = config.model.blockSize
    self.ranks = ranks
    self.sequencesPerRank = sequencesPerRank
  }

  /// The global index of rank `rank`'s first sample in every micro-step.
  public func firstSample(rank: Int) -> Int { rank * sequencesPerRank }

  /// Tokens of one optimizer step: every rank's share of every micro-step.
  public var tokensPerStep: Int { globalBatch * microSteps * sequenceLength }

  /// Sequences (a classifier's examples) of one optimizer step.
  public var examplesPerStep: Int { globalBatch * microSteps }
}
