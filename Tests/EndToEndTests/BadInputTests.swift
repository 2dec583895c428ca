// Bad input, each case through the real binary: the run must stop with a non-zero status and one
// clear line on stderr that names the file or field and the problem — never a Swift trap or a
// backtrace — and it must not damage anything already on disk.
import Foundation
import Testing

/// What a Swift trap, a crash handler or a signal leaves in the output; none may appear.
private let crashMarkers = [
  "Fatal error", "Stack dump", "backtrace", "Backtrace", "Illegal instruction", "SIGILL", "SIGTRAP",
  "SIGSEGV", "Segmentation fault", "Precondition failed", "Assertion failed",
]

/// Checks a failure that attn-train itself reports: status 1 and exactly one `attn-train: error:`
/// line on stderr containing every one of `words`.
private func expectReportedError(
  _ result: Harness.Result, _ words: [String], sourceLocation: SourceLocation = #_sourceLocation
) {
  #expect(result.status == 1, "exit status; stderr: \(result.stderr)", sourceLocation: sourceLocation)
  let errorLines = result.stderr.split(separator: "\n").filter { $0.hasPrefix("attn-train: error: ") }
  #expect(errorLines.count == 1, "one error line; stderr: \(result.stderr)", sourceLocation: sourceLocation)
  let line = errorLines.first.map(String.init) ?? ""
  for word in words {
    #expect(line.contains(word), "error line lacks \"\(word)\": \(line)", sourceLocation: sourceLocation)
  }
  expectNoCrash(result, sourceLocation: sourceLocation)
}

/// Checks a refused command line: the argument parser's usage error (status 64, EX_USAGE) naming
/// the option and what was wrong.
private func expectUsageError(
  _ result: Harness.Result, _ words: [String], sourceLocation: SourceLocation = #_sourceLocation
) {
  #expect(result.status == 64, "exit status; stderr: \(result.stderr)", sourceLocation: sourceLocation)
  #expect(result.stderr.hasPrefix("Error: "), "stderr: \(result.stderr)", sourceLocation: sourceLocation)
  let firstLine = result.stderr.split(separator: "\n").first.map(String.init) ?? ""
  for word in words {
    #expect(firstLine.contains(word), "error lacks \"\(word)\": \(firstLine)", sourceLocation: sourceLocation)
  }
  #expect(result.stdout.isEmpty, "nothing on stdout: \(result.stdout)", sourceLocation: sourceLocation)
  expectNoCrash(result, sourceLocation: sourceLocation)
}

private func expectNoCrash(_ result: Harness.Result, sourceLocation: SourceLocation) {
  for marker in crashMarkers {
    #expect(!result.output.contains(marker), "output contains \"\(marker)\": \(result.output)", sourceLocation: sourceLocation)
  }
}

/// Writes `bytes` to `name` in `directory` and returns its path.
private func writeFile(_ directory: URL, _ name: String, _ bytes: [UInt8]) throws -> String {
  let path = directory.appendingPathComponent(name).path
  try Data(bytes).write(to: URL(fileURLWithPath: path))
  return path
}

/// The first `count` bytes of Tiny Shakespeare.
private func shakespeare(_ count: Int) throws -> [UInt8] {
  Array(try Data(contentsOf: URL(fileURLWithPath: Harness.shakespeare)).prefix(count))
}

/// Every regular file under `root` with its contents, by relative path; not the run-directory
/// lock, which each start that takes it fills with who holds it.
private func snapshot(_ root: URL) throws -> [String: Data] {
  var files: [String: Data] = [:]
  let enumerator = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey])!
  for case let url as URL in enumerator
  where (try url.resourceValues(forKeys: [.isRegularFileKey])).isRegularFile == true && url.lastPathComponent != ".attn-train.lock" {
    files[String(url.path.dropFirst(root.path.count))] = try Data(contentsOf: url)
  }
  return files
}

@Suite struct BadInputTests {
  // MARK: - Config file

  @Test func unknownKeyIsNamedWithASuggestion() throws {
    let dir = try Harness.temporaryDirectory("bad-key")
    let config = try Harness.writeConfig(in: dir, ["optimizer": ["lerning_rate": 0.01]])
    let result = try Harness.attnTrain([config])
    expectReportedError(result, [config, "optimizer.lerning_rate", "unknown key", "did you mean \"learning_rate\"?"])
    #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("run").path), "no run directory made")
  }

  @Test func wrongTypeNamesFieldValueAndExpectedType() throws {
    let dir = try Harness.temporaryDirectory("bad-type")
    let config = try Harness.writeConfig(in: dir, ["model": ["n_head": "2"]])
    let result = try Harness.attnTrain([config])
    expectReportedError(result, [config, "model.n_head", "\"2\"", "integer", "string"])
  }

  @Test func negativeLearningRateIsRefused() throws {
    let dir = try Harness.temporaryDirectory("bad-lr")
    let config = try Harness.writeConfig(in: dir, ["optimizer": ["learning_rate": -0.1]])
    let result = try Harness.attnTrain([config])
    expectReportedError(result, [config, "optimizer.learning_rate", "-0.1", "must be"])
  }

  @Test func headsMustDivideWidth() throws {
    let dir = try Harness.temporaryDirectory("bad-heads")
    let config = try Harness.writeConfig(in: dir, ["model": ["n_head": 3, "n_embd": 32]])
    let result = try Harness.attnTrain([config])
    expectReportedError(result, [config, "model.n_head", "3", "n_embd", "divisible"])
  }

  @Test func missingConfigFile() throws {
    let dir = try Harness.temporaryDirectory("no-config")
    let path = dir.appendingPathComponent("nowhere.json").path
    let result = try Harness.attnTrain([path])
    expectReportedError(result, [path, "does not exist"])
  }

  @Test func malformedJSONGivesTheLine() throws {
    let dir = try Harness.temporaryDirectory("bad-json")
    let path = try writeFile(dir, "broken.json", Array("{\n  \"model\": {\"n_layer\": 2,}\n}\n".utf8))
    let result = try Harness.attnTrain([path])
    expectReportedError(result, [path, "malformed JSON", "line 2"])
  }

  // MARK: - Data files

  @Test func missingDataFile() throws {
    let dir = try Harness.temporaryDirectory("no-data")
    let data = dir.appendingPathComponent("absent.txt").path
    let config = try Harness.writeConfig(in: dir, ["data": ["train_path": data]])
    let result = try Harness.attnTrain([config])
    expectReportedError(result, [data, "data.train_path", "no such file"])
  }

  @Test func emptyDataFile() throws {
    let dir = try Harness.temporaryDirectory("empty-data")
    let data = try writeFile(dir, "empty.txt", [])
    let config = try Harness.writeConfig(in: dir, ["data": ["train_path": data]])
    let result = try Harness.attnTrain([config])
    expectReportedError(result, [data, "data.train_path", "empty"])
  }

  @Test func dataShorterThanBlockSizePlusOne() throws {
    // 20 characters: the training split (18) cannot hold one window of 32 inputs plus a target.
    let dir = try Harness.temporaryDirectory("short-data")
    let data = try writeFile(dir, "short.txt", try shakespeare(20))
    let config = try Harness.writeConfig(in: dir, ["model": ["block_size": 32], "data": ["train_path": data]])
    let result = try Harness.attnTrain([config])
    expectReportedError(result, [data, "block_size", "33"])
  }

  @Test func devFileShorterThanBlockSizePlusOne() throws {
    // A separate dev file of exactly block_size characters is one short of a window.
    let dir = try Harness.temporaryDirectory("short-dev")
    let dev = try writeFile(dir, "dev.txt", try shakespeare(32))
    let config = try Harness.writeConfig(in: dir, ["model": ["block_size": 32], "data": ["dev_path": dev]])
    let result = try Harness.attnTrain([config])
    expectReportedError(result, [dev, "block_size", "33"])
  }

  @Test func devFileOfExactlyBlockSizePlusOneIsEnough() throws {
    // The boundary of the rule above: block_size + 1 tokens make one window, and training runs.
    let dir = try Harness.temporaryDirectory("exact-dev")
    let dev = try writeFile(dir, "dev.txt", try shakespeare(33))
    let config = try Harness.writeConfig(
      in: dir, [
        "model": ["block_size": 32], "data": ["dev_path": dev], "schedule": ["warmup_steps": 0],
        "training": ["max_steps": 1],
      ])
    let result = try Harness.attnTrain([config])
    #expect(result.status == 0, "\(result.output)")
    let metrics = try Harness.metrics(runDirectory: dir.appendingPathComponent("run").path)
    #expect(metrics.last?["dev_loss"] != nil, "the one dev window was evaluated")
  }

  @Test func invalidUTF8UnderCharTokenizerNamesTheByteOffset() throws {
    let dir = try Harness.temporaryDirectory("bad-utf8")
    // 0xFF can never appear in UTF-8; it sits at byte offset 12.
    let data = try writeFile(dir, "latin.txt", Array("hello world ".utf8) + [0xFF, 0xFE] + Array(" more text".utf8))
    let config = try Harness.writeConfig(in: dir, ["data": ["train_path": data]])
    let result = try Harness.attnTrain([config])
    expectReportedError(result, [data, "data.train_path", "UTF-8", "0xFF", "offset 12", "\"byte\""])
  }

  @Test func invalidUTF8OffsetCountsBytesNotCharacters() throws {
    let dir = try Harness.temporaryDirectory("bad-utf8-multibyte")
    // "héllo " is 6 characters but 7 bytes; then a lead byte 0xC3 cut short by an ASCII letter.
    let data = try writeFile(dir, "cut.txt", Array("héllo ".utf8) + [0xC3] + Array("abc".utf8))
    let config = try Harness.writeConfig(in: dir, ["data": ["train_path": data]])
    let result = try Harness.attnTrain([config])
    expectReportedError(result, [data, "UTF-8", "0xC3", "offset 7"])
  }

  // MARK: - Run directory

  @Test func runDirectoryBelowARegularFile() throws {
    let dir = try Harness.temporaryDirectory("run-under-file")
    // Running as root, permissions do not stop us; a regular file in the path always does.
    let blocker = try writeFile(dir, "blocker", Array("not a directory\n".utf8))
    let runDir = blocker + "/run"
    let config = try Harness.writeConfig(in: dir, ["output": ["run_dir": runDir]])
    let result = try Harness.attnTrain([config])
    expectReportedError(result, [runDir, "output.run_dir", "cannot create"])
    #expect(try String(contentsOfFile: blocker, encoding: .utf8) == "not a directory\n", "the file is untouched")
  }

  @Test func runDirectoryThatIsARegularFile() throws {
    let dir = try Harness.temporaryDirectory("run-is-file")
    let blocker = try writeFile(dir, "blocker", Array("keep me\n".utf8))
    let config = try Harness.writeConfig(in: dir, ["output": ["run_dir": blocker]])
    let result = try Harness.attnTrain([config])
    expectReportedError(result, [blocker, "output.run_dir", "not a directory"])
    #expect(try String(contentsOfFile: blocker, encoding: .utf8) == "keep me\n", "the file is untouched")
  }

  @Test func runDirOptionBelowARegularFileNamesTheOption() throws {
    let dir = try Harness.temporaryDirectory("run-dir-option")
    let blocker = try writeFile(dir, "blocker", Array("x".utf8))
    let config = try Harness.writeConfig(in: dir, [:])
    let result = try Harness.attnTrain([config, "--run-dir", blocker + "/run"])
    expectReportedError(result, [blocker + "/run", "--run-dir", "cannot create"])
  }

  // MARK: - Command line

  @Test(arguments: [[], ["eval"], ["sample"]])
  func unknownOptionIsRefused(subcommand: [String]) throws {
    let dir = try Harness.temporaryDirectory("bad-option")
    let config = try Harness.writeConfig(in: dir, [:])
    let result = try Harness.attnTrain(subcommand + [config, "--bogus-option"])
    expectUsageError(result, ["--bogus-option"])
    #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("run").path))
  }

  @Test(arguments: [[], ["eval"], ["sample"]])
  func missingConfigArgument(subcommand: [String]) throws {
    let result = try Harness.attnTrain(subcommand)
    expectUsageError(result, ["<config>"])
  }

  @Test func sampleTokensMustBePositive() throws {
    let dir = try Harness.temporaryDirectory("bad-tokens")
    let config = try Harness.writeConfig(in: dir, [:])
    expectUsageError(try Harness.attnTrain(["sample", config, "--tokens", "0"]), ["--tokens", "at least 1", "0"])
    expectUsageError(try Harness.attnTrain(["sample", config, "--tokens", "many"]), ["tokens", "many"])
  }

  @Test func sampleTemperatureMustNotBeNegative() throws {
    let dir = try Harness.temporaryDirectory("bad-temperature")
    let config = try Harness.writeConfig(in: dir, [:])
    expectUsageError(try Harness.attnTrain(["sample", config, "--temperature=-1"]), ["--temperature", ">= 0", "-1"])
    // Written the way people type it: the value must be read as a (negative) number and refused for
    // its sign, not mistaken for an option and reported as missing.
    expectUsageError(try Harness.attnTrain(["sample", config, "--temperature", "-1"]), ["--temperature", ">= 0", "-1"])
    expectUsageError(try Harness.attnTrain(["sample", config, "--temperature", "nan"]), ["--temperature"])
  }

  @Test func sampleTopKMustBePositive() throws {
    let dir = try Harness.temporaryDirectory("bad-top-k")
    let config = try Harness.writeConfig(in: dir, [:])
    expectUsageError(try Harness.attnTrain(["sample", config, "--top-k", "0"]), ["--top-k", "at least 1"])
  }

  // MARK: - eval and sample without weights

  @Test(arguments: ["eval", "sample"])
  func noCheckpointInTheRunDirectory(subcommand: String) throws {
    let dir = try Harness.temporaryDirectory("no-checkpoint")
    let config = try Harness.writeConfig(in: dir, [:])
    let empty = dir.appendingPathComponent("empty-run")
    try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
    let result = try Harness.attnTrain([subcommand, config, "--run-dir", empty.path])
    expectReportedError(result, [empty.path, "--run-dir", "no checkpoint", "train first"])
    #expect(try FileManager.default.contentsOfDirectory(atPath: empty.path).isEmpty, "nothing written")
  }

  @Test func evalOfARunDirectoryThatDoesNotExistCreatesNothing() throws {
    let dir = try Harness.temporaryDirectory("eval-no-run")
    let config = try Harness.writeConfig(in: dir, [:])
    let result = try Harness.attnTrain(["eval", config])
    let runDir = dir.appendingPathComponent("run").path
    expectReportedError(result, [runDir, "output.run_dir", "no checkpoint"])
    #expect(!FileManager.default.fileExists(atPath: runDir))
  }

  // MARK: - A failed start destroys nothing

  @Test func failedStartsLeaveAnExistingRunUntouched() throws {
    let dir = try Harness.temporaryDirectory("keep-run")
    // A private copy of some data, so the test can break it later.
    let data = try writeFile(dir, "input.txt", try shakespeare(20_000))
    let config = try Harness.writeConfig(
      in: dir, [
        "data": ["train_path": data], "schedule": ["warmup_steps": 0],
        "training": ["max_steps": 4, "checkpoint_interval": 2],
      ])
    let trained = try Harness.attnTrain([config])
    #expect(trained.status == 0, "\(trained.output)")
    let run = dir.appendingPathComponent("run")
    let before = try snapshot(run)
    #expect(before.keys.contains { $0.hasSuffix("step-0000004/model.safetensors") }, "\(before.keys.sorted())")
    #expect(before.keys.contains("/metrics.jsonl"))

    // A config error, pointed at the run directory.
    let typo = try Harness.writeConfig(
      in: dir, name: "typo.json",
      ["data": ["train_path": data], "training": ["max_steps": 8, "checkpoint_interval": 2, "max_step": 9]])
    expectReportedError(try Harness.attnTrain([typo, "--run-dir", run.path]), ["training.max_step", "max_steps"])
    #expect(try snapshot(run) == before, "after a config error")

    // A config that would change the model cannot resume the run, and says which setting differs.
    let wider = try Harness.writeConfig(
      in: dir, name: "wider.json",
      ["model": ["n_embd": 64], "data": ["train_path": data], "training": ["max_steps": 8, "checkpoint_interval": 2]])
    expectReportedError(try Harness.attnTrain([wider, "--run-dir", run.path]), ["cannot resume", "model.n_embd"])
    #expect(try snapshot(run) == before, "after a refused resume")

    // The data file, broken after training, fails the resume before anything is written: the
    // prepared tokens no longer match it, and the message names it.
    try Data().write(to: URL(fileURLWithPath: data))
    let longer = try Harness.writeConfig(
      in: dir, name: "longer.json",
      ["data": ["train_path": data], "training": ["max_steps": 8, "checkpoint_interval": 2]])
    expectReportedError(try Harness.attnTrain([longer, "--run-dir", run.path]), [data, "changed", "0 now"])
    #expect(try snapshot(run) == before, "after a data error")

    // Bad eval and sample invocations on it.
    expectUsageError(try Harness.attnTrain(["sample", config, "--tokens", "0"]), ["--tokens"])
    expectReportedError(try Harness.attnTrain(["eval", config]), [data, "changed"])
    #expect(try snapshot(run) == before, "after failed eval and sample")
  }
}
