// Rank 0 speaks: one line per event on stdout, and for progress and evaluation the same figures as
// one JSON object per line in <run_dir>/metrics.jsonl. Other ranks compute the same numbers and stay
// quiet, except for errors, which every rank reports on stderr.

import AttnFormats
import Foundation

/// One progress record: a line on stdout and an object in metrics.jsonl, keys in this order.
public struct MetricsRecord: Equatable, Sendable {
  public var step: Int
  /// Mean loss of the step's global batch.
  public var trainLoss: Double
  public var learningRate: Double
  /// Training tokens per second since the previous record, all ranks together; nil when the record
  /// is only there for an evaluation.
  public var tokensPerSecond: Double?
  /// Only when the dev set was evaluated at this step.
  public var devLoss: Double?
  /// A classifier's, with devLoss.
  public var devAccuracy: Double?
  public var devMacroF1: Double?
  /// Training wall time of the run, carried across resumes.
  public var elapsedSeconds: Double

  public init(
    step: Int, trainLoss: Double, learningRate: Double, tokensPerSecond: Double? = nil, devLoss: Double? = nil,
    elapsedSeconds: Double
  ) {
    self.step = step
    self.trainLoss = trainLoss
    self.learningRate = learningRate
    self.tokensPerSecond = tokensPerSecond
    self.devLoss = devLoss
    self.elapsedSeconds = elapsedSeconds
  }

  /// "step 2000/2000 | loss 1.7550 | lr 1.00e-04 | 25306 tok/s | dev loss 1.8905 | 72.5s"
  public func line(maxSteps: Int) -> String {
    var parts = ["step \(step)/\(maxSteps)", String(format: "loss %.4f", trainLoss), String(format: "lr %.2e", learningRate)]
    if let tokensPerSecond { parts.append(String(format: "%.0f tok/s", tokensPerSecond)) }
    if let devLoss { parts.append(String(format: "dev loss %.4f", devLoss)) }
    if let devAccuracy { parts.append(String(format: "dev accuracy %.4f", devAccuracy)) }
    if let devMacroF1 { parts.append(String(format: "macro-F1 %.4f", devMacroF1)) }
    parts.append(String(format: "%.1fs", elapsedSeconds))
    return parts.joined(separator: " | ")
  }

  public var json: JSONValue {
    var members: [(key: String, value: JSONValue)] = [
      (key: "step", value: JSONValue(integer: step)), (key: "train_loss", value: Self.number(trainLoss)),
      (key: "lr", value: Self.number(learningRate)),
    ]
    if let tokensPerSecond { members.append((key: "tokens_per_s", value: Self.number(tokensPerSecond))) }
    if let devLoss { members.append((key: "dev_loss", value: Self.number(devLoss))) }
    if let devAccuracy { members.append((key: "dev_accuracy", value: Self.number(devAccuracy))) }
    if let devMacroF1 { members.append((key: "dev_macro_f1", value: Self.number(devMacroF1))) }
    members.append((key: "elapsed_s", value: Self.number(elapsedSeconds)))
    return .object(members)
  }

  /// A whole number is written without a fraction (a rate of 0, say), as the file always had it.
  private static func number(_ x: Double) -> JSONValue {
    x == x.rounded() && abs(x) < 1e15 ? JSONValue(integer: Int(x)) : JSONValue(number: x)
  }
}

public final class RunLog {
  public let isSpeaker: Bool
  /// stdout is a terminal: progress updates one line in place instead of printing a line each.
  public let isTerminal: Bool
  private var metrics: FileHandle?
  private var progressShown = false

  public init(isSpeaker: Bool, isTerminal: Bool = false) {
    self.isSpeaker = isSpeaker
    self.isTerminal = isTerminal
  }

  /// Starts appending to metrics.jsonl (rank 0 only).
  public func openMetrics(path: String) throws {
    guard isSpeaker else { return }
    if !FileManager.default.fileExists(atPath: path) {
      guard FileManager.default.createFile(atPath: path, contents: nil) else {
        throw InputError(file: path, problem: "cannot create the metrics file")
      }
    }
    guard let handle = FileHandle(forWritingAtPath: path) else {
      throw InputError(file: path, problem: "cannot open the metrics file for writing")
    }
    handle.seekToEndOfFile()
    metrics = handle
  }

  public func say(_ line: String) {
    guard isSpeaker else { return }
    endProgress()
    // Unbuffered: under mpirun, stdout is a pipe and buffered lines would arrive late or be lost.
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
  }

  /// A progress report: on a terminal it replaces the previous one on the same line; otherwise it is
  /// a line of its own, printed only when `final` (a piece of work done), so logs stay short.
  public func progress(_ line: String, final: Bool) {
    guard isSpeaker else { return }
    if isTerminal {
      FileHandle.standardOutput.write(Data("\r\u{1B}[K\(line)".utf8))
      progressShown = true
    } else if final {
      FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }
  }

  /// Ends a progress line on a terminal, so the next output starts on a line of its own.
  public func endProgress() {
    guard progressShown else { return }
    progressShown = false
    FileHandle.standardOutput.write(Data("\n".utf8))
  }

  /// Information that must not mix with a command's results on stdout.
  public func note(_ line: String) {
    guard isSpeaker else { return }
    FileHandle.standardError.write(Data((line + "\n").utf8))
  }

  public func warn(_ line: String) {
    guard isSpeaker else { return }
    FileHandle.standardError.write(Data("warning: \(line)\n".utf8))
  }

  /// The progress line on stdout and its record in metrics.jsonl.
  public func record(_ record: MetricsRecord, maxSteps: Int) {
    say(record.line(maxSteps: maxSteps))
    guard isSpeaker, let metrics else { return }
    metrics.write(Data((record.json.description + "\n").utf8))
  }

  public func close() {
    try? metrics?.synchronize()
    try? metrics?.close()
    metrics = nil
  }
}
