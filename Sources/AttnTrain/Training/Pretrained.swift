// training.init_from: a fresh run that starts from another run's weights, as fine-tuning does. The
// body (embeddings, blocks, final norm) is copied from the checkpoint; a classifier's head starts
// from its usual random initialisation. The run takes the checkpoint's tokenizer, since the body's
// embedding rows mean that tokenizer's ids; the config must name it, so a config read alone says
// what the run reads.

import AttnCore
import AttnFormats
import Foundation

public struct Pretrained {
  public let checkpoint: LoadedCheckpoint

  /// Opens `config.training.init_from`: a checkpoint directory (or the `latest` pointer), or a run
  /// directory's newest valid checkpoint. Checks that the config's model and tokenizer fit it.
  public init(_ config: Config, log: RunLog) throws {
    guard let named = config.training.initFrom else { preconditionFailure("no training.init_from") }
    let field = "training.init_from"
    let path = Self.checkpointOrRunDirectory(named)
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
      let exists = FileManager.default.fileExists(atPath: path)
      throw InputError(
        file: config.sourcePath, field: field, problem: "\(path) \(exists ? "is not a directory" : "does not exist")",
        hint: exists
          ? "name a checkpoint directory or a run directory"
          : "train the language model it names first, or name another checkpoint or run directory")
    }
    let manifest = (path as NSString).appendingPathComponent(CheckpointDirectory.manifestFile)
    do {
      if FileManager.default.fileExists(atPath: manifest) {
        checkpoint = try LoadedCheckpoint(path: path, name: (path as NSString).lastPathComponent)
      } else if let newest = try RunDirectory(path: path, origin: field).checkpoints.newestValid(warn: log.warn) {
        checkpoint = newest
      } else {
        throw InputError(file: path, field: field, problem: "holds no checkpoint", hint: "name a checkpoint directory or a run directory with checkpoints")
      }
    } catch let error as InputError where error.field == nil {
      throw InputError(file: error.file, field: field, problem: error.problem, hint: error.hint)
    }
    try checkModel(config)
    try checkTokenizer(config)
  }

  /// A run's `checkpoints/latest` means the checkpoint it names, and its `checkpoints/` the run.
  private static func checkpointOrRunDirectory(_ path: String) -> String {
    let followed = CheckpointDirectory.followingLatestPointer(path)
    let manifest = (followed as NSString).appendingPathComponent(CheckpointDirectory.manifestFile)
    let isCheckpointsFolder = (followed as NSString).lastPathComponent == "checkpoints"
    guard isCheckpointsFolder, !FileManager.default.fileExists(atPath: manifest) else { return followed }
    return (followed as NSString).deletingLastPathComponent
  }

  private var described: String { "the init_from checkpoint \(checkpoint.path)" }

  private func checkModel(_ config: Config) throws {
    let (mine, theirs) = (config.model, checkpoint.config.model)
    let pairs: [(String, String, String)] = [
      ("n_layer", "\(mine.nLayer)", "\(theirs.nLayer)"), ("n_head", "\(mine.nHead)", "\(theirs.nHead)"),
      ("n_embd", "\(mine.nEmbd)", "\(theirs.nEmbd)"),
      ("position_encoding", mine.positionEncoding.rawValue, theirs.positionEncoding.rawValue),
    ]
    if let (key, a, b) = pairs.first(where: { $0.1 != $0.2 }) {
      throw InputError(
        file: config.sourcePath, field: "model.\(key)", problem: "is \(a), but \(described) has \(b)",
        hint: "the body is copied as it is: set model.\(key) to \(b)")
    }
    if mine.blockSize > theirs.blockSize {
      throw InputError(
        file: config.sourcePath, field: "model.block_size",
        problem: "is \(mine.blockSize), longer than the \(theirs.blockSize) positions of \(described)",
        hint: "use block_size \(theirs.blockSize) or less")
    }
  }

  /// The config's data.tokenizer must describe the checkpoint's: the same kind, the same BPE file's
  /// merges, or a learned BPE of the same size.
  private func checkTokenizer(_ config: Config) throws {
    let theirs = checkpoint.tokenizer
    let matches: Bool
    switch config.data.tokenizer {
    case .char: matches = theirs.kind == .char
    case .byte: matches = theirs.kind == .byte
    case .bpe(let file): matches = theirs == Tokenizer(try BytePairEncoding.load(path: file, field: "data.tokenizer"))
    case .trainedBPE(let size, let specials):
      matches = theirs.kind == .bpe && theirs.vocabSize == size && specials.allSatisfy { theirs.specialID($0) != nil }
    }
    guard matches else {
      throw InputError(
        file: config.sourcePath, field: "data.tokenizer",
        problem: "does not match \(described), which was trained with a \(theirs.kind.rawValue) tokenizer of \(theirs.vocabSize) ids",
        hint: "fine-tuning reads the pretrained model's ids: set data.tokenizer as its config does (\(checkpoint.path)/config.json)")
    }
  }

  /// Copies every tensor of `model` outside a classifier's head from the checkpoint; the positions
  /// of a shorter block_size are the checkpoint's first ones.
  public func loadBody(into model: GPT) throws {
    for tensor in model.layout.tensors where !tensor.name.hasPrefix("classifier.") {
      try checkpoint.restore(tensor, into: model, prefixOK: tensor.name == "wpe")
    }
  }
}
