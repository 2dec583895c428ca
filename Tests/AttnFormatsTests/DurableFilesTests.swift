// Durable-file helpers: contents land where they should, replacement leaves no temporaries, and
// every failure is a FileError that names the path and what was attempted. (Tests run as root
// here, so unwritable locations are made with missing directories and files posing as directories
// rather than chmod.)
import Foundation
import Testing

import AttnFormats

@Suite struct DurableFilesTests {
  @Test func replaceFileAtomicallyReplacesContentsAndLeavesNoTemporaries() throws {
    let dir = try makeDurableScratch()
    defer { try? removeTree(dir) }
    let latest = dir + "/latest"
    try replaceFileAtomically(path: latest, contents: Data("step_000100 and a longer tail\n".utf8))
    try replaceFileAtomically(path: latest, contents: Data("step_000200\n".utf8))
    #expect(try String(contentsOfFile: latest, encoding: .utf8) == "step_000200\n")
    #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["latest"])
  }

  @Test func writeFileDurablyTruncatesWhatWasThere() throws {
    let dir = try makeDurableScratch()
    defer { try? removeTree(dir) }
    let path = dir + "/config.json"
    try writeFileDurably(path: path, contents: Data("0123456789".utf8))
    try writeFileDurably(path: path, bytes: Array("abc".utf8))
    #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data("abc".utf8))
  }

  @Test func atomicRenameMovesADirectoryIntoPlace() throws {
    let dir = try makeDurableScratch()
    defer { try? removeTree(dir) }
    try FileManager.default.createDirectory(atPath: dir + "/step_1.tmp", withIntermediateDirectories: false)
    try writeFileDurably(path: dir + "/step_1.tmp/model.safetensors", bytes: [1, 2, 3])
    try atomicRename(from: dir + "/step_1.tmp", to: dir + "/step_1")
    #expect(FileManager.default.fileExists(atPath: dir + "/step_1/model.safetensors"))
    #expect(!FileManager.default.fileExists(atPath: dir + "/step_1.tmp"))
  }

  @Test func failuresNameThePathAndTheOperation() throws {
    let dir = try makeDurableScratch()
    defer { try? removeTree(dir) }
    let missingDir = dir + "/no-such-dir"
    expectFileError(missingDir + "/latest", "replace (open for writing of latest.tmp-", "No such file or directory") {
      try replaceFileAtomically(path: missingDir + "/latest", contents: Data("x".utf8))
    }
    try writeFileDurably(path: dir + "/plain", bytes: [0])
    expectFileError(dir + "/plain/latest", "Not a directory") {
      try writeFileDurably(path: dir + "/plain/latest", bytes: [1])
    }
    expectFileError(dir, "Is a directory") { try writeFileDurably(path: dir, bytes: [1]) }
    expectFileError(missingDir, "open directory for fsync failed") { try fsyncDirectory(missingDir) }
    expectFileError(dir + "/absent", "rename to \(dir)/b failed: No such file") {
      try atomicRename(from: dir + "/absent", to: dir + "/b")
    }
    #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["plain"])
  }

  @Test func removeTreeDeletesEverythingButFollowsNoLinks() throws {
    let dir = try makeDurableScratch()
    defer { try? removeTree(dir) }
    let outside = dir + "/keep.txt"
    try writeFileDurably(path: outside, bytes: [42])
    let tree = dir + "/step_1"
    try FileManager.default.createDirectory(atPath: tree + "/a/b", withIntermediateDirectories: true)
    try writeFileDurably(path: tree + "/a/b/model.safetensors", bytes: [1])
    try writeFileDurably(path: tree + "/.hidden", bytes: [2])
    try FileManager.default.createSymbolicLink(atPath: tree + "/a/link", withDestinationPath: outside)
    try FileManager.default.createSymbolicLink(atPath: tree + "/dirlink", withDestinationPath: dir)
    try removeTree(tree)
    #expect(!FileManager.default.fileExists(atPath: tree))
    #expect(try Data(contentsOf: URL(fileURLWithPath: outside)) == Data([42]))
    try removeTree(tree)  // already gone: like rm -rf, not an error
  }
}

private func expectFileError(
  _ path: String, _ fragments: String..., sourceLocation: SourceLocation = #_sourceLocation,
  _ body: () throws -> Void
) {
  do {
    try body()
    Issue.record("expected a FileError containing \(fragments)", sourceLocation: sourceLocation)
  } catch let error as FileError {
    #expect(error.description.hasPrefix(path + ": "), "\(error)", sourceLocation: sourceLocation)
    for fragment in fragments {
      #expect(error.description.contains(fragment), "\(error)", sourceLocation: sourceLocation)
    }
  } catch {
    Issue.record("expected FileError, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
  }
}

private func makeDurableScratch() throws -> String {
  let dir = (NSTemporaryDirectory() as NSString).appendingPathComponent("attn-durable-" + UUID().uuidString)
  try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
  return dir
}
