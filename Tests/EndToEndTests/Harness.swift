// Runs the attn-train binary that `swift test` built (it sits beside the test bundle) in a child
// process (ChildProcess: a time limit, nothing of ours inherited), and collects its output; writes
// configs into temporary directories.
// Child processes never inherit the OMPI_*/PMIX_* variables a singleton MPI_Init in this test process
// may have set: a child mpirun that sees them fails silently.

import AttnFormats
import Foundation
import TestProcesses
import Testing

enum Harness {
  static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()
  static let shakespeare = repository.appendingPathComponent("data/tinyshakespeare/input.txt").path

  static var binary: String {
    var directory = Bundle.main.bundleURL
    // swift-testing and XCTest bundles both live in the build products directory.
    for _ in 0..<4 {
      let candidate = directory.appendingPathComponent("attn-train").path
      if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
      directory.deleteLastPathComponent()
    }
    let products = repository.appendingPathComponent(".build/debug/attn-train").path
    return products
  }

  typealias Result = ChildProcess.Finished

  static func cleanEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
    var environment = ProcessInfo.processInfo.environment.filter { key, _ in
      !key.hasPrefix("OMPI_") && !key.hasPrefix("PMIX_") && !key.hasPrefix("PMI_")
    }
    environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
    environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    environment["OMPI_MCA_rmaps_base_oversubscribe"] = "1"
    environment["ATTN_TRAIN_THREADS"] = environment["ATTN_TRAIN_THREADS"] ?? "1"
    // The measured peak for MFU is cached here rather than in the user's ~/.cache.
    environment["XDG_CACHE_HOME"] = FileManager.default.temporaryDirectory.appendingPathComponent("attn-train-test-cache").path
    for (key, value) in extra { environment[key] = value }
    return environment
  }

  /// Runs `executable arguments` and waits, killing it with its descendants after `timeout` seconds.
  static func run(
    _ executable: String, _ arguments: [String], environment: [String: String] = [:], timeout: Double = 300
  ) throws -> Result {
    try ChildProcess.run(executable, arguments, environment: cleanEnvironment(environment), timeout: timeout)
  }

  static func attnTrain(_ arguments: [String], environment: [String: String] = [:], timeout: Double = 300) throws -> Result {
    try run(binary, arguments, environment: environment, timeout: timeout)
  }

  /// `mpirun -np N attn-train arguments`, with what running as root on a small machine needs.
  static func mpirun(_ ranks: Int, _ arguments: [String], environment: [String: String] = [:], timeout: Double = 300) throws -> Result {
    try run(mpirunPath, mpirunArguments(ranks, arguments), environment: environment, timeout: timeout)
  }

  static let mpirunPath = "/usr/bin/mpirun"

  /// mpirun's arguments for `ranks` copies of the built binary.
  static func mpirunArguments(_ ranks: Int, _ arguments: [String]) -> [String] {
    ["--allow-run-as-root", "--oversubscribe", "-np", "\(ranks)", binary] + arguments
  }

  static var mpirunAvailable: Bool { FileManager.default.isExecutableFile(atPath: mpirunPath) }

  /// A fresh temporary directory, removed by the caller when it likes (left for inspection otherwise).
  static func temporaryDirectory(_ label: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("attn-train-\(label)-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
  }

  /// Writes a config (sections merged over a small default) and returns its path.
  static func writeConfig(in directory: URL, name: String = "config.json", _ sections: [String: [String: Any]]) throws -> String {
    var config: [String: [String: Any]] = [
      "model": ["n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 32],
      "optimizer": ["kind": "adamw", "learning_rate": 3e-3],
      "schedule": ["kind": "cosine", "warmup_steps": 5],
      "training": ["batch_size": 8, "max_steps": 20, "eval_interval": 0, "log_interval": 1, "checkpoint_interval": 0],
      "data": ["train_path": shakespeare],
      "output": ["run_dir": directory.appendingPathComponent("run").path],
    ]
    for (section, values) in sections {
      for (key, value) in values { config[section, default: [:]][key] = value }
    }
    let path = directory.appendingPathComponent(name).path
    let data = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
    try data.write(to: URL(fileURLWithPath: path))
    return path
  }

  /// The JSON objects of a run's metrics.jsonl, read exactly. (Foundation's JSONSerialization reads
  /// some 17-digit numbers to a neighbouring Double here: "3.9599166526459157" came back as
  /// 3.959916652645917, which would hide or fake a one-ulp difference between two runs.)
  static func metrics(runDirectory: String) throws -> [[String: Double]] {
    let text = try String(contentsOfFile: (runDirectory as NSString).appendingPathComponent("metrics.jsonl"), encoding: .utf8)
    return try text.split(separator: "\n").map { line in
      let record = try JSONObject(JSONValue.parse(Data(line.utf8)))
      var values: [String: Double] = [:]
      for key in record.keys { values[key] = try record.double(key) }
      return values
    }
  }

  /// train_loss by step from metrics.jsonl.
  static func losses(runDirectory: String) throws -> [Int: Double] {
    var result: [Int: Double] = [:]
    for record in try metrics(runDirectory: runDirectory) {
      if let step = record["step"], let loss = record["train_loss"] { result[Int(step)] = loss }
    }
    return result
  }
}
