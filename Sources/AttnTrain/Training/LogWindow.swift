// The steps since the last metrics record: what tokens/s, MFU, seconds per step and the clip
// fraction are averaged over. Evaluation and checkpoint time is paused out, so the figures are the
// training step's own.

import Foundation

struct LogWindow {
  let start: Double
  var pausedSeconds = 0.0
  private var steps = 0
  private var clippedSteps = 0
  private var tokens = 0

  init(start: Double) { self.start = start }

  mutating func add(_ step: Trainer.StepResult, tokens: Int) {
    steps += 1
    if step.clipped { clippedSteps += 1 }
    self.tokens += tokens
  }

  func record(
    step: Int, trainLoss: Double, gradientNorm: Double, learningRate: Double, tokensSeen: Int, flopsPerToken: Double,
    peak: MachinePeak?, now: Double
  ) -> MetricsRecord {
    let seconds = now - start - pausedSeconds
    let rate = seconds > 0 ? Double(tokens) / seconds : 0
    var record = MetricsRecord(step: step, trainLoss: trainLoss, learningRate: learningRate, tokensPerSecond: rate, elapsedSeconds: 0)
    record.tokens = tokensSeen
    if let peak, peak.flopsPerSecond > 0 { record.mfu = rate * flopsPerToken / peak.flopsPerSecond }
    record.stepSeconds = steps > 0 ? seconds / Double(steps) : nil
    record.gradientNorm = gradientNorm
    record.clipFraction = steps > 0 ? Double(clippedSteps) / Double(steps) : nil
    record.residentMiB = ResidentMemory.currentBytes.map { Double($0) / 1_048_576 }
    return record
  }
}
