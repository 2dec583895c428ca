// The terminal's training line: where the bar is, what it says, and an ETA from this start's own
// pace (a resumed run's earlier steps and evaluation pauses do not count).

@testable import AttnTrain
import Testing

@Suite struct ProgressBarTests {
  @Test func lineShowsStepBarFiguresAndETA() {
    var bar = ProgressBar(totalSteps: 200, firstStep: 100, start: 10)
    var record = MetricsRecord(step: 150, trainLoss: 1.5, learningRate: 1e-3, tokensPerSecond: 25306.4, elapsedSeconds: 0)
    record.mfu = 0.413
    // 50 steps in 30 s of training (5 s of it evaluating): 25 s, so 50 more steps take 25 s.
    bar.pause(5)
    bar.update(step: 150, loss: 1.93124, now: 40, latest: record)
    #expect(bar.line(now: 40) == "step 150/200 [###############.....]  75% | loss 1.9312 | 25306 tok/s | mfu 41.3% | ETA 0:25")
  }

  @Test func lastStepSaysDone() {
    var bar = ProgressBar(totalSteps: 10, firstStep: 0, start: 0)
    bar.update(step: 10, loss: 2, now: 1, latest: nil)
    #expect(bar.line(now: 1) == "step 10/10 [####################] 100% | loss 2.0000 | done")
  }

  @Test func redrawsAtMostTenTimesASecond() {
    var bar = ProgressBar(totalSteps: 10, firstStep: 0, start: 0)
    #expect(bar.lineIfDue(now: 1.0) != nil)
    #expect(bar.lineIfDue(now: 1.05) == nil)
    #expect(bar.lineIfDue(now: 1.05, force: true) != nil)
    #expect(bar.lineIfDue(now: 1.2) != nil)
  }

  @Test(arguments: [(7.4, "0:07"), (750, "12:30"), (11100, "3:05:00"), (59.6, "1:00")])
  func durations(seconds: Double, text: String) {
    #expect(ProgressBar.duration(seconds) == text)
  }
}
