// Checkpoints on disk, without a training run: what is written reads back bit for bit; every kind
// of damage (a changed byte, a missing file, a truncated or malformed safetensors file, even one
// whose manifest was rewritten to match) is refused with the file named; the newest valid
// checkpoint is found past damaged ones; partial directories are never candidates; pruning keeps
// the newest K and never `best`.

import AttnCore
import AttnFormats
import Foundation
import Testing

@testable import AttnTrain

@Suite struct CheckpointTests {
  /// A small model and optimizer with non-trivial state, and a writer into a scratch run directory.
  final class Fixture {
    let run: RunDirectory
    let model: GPT
    let optimizer: Optimizer
    let config: Config
    let tokenizer = Tokenizer.characters(of: ["abcdefghij"])

    init(keep: Int = 3) throws {
      let dir = FileManager.default.temporaryDirectory.appendingPathComponent("attn-ckpt-\(UUID().uuidString.prefix(8))").path
      run = RunDirectory(path: dir, origin: "test")
      try run.prepare()
      var config = Config(sourcePath: dir + "/config.json")
      config.data.trainPaths = [dir + "/input.txt"]
      config.output.runDir = dir
      (config.model.nLayer, config.model.nHead, config.model.nEmbd, config.model.blockSize) = (1, 2, 8, 4)
      config.training.keepCheckpoints = keep
      self.config = config
      model = GPT(shape: config.modelShape(vocabSize: tokenizer.vocabSize), maxBatch: 1)
      model.initializeParameters(seed: 7)
      optimizer = Optimizer(settings: config.optimizer.settings, layout: model.layout)
      for (i, (_, buffer)) in optimizer.state.enumerated() {
        for j in 0..<buffer.count { buffer.pointer[j] = Float(j % 13) * 0.25 + Float(i) }
      }
      optimizer.stepCount = 42
    }

    deinit { try? removeTree(run.path) }

    var checkpoints: CheckpointDirectory { run.checkpoints }
    var writer: CheckpointWriter { CheckpointWriter(directory: checkpoints, keep: config.training.keepCheckpoints) }

    @discardableResult
    func save(step: Int, publish: Bool = true) throws -> String {
      let name = CheckpointDirectory.name(forStep: step)
      let state = TrainerState(step: step, tokensSeen: step * 32, elapsedSeconds: 1.5, worldSize: 2)
      try writer.write(
        name: name, model: model, optimizer: optimizer, state: state, configJSON: config.resolvedJSON(),
        vocabularyJSON: tokenizer.vocabularyJSON())
      if publish { try writer.publishLatest(name) }
      return name
    }

    func file(_ checkpoint: String, _ name: String) -> String { checkpoints.path(checkpoint) + "/" + name }

    /// Rewrites the manifest to match the files as they are now, as if the damage happened before
    /// the checksums were taken: only the safetensors reader's own checks are left to catch it.
    func resealManifest(_ checkpoint: String) throws {
      var digests: [String: String] = [:]
      for name in CheckpointDirectory.contentFiles { digests[name] = try SHA256.hexDigest(ofFile: file(checkpoint, name)) }
      try JSONEncoder().encode(["sha256": digests]).write(to: URL(fileURLWithPath: file(checkpoint, CheckpointDirectory.manifestFile)))
    }
  }

  static func overwrite(_ path: String, _ transform: (inout Data) -> Void) throws {
    var data = try Data(contentsOf: URL(fileURLWithPath: path))
    transform(&data)
    try data.write(to: URL(fileURLWithPath: path))
  }

  @Test func whatIsWrittenReadsBackBitForBit() throws {
    let f = try Fixture()
    let name = try f.save(step: 30)
    #expect(f.checkpoints.latestName() == name)
    let files = try FileManager.default.contentsOfDirectory(atPath: f.checkpoints.path(name)).sorted()
    #expect(files == (CheckpointDirectory.contentFiles + [CheckpointDirectory.manifestFile]).sorted())

    let loaded = try LoadedCheckpoint(path: f.checkpoints.path(name), name: name)
    #expect(loaded.state == TrainerState(step: 30, tokensSeen: 960, elapsedSeconds: 1.5, worldSize: 2))
    #expect(loaded.config.model == f.config.model)
    #expect(loaded.tokenizer == f.tokenizer)
    let model = GPT(shape: f.model.shape, maxBatch: 1)
    try loaded.restoreWeights(into: model)
    #expect(Array(model.parameters.buffer) == Array(f.model.parameters.buffer))
    let optimizer = Optimizer(settings: f.config.optimizer.settings, layout: model.layout)
    try loaded.restoreOptimizer(optimizer, layout: model.layout)
    #expect(optimizer.stepCount == 42)
    for (a, b) in zip(optimizer.state, f.optimizer.state) {
      #expect(a.name == b.name && Array(a.buffer.buffer) == Array(b.buffer.buffer))
    }
  }

  @Test func aChangedByteOrAMissingFileIsNamed() throws {
    let f = try Fixture()
    let name = try f.save(step: 10)
    let path = f.checkpoints.path(name)
    let weights = f.file(name, CheckpointDirectory.modelFile)
    try Self.overwrite(weights) { $0[$0.count - 3] ^= 0x80 }
    let changed = #expect(throws: InputError.self) { try LoadedCheckpoint(path: path, name: name) }
    #expect(changed?.description.contains("\(weights): checksum mismatch") == true, "\(String(describing: changed))")

    for file in CheckpointDirectory.contentFiles + [CheckpointDirectory.manifestFile] {
      let g = try Fixture()
      let name = try g.save(step: 10)
      let missing = g.file(name, file)
      try FileManager.default.removeItem(atPath: missing)
      let error = #expect(throws: InputError.self) { try LoadedCheckpoint(path: g.checkpoints.path(name), name: name) }
      #expect(error?.description.contains("\(missing): missing") == true, "\(String(describing: error))")
    }
  }

  // With the manifest resealed, checksums pass, and the safetensors reader must still refuse.
  @Test(arguments: ["truncated", "cut inside the header", "malformed header JSON", "absurd header length", "empty file"])
  func aDamagedSafetensorsFileIsNeverLoaded(_ damage: String) throws {
    func transform(_ data: inout Data) {
      switch damage {
      case "truncated": data.removeLast(40)
      case "cut inside the header": data.removeLast(data.count - 20)
      case "malformed header JSON": data[9] = UInt8(ascii: "#")
      case "absurd header length": data.replaceSubrange(0..<8, with: [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0])
      default: data = Data()
      }
    }
    for file in [CheckpointDirectory.modelFile, CheckpointDirectory.optimizerFile] {
      let f = try Fixture()
      let name = try f.save(step: 10)
      let path = f.file(name, file)
      try Self.overwrite(path, transform)
      try f.resealManifest(name)
      var error: Error?
      do {
        let loaded = try LoadedCheckpoint(path: f.checkpoints.path(name), name: name)
        let model = GPT(shape: f.model.shape, maxBatch: 1)
        try loaded.restoreWeights(into: model)
        try loaded.restoreOptimizer(Optimizer(settings: f.config.optimizer.settings, layout: model.layout), layout: model.layout)
      } catch let caught {
        error = caught
      }
      let text = error.map { "\($0)" } ?? ""
      #expect(text.contains(path), "\(damage) \(file) was loaded or not named: \(text)")
    }
  }

  @Test func weightsForAnotherShapeAreRefusedByName() throws {
    let f = try Fixture()
    let name = try f.save(step: 10)
    let loaded = try LoadedCheckpoint(path: f.checkpoints.path(name), name: name)
    var shape = f.model.shape
    shape.channels = 16
    let error = #expect(throws: InputError.self) { try loaded.restoreWeights(into: GPT(shape: shape, maxBatch: 1)) }
    #expect(error?.description.contains("tensor wte has shape [10, 8], the model needs [10, 16]") == true, "\(String(describing: error))")
  }

  /// Weights with a NaN (attn-train never saves them; written here by the writer directly) are
  /// refused by tensor and element, for resuming, eval, sample, predict and init_from alike.
  @Test func nonFiniteWeightsAreRefusedByName() throws {
    let f = try Fixture()
    let wpe = try #require(f.model.layout["wpe"])
    f.model.parameters.pointer[wpe.offset + 3] = .infinity
    let name = try f.save(step: 10)
    let loaded = try LoadedCheckpoint(path: f.checkpoints.path(name), name: name)
    let error = #expect(throws: InputError.self) { try loaded.restoreWeights(into: GPT(shape: f.model.shape, maxBatch: 1)) }
    #expect(error?.description.contains("tensor wpe holds inf at element 3: weights of a diverged run") == true, "\(String(describing: error))")
  }

  @Test func theNewestValidCheckpointIsFoundPastDamagedOnes() throws {
    let f = try Fixture()
    #expect(try f.checkpoints.newestValid(warn: { _ in }) == nil)
    for step in [10, 20, 30] { try f.save(step: step) }
    let weights = f.file("step-0000030", CheckpointDirectory.modelFile)
    try Self.overwrite(weights) { $0[100] ^= 1 }
    var warnings: [String] = []
    let found = try f.checkpoints.newestValid(warn: { warnings.append($0) })
    #expect(found?.name == "step-0000020")
    #expect(warnings.count == 1)
    #expect(warnings.first?.contains("step-0000030") == true && warnings.first?.contains("\(weights): checksum mismatch") == true, "\(warnings)")

    try FileManager.default.removeItem(atPath: f.file("step-0000020", CheckpointDirectory.trainerFile))
    try Self.overwrite(f.file("step-0000010", CheckpointDirectory.vocabularyFile)) { $0.append(0x20) }
    let error = #expect(throws: InputError.self) { try f.checkpoints.newestValid(warn: { _ in }) }
    let text = error?.description ?? ""
    #expect(text.contains("no valid checkpoint") && text.contains("step-0000030") && text.contains("step-0000020") && text.contains("step-0000010"), "\(text)")
    #expect(text.contains("--fresh"), "\(text)")
  }

  /// A checkpoint renamed into place just before a crash (never published), and a `latest` that
  /// points further back: the run resumes from the newest whole checkpoint, and says why.
  @Test func theNewestWholeCheckpointWinsOverAnOlderLatest() throws {
    let f = try Fixture()
    try f.save(step: 10)
    try f.save(step: 20, publish: false)  // renamed into place, then the process died
    var warnings: [String] = []
    #expect(try f.checkpoints.newestValid(warn: { warnings.append($0) })?.name == "step-0000020")
    #expect(warnings == ["`latest` names step-0000010, but step-0000020 is newer: resuming from the newest checkpoint that verifies"])
    try f.save(step: 30)
    try replaceFileAtomically(path: f.checkpoints.latestPointer, contents: Data("step-0000010\n".utf8))
    #expect(try f.checkpoints.newestValid(warn: { _ in })?.name == "step-0000030")
  }

  /// Rejecting a checkpoint renames it away before `latest` moves back: at every moment in between,
  /// the newest step checkpoint is the good one.
  @Test func aRejectedCheckpointIsNeverResumedAfterACrashHalfwayThroughRejectingIt() throws {
    let f = try Fixture()
    try f.save(step: 10)
    try f.save(step: 20)
    #expect(try f.writer.reject("step-0000020", returningTo: "step-0000010") == "rejected-step-0000020")
    #expect(f.checkpoints.latestName() == "step-0000010")
    #expect(f.checkpoints.stepCheckpoints().map(\.name) == ["step-0000010"])
    // The crash between the two changes: the rename done, `latest` still on the rejected name.
    try replaceFileAtomically(path: f.checkpoints.latestPointer, contents: Data("step-0000020\n".utf8))
    #expect(try f.checkpoints.newestValid(warn: { _ in })?.name == "step-0000010")
  }

  @Test func partialDirectoriesAreNeverCandidatesAndAreRemovedAtStart() throws {
    let f = try Fixture()
    try f.save(step: 10)
    // A whole checkpoint under a partial name, newer than the real one, and `latest` pointing at it.
    let partial = f.checkpoints.path(".partial-step-0000090-12345")
    try FileManager.default.copyItem(atPath: f.checkpoints.path("step-0000010"), toPath: partial)
    try replaceFileAtomically(path: f.checkpoints.latestPointer, contents: Data(".partial-step-0000090-12345\n".utf8))
    #expect(f.checkpoints.stepCheckpoints().map(\.name) == ["step-0000010"])
    #expect(try f.checkpoints.newestValid(warn: { _ in })?.name == "step-0000010")
    try f.run.removePartialCheckpoints()
    #expect(!FileManager.default.fileExists(atPath: partial))
    #expect(f.checkpoints.partialDirectories().isEmpty)
  }

  @Test func pruningKeepsTheNewestAndNeverBest() throws {
    let f = try Fixture(keep: 2)
    let state = TrainerState(step: 10, tokensSeen: 0, elapsedSeconds: 0, worldSize: 1)
    try f.writer.write(
      name: "best", model: f.model, optimizer: f.optimizer, state: state, configJSON: f.config.resolvedJSON(),
      vocabularyJSON: f.tokenizer.vocabularyJSON())
    for step in [10, 20, 30, 40] { try f.save(step: step) }
    let entries = try FileManager.default.contentsOfDirectory(atPath: f.checkpoints.root).sorted()
    #expect(entries == ["best", "latest", "step-0000030", "step-0000040"])
    // Rewriting best replaces it whole and leaves nothing aside.
    f.model.parameters.pointer[0] += 1
    try f.writer.write(
      name: "best", model: f.model, optimizer: f.optimizer, state: state, configJSON: f.config.resolvedJSON(),
      vocabularyJSON: f.tokenizer.vocabularyJSON())
    let best = try LoadedCheckpoint(path: f.checkpoints.path("best"), name: "best")
    let model = GPT(shape: f.model.shape, maxBatch: 1)
    try best.restoreWeights(into: model)
    #expect(model.parameters.pointer[0] == f.model.parameters.pointer[0])
    #expect(f.checkpoints.partialDirectories().isEmpty)
  }

  /// A crash between the two renames that replace `best` leaves only the retired copy: the next
  /// start puts it back rather than deleting the last best checkpoint.
  @Test func aRetiredBestIsPutBackWhenNoBestExists() throws {
    let fixture = try Fixture()
    try fixture.save(step: 10, publish: false)
    let retired = fixture.checkpoints.path(".partial-retired-best-4242")
    try atomicRename(from: fixture.checkpoints.path("step-0000010"), to: retired)
    let halfWritten = fixture.checkpoints.path(".partial-step-0000020-4242")
    try FileManager.default.createDirectory(atPath: halfWritten, withIntermediateDirectories: true)
    try fixture.run.removePartialCheckpoints()
    let best = try LoadedCheckpoint(path: fixture.checkpoints.path("best"), name: "best")
    #expect(best.state.step == 10)
    #expect(!FileManager.default.fileExists(atPath: retired))
    #expect(!FileManager.default.fileExists(atPath: halfWritten))

    // With a best in place, a retired copy is only a leftover.
    try fixture.save(step: 20, publish: false)
    try atomicRename(from: fixture.checkpoints.path("step-0000020"), to: retired)
    try fixture.run.removePartialCheckpoints()
    #expect(try LoadedCheckpoint(path: fixture.checkpoints.path("best"), name: "best").state.step == 10)
    #expect(!FileManager.default.fileExists(atPath: retired))
  }

  /// Checksums that match prove the files are the ones written, not that they are right: a
  /// checkpoint whose tensor has the wrong shape is skipped for the previous one, named.
  @Test func aWrongShapeBehindMatchingChecksumsFallsBackToThePreviousCheckpoint() throws {
    let fixture = try Fixture()
    try fixture.save(step: 10)
    let newest = try fixture.save(step: 20)
    let path = fixture.file(newest, CheckpointDirectory.modelFile)
    let original = try SafeTensorsFile(path: path)
    var rewritten = SafeTensorsWriter(metadata: original.metadata)
    var kept: [[Float]] = []
    for name in original.names { kept.append(try original.floats(name)) }
    for (name, values) in zip(original.names, kept) {
      var shape = original.shape(of: name)!
      if name == "wte" { shape.reverse() }
      values.withUnsafeBufferPointer { rewritten.add(name, shape: shape, $0) }
    }
    try rewritten.write(to: path)
    try fixture.resealManifest(newest)

    var warnings: [String] = []
    let chosen = try #require(try fixture.checkpoints.newestValid { warnings.append($0) })
    #expect(chosen.name == "step-0000010")
    #expect(warnings.contains { $0.contains(newest) && $0.contains("tensor wte has shape") }, "\(warnings)")
  }
}
